//! OTLP/JSON decoding (the protobuf JSON mapping with OTLP's rules): trace and span ids are hex,
//! enums are integers (names are accepted too), 64-bit integers may be strings or numbers, keys
//! are lowerCamelCase (the proto field names are accepted too), unknown fields are ignored.

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use serde_json::{Map, Value};

use super::DecodeError;

type R<T> = Result<T, DecodeError>;

pub(super) fn err(path: &str, what: &str) -> DecodeError {
    DecodeError::Json(format!("{path}: {what}"))
}

/// A field by its lowerCamelCase name, or its proto name.
pub(super) fn field<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

pub(super) fn object<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| err(path, "expected an object"))
}

pub(super) fn array<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> R<&'a [Value]> {
    match field(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected an array")),
    }
}

pub(super) fn string(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<String> {
    match field(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected a string")),
    }
}

/// An unsigned 64-bit integer written as a number or a decimal string.
pub(super) fn u64_field(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u64> {
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| err(&format!("{path}.{camel}"), "expected an unsigned integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| err(&format!("{path}.{camel}"), "expected an unsigned integer")),
        Some(_) => Err(err(
            &format!("{path}.{camel}"),
            "expected an unsigned integer",
        )),
    }
}

pub(super) fn u32_field(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u32> {
    let v = u64_field(obj, camel, snake, path)?;
    u32::try_from(v).map_err(|_| err(&format!("{path}.{camel}"), "does not fit in 32 bits"))
}

/// An enum: its number, or its name from `names` (index = number).
pub(super) fn enum_field(
    obj: &Map<String, Value>,
    camel: &str,
    path: &str,
    names: &[&str],
) -> R<i32> {
    match field(obj, camel, camel) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| err(&format!("{path}.{camel}"), "expected an integer enum value")),
        Some(Value::String(s)) => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i32)
            .ok_or_else(|| err(&format!("{path}.{camel}"), "unknown enum name")),
        Some(_) => Err(err(
            &format!("{path}.{camel}"),
            "expected an integer enum value",
        )),
    }
}

/// Hex ids; OTLP/JSON does not use base64 for them.
pub(super) fn hex_field(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> R<Vec<u8>> {
    let s = string(obj, camel, snake, path)?;
    decode_hex(&s).ok_or_else(|| err(&format!("{path}.{camel}"), "expected a hex string"))
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

pub fn decode_request(body: &[u8]) -> R<ExportTraceServiceRequest> {
    check_size(body)?;
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_value(&root)
}

/// Most JSON objects one body may hold. Parsed, an object takes about 650 bytes (a B-tree
/// node) however few it took on the wire (`{"a":1}` is seven), so a body of small objects would
/// take a hundred times its size. An OTLP/JSON span of ten attributes is some twenty-five
/// objects: this admits 4,000 such spans per export (SDKs send 512); larger batches go in
/// protobuf, which has no such overhead.
pub const MAX_OBJECTS: usize = 100_000;
/// Most JSON values one body may hold (32 bytes each, parsed).
pub const MAX_VALUES: usize = 500_000;

/// Refuses a body with more objects or values than parsing may take, before it is parsed.
pub(super) fn check_size(body: &[u8]) -> R<()> {
    let (braces, others) = count_openers(body);
    if braces <= MAX_OBJECTS && braces + others < MAX_VALUES {
        return Ok(());
    }
    let (objects, values) = count_values(body);
    if objects > MAX_OBJECTS || values > MAX_VALUES {
        return Err(DecodeError::TooManyJsonValues);
    }
    Ok(())
}

/// The bytes `{`, and the bytes `[` or `,`, anywhere in `body` (strings too). Every object opens
/// with a `{` and every value but the first follows one of the three, so these bound
/// [`count_values`] from above; a loop without branches the compiler turns into SIMD counts
/// them many times faster than the exact scan, which only a body near the limits then needs.
pub fn count_openers(body: &[u8]) -> (usize, usize) {
    let (mut braces, mut others) = (0usize, 0usize);
    // A byte counts at most once, so 255 bytes never overflow a `u8`.
    for chunk in body.chunks(255) {
        let (mut b, mut o) = (0u8, 0u8);
        for &c in chunk {
            b += u8::from(c == b'{');
            o += u8::from(c == b'[') + u8::from(c == b',');
        }
        braces += usize::from(b);
        others += usize::from(o);
    }
    (braces, others)
}

/// The objects in a JSON text, and an upper bound on its values: every value but the first
/// of a container follows a comma, and each container opens with a bracket. Strings are
/// skipped, escapes and all; one pass, no allocation.
pub fn count_values(body: &[u8]) -> (usize, usize) {
    let (mut objects, mut values) = (0, 1);
    let mut in_string = false;
    let mut escaped = false;
    for &c in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' => {
                    objects += 1;
                    values += 1;
                }
                b'[' | b',' => values += 1,
                _ => {}
            }
        }
    }
    (objects, values)
}

/// Where a line of `spanfold export` came from in the log: the seq of its first span and its
/// receive time. OTLP/JSON readers ignore the unknown top-level field that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMeta {
    pub first_seq: u64,
    pub received_at: u64,
}

/// The key of [`LineMeta`] in an exported line.
pub const META_KEY: &str = "spanfold";

/// Decodes one line of OTLP/JSON lines (an ExportTraceServiceRequest), with spanfold's
/// placement in the log when the line has it.
pub fn decode_line(body: &[u8]) -> R<(super::Decoded, Option<LineMeta>)> {
    check_size(body)?;
    if let Some(fast) = super::json_native::decode(body) {
        return Ok((fast.decoded, fast.meta));
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let meta = match root.get(META_KEY) {
        None | Some(Value::Null) => None,
        Some(m) => {
            let m = object(m, META_KEY)?;
            Some(LineMeta {
                first_seq: u64_field(m, "firstSeq", "first_seq", META_KEY)?,
                received_at: u64_field(m, "receivedAt", "received_at", META_KEY)?,
            })
        }
    };
    // The signal is the line's own key (as in the Collector's file exporter).
    let has = |camel: &str, snake: &str| root.get(camel).or_else(|| root.get(snake)).is_some();
    let decoded = if has("resourceLogs", "resource_logs") {
        super::logs::decode_json_value(&root)?
    } else if has("resourceMetrics", "resource_metrics") {
        super::metrics::decode_json_value(&root)?
    } else {
        super::from_proto(decode_value(&root)?)
    };
    Ok((decoded, meta))
}

fn decode_value(root: &Value) -> R<ExportTraceServiceRequest> {
    let root = object(root, "$")?;
    let mut resource_spans = Vec::new();
    for (i, rs) in array(root, "resourceSpans", "resource_spans", "$")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceSpans[{i}]");
        resource_spans.push(resource_spans_from(object(rs, &path)?, &path)?);
    }
    Ok(ExportTraceServiceRequest { resource_spans })
}

/// The `resource` of a resource group of any signal.
pub(super) fn resource_from(obj: &Map<String, Value>, path: &str) -> R<Option<pr::Resource>> {
    Ok(match field(obj, "resource", "resource") {
        None => None,
        Some(v) => {
            let p = format!("{path}.resource");
            let r = object(v, &p)?;
            let mut entity_refs = Vec::new();
            for (i, e) in array(r, "entityRefs", "entity_refs", &p)?
                .iter()
                .enumerate()
            {
                let ep = format!("{p}.entityRefs[{i}]");
                let e = object(e, &ep)?;
                entity_refs.push(pc::EntityRef {
                    schema_url: string(e, "schemaUrl", "schema_url", &ep)?,
                    r#type: string(e, "type", "type", &ep)?,
                    id_keys: strings(e, "idKeys", "id_keys", &ep)?,
                    description_keys: strings(e, "descriptionKeys", "description_keys", &ep)?,
                });
            }
            Some(pr::Resource {
                attributes: key_values(r, "attributes", &p)?,
                dropped_attributes_count: u32_field(
                    r,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                    &p,
                )?,
                entity_refs,
            })
        }
    })
}

/// The `scope` of a scope group of any signal.
pub(super) fn scope_from(
    obj: &Map<String, Value>,
    path: &str,
) -> R<Option<pc::InstrumentationScope>> {
    Ok(match field(obj, "scope", "scope") {
        None => None,
        Some(v) => {
            let sp = format!("{path}.scope");
            let s = object(v, &sp)?;
            Some(pc::InstrumentationScope {
                name: string(s, "name", "name", &sp)?,
                version: string(s, "version", "version", &sp)?,
                attributes: key_values(s, "attributes", &sp)?,
                dropped_attributes_count: u32_field(
                    s,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                    &sp,
                )?,
            })
        }
    })
}

fn resource_spans_from(obj: &Map<String, Value>, path: &str) -> R<pt::ResourceSpans> {
    let resource = resource_from(obj, path)?;
    let mut scope_spans = Vec::new();
    for (i, ss) in array(obj, "scopeSpans", "scope_spans", path)?
        .iter()
        .enumerate()
    {
        let p = format!("{path}.scopeSpans[{i}]");
        let ss = object(ss, &p)?;
        let scope = scope_from(ss, &p)?;
        let mut spans = Vec::new();
        for (j, span) in array(ss, "spans", "spans", &p)?.iter().enumerate() {
            let sp = format!("{p}.spans[{j}]");
            spans.push(span_from(object(span, &sp)?, &sp)?);
        }
        scope_spans.push(pt::ScopeSpans {
            scope,
            spans,
            schema_url: string(ss, "schemaUrl", "schema_url", &p)?,
        });
    }
    Ok(pt::ResourceSpans {
        resource,
        scope_spans,
        schema_url: string(obj, "schemaUrl", "schema_url", path)?,
    })
}

pub(super) const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
pub(super) const STATUS_CODES: &[&str] =
    &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn span_from(obj: &Map<String, Value>, path: &str) -> R<pt::Span> {
    let mut events = Vec::new();
    for (i, e) in array(obj, "events", "events", path)?.iter().enumerate() {
        let p = format!("{path}.events[{i}]");
        let e = object(e, &p)?;
        events.push(pt::span::Event {
            time_unix_nano: u64_field(e, "timeUnixNano", "time_unix_nano", &p)?,
            name: string(e, "name", "name", &p)?,
            attributes: key_values(e, "attributes", &p)?,
            dropped_attributes_count: u32_field(
                e,
                "droppedAttributesCount",
                "dropped_attributes_count",
                &p,
            )?,
        });
    }
    let mut links = Vec::new();
    for (i, l) in array(obj, "links", "links", path)?.iter().enumerate() {
        let p = format!("{path}.links[{i}]");
        let l = object(l, &p)?;
        links.push(pt::span::Link {
            trace_id: hex_field(l, "traceId", "trace_id", &p)?,
            span_id: hex_field(l, "spanId", "span_id", &p)?,
            trace_state: string(l, "traceState", "trace_state", &p)?,
            attributes: key_values(l, "attributes", &p)?,
            dropped_attributes_count: u32_field(
                l,
                "droppedAttributesCount",
                "dropped_attributes_count",
                &p,
            )?,
            flags: u32_field(l, "flags", "flags", &p)?,
        });
    }
    let status = match field(obj, "status", "status") {
        None => None,
        Some(v) => {
            let p = format!("{path}.status");
            let s = object(v, &p)?;
            Some(pt::Status {
                message: string(s, "message", "message", &p)?,
                code: enum_field(s, "code", &p, STATUS_CODES)?,
            })
        }
    };
    Ok(pt::Span {
        trace_id: hex_field(obj, "traceId", "trace_id", path)?,
        span_id: hex_field(obj, "spanId", "span_id", path)?,
        trace_state: string(obj, "traceState", "trace_state", path)?,
        parent_span_id: hex_field(obj, "parentSpanId", "parent_span_id", path)?,
        flags: u32_field(obj, "flags", "flags", path)?,
        name: string(obj, "name", "name", path)?,
        kind: enum_field(obj, "kind", path, SPAN_KINDS)?,
        start_time_unix_nano: u64_field(obj, "startTimeUnixNano", "start_time_unix_nano", path)?,
        end_time_unix_nano: u64_field(obj, "endTimeUnixNano", "end_time_unix_nano", path)?,
        attributes: key_values(obj, "attributes", path)?,
        dropped_attributes_count: u32_field(
            obj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        events,
        dropped_events_count: u32_field(obj, "droppedEventsCount", "dropped_events_count", path)?,
        links,
        dropped_links_count: u32_field(obj, "droppedLinksCount", "dropped_links_count", path)?,
        status,
    })
}

pub(super) fn strings(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> R<Vec<String>> {
    array(obj, camel, snake, path)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(&format!("{path}.{camel}"), "expected strings"))
        })
        .collect()
}

pub(super) fn key_values(obj: &Map<String, Value>, name: &str, path: &str) -> R<Vec<pc::KeyValue>> {
    let mut out = Vec::new();
    for (i, kv) in array(obj, name, name, path)?.iter().enumerate() {
        let p = format!("{path}.{name}[{i}]");
        let kv = object(kv, &p)?;
        out.push(pc::KeyValue {
            key: string(kv, "key", "key", &p)?,
            value: match field(kv, "value", "value") {
                None => None,
                Some(v) => Some(any_value(v, &format!("{p}.value"))?),
            },
            key_strindex: 0,
        });
    }
    Ok(out)
}

/// A double as the protobuf JSON mapping writes it: a number, or a string (`NaN`, `Infinity`).
pub(super) fn double_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => double_of_str(s),
        _ => None,
    }
}

/// A double written as a string: `NaN`, `Infinity`, `-Infinity`, or digits.
pub(super) fn double_of_str(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        other => other.trim().parse().ok(),
    }
}

/// A 64-bit integer as a number or a decimal string.
pub(super) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn any_value(v: &Value, path: &str) -> R<pc::AnyValue> {
    use pc::any_value::Value as V;
    let obj = object(v, path)?;
    let get = |camel: &str, snake: &str| field(obj, camel, snake);
    let value = if let Some(s) = get("stringValue", "string_value") {
        Some(V::StringValue(
            s.as_str()
                .ok_or_else(|| err(path, "stringValue must be a string"))?
                .to_owned(),
        ))
    } else if let Some(b) = get("boolValue", "bool_value") {
        Some(V::BoolValue(b.as_bool().ok_or_else(|| {
            err(path, "boolValue must be true or false")
        })?))
    } else if let Some(i) = get("intValue", "int_value") {
        let n = int_of(i);
        Some(V::IntValue(n.ok_or_else(|| {
            err(
                path,
                "intValue must be a 64-bit integer, as a number or a string",
            )
        })?))
    } else if let Some(d) = get("doubleValue", "double_value") {
        let n = double_of(d);
        Some(V::DoubleValue(
            n.ok_or_else(|| err(path, "doubleValue must be a number"))?,
        ))
    } else if let Some(a) = get("arrayValue", "array_value") {
        let p = format!("{path}.arrayValue");
        let a = object(a, &p)?;
        let values = array(a, "values", "values", &p)?
            .iter()
            .enumerate()
            .map(|(i, v)| any_value(v, &format!("{p}.values[{i}]")))
            .collect::<R<Vec<_>>>()?;
        Some(V::ArrayValue(pc::ArrayValue { values }))
    } else if let Some(l) = get("kvlistValue", "kvlist_value") {
        let p = format!("{path}.kvlistValue");
        Some(V::KvlistValue(pc::KeyValueList {
            values: key_values(object(l, &p)?, "values", &p)?,
        }))
    } else if let Some(b) = get("bytesValue", "bytes_value") {
        let s = b
            .as_str()
            .ok_or_else(|| err(path, "bytesValue must be a base64 string"))?;
        Some(V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| err(path, "bytesValue must be base64"))?,
        ))
    } else {
        None
    };
    Ok(pc::AnyValue { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_otlp_json_rules() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"agent.id","value":{"stringValue":"a1"}}]},
          "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C",
          "spanId":"eee19b7ec3c1b174","name":"agent.work_progress","kind":1,"startTimeUnixNano":"1544712660000000000",
          "endTimeUnixNano":1544712661000000000,"unknownField":{"x":1},
          "attributes":[{"key":"work.files_modified","value":{"intValue":"8"}},
                        {"key":"p","value":{"doubleValue":75}},
                        {"key":"l","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}},
                        {"key":"b","value":{"bytesValue":"AQI="}}],
          "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
        let req = decode_request(body).expect("decodes");
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        use pc::any_value::Value as V;
        assert_eq!(
            span.attributes[0]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(V::IntValue(8))
        );
        assert_eq!(
            span.attributes[3]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(V::BytesValue(vec![1, 2]))
        );
    }

    #[test]
    fn the_openers_bound_the_exact_counts_from_above() {
        for body in [
            &b"{}"[..],
            br#"{"a":[1,2,{"b":"x,{[\"}"}]}"#,
            br#""\\",""#,
            &[b'{'; 600][..],
            &[b','; 700][..],
        ] {
            let (objects, values) = count_values(body);
            let (braces, others) = count_openers(body);
            assert!(
                objects <= braces && values <= 1 + braces + others,
                "{body:?}"
            );
        }
        assert_eq!(count_openers(&[b'{'; 600]), (600, 0));
        assert_eq!(count_openers(&[b','; 700]), (0, 700));
    }

    #[test]
    fn values_are_counted_outside_strings() {
        assert_eq!(count_values(b"{}"), (1, 2));
        assert_eq!(count_values(br#"{"a":[1,2,{"b":"x,{[\"}"}]}"#), (2, 6));
        assert_eq!(
            count_values(br#""\\",""#),
            (0, 2),
            "an escaped backslash ends"
        );
    }

    #[test]
    fn wrong_types_name_the_path() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
        let e = decode_request(body).unwrap_err().to_string();
        assert!(
            e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{e}"
        );
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"intValue":true}}]}]}]}]}"#;
        let e = decode_request(body).unwrap_err().to_string();
        assert!(e.contains("intValue"), "{e}");
        assert!(decode_request(b"[1,2]").is_err());
        assert!(decode_request(b"{\"resourceSpans\": 3}").is_err());
    }
}
