//! A batch of the log and the events it holds: spans, log records and metrics, each at its
//! sequence number.

use serde::{Deserialize, Serialize};

use super::logs::{LogRecord, ResourceLogs, ScopeLogs};
use super::metrics::{Metric, ResourceMetrics, ScopeMetrics};
use super::{
    AnyValue, Resource, ResourceSpans, Scope, ScopeSpans, Span, SpanKey, UnixNanos, as_double,
    as_int, as_str, find_attr, list_items,
};

/// One appended unit of the log: what one export (or one command) delivered, with the sequence
/// number of its first event and the time the log received it. An export carries one signal,
/// so a batch holds spans, log records or metrics; each span, log record and metric is one
/// event, numbered in that order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub first_seq: u64,
    pub received_at: UnixNanos,
    pub resource_spans: Vec<ResourceSpans>,
    #[serde(default)]
    pub resource_logs: Vec<ResourceLogs>,
    #[serde(default)]
    pub resource_metrics: Vec<ResourceMetrics>,
    /// The identities of its log records in order ([`crate::digest::log_key`]), when they were
    /// computed where the export was decoded, in parallel, rather than by the single writer as
    /// it appends; empty: computed then. Never stored.
    #[serde(skip)]
    pub log_keys: Vec<SpanKey>,
}

impl Batch {
    /// A batch of spans.
    pub fn of_spans(first_seq: u64, received_at: UnixNanos, spans: Vec<ResourceSpans>) -> Batch {
        Batch {
            first_seq,
            received_at,
            resource_spans: spans,
            ..Batch::default()
        }
    }

    pub fn span_count(&self) -> usize {
        self.resource_spans.iter().map(|r| r.span_count()).sum()
    }

    pub fn log_count(&self) -> usize {
        self.resource_logs.iter().map(|r| r.record_count()).sum()
    }

    pub fn metric_count(&self) -> usize {
        self.resource_metrics.iter().map(|r| r.metric_count()).sum()
    }

    /// How many sequence numbers the batch takes: one per span, log record and metric.
    pub fn event_count(&self) -> usize {
        self.span_count() + self.log_count() + self.metric_count()
    }

    /// The batch without its events after `last` (a copy).
    pub fn up_to(&self, last: u64) -> Batch {
        let mut left = last.saturating_add(1).saturating_sub(self.first_seq);
        Batch {
            first_seq: self.first_seq,
            received_at: self.received_at,
            resource_spans: cut(
                &self.resource_spans,
                &mut left,
                |rs| &rs.scope_spans,
                |ss| &ss.spans,
                |rs, scopes| ResourceSpans {
                    resource: rs.resource.clone(),
                    schema_url: rs.schema_url.clone(),
                    scope_spans: scopes,
                },
                |ss, spans| ScopeSpans {
                    scope: ss.scope.clone(),
                    schema_url: ss.schema_url.clone(),
                    spans,
                },
            ),
            resource_logs: cut(
                &self.resource_logs,
                &mut left,
                |rl| &rl.scope_logs,
                |sl| &sl.log_records,
                |rl, scopes| ResourceLogs {
                    resource: rl.resource.clone(),
                    schema_url: rl.schema_url.clone(),
                    scope_logs: scopes,
                },
                |sl, log_records| ScopeLogs {
                    scope: sl.scope.clone(),
                    schema_url: sl.schema_url.clone(),
                    log_records,
                },
            ),
            resource_metrics: cut(
                &self.resource_metrics,
                &mut left,
                |rm| &rm.scope_metrics,
                |sm| &sm.metrics,
                |rm, scopes| ResourceMetrics {
                    resource: rm.resource.clone(),
                    schema_url: rm.schema_url.clone(),
                    scope_metrics: scopes,
                },
                |sm, metrics| ScopeMetrics {
                    scope: sm.scope.clone(),
                    schema_url: sm.schema_url.clone(),
                    metrics,
                },
            ),
            log_keys: Vec::new(),
        }
    }

    /// The batch's spans in log order, each with its sequence number and resource.
    pub fn events(&self) -> impl Iterator<Item = Event<'_>> {
        let time = self.received_at;
        self.resource_spans
            .iter()
            .flat_map(|rs| {
                rs.scope_spans
                    .iter()
                    .flat_map(move |ss| ss.spans.iter().map(move |span| (&rs.resource, span)))
            })
            .enumerate()
            .map(move |(i, (resource, span))| Event {
                seq: self.first_seq + i as u64,
                time,
                span,
                resource,
            })
    }

    /// The batch's log records in log order (after its spans), each with its sequence number,
    /// scope and resource.
    pub fn log_events(&self) -> impl Iterator<Item = LogEvent<'_>> {
        let (time, first) = (self.received_at, self.first_seq + self.span_count() as u64);
        self.resource_logs
            .iter()
            .flat_map(|rl| {
                rl.scope_logs.iter().flat_map(move |sl| {
                    sl.log_records
                        .iter()
                        .map(move |record| (&rl.resource, &sl.scope, record))
                })
            })
            .enumerate()
            .map(move |(i, (resource, scope, record))| LogEvent {
                seq: first + i as u64,
                time,
                record,
                scope,
                resource,
            })
    }

    /// The batch's metrics in log order (after its spans and log records).
    pub fn metric_events(&self) -> impl Iterator<Item = MetricEvent<'_>> {
        let time = self.received_at;
        let first = self.first_seq + (self.span_count() + self.log_count()) as u64;
        self.resource_metrics
            .iter()
            .flat_map(|rm| {
                rm.scope_metrics.iter().flat_map(move |sm| {
                    sm.metrics
                        .iter()
                        .map(move |metric| (&rm.resource, &sm.scope, metric))
                })
            })
            .enumerate()
            .map(move |(i, (resource, scope, metric))| MetricEvent {
                seq: first + i as u64,
                time,
                metric,
                scope,
                resource,
            })
    }
}

/// The first `left` items of a resource → scope → item tree, counting `left` down: how
/// [`Batch::up_to`] cuts each signal.
fn cut<R, S, T: Clone>(
    resources: &[R],
    left: &mut u64,
    scopes_of: impl Fn(&R) -> &Vec<S>,
    items_of: impl Fn(&S) -> &Vec<T>,
    resource: impl Fn(&R, Vec<S>) -> R,
    scope: impl Fn(&S, Vec<T>) -> S,
) -> Vec<R> {
    let mut out = Vec::new();
    for r in resources {
        let mut scopes = Vec::new();
        for s in scopes_of(r) {
            let items = items_of(s);
            let take = (items.len() as u64).min(*left) as usize;
            *left -= take as u64;
            if take > 0 {
                scopes.push(scope(s, items[..take].to_vec()));
            }
        }
        if !scopes.is_empty() {
            out.push(resource(r, scopes));
        }
    }
    out
}

impl<'a> MetricEvent<'a> {
    /// An attribute of the metric's scope, else of its resource.
    pub fn str_attr(&self, key: &str) -> Option<&'a str> {
        find_attr(&self.scope.attributes, key)
            .or_else(|| find_attr(&self.resource.attributes, key))
            .and_then(as_str)
    }
}

/// Any event of the log: a span, a log record or a metric.
#[derive(Debug, Clone, Copy)]
pub enum AnyEvent<'a> {
    Span(Event<'a>),
    Log(LogEvent<'a>),
    Metric(MetricEvent<'a>),
}

impl AnyEvent<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            AnyEvent::Span(e) => e.seq,
            AnyEvent::Log(e) => e.seq,
            AnyEvent::Metric(e) => e.seq,
        }
    }

    pub fn time(&self) -> UnixNanos {
        match self {
            AnyEvent::Span(e) => e.time,
            AnyEvent::Log(e) => e.time,
            AnyEvent::Metric(e) => e.time,
        }
    }
}

impl Batch {
    /// Every event of the batch in log order: its spans, then its log records, then its
    /// metrics.
    pub fn all_events(&self) -> impl Iterator<Item = AnyEvent<'_>> {
        self.events()
            .map(AnyEvent::Span)
            .chain(self.log_events().map(AnyEvent::Log))
            .chain(self.metric_events().map(AnyEvent::Metric))
    }
}

/// One log record at its place in the log.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    pub seq: u64,
    pub time: UnixNanos,
    pub record: &'a LogRecord,
    pub scope: &'a Scope,
    pub resource: &'a Resource,
}

impl<'a> LogEvent<'a> {
    /// An attribute of the record, else of its scope, else of its resource: where senders put
    /// what identifies them (`OTEL_RESOURCE_ATTRIBUTES` lands on the resource).
    pub fn attr(&self, key: &str) -> Option<&'a AnyValue> {
        self.record
            .attr(key)
            .or_else(|| find_attr(&self.scope.attributes, key))
            .or_else(|| find_attr(&self.resource.attributes, key))
    }

    pub fn str_attr(&self, key: &str) -> Option<&'a str> {
        self.attr(key).and_then(as_str)
    }
}

/// One metric at its place in the log.
#[derive(Debug, Clone, Copy)]
pub struct MetricEvent<'a> {
    pub seq: u64,
    pub time: UnixNanos,
    pub metric: &'a Metric,
    pub scope: &'a Scope,
    pub resource: &'a Resource,
}

/// What the reducer folds: one span at its place in the log.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub seq: u64,
    /// The log's receive time: the only clock the core ever sees, so replay is deterministic
    /// whatever the senders' clocks said.
    pub time: UnixNanos,
    pub span: &'a Span,
    pub resource: &'a Resource,
}

impl<'a> Event<'a> {
    /// A span attribute. `agent.id` alone falls back to the resource attribute, so that an SDK
    /// configured with `OTEL_RESOURCE_ATTRIBUTES=agent.id=…` names its agent on every span.
    #[inline]
    pub fn attr(&self, key: &str) -> Option<&'a AnyValue> {
        self.span.attr(key).or_else(|| {
            (key == "agent.id")
                .then(|| find_attr(&self.resource.attributes, key))
                .flatten()
        })
    }

    /// Several span attributes in one pass over the span, for handlers that read many
    /// (no resource fallback: use [`Event::attr`] for `agent.id`).
    #[inline]
    pub fn attrs<const N: usize>(&self, keys: [&str; N]) -> [Option<&'a AnyValue>; N] {
        let mut out = [None; N];
        for kv in &self.span.attributes {
            let key = kv.key.as_str();
            if let Some(i) = keys.iter().position(|k| *k == key)
                && out[i].is_none()
            {
                out[i] = Some(&kv.value);
            }
        }
        out
    }

    #[inline]
    pub fn str_attr(&self, key: &str) -> Option<&'a str> {
        self.attr(key).and_then(as_str)
    }

    #[inline]
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(as_int)
    }

    #[inline]
    pub fn double_attr(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(as_double)
    }

    /// A list attribute: a real OTLP array of strings, or a comma-separated string.
    pub fn list_attr(&self, key: &str) -> Vec<String> {
        match self.attr(key) {
            Some(value) => list_items(value),
            None => Vec::new(),
        }
    }
}
