//! Writing a batch as one line of OTLP/JSON, straight from the model (no intermediate JSON
//! value), with its placement in the extra `spanfold` field.

use base64::Engine;

use crate::model::hex;
use crate::model::{AnyValue, Batch, KeyValue, Resource, ResourceSpans, Scope, Span};
use crate::otlp::json::META_KEY;

/// Appends one batch as lines of OTLP/JSON (each with its newline) to `out`: one line per signal
/// it holds (a record of the log holds one), each with its own first seq.
pub fn encode_line(batch: &Batch, out: &mut Vec<u8>) {
    let (spans, logs) = (batch.span_count() as u64, batch.log_count() as u64);
    if spans > 0 || batch.event_count() == 0 {
        signal_line(
            b"resourceSpans",
            batch.first_seq,
            batch.received_at,
            out,
            |out| list(&batch.resource_spans, out, resource_spans),
        );
    }
    if logs > 0 {
        signal_line(
            b"resourceLogs",
            batch.first_seq + spans,
            batch.received_at,
            out,
            |out| {
                list(
                    &batch.resource_logs,
                    out,
                    super::json_signals::resource_logs,
                )
            },
        );
    }
    if batch.metric_count() > 0 {
        let first = batch.first_seq + spans + logs;
        signal_line(b"resourceMetrics", first, batch.received_at, out, |out| {
            list(
                &batch.resource_metrics,
                out,
                super::json_signals::resource_metrics,
            )
        });
    }
}

/// `{"<key>":[…],"spanfold":{"firstSeq":"…","receivedAt":"…"}}` and a newline.
fn signal_line(
    key: &[u8],
    first_seq: u64,
    received_at: u64,
    out: &mut Vec<u8>,
    groups: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":");
    groups(out);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(META_KEY.as_bytes());
    out.extend_from_slice(b"\":{\"firstSeq\":\"");
    integer(first_seq, out);
    out.extend_from_slice(b"\",\"receivedAt\":\"");
    integer(received_at, out);
    out.extend_from_slice(b"\"}}\n");
}

/// An integer in decimal, without a string made for it on the way (serde_json writes it with
/// `itoa`).
pub(super) fn integer(n: impl serde::Serialize, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &n);
}

pub(super) fn string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

pub(super) fn key(k: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

pub(super) fn uint(k: &str, v: u64, out: &mut Vec<u8>) {
    key(k, out);
    integer(v, out);
}

/// A 64-bit integer as a decimal string, as the protobuf JSON mapping writes them.
pub(super) fn uint_string(k: &str, v: u64, out: &mut Vec<u8>) {
    key(k, out);
    out.push(b'"');
    integer(v, out);
    out.push(b'"');
}

pub(super) fn str_field(k: &str, v: &str, out: &mut Vec<u8>) {
    key(k, out);
    string(v, out);
}

pub(super) fn list<T>(items: &[T], out: &mut Vec<u8>, mut each: impl FnMut(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(b']');
}

pub(super) fn attributes(attrs: &[KeyValue], dropped: u32, out: &mut Vec<u8>) {
    key("attributes", out);
    list(attrs, out, key_value);
    out.push(b',');
    uint("droppedAttributesCount", dropped.into(), out);
}

pub(super) fn key_value(kv: &KeyValue, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("key", &kv.key, out);
    out.push(b',');
    key("value", out);
    any_value(&kv.value, out);
    out.push(b'}');
}

/// A double as the protobuf JSON mapping writes it (`NaN` and the infinities as strings).
pub(super) fn double(k: &str, d: f64, out: &mut Vec<u8>) {
    key(k, out);
    if d.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 {
            b"\"Infinity\"".as_slice()
        } else {
            b"\"-Infinity\"".as_slice()
        });
    } else {
        // serde_json prints the shortest form that reads back to the same f64.
        let _ = serde_json::to_writer(&mut *out, &d);
    }
}

pub(super) fn any_value(v: &AnyValue, out: &mut Vec<u8>) {
    out.push(b'{');
    match v {
        AnyValue::String(s) => str_field("stringValue", s, out),
        AnyValue::Bool(b) => {
            key("boolValue", out);
            out.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        AnyValue::Int(i) => {
            key("intValue", out);
            out.push(b'"');
            integer(i, out);
            out.push(b'"');
        }
        AnyValue::Double(d) => double("doubleValue", *d, out),
        AnyValue::Array(items) => {
            key("arrayValue", out);
            out.push(b'{');
            key("values", out);
            list(items, out, any_value);
            out.push(b'}');
        }
        AnyValue::KvList(kvs) => {
            key("kvlistValue", out);
            out.push(b'{');
            key("values", out);
            list(kvs, out, key_value);
            out.push(b'}');
        }
        AnyValue::Bytes(b) => {
            str_field(
                "bytesValue",
                &base64::engine::general_purpose::STANDARD.encode(b),
                out,
            );
        }
        AnyValue::Empty => {}
    }
    out.push(b'}');
}

pub(super) fn resource(r: &Resource, out: &mut Vec<u8>) {
    out.push(b'{');
    attributes(&r.attributes, r.dropped_attributes_count, out);
    if !r.entity_refs.is_empty() {
        out.push(b',');
        key("entityRefs", out);
        list(&r.entity_refs, out, |e, out| {
            out.push(b'{');
            str_field("schemaUrl", &e.schema_url, out);
            out.push(b',');
            str_field("type", &e.kind, out);
            out.push(b',');
            key("idKeys", out);
            list(&e.id_keys, out, |k, out| string(k, out));
            out.push(b',');
            key("descriptionKeys", out);
            list(&e.description_keys, out, |k, out| string(k, out));
            out.push(b'}');
        });
    }
    out.push(b'}');
}

pub(super) fn scope(s: &Scope, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("name", &s.name, out);
    out.push(b',');
    str_field("version", &s.version, out);
    out.push(b',');
    attributes(&s.attributes, s.dropped_attributes_count, out);
    out.push(b'}');
}

fn resource_spans(rs: &ResourceSpans, out: &mut Vec<u8>) {
    out.push(b'{');
    key("resource", out);
    resource(&rs.resource, out);
    out.push(b',');
    key("scopeSpans", out);
    list(&rs.scope_spans, out, |ss, out| {
        out.push(b'{');
        key("scope", out);
        scope(&ss.scope, out);
        out.push(b',');
        key("spans", out);
        list(&ss.spans, out, span);
        out.push(b',');
        str_field("schemaUrl", &ss.schema_url, out);
        out.push(b'}');
    });
    out.push(b',');
    str_field("schemaUrl", &rs.schema_url, out);
    out.push(b'}');
}

fn span(s: &Span, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("traceId", &hex(&s.trace_id), out);
    out.push(b',');
    str_field("spanId", &hex(&s.span_id), out);
    out.push(b',');
    str_field("traceState", &s.trace_state, out);
    out.push(b',');
    str_field("parentSpanId", &hex(&s.parent_span_id), out);
    out.push(b',');
    uint("flags", s.flags.into(), out);
    out.push(b',');
    str_field("name", &s.name, out);
    out.push(b',');
    key("kind", out);
    integer(s.kind, out);
    out.push(b',');
    uint_string("startTimeUnixNano", s.start_time_unix_nano, out);
    out.push(b',');
    uint_string("endTimeUnixNano", s.end_time_unix_nano, out);
    out.push(b',');
    attributes(&s.attributes, s.dropped_attributes_count, out);
    out.push(b',');
    key("events", out);
    list(&s.events, out, |e, out| {
        out.push(b'{');
        uint_string("timeUnixNano", e.time_unix_nano, out);
        out.push(b',');
        str_field("name", &e.name, out);
        out.push(b',');
        attributes(&e.attributes, e.dropped_attributes_count, out);
        out.push(b'}');
    });
    out.push(b',');
    uint("droppedEventsCount", s.dropped_events_count.into(), out);
    out.push(b',');
    key("links", out);
    list(&s.links, out, |l, out| {
        out.push(b'{');
        str_field("traceId", &hex(&l.trace_id), out);
        out.push(b',');
        str_field("spanId", &hex(&l.span_id), out);
        out.push(b',');
        str_field("traceState", &l.trace_state, out);
        out.push(b',');
        attributes(&l.attributes, l.dropped_attributes_count, out);
        out.push(b',');
        uint("flags", l.flags.into(), out);
        out.push(b'}');
    });
    out.push(b',');
    uint("droppedLinksCount", s.dropped_links_count.into(), out);
    out.push(b',');
    key("status", out);
    out.push(b'{');
    str_field("message", &s.status.message, out);
    out.push(b',');
    key("code", out);
    integer(s.status.code, out);
    out.push(b'}');
    out.push(b'}');
}
