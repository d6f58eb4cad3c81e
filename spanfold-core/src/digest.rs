//! Identities for telemetry that carries no ids of its own. A span is known by its trace and
//! span id; a log record or a metric has none, yet a retried export repeats it and must be
//! stored once. Its identity is a 128-bit digest of everything it holds, its resource and
//! scope included (the same record from two agents is two records), shaped as a [`SpanKey`]
//! so that one de-duplication window serves every signal.
//!
//! The digest is fixed (seeded with constants), not random: the window is refilled from the
//! log after a restart by digesting what is stored, and must find the same keys (within a build:
//! a retry that straddles an upgrade of spanfold may be stored twice). Two records
//! equal in every field — to the nanosecond — are one record; a collision of distinct records
//! is a 2^-128 chance.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

use crate::model::{AnyValue, KeyValue, LogRecord, Metric, Resource, Scope, SpanKey};

/// The span id half of a digest key: marks the key as a log record's or a metric's, so that it
/// can only meet a span's key by a digest collision.
const LOG_MARK: [u8; 8] = *b"\0otlplog";
const METRIC_MARK: [u8; 8] = *b"\0otlpmet";

/// Two independent 64-bit hashers make the 128 bits.
const SEEDS: [u64; 2] = [0x5eed_f01d_0000_0001, 0x5eed_f01d_0000_0002];

/// The identity of `record` as received under `resource` and `scope`.
pub fn log_key(resource: &Resource, scope: &Scope, record: &LogRecord) -> SpanKey {
    key(LOG_MARK, |h| {
        feed_context(h, resource, scope);
        h.write_u64(record.time_unix_nano);
        h.write_u64(record.observed_time_unix_nano);
        h.write_i32(record.severity_number);
        feed_bytes(h, record.severity_text.as_bytes());
        feed_value(h, &record.body);
        feed_kvs(h, &record.attributes);
        h.write_u32(record.dropped_attributes_count);
        h.write_u32(record.flags);
        feed_bytes(h, &record.trace_id);
        feed_bytes(h, &record.span_id);
        feed_bytes(h, record.event_name.as_bytes());
    })
}

/// The identity of `metric` (with all its data points) as received under `resource` and
/// `scope`. Metrics come a few per export every few seconds, so the digest reads them through
/// their serde form rather than a walk of every kind of data point.
pub fn metric_key(resource: &Resource, scope: &Scope, metric: &Metric) -> SpanKey {
    key(METRIC_MARK, |h| {
        feed_context(h, resource, scope);
        let mut writer = HashWriter(h);
        // Writing into a hasher cannot fail, and the model's types always serialise.
        let _ = serde_json::to_writer(&mut writer, metric);
    })
}

fn key(mark: [u8; 8], feed: impl FnOnce(&mut Pair)) -> SpanKey {
    let mut pair = Pair([
        FixedState::with_seed(SEEDS[0]).build_hasher(),
        FixedState::with_seed(SEEDS[1]).build_hasher(),
    ]);
    feed(&mut pair);
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&pair.0[0].finish().to_le_bytes());
    trace_id[8..].copy_from_slice(&pair.0[1].finish().to_le_bytes());
    SpanKey {
        trace_id,
        span_id: mark,
    }
}

/// Two independently seeded hashers fed in one walk of the record: 128 bits.
struct Pair([foldhash::fast::FoldHasher<'static>; 2]);

impl Hasher for Pair {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0[0].write(bytes);
        self.0[1].write(bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0[0].write_u8(i);
        self.0[1].write_u8(i);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0[0].write_u32(i);
        self.0[1].write_u32(i);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0[0].write_u64(i);
        self.0[1].write_u64(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0[0].write_usize(i);
        self.0[1].write_usize(i);
    }

    fn finish(&self) -> u64 {
        self.0[0].finish()
    }
}

fn feed_context(h: &mut impl Hasher, resource: &Resource, scope: &Scope) {
    feed_kvs(h, &resource.attributes);
    h.write_u32(resource.dropped_attributes_count);
    feed_bytes(h, scope.name.as_bytes());
    feed_bytes(h, scope.version.as_bytes());
    feed_kvs(h, &scope.attributes);
}

/// Length first, so that consecutive fields cannot trade bytes.
fn feed_bytes(h: &mut impl Hasher, bytes: &[u8]) {
    h.write_usize(bytes.len());
    h.write(bytes);
}

fn feed_kvs(h: &mut impl Hasher, kvs: &[KeyValue]) {
    h.write_usize(kvs.len());
    for kv in kvs {
        feed_bytes(h, kv.key.as_bytes());
        feed_value(h, &kv.value);
    }
}

fn feed_value(h: &mut impl Hasher, value: &AnyValue) {
    // Each kind is tagged, so `Int(1)` and `Bool(true)` differ, and so do nestings.
    match value {
        AnyValue::String(s) => {
            h.write_u8(1);
            feed_bytes(h, s.as_bytes());
        }
        AnyValue::Bool(b) => {
            h.write_u8(2);
            h.write_u8(u8::from(*b));
        }
        AnyValue::Int(i) => {
            h.write_u8(3);
            h.write_i64(*i);
        }
        AnyValue::Double(d) => {
            h.write_u8(4);
            h.write_u64(d.to_bits());
        }
        AnyValue::Array(items) => {
            h.write_u8(5);
            h.write_usize(items.len());
            for item in items {
                feed_value(h, item);
            }
        }
        AnyValue::KvList(kvs) => {
            h.write_u8(6);
            feed_kvs(h, kvs);
        }
        AnyValue::Bytes(b) => {
            h.write_u8(7);
            feed_bytes(h, b);
        }
        AnyValue::Empty => h.write_u8(8),
    }
}

/// Bytes written into a hasher.
struct HashWriter<'a, H>(&'a mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetricData, Number, NumberPoint};

    fn record(body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            body: AnyValue::String(body.into()),
            attributes: vec![KeyValue::new(
                "event.name",
                AnyValue::String("api_request".into()),
            )],
            ..LogRecord::empty()
        }
    }

    fn resource(agent: &str) -> Resource {
        Resource {
            attributes: vec![KeyValue::new("agent.id", AnyValue::String(agent.into()))],
            ..Resource::default()
        }
    }

    #[test]
    fn a_repeated_record_has_the_same_key_and_any_difference_another() {
        let (r, s) = (resource("a1"), Scope::default());
        let key = log_key(&r, &s, &record("claude_code.api_request"));
        assert_eq!(key, log_key(&r, &s, &record("claude_code.api_request")));
        assert_ne!(key, log_key(&r, &s, &record("claude_code.tool_result")));
        assert_ne!(
            key,
            log_key(&resource("a2"), &s, &record("claude_code.api_request"))
        );
        let mut later = record("claude_code.api_request");
        later.time_unix_nano += 1;
        assert_ne!(key, log_key(&r, &s, &later), "one nanosecond apart");
        let mut typed = record("claude_code.api_request");
        typed.attributes[0].value = AnyValue::Int(1);
        let mut flagged = record("claude_code.api_request");
        flagged.attributes[0].value = AnyValue::Bool(true);
        assert_ne!(log_key(&r, &s, &typed), log_key(&r, &s, &flagged));
    }

    #[test]
    fn a_metric_and_a_log_record_never_share_a_key() {
        let (r, s) = (resource("a1"), Scope::default());
        let metric = |value| Metric {
            name: "claude_code.cost.usage".into(),
            description: String::new(),
            unit: "USD".into(),
            metadata: Vec::new(),
            data: MetricData::Sum {
                points: vec![NumberPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    value: Number::Double(value),
                    exemplars: Vec::new(),
                    flags: 0,
                }],
                temporality: 1,
                monotonic: true,
            },
        };
        let key = metric_key(&r, &s, &metric(0.25));
        assert_eq!(key, metric_key(&r, &s, &metric(0.25)));
        assert_ne!(key, metric_key(&r, &s, &metric(0.5)));
        assert_ne!(key.span_id, log_key(&r, &s, &record("x")).span_id);
    }
}
