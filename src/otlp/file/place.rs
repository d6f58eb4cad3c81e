//! Where a replayed unit goes in a log: its seq and receive time, as the store would give them.

use super::Unit;
use crate::dedup::{DEFAULT_WINDOW, Window};
use crate::model::{Batch, MetricData};

/// Gives units their place in a log: seq and receive time, as the store would. Keeps exported
/// placements, numbers the rest in order, and drops spans already seen (as the store does).
pub struct Placer {
    next_seq: u64,
    last_time: u64,
    started: bool,
    /// The store's own rule for repeats (see [`Window`]), so that a recorded trace replays as
    /// the server would have stored it.
    window: Window,
    pub duplicates: usize,
    /// Lines whose recorded receive time was earlier than the line before's: placed at that
    /// earlier time instead, so time never goes backwards along the seqs.
    pub times_raised: usize,
}

impl Default for Placer {
    fn default() -> Self {
        Placer {
            next_seq: 1,
            last_time: 0,
            started: false,
            window: Window::new(DEFAULT_WINDOW),
            duplicates: 0,
            times_raised: 0,
        }
    }
}

impl Placer {
    /// Ready for about `spans` spans without growing its window as it fills.
    pub fn with_capacity(spans: usize) -> Self {
        let mut placer = Placer::default();
        placer.window.reserve(spans);
        placer
    }

    /// The unit as a batch, or None when nothing in it is new. An exported unit (a line with
    /// its placement) holds events of a log: placed where they were, a span the store kept twice
    /// (a retry that came after its window) included; it must follow on from the one before, so
    /// a gap, a repeated line or two joined exports are refused. A recorded trace without
    /// placements loses what the store would have dropped as a retry.
    pub fn place(&mut self, unit: Unit) -> Result<Option<Batch>, String> {
        let mut batch = unit.events;
        match unit.meta {
            Some(_) => {
                for key in Window::keys_of(&batch, 0) {
                    self.window.insert(key);
                }
            }
            None => self.duplicates += self.window.retain_new_events(&mut batch),
        }
        if batch.event_count() == 0 {
            return Ok(None);
        }
        let (first_seq, time) = match unit.meta {
            Some(meta) => {
                if self.started && meta.first_seq != self.next_seq {
                    return Err(format!(
                        "expected the line for seq {}, found seq {}: lines are missing or out of order",
                        self.next_seq, meta.first_seq
                    ));
                }
                if meta
                    .first_seq
                    .checked_add(batch.event_count() as u64)
                    .is_none()
                {
                    return Err(format!(
                        "the line placed at seq {} runs past the largest sequence number",
                        meta.first_seq
                    ));
                }
                if meta.received_at < self.last_time {
                    self.times_raised += 1;
                }
                (meta.first_seq, meta.received_at.max(self.last_time))
            }
            None => (self.next_seq, latest_time(&batch).max(self.last_time)),
        };
        batch.first_seq = first_seq;
        batch.received_at = time;
        self.started = true;
        self.next_seq = first_seq + batch.event_count() as u64;
        self.last_time = time;
        Ok(Some(batch))
    }
}

/// The latest time a recorded unit without placement carries: its spans' ends, its log
/// records' times (observed, when the event's own is unset), its metrics' points.
fn latest_time(batch: &Batch) -> u64 {
    let spans = batch
        .events()
        .map(|e| e.span.end_time_unix_nano.max(e.span.start_time_unix_nano));
    let logs = batch.log_events().map(|e| {
        let r = e.record;
        r.time_unix_nano.max(r.observed_time_unix_nano)
    });
    let metrics = batch.metric_events().map(|e| latest_point(&e.metric.data));
    spans.chain(logs).chain(metrics).max().unwrap_or(0)
}

fn latest_point(data: &MetricData) -> u64 {
    let times: Vec<u64> = match data {
        MetricData::Empty => Vec::new(),
        MetricData::Gauge { points } | MetricData::Sum { points, .. } => {
            points.iter().map(|p| p.time_unix_nano).collect()
        }
        MetricData::Histogram { points, .. } => points.iter().map(|p| p.time_unix_nano).collect(),
        MetricData::ExponentialHistogram { points, .. } => {
            points.iter().map(|p| p.time_unix_nano).collect()
        }
        MetricData::Summary { points } => points.iter().map(|p| p.time_unix_nano).collect(),
    };
    times.into_iter().max().unwrap_or(0)
}
