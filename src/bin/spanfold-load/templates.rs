//! The load's exports, built once and encoded: spans of progress reports, log records shaped
//! as Claude Code's events, registrations; and where the marker that makes each request's
//! items unique sits in the encoded bytes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub(crate) fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        key_strindex: 0,
    }
}

pub(crate) fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

pub(crate) const TRACE_MARK: [u8; 16] = [0xA5; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Signal {
    Traces,
    Logs,
}

impl Signal {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }
}

/// One export of `batch` log records shaped as Claude Code's `api_request` events (body, ten
/// attributes), from `agents` agents. Each carries the marker as its trace id, so that every
/// request's records differ (log records have no ids of their own; the receiver de-duplicates
/// them by content).
pub(crate) fn log_template(batch: usize, agents: usize) -> ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let records = (0..batch)
        .map(|i| {
            let mut span_id = [0xF0, 0x0D, 0, 0, 0xBE, 0xEF, 0xCA, 0xFE];
            span_id[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            let int = |v: i64| any_value::Value::IntValue(v);
            LogRecord {
                time_unix_nano: 1_700_000_000_000_000_000,
                observed_time_unix_nano: 1_700_000_000_000_000_000,
                severity_number: 9,
                body: Some(AnyValue {
                    value: Some(s("claude_code.api_request")),
                }),
                attributes: vec![
                    kv("agent.id", s(&format!("load-agent-{:03}", i % agents))),
                    kv("event.name", s("api_request")),
                    kv("session.id", s("8f2c1e4a-0000-4000-8000-000000000000")),
                    kv("prompt.id", s("p-1")),
                    kv("model", s("claude-sonnet-4-5")),
                    kv("cost_usd", any_value::Value::DoubleValue(0.0123)),
                    kv("input_tokens", int(1200)),
                    kv("output_tokens", int(340)),
                    kv("cache_read_tokens", int(800)),
                    kv("duration_ms", int(2100)),
                ],
                trace_id: TRACE_MARK.to_vec(),
                span_id: span_id.to_vec(),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("claude-code"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// One export of `batch` progress reports with about ten attributes each, from `agents` agents.
pub(crate) fn template(batch: usize, agents: usize) -> ExportTraceServiceRequest {
    let spans = (0..batch)
        .map(|i| {
            let agent = format!("load-agent-{:03}", i % agents);
            let mut span_id = [0xF0, 0x0D, 0, 0, 0xBE, 0xEF, 0xCA, 0xFE];
            span_id[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            Span {
                trace_id: TRACE_MARK.to_vec(),
                span_id: span_id.to_vec(),
                name: "agent.work_progress".into(),
                kind: 1,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_100_000_000,
                attributes: vec![
                    kv("agent.id", s(&agent)),
                    kv("agent.state", s("idle")),
                    kv(
                        "work.progress_percentage",
                        any_value::Value::DoubleValue((i % 100) as f64),
                    ),
                    kv("work.files_modified", any_value::Value::IntValue(3)),
                    kv("work.lines_added", any_value::Value::IntValue(120)),
                    kv("work.duration_ms", any_value::Value::IntValue(42_000)),
                    kv("code.filepath", s("src/reducer.rs")),
                    kv("vcs.ref.head.name", s("spanfold/feature")),
                    kv("tool.name", s("cargo test")),
                    kv(
                        "gen_ai.usage.output_tokens",
                        any_value::Value::IntValue(512),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("spanfold-load"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Where the trace-id marker sits in the encoded bytes: one per span.
pub(crate) fn marker_offsets(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(TRACE_MARK.len())
        .enumerate()
        .filter(|(_, w)| *w == TRACE_MARK)
        .map(|(i, _)| i)
        .collect()
}

/// One export registering the load's agents, so that their progress reports are applied.
pub(crate) fn registrations(agents: usize) -> ExportTraceServiceRequest {
    let spans = (0..agents)
        .map(|a| Span {
            trace_id: {
                let mut t = [0x5Au8; 16];
                t[..8].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
                t.to_vec()
            },
            span_id: ((a as u64) + 1).to_be_bytes().to_vec(),
            name: "agent.registration".into(),
            kind: 1,
            attributes: vec![kv("agent.id", s(&format!("load-agent-{a:03}")))],
            ..Default::default()
        })
        .collect();
    let mut req = template(1, 1);
    req.resource_spans[0].scope_spans[0].spans = spans;
    req
}
