//! The project's own telemetry types: a lossless image of OTLP trace, log and metric exports,
//! independent of any protobuf crate so the core and the store never learn about the wire
//! format.
//!
//! A batch keeps OTLP's grouping (resource → scope → spans) so that exporting it again gives
//! back what was received, resource attributes included.

mod batch;
mod logs;
mod metrics;

use serde::{Deserialize, Serialize};

pub use batch::{AnyEvent, Batch, Event, LogEvent, MetricEvent};
pub use logs::{LogRecord, ResourceLogs, ScopeLogs};
pub use metrics::{
    Buckets, Exemplar, ExponentialHistogramPoint, HistogramPoint, Metric, MetricData, Number,
    NumberPoint, Quantile, ResourceMetrics, ScopeMetrics, SummaryPoint,
};

/// Nanoseconds since the Unix epoch, the unit OTLP uses for every timestamp.
pub type UnixNanos = u64;

/// Attribute keys, string values and span names: short strings (up to 24 bytes) are stored
/// inline, so decoding a typical span allocates a few times instead of a few dozen. It reads,
/// compares and serialises like a `String` (the log's format is the same).
pub type Str = compact_str::CompactString;

/// An OTLP `AnyValue`. `Empty` is a value whose oneof was not set; OTLP allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyValue {
    String(Str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AnyValue>),
    KvList(Vec<KeyValue>),
    Bytes(Vec<u8>),
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Str,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<Str>, value: AnyValue) -> Self {
        KeyValue {
            key: key.into(),
            value,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub entity_refs: Vec<EntityRef>,
}

/// OTLP's reference from a resource to the entity it describes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityRef {
    pub schema_url: String,
    /// OTLP's `type`.
    pub kind: String,
    pub id_keys: Vec<String>,
    pub description_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub message: String,
    /// 0 unset, 1 ok, 2 error, as in OTLP.
    pub code: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_unix_nano: UnixNanos,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: String,
    /// Empty for a root span; otherwise 8 bytes.
    pub parent_span_id: Vec<u8>,
    pub flags: u32,
    pub name: Str,
    pub kind: i32,
    pub start_time_unix_nano: UnixNanos,
    pub end_time_unix_nano: UnixNanos,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<SpanEvent>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
}

impl Span {
    /// A span with only the fields spanfold itself sets; the rest empty as OTLP defaults them.
    pub fn new(
        trace_id: [u8; 16],
        span_id: [u8; 8],
        name: impl Into<Str>,
        time: UnixNanos,
    ) -> Self {
        Span {
            trace_id,
            span_id,
            trace_state: String::new(),
            parent_span_id: Vec::new(),
            flags: 0,
            name: name.into(),
            // SPAN_KIND_INTERNAL
            kind: 1,
            start_time_unix_nano: time,
            end_time_unix_nano: time,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
        }
    }

    #[inline]
    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        find_attr(&self.attributes, key)
    }

    pub fn with(mut self, key: &str, value: AnyValue) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// The identity used for de-duplication: OTLP retries resend the same ids.
    pub fn key(&self) -> SpanKey {
        SpanKey {
            trace_id: self.trace_id,
            span_id: self.span_id,
        }
    }
}

/// Trace id and span id together: unique per span by OTLP's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanKey {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

#[inline]
pub fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    // Compared as `&str` (inlined): compact_str's own `==` was a tenth of a replay.
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeSpans {
    pub scope: Scope,
    pub schema_url: String,
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpans {
    pub resource: Resource,
    pub schema_url: String,
    pub scope_spans: Vec<ScopeSpans>,
}

impl ResourceSpans {
    /// One resource and one scope holding `spans`: the shape spanfold uses for its own spans.
    pub fn single(resource: Resource, scope: Scope, spans: Vec<Span>) -> Self {
        ResourceSpans {
            resource,
            schema_url: String::new(),
            scope_spans: vec![ScopeSpans {
                scope,
                schema_url: String::new(),
                spans,
            }],
        }
    }

    pub fn span_count(&self) -> usize {
        self.scope_spans.iter().map(|s| s.spans.len()).sum()
    }
}

#[inline]
pub fn as_str(value: &AnyValue) -> Option<&str> {
    match value {
        AnyValue::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// An integer, also from a whole double or a numeric string (OTLP/JSON senders vary).
#[inline]
pub fn as_int(value: &AnyValue) -> Option<i64> {
    match value {
        AnyValue::Int(i) => Some(*i),
        AnyValue::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, also from "true"/"false" (OTLP/JSON senders vary).
#[inline]
pub fn as_bool(value: &AnyValue) -> Option<bool> {
    match value {
        AnyValue::Bool(b) => Some(*b),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[inline]
pub fn as_double(value: &AnyValue) -> Option<f64> {
    match value {
        AnyValue::Double(d) => Some(*d),
        AnyValue::Int(i) => Some(*i as f64),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Items of a string-list attribute, trimmed, empties dropped.
pub fn list_items(value: &AnyValue) -> Vec<String> {
    list_strs(value).into_iter().map(str::to_owned).collect()
}

/// [`list_items`] borrowed from the value: the one rule for reading a list, without copying.
pub fn list_strs(value: &AnyValue) -> Vec<&str> {
    match value {
        AnyValue::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        AnyValue::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                AnyValue::String(s) if !s.trim().is_empty() => Some(s.trim()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn string_array<I, S>(items: I) -> AnyValue
where
    I: IntoIterator<Item = S>,
    S: Into<Str>,
{
    AnyValue::Array(
        items
            .into_iter()
            .map(|s| AnyValue::String(s.into()))
            .collect(),
    )
}

/// Lower-case hex of bytes: how trace and span ids are written everywhere a person reads them.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}
