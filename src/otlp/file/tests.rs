use super::*;
use crate::model::{AnyValue, KeyValue, Resource, ResourceSpans, Scope, Span};
use crate::model::{EntityRef, Link, SpanEvent, Status};

fn rich_batch() -> Batch {
    let mut span = Span::new(
        [7; 16],
        [9; 8],
        "agent.work_progress",
        1_700_000_000_123_456_789,
    );
    span.parent_span_id = vec![1; 8];
    span.trace_state = "k=v".into();
    span.flags = 257;
    span.kind = 3;
    span.end_time_unix_nano = u64::MAX;
    span.dropped_attributes_count = 2;
    span.attributes = vec![
        KeyValue::new("s", AnyValue::String("é \"quoted\"\n".into())),
        KeyValue::new("b", AnyValue::Bool(true)),
        KeyValue::new("i", AnyValue::Int(i64::MIN)),
        KeyValue::new("d", AnyValue::Double(0.1 + 0.2)),
        KeyValue::new("nan", AnyValue::Double(f64::NEG_INFINITY)),
        KeyValue::new(
            "a",
            AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Empty]),
        ),
        KeyValue::new(
            "kv",
            AnyValue::KvList(vec![KeyValue::new("x", AnyValue::Bytes(vec![0, 255]))]),
        ),
        KeyValue::new("e", AnyValue::Empty),
    ];
    span.events = vec![SpanEvent {
        time_unix_nano: 5,
        name: "ev".into(),
        attributes: vec![KeyValue::new("k", AnyValue::Int(1))],
        dropped_attributes_count: 1,
    }];
    span.dropped_events_count = 3;
    span.links = vec![Link {
        trace_id: [2; 16],
        span_id: [3; 8],
        trace_state: "t".into(),
        attributes: vec![],
        dropped_attributes_count: 4,
        flags: 1,
    }];
    span.dropped_links_count = 5;
    span.status = Status {
        message: "bad".into(),
        code: 2,
    };
    Batch {
        first_seq: 42,
        received_at: 1_700_000_001_000_000_000,
        resource_spans: vec![ResourceSpans {
            resource: Resource {
                attributes: vec![KeyValue::new("agent.id", AnyValue::String("a1".into()))],
                dropped_attributes_count: 6,
                entity_refs: vec![EntityRef {
                    schema_url: "u".into(),
                    kind: "service".into(),
                    id_keys: vec!["service.name".into()],
                    description_keys: vec![],
                }],
            },
            schema_url: "https://opentelemetry.io/schemas/1.0".into(),
            scope_spans: vec![crate::model::ScopeSpans {
                scope: Scope {
                    name: "sc".into(),
                    version: "1".into(),
                    attributes: vec![],
                    dropped_attributes_count: 7,
                },
                schema_url: "s".into(),
                spans: vec![span],
            }],
        }],
        ..Batch::default()
    }
}

#[test]
fn an_exported_line_reads_back_as_the_same_batch() {
    let batch = rich_batch();
    let mut line = Vec::new();
    encode_line(&batch, &mut line);
    assert_eq!(line.last(), Some(&b'\n'));
    let unit = decode_json_line(&line).expect("decodes");
    assert!(unit.rejected.is_empty());
    let placed = Placer::default()
        .place(unit)
        .expect("placed")
        .expect("new spans");
    assert_eq!(placed, batch);
}

#[test]
fn an_exported_message_reads_back_as_the_same_batch() {
    let batch = rich_batch();
    let mut out = Vec::new();
    encode_message(&batch, &mut out);
    let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
    assert_eq!(len + 4, out.len());
    let unit = decode_protobuf(&out[4..]).expect("decodes");
    let placed = Placer::default()
        .place(unit)
        .expect("placed")
        .expect("new spans");
    assert_eq!(placed, batch);
}

#[test]
fn a_gap_between_exported_lines_is_an_error() {
    let mut placer = Placer::default();
    let mut first = rich_batch();
    let mut line = Vec::new();
    encode_line(&first, &mut line);
    placer
        .place(decode_json_line(&line).expect("decodes"))
        .expect("first");
    first.first_seq = 50;
    first.resource_spans[0].scope_spans[0].spans[0].span_id = [4; 8];
    line.clear();
    encode_line(&first, &mut line);
    let err = placer
        .place(decode_json_line(&line).expect("decodes"))
        .expect_err("gap");
    assert!(err.contains("expected the line for seq 43"), "{err}");
}

#[test]
fn the_deepest_accepted_values_survive_a_json_export() {
    use crate::model::{Batch, ResourceSpans, ScopeSpans};
    // Key-value lists are the costliest nesting in OTLP/JSON: four levels each.
    let deepest = |levels: usize| {
        let mut v = AnyValue::Int(1);
        for _ in 0..levels {
            v = AnyValue::KvList(vec![KeyValue::new("k", v)]);
        }
        v
    };
    let reg = crate::registry::Registry::builtin();
    let s = Span::new([1; 16], [2; 8], "tool.call", 1)
        .with("deep", deepest(crate::registry::MAX_VALUE_DEPTH));
    let resource = Resource {
        attributes: vec![KeyValue::new(
            "r",
            deepest(crate::registry::MAX_VALUE_DEPTH),
        )],
        ..Default::default()
    };
    assert_eq!(
        reg.validate(&s, &resource, crate::registry::Origin::Client),
        Ok(())
    );
    let mut request = vec![ResourceSpans {
        resource,
        scope_spans: vec![ScopeSpans {
            spans: vec![s],
            ..Default::default()
        }],
        ..Default::default()
    }];
    request[0].scope_spans[0].scope.attributes = vec![KeyValue::new(
        "s",
        deepest(crate::registry::MAX_VALUE_DEPTH),
    )];
    assert!(
        reg.retain_valid(&mut request, crate::registry::Origin::Client)
            .is_empty()
    );
    let batch = Batch::of_spans(1, 1, request);
    let mut line = Vec::new();
    encode_line(&batch, &mut line);
    let back = decode_json_line(&line).expect("the export reads back");
    assert_eq!(back.events.resource_spans, batch.resource_spans);
    // One level deeper in the scope: its spans are refused, with the reason.
    batch_scope_too_deep(reg, deepest(crate::registry::MAX_VALUE_DEPTH + 1));
}

fn batch_scope_too_deep(reg: &crate::registry::Registry, value: AnyValue) {
    use crate::model::{ResourceSpans, ScopeSpans};
    let mut request = vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![
                Span::new([1; 16], [2; 8], "tool.call", 1),
                Span::new([1; 16], [2; 8], "agent.registration", 1),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }];
    request[0].scope_spans[0].scope.attributes = vec![KeyValue::new("s", value)];
    let refused = reg.retain_valid(&mut request, crate::registry::Origin::Client);
    assert_eq!(refused.len(), 2);
    assert!(refused[0].rule.contains("its scope"), "{}", refused[0].rule);
    assert!(request.is_empty());
}
