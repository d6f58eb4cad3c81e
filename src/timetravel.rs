//! Time travel: the view as of any past point of the log, answered from the latest checkpoint
//! at or before it plus the fold of the events after the checkpoint.
//!
//! A POINT is a sequence number (`1234`), an RFC 3339 time (`2026-11-26T14:02:00Z`), or a time
//! relative to now (`-5m`, `-1h30m`). Times are the log's receive times, which never go
//! backwards, so a time names the last event received at or before it.

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::model::UnixNanos;
use crate::reducer::{AsOf, REDUCER_VERSION, View};
use crate::store::{LogReader, StoreError};
use crate::timeline::{Builder, Timeline};

/// Fewest events between two checkpoints. With it the worst `--at` folds this many events after
/// decoding one checkpoint.
pub const CHECKPOINT_EVERY: u64 = 4096;
/// Checkpoints are also spaced by the view's size (this many events per entity in it), so that
/// writing them costs a bounded share of the fold however large the view grows.
pub const EVENTS_PER_ENTITY: u64 = 4;

#[derive(Debug, Error)]
pub enum TimeTravelError {
    #[error(
        "{0:?} is not a point in the log; give a sequence number (1234), an RFC 3339 time (2026-11-26T14:02:00Z) or a time relative to now (-5m)"
    )]
    Point(String),
    #[error("{0}")]
    Outside(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A place in the log, as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Time(UnixNanos),
    /// So long before now.
    Ago(Duration),
}

impl FromStr for Point {
    type Err = TimeTravelError;

    fn from_str(s: &str) -> Result<Point, TimeTravelError> {
        let s = s.trim();
        let bad = || TimeTravelError::Point(s.to_owned());
        if let Ok(seq) = s.parse::<u64>() {
            return Ok(Point::Seq(seq));
        }
        if let Some(ago) = s.strip_prefix('-') {
            return humantime::parse_duration(ago)
                .map(Point::Ago)
                .map_err(|_| bad());
        }
        match parse_time(s) {
            Ok(t) => Ok(Point::Time(t)),
            Err(TimeError::Unreadable) => Err(bad()),
            Err(TimeError::Offset) => Err(TimeTravelError::Outside(format!(
                "{s:?} has a zone offset beyond ±23:59; give one like +01:00, or a time in UTC (Z)"
            ))),
            Err(TimeError::Range) => Err(TimeTravelError::Outside(format!(
                "{s:?} is outside the times the log can hold (1970 to 2554)"
            ))),
        }
    }
}

/// Why a time did not parse.
enum TimeError {
    Unreadable,
    Offset,
    Range,
}

/// An RFC 3339 time in nanoseconds since the epoch. humantime reads UTC (`Z`, or no zone);
/// a numeric offset (`+01:00`) is applied here. Any text at all: the slicing is by checked
/// byte ranges, so a multibyte character is an unreadable time, never a panic.
fn parse_time(s: &str) -> Result<UnixNanos, TimeError> {
    let offset = s
        .len()
        .checked_sub(6)
        .and_then(|i| Some((i, s.get(i..)?, s.get(..i)?)));
    let (base, offset_secs) = match offset {
        Some((_, tail, base))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail.as_bytes().get(3) == Some(&b':')
                && base.contains('T') =>
        {
            let number = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
                tail.get(r)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse().ok())
                    .ok_or(TimeError::Unreadable)
            };
            let (hours, minutes) = (number(1..3)?, number(4..6)?);
            if hours > 23 || minutes > 59 {
                return Err(TimeError::Offset);
            }
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            (base, sign * (hours * 3600 + minutes * 60))
        }
        _ => (s, 0),
    };
    let time = humantime::parse_rfc3339_weak(base).map_err(|e| match e {
        humantime::TimestampError::OutOfRange => TimeError::Range,
        _ => TimeError::Unreadable,
    })?;
    let nanos = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| TimeError::Range)?
        .as_nanos() as i128
        - i128::from(offset_secs) * 1_000_000_000;
    u64::try_from(nanos).map_err(|_| TimeError::Range)
}

impl Point {
    /// The seq this point names in the log read by `reader`, `now` being the wall clock for
    /// relative points. A seq past the end names the end; 0 is before the first event.
    pub fn resolve(self, reader: &LogReader, now: UnixNanos) -> Result<u64, TimeTravelError> {
        let last = reader.last_seq()?;
        Ok(match self {
            Point::Seq(seq) => seq.min(last),
            Point::Time(t) => reader.seq_at_time(t)?,
            Point::Ago(d) => {
                let back = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                reader.seq_at_time(now.saturating_sub(back))?
            }
        })
    }
}

impl Point {
    /// `--at`: the seq this point names, refused when it lies outside the log (a seq past its
    /// end, a time before its first event or in the future) rather than silently moved to an
    /// end of it. A time after the last event is the last event's state: the note says so.
    pub fn resolve_at(
        self,
        reader: &LogReader,
        now: UnixNanos,
    ) -> Result<(u64, Option<String>), TimeTravelError> {
        let last = reader.last_seq()?;
        let time = match self {
            Point::Seq(seq) if seq > last => {
                return Err(TimeTravelError::Outside(format!(
                    "seq {seq} is after the last event of the log (seq {last}); give a seq from 0 to {last}"
                )));
            }
            Point::Seq(seq) => return Ok((seq, None)),
            Point::Time(t) => t,
            Point::Ago(d) => now.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        let when = crate::status::rfc3339(time);
        if time > now {
            return Err(TimeTravelError::Outside(format!(
                "{when} is in the future; the log ends now"
            )));
        }
        let first = reader.received_at(1)?;
        if first.is_none_or(|first| time < first) {
            let start = first.map_or("the log is empty".to_string(), |f| {
                format!("the first event is at {}", crate::status::rfc3339(f))
            });
            return Err(TimeTravelError::Outside(format!(
                "{when} is before the first event of the log ({start}); nothing was known then"
            )));
        }
        let seq = reader.seq_at_time(time)?;
        let note = (seq == last).then(|| {
            format!("{when} is after the last event (seq {last}): this is the latest status")
        });
        Ok((seq, note))
    }

    /// The first seq of a range starting at this point: a seq is itself; a time is the first
    /// event received at or after it (not the last one before it, as for an end point).
    pub fn resolve_start(self, reader: &LogReader, now: UnixNanos) -> Result<u64, TimeTravelError> {
        let time = match self {
            Point::Seq(seq) => return Ok(seq),
            Point::Time(t) => t,
            Point::Ago(d) => now.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        Ok(Point::Time(time.saturating_sub(1)).resolve(reader, now)? + 1)
    }
}

/// The seqs `from..=to` that a range of POINTs names: from the first event at or after `from`
/// (the start of the log when absent) to the last at or before `to` (its end when absent).
pub fn range(
    reader: &LogReader,
    from: Option<Point>,
    to: Option<Point>,
    now: UnixNanos,
) -> Result<(u64, u64), TimeTravelError> {
    let from = from.map(|p| p.resolve_start(reader, now)).transpose()?;
    let to = to.map(|p| p.resolve(reader, now)).transpose()?;
    let (from, to) = (from.unwrap_or(1), to.unwrap_or(u64::MAX));
    // Records are exported whole: a range that holds no event would still write the record
    // around it, so it is refused instead.
    let last = reader.last_seq()?;
    if from > last {
        return Err(TimeTravelError::Outside(format!(
            "the range starts at seq {from}, after the last event of the log (seq {last}); nothing to export"
        )));
    }
    if let Some(why) = reversed(from, to) {
        return Err(TimeTravelError::Outside(why));
    }
    Ok((from, to))
}

/// The view after the event `seq` (the empty view for 0): the latest checkpoint at or before it,
/// plus the fold of the events between.
pub fn view_at(reader: &LogReader, seq: u64) -> Result<View, StoreError> {
    let (from, mut view) = match reader.checkpoint_at_or_before(seq, REDUCER_VERSION, fits)? {
        Some((entry, view)) => (entry.seq + 1, view),
        None => (1, View::default()),
    };
    fold_range(reader, &mut view, from, seq)?;
    Ok(view)
}

/// Farthest a kept view is folded forward before a checkpoint is used instead: about as long
/// as decoding a checkpoint of a large view takes.
pub const SCRUB_REACH: u64 = 4096;
/// How far before a backward jump the scrubber keeps its anchor view.
pub const SCRUB_BACK: u64 = 512;

/// Views kept between time-travel questions, for a dashboard's scrubber: a step forward folds
/// only the events stepped over, a step back clones a view kept a little earlier and folds from
/// it. Either costs far less than decoding a checkpoint and folding up to thousands of events,
/// which is what `view_at` does every time. The log is append-only, so a kept view never goes
/// stale. Answers are exactly `view_at`'s (tests/it/timetravel.rs checks it on random walks).
#[derive(Debug, Default)]
pub struct Scrubber {
    /// The view last answered.
    last: Option<View>,
    /// A view `SCRUB_BACK` before the last jump back, the start of every step back after it.
    anchor: Option<View>,
}

impl Scrubber {
    /// The view after the event `seq`, as `view_at(reader, seq)` would give it.
    pub fn view_at(&mut self, reader: &LogReader, seq: u64) -> Result<&View, StoreError> {
        let within = |v: &Option<View>| {
            v.as_ref()
                .is_some_and(|v| v.as_of.seq <= seq && seq - v.as_of.seq <= SCRUB_REACH)
        };
        let mut view = if within(&self.last) {
            self.last.take().unwrap_or_default()
        } else if within(&self.anchor) {
            self.anchor.clone().unwrap_or_default()
        } else if self.last.as_ref().is_some_and(|v| seq < v.as_of.seq) {
            // Going back: the steps that follow are likely to go back further.
            let anchor = view_at(reader, seq.saturating_sub(SCRUB_BACK))?;
            self.anchor = Some(anchor.clone());
            anchor
        } else {
            view_at(reader, seq)?
        };
        let from = view.as_of.seq + 1;
        fold_range(reader, &mut view, from, seq)?;
        Ok(self.last.insert(view))
    }
}

/// Whether a decoded checkpoint is what it claims: a view as of its own seq. A change to the
/// view's layout without a new reducer version would decode into something else, or fail.
pub fn fits(seq: u64, view: &View) -> bool {
    view.as_of.seq == seq && view.counters.events == seq
}

/// Folds the events `from..=to` into `view`.
pub fn fold_range(
    reader: &LogReader,
    view: &mut View,
    from: u64,
    to: u64,
) -> Result<(), StoreError> {
    if from > to {
        return Ok(());
    }
    for batch in reader.batches_from(from) {
        let batch = batch?;
        for ev in batch.all_events() {
            if ev.seq() > to {
                return Ok(());
            }
            if ev.seq() >= from {
                view.apply_any(&ev);
            }
        }
    }
    Ok(())
}

/// Calls `f` with each event `from..=to`, in order.
fn for_each_event(
    reader: &LogReader,
    from: u64,
    to: u64,
    mut f: impl FnMut(&crate::model::AnyEvent<'_>),
) -> Result<(), StoreError> {
    if from > to {
        return Ok(());
    }
    for batch in reader.batches_from(from) {
        let batch = batch?;
        for ev in batch.all_events() {
            if ev.seq() > to {
                return Ok(());
            }
            if ev.seq() >= from {
                f(&ev);
            }
        }
    }
    Ok(())
}

/// Whether a checkpoint is due after folding up to `view.as_of.seq`, the last one being at
/// `last`, checkpoints being at least `every` events apart.
pub fn checkpoint_due(view: &View, last: u64, every: u64) -> bool {
    let entities =
        (view.agents.len() + view.features.len() + view.worktrees.len() + view.anomalies.len())
            as u64;
    let spacing = if every < CHECKPOINT_EVERY {
        // Lowered (tests): exactly that, to put many checkpoints in a small log.
        every
    } else {
        every.max(EVENTS_PER_ENTITY * entities)
    };
    view.as_of.seq >= last.saturating_add(spacing)
}

/// What changed between two points of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiffReport {
    pub from: crate::reducer::AsOf,
    pub to: crate::reducer::AsOf,
    pub events: u64,
    pub changes: Vec<crate::changes::Change>,
}

/// The changes between the views at `from` and `to` (seqs).
/// Why a diff from `from` to `to` (resolved seqs) is refused, when it goes back in time: the
/// changes would read backwards and its count of events would be nonsense.
pub fn reversed(from: u64, to: u64) -> Option<String> {
    (from > to).then(|| {
        format!(
            "--from (seq {from}) is after --to (seq {to}): a range goes forward in time; swap the two points"
        )
    })
}

pub fn diff(reader: &LogReader, from: u64, to: u64) -> Result<DiffReport, StoreError> {
    let a = view_at(reader, from)?;
    let b = view_at(reader, to)?;
    Ok(DiffReport {
        from: a.as_of,
        to: b.as_of,
        events: b.counters.events.saturating_sub(a.counters.events),
        changes: crate::changes::diff(&a, &b),
    })
}

/// Usage grouped `by`: up to `to` (default: the end of the log), less what was used up to
/// `from` (default: nothing).
pub fn usage(
    reader: &LogReader,
    by: (crate::usage::By, Option<&str>),
    from: Option<u64>,
    to: Option<u64>,
) -> Result<crate::usage::Report, StoreError> {
    let last = reader.last_seq()?;
    let end = view_at(reader, to.unwrap_or(last).min(last))?;
    let start = from.map(|seq| view_at(reader, seq.min(last))).transpose()?;
    let prices = end.usage.prices.as_ref().map(|p| p.date.clone());
    Ok(crate::usage::report(
        &end.usage.ledger,
        start.as_ref().map(|v| &v.usage.ledger),
        by,
        prices,
    ))
}

/// Agents' states as intervals over the events `from+1..=to` (the view as of `from` is where it
/// starts), with markers and samples: the dashboard's timeline. `to` past the end is the end.
pub fn timeline(
    reader: &LogReader,
    from: u64,
    to: u64,
    resolution: usize,
) -> Result<Timeline, StoreError> {
    let to = to.min(reader.last_seq()?);
    let from = from.min(to);
    let mut view = view_at(reader, from)?;
    let (start, end) = bounds(reader, &view, to)?;
    let step = crate::timeline::step_for(end.time.saturating_sub(start), resolution);
    let mut builder = Builder::new(&view, step, resolution);
    for_each_event(reader, from + 1, to, |ev| builder.apply_any(&mut view, ev))?;
    Ok(builder.finish(&view, end))
}

/// Where a timeline from `view` to the event `to` begins and ends in time. From the empty log
/// it begins at the first event, not at 1970.
fn bounds(reader: &LogReader, view: &View, to: u64) -> Result<(UnixNanos, AsOf), StoreError> {
    let end = AsOf {
        seq: to,
        time: reader.received_at(to)?.unwrap_or(view.as_of.time),
    };
    let start = if view.as_of.seq > 0 {
        view.as_of.time
    } else {
        reader.received_at(1)?.unwrap_or(end.time)
    };
    Ok((start, end))
}

/// The whole log's timeline kept between questions, for a dashboard in live mode: while the log
/// grows within the same drawing step (until its time range doubles), only the events since the
/// last question are folded, not the whole log again. Answers are `timeline(reader, 0, to,
/// resolution)`'s (tests/it/timetravel.rs checks it as the log grows).
#[derive(Debug, Default)]
pub struct LiveTimeline {
    kept: Option<Kept>,
    reused: u64,
}

#[derive(Debug)]
struct Kept {
    resolution: usize,
    step: UnixNanos,
    builder: Builder,
    view: View,
}

impl LiveTimeline {
    /// The timeline of the events `1..=to`.
    pub fn timeline(
        &mut self,
        reader: &LogReader,
        to: u64,
        resolution: usize,
    ) -> Result<Timeline, StoreError> {
        let to = to.min(reader.last_seq()?);
        let (start, end) = bounds(reader, &View::default(), to)?;
        let step = crate::timeline::step_for(end.time.saturating_sub(start), resolution);
        let kept = match self.kept.take() {
            Some(k) if k.resolution == resolution && k.step == step && k.view.as_of.seq <= to => {
                self.reused += 1;
                k
            }
            _ => {
                let view = View::default();
                Kept {
                    resolution,
                    step,
                    builder: Builder::new(&view, step, resolution),
                    view,
                }
            }
        };
        let kept = self.kept.insert(kept);
        let from = kept.view.as_of.seq + 1;
        let Kept { builder, view, .. } = kept;
        for_each_event(reader, from, to, |ev| builder.apply_any(view, ev))?;
        Ok(builder.finish(view, end))
    }

    /// How many answers extended a kept timeline rather than folding the log again.
    pub fn reused(&self) -> u64 {
        self.reused
    }
}

/// The timeline of one agent or feature over the whole log.
pub fn history(
    reader: &LogReader,
    subject: crate::changes::Subject,
) -> Result<Vec<crate::changes::HistoryEntry>, StoreError> {
    let mut history = crate::changes::History::new(subject);
    let mut view = View::default();
    for batch in reader.batches_from(1) {
        let batch = batch?;
        for ev in batch.events() {
            history.apply(&mut view, &ev);
        }
    }
    Ok(history.entries)
}

/// Writes the records holding the events `from..=to` in `format`. Whole records: a line (or
/// message) is a record of the log, so the first and last may reach beyond the range. Returns
/// (lines, spans).
pub fn export<W: std::io::Write>(
    reader: &LogReader,
    from: u64,
    to: u64,
    format: crate::otlp::file::Format,
    out: W,
) -> Result<Exported, ExportError> {
    let mut writer = crate::otlp::file::LineWriter::new(out, format);
    let mut counts = Exported::default();
    // Two stages on two threads: one reads and decodes records from the log, the caller's
    // encodes and writes them; a few records in flight keep both busy and memory bounded.
    std::thread::scope(|scope| {
        let (records, read) = std::sync::mpsc::sync_channel(4);
        scope.spawn(move || {
            for batch in reader.batches_from(from.max(1)) {
                let past = batch.as_ref().is_ok_and(|b| b.first_seq > to);
                // The writer gone (it failed) or the range ended: nothing more to read.
                if past || records.send(batch).is_err() {
                    break;
                }
            }
        });
        for batch in read {
            let batch = batch?;
            writer.write(&batch).map_err(ExportError::Write)?;
            counts.lines += 1;
            counts.spans += batch.span_count() as u64;
            counts.events += batch.event_count() as u64;
        }
        Ok::<_, ExportError>(())
    })?;
    writer.finish().map_err(ExportError::Write)?;
    Ok(counts)
}

/// What an export wrote: records of the log (lines or messages), and the events in them —
/// spans, and all events (log records and metrics included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub lines: u64,
    pub spans: u64,
    pub events: u64,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export failed: {0}")]
    Write(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_as_seq_time_or_relative() {
        assert_eq!("42".parse::<Point>().ok(), Some(Point::Seq(42)));
        assert_eq!(
            "-5m".parse::<Point>().ok(),
            Some(Point::Ago(Duration::from_secs(300)))
        );
        assert_eq!(
            "1970-01-01T00:00:01Z".parse::<Point>().ok(),
            Some(Point::Time(1_000_000_000))
        );
        assert_eq!(
            "2026-11-26T15:02:00+01:00".parse::<Point>().ok(),
            "2026-11-26T14:02:00Z".parse::<Point>().ok()
        );
        assert_eq!(
            "2026-11-26T13:32:00.5-00:30".parse::<Point>().ok(),
            "2026-11-26T14:02:00.5Z".parse::<Point>().ok()
        );
        let err = "yesterday".parse::<Point>().expect_err("not a point");
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn bad_points_are_errors_that_say_why_never_panics() {
        for (point, says) in [
            ("éaaaaa", "not a point"),
            ("2026-11-26T14:02:00é+01:00", "not a point"),
            ("2026-11-26T14:02:00+99:99", "beyond ±23:59"),
            ("2026-11-26T14:02:00+1a:00", "not a point"),
            ("9999-01-01T00:00:00Z", "1970 to 2554"),
        ] {
            let err = point.parse::<Point>().expect_err(point);
            assert!(err.to_string().contains(says), "{point}: {err}");
        }
    }

    proptest::proptest! {
        // Any text at all: a point, or an error; never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in proptest::prelude::any::<String>(),
                                         tail in "[+-][0-9é:a]{0,6}") {
            let _ = text.parse::<Point>();
            let _ = format!("2026-11-26T14:02:00{tail}").parse::<Point>();
            let _ = format!("{text}{tail}").parse::<Point>();
        }
    }
}
