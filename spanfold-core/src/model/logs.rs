//! OTLP log records (events), kept as received: what coding agents such as Claude Code, Codex
//! and Gemini CLI send most. Mirrors `opentelemetry.proto.logs.v1` field for field, so that
//! exporting a stored record gives back what was received.

use serde::{Deserialize, Serialize};

use super::{AnyValue, KeyValue, Resource, Scope, UnixNanos, find_attr};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub time_unix_nano: UnixNanos,
    pub observed_time_unix_nano: UnixNanos,
    pub severity_number: i32,
    pub severity_text: String,
    /// `Empty` when the record has no body.
    pub body: AnyValue,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
    /// Empty, or 16 bytes.
    pub trace_id: Vec<u8>,
    /// Empty, or 8 bytes.
    pub span_id: Vec<u8>,
    /// OTLP's `event_name` (proto 1.5): empty when the sender names events by attribute.
    pub event_name: String,
}

impl LogRecord {
    /// A record with no fields set, as OTLP defaults them.
    pub fn empty() -> LogRecord {
        LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: String::new(),
            body: AnyValue::Empty,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: Vec::new(),
            span_id: Vec::new(),
            event_name: String::new(),
        }
    }

    #[inline]
    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        find_attr(&self.attributes, key)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeLogs {
    pub scope: Scope,
    pub schema_url: String,
    pub log_records: Vec<LogRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLogs {
    pub resource: Resource,
    pub schema_url: String,
    pub scope_logs: Vec<ScopeLogs>,
}

impl ResourceLogs {
    pub fn record_count(&self) -> usize {
        self.scope_logs.iter().map(|s| s.log_records.len()).sum()
    }
}
