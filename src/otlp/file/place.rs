//! Where a replayed unit goes in a log: its seq and receive time, as the store would give them.

use super::Unit;
use crate::dedup::{DEFAULT_WINDOW, Window};
use crate::model::{Batch, ResourceSpans};

fn unit_spans(resource_spans: &[ResourceSpans]) -> u64 {
    resource_spans.iter().map(|rs| rs.span_count() as u64).sum()
}

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
    pub fn place(&mut self, mut unit: Unit) -> Result<Option<Batch>, String> {
        if unit.meta.is_some() {
            let spans = unit.resource_spans.iter().flat_map(|rs| &rs.scope_spans);
            for span in spans.flat_map(|ss| &ss.spans) {
                self.window.insert(span.key());
            }
        } else {
            self.duplicates += self.window.retain_new(&mut unit.resource_spans);
        }
        if unit.resource_spans.is_empty() {
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
                    .checked_add(unit_spans(&unit.resource_spans))
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
            None => {
                let latest = unit
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .map(|s| s.end_time_unix_nano.max(s.start_time_unix_nano))
                    .max()
                    .unwrap_or(0);
                (self.next_seq, latest.max(self.last_time))
            }
        };
        let batch = Batch::of_spans(first_seq, time, unit.resource_spans);
        self.started = true;
        self.next_seq = first_seq + batch.span_count() as u64;
        self.last_time = time;
        Ok(Some(batch))
    }
}
