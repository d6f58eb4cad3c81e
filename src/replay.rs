//! `spanfold replay`: recorded traces folded again, away from the live log.
//!
//! Files are decoded on worker threads (lines are independent) and folded in order on the
//! calling thread. The fold is in memory: replay never opens, locks or writes the live log, and
//! never runs an effect (git, merge gates). `--keep DIR` also writes the replayed events, with
//! their recorded seqs and times, as a new log in DIR, so that `history`, `diff` and `--at` can
//! be asked of it with `--coord-dir DIR`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;
use thiserror::Error;

use crate::changes::{self, Change};
use crate::model::{AnyEvent, Batch, UnixNanos};
use crate::otlp::file::{FileError, Input, Placer, RawUnit, Unit};
use crate::policy::PolicyConfig;
use crate::reducer::View;
use crate::store::{Log, StoreError};
use crate::timetravel::Point;
use crate::verify::{Divergence, Verifier};
use crate::whatif::{self, WhatIfConfig};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {reason}")]
    Placement { path: String, reason: String },
    #[error("--keep {0} exists; give a new directory (replay never writes into an existing log)")]
    KeepExists(PathBuf),
    #[error(
        "the input starts at seq {0}, so --keep cannot store it as a log (a log starts at seq 1); export without --from"
    )]
    KeepPartial(u64),
    #[error(
        "the input starts at seq {0}: --verify re-runs decisions on the state before them, which needs the log from seq 1; export without --from"
    )]
    VerifyPartial(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default)]
pub struct ReplayOptions {
    pub files: Vec<PathBuf>,
    /// Call the step callback for every event.
    pub step: bool,
    pub until: Option<Point>,
    pub verify: bool,
    pub what_if: Option<WhatIfConfig>,
    pub keep: Option<PathBuf>,
    /// The wall clock, for relative `--until` points.
    pub now: UnixNanos,
    /// Called with (bytes read, total bytes) as input is consumed.
    pub progress: Option<fn(u64, u64)>,
}

/// One event of `--step`.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: u64,
    pub time: UnixNanos,
    pub span: String,
    pub agent_id: Option<String>,
    pub changes: Vec<Change>,
    /// What the span says beyond its changes (a merge's reason, reported progress).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub decision_points: usize,
    pub decisions: usize,
    pub divergence: Option<Divergence>,
}

pub struct ReplayReport {
    pub view: View,
    pub events: u64,
    pub lines: u64,
    pub duplicates: usize,
    /// Lines whose receive time went backwards, replayed at the time of the line before.
    pub times_raised: usize,
    /// Spans refused while decoding (malformed ids), with the first reasons.
    pub rejected: Vec<String>,
    pub rejected_count: usize,
    /// True when `--until` stopped the replay before the end of the input.
    pub stopped: bool,
    pub verify: Option<VerifyReport>,
    pub what_if: Option<whatif::Report>,
}

/// Replays `options.files` in order, calling `on_step` per event with `--step`.
pub fn replay(
    options: &ReplayOptions,
    mut on_step: impl FnMut(&Step),
) -> Result<ReplayReport, ReplayError> {
    let mut run = Replay::start(options)?;
    for path in &options.files {
        let name = path.display().to_string();
        let input = Input::open(path)?;
        let mut failure = None;
        decode_in_parallel(input, |unit| {
            let step = unit
                .map_err(ReplayError::File)
                .and_then(|(unit, size)| run.unit(unit, size, &name, &mut on_step));
            match step {
                Ok(more) => more,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if run.stopped {
            break;
        }
    }
    run.finish()
}

/// A replay under way: the view so far and what the report will say.
struct Replay<'o> {
    options: &'o ReplayOptions,
    view: View,
    placer: Placer,
    verifier: Option<Verifier>,
    /// What-if needs every event at once (it makes two passes): the batches, kept.
    kept_batches: Vec<Batch>,
    keep: Option<Log>,
    total_bytes: u64,
    read_bytes: u64,
    events: u64,
    lines: u64,
    rejected: Vec<String>,
    rejected_count: usize,
    stopped: bool,
}

impl<'o> Replay<'o> {
    fn start(options: &'o ReplayOptions) -> Result<Replay<'o>, ReplayError> {
        let total_bytes = input_size(&options.files);
        let keep = match &options.keep {
            None => None,
            Some(dir) => {
                if dir.exists() {
                    return Err(ReplayError::KeepExists(dir.clone()));
                }
                let log = Log::open(dir, true)?;
                let sources: Vec<String> = options
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect();
                log.mark_kept_replay(&sources.join(", "))?;
                Some(log)
            }
        };
        Ok(Replay {
            options,
            view: View::default(),
            // Rehashing a set of millions of span ids as it grows cost more than sizing it
            // once: a span takes 300 bytes or more in either format.
            placer: Placer::with_capacity((total_bytes / 300).min(1 << 26) as usize),
            verifier: options
                .verify
                .then(|| Verifier::new(PolicyConfig::default())),
            kept_batches: Vec::new(),
            keep,
            total_bytes,
            read_bytes: 0,
            events: 0,
            lines: 0,
            rejected: Vec::new(),
            rejected_count: 0,
            stopped: false,
        })
    }

    /// Whether an event at (seq, time) lies past `--until`.
    fn past_until(&self, seq: u64, time: UnixNanos) -> bool {
        match self.options.until {
            None => false,
            Some(Point::Seq(s)) => seq > s,
            Some(Point::Time(t)) => time > t,
            Some(Point::Ago(d)) => {
                let ago = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                time > self.options.now.saturating_sub(ago)
            }
        }
    }

    /// One decoded unit (a line or message): placed, kept, folded. False once `--until` is
    /// reached.
    fn unit(
        &mut self,
        unit: Unit,
        size: u64,
        name: &str,
        on_step: &mut impl FnMut(&Step),
    ) -> Result<bool, ReplayError> {
        self.lines += 1;
        self.read_bytes += size;
        if let Some(report) = self.options.progress {
            report(self.read_bytes, self.total_bytes);
        }
        self.rejected_count += unit.rejected.len();
        let room = 20usize.saturating_sub(self.rejected.len());
        self.rejected
            .extend(unit.rejected.iter().take(room).cloned());
        let batch = match self.placer.place(unit) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(true),
            Err(reason) => {
                return Err(ReplayError::Placement {
                    path: name.to_owned(),
                    reason,
                });
            }
        };
        if self.events == 0 && batch.first_seq != 1 {
            // An export made with --from: the fold starts from nothing, not from the state at
            // that seq, so a recorded decision cannot be checked and a log cannot start.
            if self.keep.is_some() {
                return Err(ReplayError::KeepPartial(batch.first_seq));
            }
            if self.verifier.is_some() {
                return Err(ReplayError::VerifyPartial(batch.first_seq));
            }
        }
        // --until cuts the batch: what comes after the point is neither folded nor kept.
        let cut = self
            .options
            .until
            .and_then(|_| {
                batch
                    .all_events()
                    .find(|ev| self.past_until(ev.seq(), ev.time()))
            })
            .map(|ev| {
                let name = match ev {
                    AnyEvent::Span(e) => e.span.name.to_string(),
                    AnyEvent::Log(_) => "a log record".to_owned(),
                    AnyEvent::Metric(_) => "a metric".to_owned(),
                };
                (ev.seq(), name)
            });
        let batch = match &cut {
            None => batch,
            Some((seq, _)) => {
                self.stopped = true;
                batch.up_to(seq - 1)
            }
        };
        if let Some(log) = self.keep.as_mut()
            && batch.event_count() > 0
        {
            log.import(&batch)?;
        }
        self.fold(&batch, on_step);
        if let (Some((_, next_span)), Some(v)) = (&cut, self.verifier.as_mut()) {
            v.cut_before(next_span);
        }
        if self.options.what_if.is_some() {
            self.kept_batches.push(batch);
        }
        Ok(!self.stopped)
    }

    fn fold(&mut self, batch: &Batch, on_step: &mut impl FnMut(&Step)) {
        for ev in batch.events() {
            if let Some(v) = self.verifier.as_mut() {
                v.before(&self.view, &ev);
            }
            if self.options.step {
                let step_changes = changes::apply(&mut self.view, &ev);
                on_step(&Step {
                    seq: ev.seq,
                    time: ev.time,
                    span: ev.span.name.to_string(),
                    agent_id: ev.str_attr(crate::vocab::attr::AGENT_ID).map(str::to_owned),
                    changes: step_changes,
                    details: crate::changes::details(&ev),
                });
            } else {
                self.view.apply(&ev);
            }
            self.events += 1;
        }
        // Agents' log records and metrics: no decision rests on them, so there is nothing to
        // verify or step through; they are folded (and counted) all the same.
        let spans = batch.span_count() as u64;
        self.view.apply_batch(batch, batch.first_seq + spans);
        self.events += (batch.event_count() as u64) - spans;
    }

    fn finish(self) -> Result<ReplayReport, ReplayError> {
        if let Some(log) = &self.keep {
            log.flush()?;
        }
        let verify = self.verifier.map(|mut v| {
            v.finish();
            VerifyReport {
                decision_points: v.points,
                decisions: v.decisions,
                divergence: v.divergence,
            }
        });
        let what_if = self.options.what_if.clone().map(|config| {
            whatif::run(
                self.kept_batches.iter().flat_map(|b| b.all_events()),
                config,
            )
        });
        Ok(ReplayReport {
            view: self.view,
            events: self.events,
            lines: self.lines,
            duplicates: self.placer.duplicates,
            times_raised: self.placer.times_raised,
            rejected: self.rejected,
            rejected_count: self.rejected_count,
            stopped: self.stopped,
            verify,
            what_if,
        })
    }
}

/// The input's size in bytes (files that cannot be read count 0: opening them reports why).
pub fn input_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Input bytes per job: enough to amortise the hand-offs, small enough that the memory in
/// flight stays in cache and flat however large the input.
const JOB_BYTES: usize = 256 * 1024;

/// Decodes `input` on worker threads and hands each unit (with its size in bytes) to `sink` in
/// input order, until `sink` returns false or the input ends.
fn decode_in_parallel(
    mut input: Input,
    mut sink: impl FnMut(Result<(Unit, u64), FileError>) -> bool,
) {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    std::thread::scope(|scope| {
        // Raw units go out to the workers (bounded: reading never runs far ahead of folding).
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<RawUnit>)>(workers * 2);
        let job_rx = std::sync::Arc::new(parking_lot::Mutex::new(job_rx));
        let (done_tx, done_rx) =
            mpsc::sync_channel::<(u64, Vec<Result<(Unit, u64), FileError>>)>(workers * 2);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Read buffers go back to the reader once decoded.
        let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..workers {
            let job_rx = std::sync::Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let spare_tx = spare_tx.clone();
            scope.spawn(move || {
                loop {
                    let job = job_rx.lock().recv();
                    let Ok((n, raws)) = job else { break };
                    let mut decoded = Vec::with_capacity(raws.len());
                    for mut raw in raws {
                        decoded.push(raw.decode());
                        let _ = spare_tx.send(raw.into_buffer());
                    }
                    if done_tx.send((n, decoded)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(spare_tx);
        drop(done_tx);
        let reader_stop = std::sync::Arc::clone(&stop);
        scope.spawn(move || {
            let mut n = 0;
            let mut job = Vec::new();
            let mut bytes = 0;
            while !reader_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let spare = spare_rx.try_recv().unwrap_or_default();
                match input.next_raw(spare) {
                    Some(raw) => {
                        // A read error ends the input: it is reported once, in its place.
                        let failed = matches!(raw, RawUnit::Failed(_));
                        bytes += raw.len();
                        job.push(raw);
                        if failed {
                            break;
                        }
                        if bytes >= JOB_BYTES {
                            bytes = 0;
                            if job_tx.send((n, std::mem::take(&mut job))).is_err() {
                                return;
                            }
                            n += 1;
                        }
                    }
                    None => break,
                }
            }
            if !job.is_empty() {
                let _ = job_tx.send((n, job));
            }
        });
        // Put jobs back in input order.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut open = true;
        for (n, units) in done_rx.iter() {
            if !open {
                continue;
            }
            waiting.insert(n, units);
            while let Some(units) = waiting.remove(&next) {
                next += 1;
                for unit in units {
                    if open && !sink(unit) {
                        open = false;
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    });
}

/// Reads a `--policy-config` file (YAML or JSON).
pub fn read_what_if(path: &Path) -> Result<WhatIfConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        format!(
            "{} is not a policy config ({e}); it may set weights: {{capability, priority, complexity, load}}, lease_seconds and max_concurrent_features",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ResourceSpans, ScopeSpans, Span};

    fn export_of(spans: &[[u8; 8]], window: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut log = Log::open(&dir.path().join("log"), true).expect("a new log");
        log.set_dedup_window(window);
        for (i, id) in spans.iter().enumerate() {
            let span = Span::new([1; 16], *id, "tool.call", 1);
            let request = vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }];
            log.append(request, 10 + i as u64).expect("appended");
        }
        let file = dir.path().join("export.jsonl");
        let out = std::fs::File::create(&file).expect("the export file");
        let format = crate::otlp::file::Format::Json;
        crate::timetravel::export(&log.reader(), 1, u64::MAX, format, out).expect("exported");
        (dir, file)
    }

    #[test]
    fn a_retry_the_store_kept_past_its_window_replays_as_the_event_it_is() {
        // The sixth span repeats the first, five spans later: past a window of four, so the
        // store kept it as an event of its own, at seq 6.
        let ids = [[1; 8], [2; 8], [3; 8], [4; 8], [5; 8], [1; 8]];
        let (_dir, file) = export_of(&ids, 4);
        let options = ReplayOptions {
            files: vec![file],
            ..Default::default()
        };
        let report = replay(&options, |_| {}).expect("the export of a log replays");
        assert_eq!(report.events, 6);
        assert_eq!(report.view.as_of.seq, 6);
    }

    #[test]
    fn an_export_whose_lines_were_repeated_by_hand_is_still_refused() {
        let (_dir, file) = export_of(&[[1; 8], [2; 8]], 4);
        let text = std::fs::read_to_string(&file).expect("the export");
        let first = text.lines().next().expect("a line");
        std::fs::write(&file, format!("{text}{first}\n")).expect("rewritten");
        let options = ReplayOptions {
            files: vec![file],
            ..Default::default()
        };
        let Err(err) = replay(&options, |_| {}) else {
            panic!("a repeated line is refused")
        };
        assert!(
            err.to_string().contains("expected the line for seq 3"),
            "{err}"
        );
    }
}
