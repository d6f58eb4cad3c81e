//! The fast OTLP/JSON reader against the checked one (`json.rs` then `from_proto`): on every
//! body it reads, the same spans and the same refusals; on the bodies it leaves to the checked
//! reader, the answer `decode_http` gives is the checked reader's, error text and all.

use super::json_native::decode;
use super::{Encoding, decode_http, from_proto, json};

/// A span of `fields` (JSON members) inside one resource and one scope.
fn body(fields: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"agent.id","value":{{"stringValue":"a1"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"s","version":"1"}},"spans":[{{{fields}}}]}}]}}]}}"#
    )
}

const IDS: &str = r#""traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174""#;

fn same_as_checked(text: &str) {
    let fast = decode(text.as_bytes()).unwrap_or_else(|| panic!("read fast: {text}"));
    let checked =
        from_proto(json::decode_request(text.as_bytes()).expect("the checked reader reads it"));
    // Compared as printed: a NaN attribute is the same NaN on both sides.
    assert_eq!(
        format!("{:?}", fast.decoded.resource_spans),
        format!("{:?}", checked.resource_spans),
        "{text}"
    );
    assert_eq!(
        fast.decoded.rejected.reasons, checked.rejected.reasons,
        "{text}"
    );
    assert_eq!(
        fast.decoded.rejected.count, checked.rejected.count,
        "{text}"
    );
}

#[test]
fn the_fast_reader_reads_the_otlp_json_rules_as_the_checked_one_does() {
    let spans = [
        format!(r#"{IDS},"name":"agent.work_progress","kind":1,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000"#),
        // The proto names, enum names, numbers as strings with spaces, unknown fields, nulls.
        r#""trace_id":"5b8efff798038103d269b633813fc60c","span_id":"EEE19B7EC3C1B174","name":"n","kind":"SPAN_KIND_SERVER","start_time_unix_nano":" 7 ","flags":null,"status":{"code":"STATUS_CODE_ERROR","message":"m"},"extra":{"x":[1,{"y":null}]},"traceState":null"#.to_owned(),
        // Every kind of value, nested, with escapes in strings and keys.
        format!(r#"{IDS},"name":"a\"b\\c\u00e9","attributes":[
            {{"key":"s","value":{{"stringValue":"x\ny"}}}},
            {{"key":"i","value":{{"intValue":"-8"}}}},{{"key":"i2","value":{{"intValue":9}}}},
            {{"key":"d","value":{{"doubleValue":75}}}},{{"key":"d2","value":{{"doubleValue":"NaN"}}}},
            {{"key":"d3","value":{{"doubleValue":1.5e3}}}},{{"key":"d4","value":{{"doubleValue":"-Infinity"}}}},
            {{"key":"b","value":{{"boolValue":true}}}},{{"key":"bytes","value":{{"bytesValue":"AQI="}}}},
            {{"key":"l","value":{{"arrayValue":{{"values":[{{"stringValue":"x"}},{{"intValue":"1"}},{{}}]}}}}}},
            {{"key":"kv","value":{{"kvlistValue":{{"values":[{{"key":"k","value":{{"boolValue":false}}}}]}}}}}},
            {{"key":"empty","value":{{}}}},{{"key":"none","value":null}},{{"key":"nokey"}},
            {{"key":"nulls","value":{{"stringValue":null,"intValue":"3"}}}},
            {{"key":"esc\u0041pe","value":{{"stringValue":"v"}}}}]"#),
        // Events, links and a parent.
        format!(r#"{IDS},"parentSpanId":"0102030405060708","events":[{{"timeUnixNano":"5","name":"e","attributes":[],"droppedAttributesCount":2}}],
            "links":[{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","traceState":"t","flags":1}}],
            "droppedEventsCount":1,"droppedLinksCount":"2","droppedAttributesCount":3"#),
        // Refused one by one, with the checked reader's words.
        r#""traceId":"0102","spanId":"eee19b7ec3c1b174","name":"short""#.to_owned(),
        r#""traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b174","name":"zeros""#.to_owned(),
        format!(r#"{IDS},"parentSpanId":"01","name":"parent""#),
        format!(r#"{IDS},"name":"link","links":[{{"traceId":"01","spanId":"0102030405060708"}}]"#),
        r#""name":"no ids""#.to_owned(),
    ];
    for fields in &spans {
        same_as_checked(&body(fields));
    }
    // Entity references, schema URLs and empty groups.
    same_as_checked(&format!(
        r#"{{"resourceSpans":[{{"resource":{{"entityRefs":[{{"type":"service","idKeys":["a","b"],"description_keys":null,"schemaUrl":"u"}}],"dropped_attributes_count":"4"}},
        "schema_url":"r","scope_spans":[{{"schemaUrl":"s","spans":[{{{IDS}}}]}},{{"spans":[]}}]}},{{"scopeSpans":null}},{{}}],"unknown":1}}"#
    ));
    same_as_checked(r#"{"resourceSpans":null}"#);
    same_as_checked("{}");
}

#[test]
fn bodies_out_of_the_plain_case_are_left_to_the_checked_reader_which_names_the_path() {
    let left = [
        // Malformed, or a wrong type somewhere.
        body(r#""traceId":"zz""#),
        body(&format!(r#"{IDS},"kind":1.5"#)),
        body(&format!(r#"{IDS},"startTimeUnixNano":-1"#)),
        body(&format!(
            r#"{IDS},"attributes":[{{"key":"k","value":{{"intValue":true}}}}]"#
        )),
        body(&format!(
            r#"{IDS},"attributes":[{{"key":"k","value":{{"bytesValue":"!!"}}}}]"#
        )),
        body(&format!(r#"{IDS},"flags":4294967296"#)),
        body(&format!(r#"{IDS},"kind":"SPAN_KIND_NOPE""#)),
        r#"{"resourceSpans":[["not","an","object"]]}"#.to_owned(),
        "[1,2]".to_owned(),
        r#"{"resourceSpans":3}"#.to_owned(),
        "{".to_owned(),
        // Read by the checked reader (which decides what they mean), not the fast one.
        body(&format!(r#"{IDS},"name":"a","name":"b""#)),
        body(&format!(
            r#"{IDS},"start_time_unix_nano":"1","startTimeUnixNano":"2""#
        )),
        body(&format!(
            r#"{IDS},"attributes":[{{"key":"k","value":{{"stringValue":"x","intValue":"oops"}}}}]"#
        )),
        body(r#""traceId":"5B8EFFF798038103D269B633813FC6\u0030C","spanId":"eee19b7ec3c1b174""#),
        r#"{"resourceSpans":[],"resourceLogs":null}"#.to_owned(),
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"entityRefs":[{{"idKeys":["a",null]}}]}},"scopeSpans":[{{"spans":[{{{IDS}}}]}}]}}]}}"#
        ),
    ];
    for text in &left {
        assert!(
            decode(text.as_bytes()).is_none(),
            "left to the checked reader: {text}"
        );
        let checked = json::decode_request(text.as_bytes()).map(from_proto);
        let served = decode_http(Encoding::Json, text.as_bytes());
        match (checked, served) {
            (Ok(c), Ok(s)) => assert_eq!(c.resource_spans, s.resource_spans, "{text}"),
            (Err(c), Err(s)) => assert_eq!(c.to_string(), s.to_string(), "{text}"),
            (c, s) => panic!("{text}: checked {c:?}, served {s:?}"),
        }
    }
    // Invalid UTF-8, even in a key nobody reads (the fuzzer's find: serde compared the field
    // name as bytes), is the checked reader's to refuse.
    let bad = include_bytes!("../../fuzz/seeds/otlp_json/invalid-utf8-in-an-unknown-key");
    assert!(decode(bad).is_none());
    assert!(decode_http(Encoding::Json, bad).is_err());
    // The checked reader's error names where the body went wrong.
    let e = decode_http(Encoding::Json, body(r#""traceId":"zz""#).as_bytes())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{e}"
    );
}

#[test]
fn a_line_of_a_trace_file_keeps_its_placement() {
    let line = format!(
        r#"{{"spanfold":{{"firstSeq":"42","received_at":7}},"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{IDS}}}]}}]}}]}}"#
    );
    let fast = decode(line.as_bytes()).expect("read fast");
    let (checked, meta) = json::decode_line(line.as_bytes()).expect("a line");
    assert_eq!(fast.meta, meta);
    assert_eq!(meta.map(|m| (m.first_seq, m.received_at)), Some((42, 7)));
    assert_eq!(fast.decoded.resource_spans, checked.resource_spans);
}
