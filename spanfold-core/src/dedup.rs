//! The de-duplication window: which of the most recent events of the log a new one repeats
//! (spans by their ids, log records and metrics by their digests, [`crate::digest`]).
//!
//! OTLP clients retry an export they got no answer for, and a retry must be applied once. The
//! window holds the (trace id, span id) of the last `capacity` spans appended, exactly (no
//! false positives: a span is never refused because of a hash collision), in memory that is
//! fixed by `capacity` and never grows with the log: a ring of keys in arrival order and a hash
//! table of positions in the ring. The oldest key leaves when a new one comes in.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::digest;
use crate::model::{Batch, ResourceSpans, SpanKey};

/// The default window: the last 1,048,576 spans, about 34 MB. At 1,000 spans/s a retry is
/// recognised for 17 minutes; at 200,000 spans/s for 5 seconds.
pub const DEFAULT_WINDOW: usize = 1 << 20;

pub struct Window {
    ring: Vec<SpanKey>,
    /// Where the next key goes once the ring is full (the oldest key's slot).
    next: usize,
    capacity: usize,
    /// Positions in `ring`, hashed by the key they hold.
    index: HashTable<u32>,
    /// Randomly seeded: the ids come from clients, so the hash must not be predictable.
    hasher: RandomState,
}

impl Window {
    /// A window of the last `capacity` spans (at least one, at most `u32::MAX`).
    pub fn new(capacity: usize) -> Window {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Window {
            ring: Vec::new(),
            next: 0,
            capacity,
            index: HashTable::new(),
            hasher: RandomState::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn contains(&self, key: &SpanKey) -> bool {
        let ring = &self.ring;
        self.index
            .find(self.hasher.hash_one(key), |&i| ring[i as usize] == *key)
            .is_some()
    }

    /// Records `key` as the newest span; false when it is already in the window (a duplicate,
    /// which is not recorded again).
    pub fn insert(&mut self, key: SpanKey) -> bool {
        let hash = self.hasher.hash_one(key);
        let ring = &self.ring;
        if self
            .index
            .find(hash, |&i| ring[i as usize] == key)
            .is_some()
        {
            return false;
        }
        let hasher = &self.hasher;
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(key);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            let old = self.ring[slot];
            if let Ok(entry) = self
                .index
                .find_entry(hasher.hash_one(old), |&i| i as usize == slot)
            {
                entry.remove();
            }
            self.ring[slot] = key;
            self.next = (slot + 1) % self.capacity;
            slot
        };
        let ring = &self.ring;
        self.index
            .insert_unique(hash, slot as u32, |&i| hasher.hash_one(ring[i as usize]));
        true
    }

    /// Takes room for `keys` keys now (at most the capacity): growing the table later rehashes
    /// every key held.
    pub fn reserve(&mut self, keys: usize) {
        let keys = keys.min(self.capacity).saturating_sub(self.ring.len());
        self.ring.reserve_exact(keys);
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index
            .reserve(keys, |&i| hasher.hash_one(ring[i as usize]));
    }

    /// Drops from `resource_spans` every span the window holds (and empty scopes and resources
    /// after it), recording the others: the one rule for what a retried export repeats, used by
    /// the store as it appends and by replay for recorded traces. Returns how many were dropped.
    pub fn retain_new(&mut self, resource_spans: &mut Vec<ResourceSpans>) -> usize {
        let mut duplicates = 0;
        for rs in resource_spans.iter_mut() {
            for ss in &mut rs.scope_spans {
                ss.spans.retain(|span| {
                    let fresh = self.insert(span.key());
                    duplicates += usize::from(!fresh);
                    fresh
                });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        duplicates
    }

    /// [`Window::retain_new`] for every signal of a batch: spans by their ids, log records and
    /// metrics by their digests ([`crate::digest`]). Returns how many were dropped.
    pub fn retain_new_events(&mut self, batch: &mut Batch) -> usize {
        let mut duplicates = self.retain_new(&mut batch.resource_spans);
        // Digests computed where the export was decoded are used when there is one per record.
        let records = batch.log_count();
        let keys = std::mem::take(&mut batch.log_keys);
        let mut known = (keys.len() == records).then(|| keys.into_iter());
        for rl in &mut batch.resource_logs {
            for sl in &mut rl.scope_logs {
                let (resource, scope) = (&rl.resource, &sl.scope);
                sl.log_records.retain(|record| {
                    let key = known.as_mut().and_then(Iterator::next);
                    let key = key.unwrap_or_else(|| digest::log_key(resource, scope, record));
                    let fresh = self.insert(key);
                    duplicates += usize::from(!fresh);
                    fresh
                });
            }
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
        batch.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        for rm in &mut batch.resource_metrics {
            for sm in &mut rm.scope_metrics {
                let (resource, scope) = (&rm.resource, &sm.scope);
                sm.metrics.retain(|metric| {
                    let fresh = self.insert(digest::metric_key(resource, scope, metric));
                    duplicates += usize::from(!fresh);
                    fresh
                });
            }
            rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
        }
        batch
            .resource_metrics
            .retain(|rm| !rm.scope_metrics.is_empty());
        duplicates
    }

    /// The keys of a stored batch's events, in log order: what refills the window after a
    /// restart.
    pub fn keys_of(batch: &Batch, from: u64) -> impl Iterator<Item = SpanKey> + '_ {
        let spans = batch
            .events()
            .filter(move |e| e.seq >= from)
            .map(|e| e.span.key());
        let logs = batch
            .log_events()
            .filter(move |e| e.seq >= from)
            .map(|e| digest::log_key(e.resource, e.scope, e.record));
        let metrics = batch
            .metric_events()
            .filter(move |e| e.seq >= from)
            .map(|e| digest::metric_key(e.resource, e.scope, e.metric));
        spans.chain(logs).chain(metrics)
    }

    /// Forgets every key (after a failed write, before the window is read back from the log),
    /// and takes the window's full memory now: growing the table later rehashes every key
    /// held, which stalled ingest for up to 100 ms while the window filled.
    pub fn clear(&mut self) {
        self.ring.clear();
        self.index.clear();
        self.next = 0;
        self.ring.reserve_exact(self.capacity);
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.index
            .reserve(self.capacity, |&i| hasher.hash_one(ring[i as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> SpanKey {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&n.to_le_bytes());
        SpanKey {
            trace_id,
            span_id: n.to_be_bytes(),
        }
    }

    #[test]
    fn a_key_in_the_window_is_a_duplicate_and_one_that_left_it_is_not() {
        let mut w = Window::new(4);
        for n in 0..4 {
            assert!(w.insert(key(n)), "{n} is new");
        }
        assert!(!w.insert(key(0)), "0 is still in the window");
        assert!(w.insert(key(4)), "4 is new and pushes 0 out");
        assert!(!w.contains(&key(0)));
        assert!(w.contains(&key(1)) && w.contains(&key(4)));
        assert!(
            w.insert(key(0)),
            "0 left the window, so it counts as new again"
        );
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn the_window_matches_a_plain_set_of_the_last_n_keys() {
        // Keys drawn from a small range so that repeats inside and outside the window are common.
        let capacity = 37;
        let mut w = Window::new(capacity);
        let mut recent: std::collections::VecDeque<SpanKey> = Default::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % 100);
            let expected_fresh = !recent.contains(&k);
            assert_eq!(w.insert(k), expected_fresh);
            if expected_fresh {
                recent.push_back(k);
                if recent.len() > capacity {
                    recent.pop_front();
                }
            }
            assert_eq!(w.len(), recent.len());
        }
    }

    /// A batch of `n` Claude Code records from agent a1, each its own (its prompt id).
    fn log_batch(n: usize) -> Batch {
        use crate::model::{
            AnyValue, KeyValue, LogRecord, Resource, ResourceLogs, Scope, ScopeLogs,
        };
        let records = (0..n)
            .map(|i| LogRecord {
                body: AnyValue::String("claude_code.api_request".into()),
                attributes: vec![KeyValue::new(
                    "prompt.id",
                    AnyValue::String(format!("p-{i}").into()),
                )],
                ..LogRecord::empty()
            })
            .collect();
        Batch {
            resource_logs: vec![ResourceLogs {
                resource: Resource::default(),
                schema_url: String::new(),
                scope_logs: vec![ScopeLogs {
                    scope: Scope::default(),
                    schema_url: String::new(),
                    log_records: records,
                }],
            }],
            ..Batch::default()
        }
    }

    /// Its records' keys, as the thread that decoded the export computes them.
    fn keyed(mut batch: Batch) -> Batch {
        let rl = &batch.resource_logs[0];
        let sl = &rl.scope_logs[0];
        batch.log_keys = sl
            .log_records
            .iter()
            .map(|r| digest::log_key(&rl.resource, &sl.scope, r))
            .collect();
        batch
    }

    #[test]
    fn log_keys_computed_before_the_append_are_the_ones_it_would_compute() {
        let mut window = Window::new(64);
        let mut first = keyed(log_batch(3));
        assert_eq!(window.retain_new_events(&mut first), 0);
        assert!(first.log_keys.is_empty(), "used up, never stored");
        // The same records without keys of their own: the window knows them all.
        let mut again = log_batch(3);
        assert_eq!(window.retain_new_events(&mut again), 3);
        // Keys that do not match the records in number are not used: the window computes them.
        let mut more = keyed(log_batch(5));
        more.log_keys.pop();
        assert_eq!(window.retain_new_events(&mut more), 3, "p-0..p-2 repeat");
        assert_eq!(more.event_count(), 2);
        let mut known = keyed(log_batch(5));
        assert_eq!(window.retain_new_events(&mut known), 5);
    }
}
