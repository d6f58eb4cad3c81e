//! Agents' log records and metrics through export and replay: every field, every kind of
//! metric, both formats, read back as the same batch.

use super::*;
use crate::model::{
    AnyValue, Buckets, Exemplar, ExponentialHistogramPoint, HistogramPoint, KeyValue, LogRecord,
    Metric, MetricData, Number, NumberPoint, Quantile, Resource, ResourceLogs, ResourceMetrics,
    Scope, ScopeLogs, ScopeMetrics, SummaryPoint,
};

fn resource(agent: &str) -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("agent.id", AnyValue::String(agent.into())),
            KeyValue::new("service.name", AnyValue::String("claude-code".into())),
        ],
        dropped_attributes_count: 1,
        entity_refs: Vec::new(),
    }
}

fn scope(name: &str) -> Scope {
    Scope {
        name: name.into(),
        version: "2.0.0".into(),
        attributes: vec![KeyValue::new("k", AnyValue::Bool(true))],
        dropped_attributes_count: 0,
    }
}

fn logs_batch() -> Batch {
    let record = LogRecord {
        time_unix_nano: 1_764_000_000_000_000_001,
        observed_time_unix_nano: 1_764_000_000_000_000_002,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AnyValue::String("claude_code.api_request".into()),
        attributes: vec![
            KeyValue::new("event.name", AnyValue::String("api_request".into())),
            KeyValue::new("cost_usd", AnyValue::Double(0.0123)),
            KeyValue::new("input_tokens", AnyValue::Int(1200)),
            KeyValue::new(
                "nested",
                AnyValue::KvList(vec![KeyValue::new("b", AnyValue::Bytes(vec![0, 255]))]),
            ),
        ],
        dropped_attributes_count: 2,
        flags: 1,
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        event_name: "claude_code.api_request".into(),
    };
    let bare = LogRecord {
        body: AnyValue::Empty,
        ..LogRecord::empty()
    };
    Batch {
        first_seq: 7,
        received_at: 1_764_000_000_100_000_000,
        resource_logs: vec![ResourceLogs {
            resource: resource("claude-1"),
            schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            scope_logs: vec![ScopeLogs {
                scope: scope("com.anthropic.claude_code.events"),
                schema_url: String::new(),
                log_records: vec![record, bare],
            }],
        }],
        ..Batch::default()
    }
}

fn point(value: Number) -> NumberPoint {
    NumberPoint {
        attributes: vec![KeyValue::new("type", AnyValue::String("input".into()))],
        start_time_unix_nano: 1,
        time_unix_nano: 1_764_000_000_000_000_000,
        value,
        exemplars: vec![Exemplar {
            filtered_attributes: vec![KeyValue::new("x", AnyValue::Int(-1))],
            time_unix_nano: 5,
            value: Number::Double(0.5),
            span_id: vec![1; 8],
            trace_id: vec![2; 16],
        }],
        flags: 0,
    }
}

fn metric(name: &str, data: MetricData) -> Metric {
    Metric {
        name: name.into(),
        description: format!("{name}, as sent"),
        unit: "1".into(),
        metadata: Vec::new(),
        data,
    }
}

fn metrics_batch() -> Batch {
    let metrics = vec![
        metric(
            "claude_code.token.usage",
            MetricData::Sum {
                points: vec![point(Number::Int(1200)), point(Number::Double(f64::NAN))],
                temporality: 1,
                monotonic: true,
            },
        ),
        metric(
            "gauge",
            MetricData::Gauge {
                points: vec![point(Number::Empty)],
            },
        ),
        metric(
            "latency",
            MetricData::Histogram {
                points: vec![HistogramPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 3,
                    sum: Some(6.5),
                    bucket_counts: vec![1, 2, 0],
                    explicit_bounds: vec![1.0, f64::INFINITY],
                    exemplars: Vec::new(),
                    flags: 1,
                    min: Some(0.5),
                    max: None,
                }],
                temporality: 2,
            },
        ),
        metric(
            "exp",
            MetricData::ExponentialHistogram {
                points: vec![ExponentialHistogramPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 4,
                    sum: None,
                    scale: -3,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: -2,
                        bucket_counts: vec![1, 2],
                    }),
                    negative: None,
                    flags: 0,
                    exemplars: Vec::new(),
                    min: None,
                    max: Some(9.0),
                    zero_threshold: 0.001,
                }],
                temporality: 1,
            },
        ),
        metric(
            "summary",
            MetricData::Summary {
                points: vec![SummaryPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    count: 10,
                    sum: 55.0,
                    quantile_values: vec![Quantile {
                        quantile: 0.5,
                        value: 5.0,
                    }],
                    flags: 0,
                }],
            },
        ),
        metric("empty", MetricData::Empty),
    ];
    Batch {
        first_seq: 9,
        received_at: 1_764_000_000_200_000_000,
        resource_metrics: vec![ResourceMetrics {
            resource: resource("claude-1"),
            schema_url: String::new(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope("com.anthropic.claude_code"),
                schema_url: String::new(),
                metrics,
            }],
        }],
        ..Batch::default()
    }
}

/// NaN is never equal to itself: compared through its bits, via the debug form.
fn same(a: &Batch, b: &Batch) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

fn placed(unit: Unit) -> Batch {
    Placer::default()
        .place(unit)
        .expect("placed")
        .expect("new events")
}

#[test]
fn log_records_and_metrics_read_back_from_an_exported_line() {
    for batch in [logs_batch(), metrics_batch()] {
        let mut line = Vec::new();
        encode_line(&batch, &mut line);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let unit = decode_json_line(&line).expect("decodes");
        assert!(unit.rejected.is_empty());
        same(&placed(unit), &batch);
    }
}

#[test]
fn log_records_and_metrics_read_back_from_an_exported_message() {
    for batch in [logs_batch(), metrics_batch()] {
        let mut out = Vec::new();
        encode_message(&batch, &mut out);
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len + 4, out.len(), "one message");
        same(
            &placed(decode_protobuf(&out[4..]).expect("decodes")),
            &batch,
        );
    }
}

#[test]
fn the_native_decoders_read_what_prost_encodes() {
    let logs = logs_batch();
    let bytes = crate::otlp::logs::encode_request(&logs.resource_logs);
    let decoded = crate::otlp::Signal::Logs.decode(&bytes).expect("decodes");
    assert_eq!(decoded.resource_logs, logs.resource_logs);
    let metrics = metrics_batch();
    let bytes = crate::otlp::metrics::encode_request(&metrics.resource_metrics);
    let decoded = crate::otlp::Signal::Metrics
        .decode(&bytes)
        .expect("decodes");
    assert_eq!(
        format!("{:?}", decoded.resource_metrics),
        format!("{:?}", metrics.resource_metrics)
    );
}

#[test]
fn a_batch_of_every_signal_is_written_as_one_line_per_signal_each_in_its_place() {
    let mut batch = logs_batch();
    batch.resource_metrics = metrics_batch().resource_metrics;
    let mut lines = Vec::new();
    encode_line(&batch, &mut lines);
    let mut placer = Placer::default();
    let mut seqs = Vec::new();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let b = placer
            .place(decode_json_line(line).expect("decodes"))
            .expect("placed")
            .expect("new");
        seqs.push((b.first_seq, b.log_count(), b.metric_count()));
    }
    assert_eq!(seqs, vec![(7, 2, 0), (9, 0, 6)]);
}
