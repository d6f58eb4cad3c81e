//! The writer: the one thread that owns the coordinator and appends to the log. It takes every
//! export waiting (group commit), runs work asked of the coordinator, and runs cycles on a timer
//! and shortly after a span that can change an assignment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::ServerConfig;
use super::port::{Job, Metrics, Work};
use crate::coordinator::{CoordError, Coordinator, CycleReport};
use crate::fact::MergeResult;
use crate::model::{ResourceSpans, as_str, find_attr};
use crate::otlp::ingest::{ExportReply, SinkError};
use crate::otlp::{Decoded, Signal};
use crate::profiles::{self, Profiles};
use crate::vocab::span;

/// Most spans one group commit takes, so one flush stays short.
const GROUP_MAX_SPANS: usize = 64 * 1024;
/// How often the main checkout's index is looked at while a merge waits for it to be clean.
const INDEX_POLL: Duration = Duration::from_secs(1);

/// How long after a relevant span a cycle runs: later spans of the same burst join it.
const REACT_AFTER: Duration = Duration::from_millis(150);
/// Spans that can change what a cycle decides: a new agent or feature, an agent free again.
const WAKES_THE_POLICY: &[&str] = &[
    span::AGENT_REGISTRATION,
    span::FEATURE_REQUEST,
    span::AGENT_RESET,
    span::AGENT_WORK_PROGRESS,
    span::AGENT_VALIDATION,
    span::FEATURE_CANCEL,
];

/// Whether an export holds a span that can change what a cycle decides.
fn wakes_the_policy(decoded: &Decoded) -> bool {
    decoded.resource_spans.iter().any(|rs| {
        rs.scope_spans.iter().any(|ss| {
            ss.spans
                .iter()
                .any(|s| WAKES_THE_POLICY.contains(&s.name.as_str()))
        })
    })
}

/// Whether an export's telemetry says an agent committed, by its profile (a Claude Code tool
/// result with a `git_commit_id`, a commit counter): a branch has a new tip, so the conflict
/// radar looks now rather than at the next timed cycle. (An agent's own spans that report
/// progress wake a cycle, which looks too.)
fn wakes_the_radar(decoded: &Decoded) -> bool {
    let profiles = Profiles::builtin();
    let logs = decoded
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .any(|record| {
            profiles::event_name(record)
                .filter(|name| profiles.event_may_say_commit(name))
                .and_then(|name| profiles.event(&name))
                .is_some_and(|(_, spec)| {
                    spec.says_commit(|k| find_attr(&record.attributes, k).and_then(as_str))
                })
        });
    let metrics = || {
        decoded
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| profiles.metric_may_say_commit(&m.name))
            .any(|m| {
                (profiles.metric(&m.name))
                    .is_some_and(|(_, spec)| spec.says_commit(|_| None::<&str>))
            })
    };
    logs || metrics()
}

pub(super) fn write_loop(
    mut coord: Coordinator,
    queue: Receiver<Job>,
    config: &ServerConfig,
    metrics: &Metrics,
    upstream: Option<tokio::sync::mpsc::Sender<Vec<ResourceSpans>>>,
    waits: &AtomicBool,
) {
    let mut next_tick = config.interval.map(|i| Instant::now() + i);
    // A cycle right away: work that waited while no server ran (a merge a crash cut off, a
    // feature queued from the CLI) should not wait for the next span or tick.
    let mut react_at: Option<Instant> = config.react.then(Instant::now);
    // The main checkout's index as last seen while a merge waited: when it changes (the user
    // committed or stashed), the reason the merge waited may be gone.
    let mut index_seen = None;
    let mut open = true;
    while open {
        // A merge gate is checked on every few hundred milliseconds until a cycle takes its
        // result.
        let gate_check = coord
            .gates_pending()
            .then(|| Instant::now() + Duration::from_millis(250));
        if gate_check.is_some() && react_at.is_none() && config.react {
            react_at = gate_check;
        }
        // A waiting merge: a look at the index's modification time each second (one stat).
        let index_check =
            (config.react && coord.merges_waiting()).then(|| Instant::now() + INDEX_POLL);
        let deadline = [next_tick, react_at, index_check]
            .into_iter()
            .flatten()
            .min();
        // While it waits (and only then), the timeline keeper may read the log.
        waits.store(true, Ordering::Relaxed);
        let first = match deadline {
            Some(d) => match queue.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        waits.store(false, Ordering::Relaxed);
        let Taken {
            exports,
            cycle_requests,
            open: still_open,
        } = take_waiting(&queue, first);
        open = still_open;
        if !exports.is_empty() {
            if config.react
                && react_at.is_none()
                && exports
                    .iter()
                    .any(|(d, _, _)| wakes_the_policy(d) || wakes_the_radar(d))
            {
                react_at = Some(Instant::now() + REACT_AFTER);
            }
            commit(&mut coord, exports, metrics);
        }
        for (work, kind) in cycle_requests {
            let started = Instant::now();
            work(&mut coord);
            match kind {
                Work::Cycle => metrics.observe_cycle(started.elapsed()),
                Work::Wakes if config.react && react_at.is_none() => {
                    react_at = Some(Instant::now() + REACT_AFTER);
                }
                Work::Wakes | Work::Other => {}
            }
            forward(&mut coord, &upstream);
        }
        // A write can fail in an export, a cycle or API work alike.
        if let Some(why) = coord.log().failure()
            && metrics.log_failure.lock().is_none()
        {
            *metrics.log_failure.lock() = Some(why.to_owned());
        }
        if index_check.is_some() {
            let seen = coord.index_modified();
            if seen != index_seen {
                index_seen = seen;
                react_at = react_at.or(Some(Instant::now()));
            }
        }
        let now = Instant::now();
        let tick_due = next_tick.is_some_and(|t| now >= t);
        let react_due = react_at.is_some_and(|t| now >= t);
        if tick_due || react_due {
            if tick_due {
                next_tick = config.interval.map(|i| now + i);
            }
            react_at = timed_cycle(&mut coord, metrics, config.react);
            forward(&mut coord, &upstream);
        }
    }
}

/// A cycle when it is useful, timed for /metrics; returns when to react again (a merge freed
/// its agent: what waited for a free agent may go now).
fn timed_cycle(coord: &mut Coordinator, metrics: &Metrics, react: bool) -> Option<Instant> {
    let started = Instant::now();
    let outcome = coord.cycle_if_useful();
    note_cycle(metrics, outcome.as_ref().err());
    let report = outcome.ok().flatten()?;
    metrics.observe_cycle(started.elapsed());
    say(&report);
    (react
        && report
            .merges
            .iter()
            .any(|m| m.result == MergeResult::Merged))
    .then(|| Instant::now() + REACT_AFTER)
}

type Request = (Box<dyn FnOnce(&mut Coordinator) + Send>, Work);

/// What the writer took from its queue in one turn.
struct Taken {
    exports: Vec<Pending>,
    cycle_requests: Vec<Request>,
    /// False once the server said stop or every sender is gone.
    open: bool,
}

/// `first` and everything waiting behind it, up to [`GROUP_MAX_SPANS`] spans of exports: one
/// group commit.
fn take_waiting(queue: &Receiver<Job>, first: Option<Job>) -> Taken {
    let mut taken = Taken {
        exports: Vec::new(),
        cycle_requests: Vec::new(),
        open: true,
    };
    // The spans of the export taken (0 for other jobs).
    fn take(job: Job, taken: &mut Taken) -> usize {
        match job {
            Job::Export {
                decoded,
                signal,
                reply,
            } => {
                let events = decoded.event_count();
                taken.exports.push((decoded, signal, reply));
                events
            }
            Job::Run(work, kind) => {
                taken.cycle_requests.push((work, kind));
                0
            }
            Job::Stop => {
                taken.open = false;
                0
            }
        }
    }
    let Some(job) = first else {
        return taken;
    };
    let mut spans = take(job, &mut taken);
    let mut stopped = !taken.open;
    while spans < GROUP_MAX_SPANS {
        match queue.try_recv() {
            Ok(job) => spans += take(job, &mut taken),
            Err(std::sync::mpsc::TryRecvError::Empty) => break,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                stopped = true;
                break;
            }
        }
    }
    taken.open = taken.open && !stopped;
    taken
}

/// A failing cycle is never silent: said once per change of reason, and kept for /healthz and
/// the status until a cycle succeeds.
pub(super) fn note_cycle(metrics: &Metrics, error: Option<&CoordError>) {
    let mut failed = metrics.cycle_failure.lock();
    let now_failed = error.map(ToString::to_string);
    if now_failed.is_some() && now_failed != *failed {
        eprintln!(
            "spanfold: coordination cycle failed: {}",
            crate::render::one_line(now_failed.as_deref().unwrap_or_default())
        );
    }
    *failed = now_failed;
}

/// The operator's lines about a cycle, on the server's stderr.
pub(super) fn say(report: &CycleReport) {
    for line in crate::activity::cycle_lines(report) {
        eprintln!("spanfold: {}", crate::render::one_line(&line));
    }
}

fn forward(
    coord: &mut Coordinator,
    upstream: &Option<tokio::sync::mpsc::Sender<Vec<ResourceSpans>>>,
) {
    if let Some(tx) = upstream {
        let spans = coord.take_recorded();
        if !spans.is_empty() && tx.try_send(spans).is_err() {
            tracing::warn!(
                "the upstream exporter is behind; decision spans dropped from forwarding (they are in the log)"
            );
        }
    }
}

type Pending = (
    Decoded,
    Signal,
    oneshot::Sender<Result<ExportReply, SinkError>>,
);

/// One group commit: append all the (validated) exports with one flush, then answer each.
fn commit(coord: &mut Coordinator, exports: Vec<Pending>, metrics: &Metrics) {
    let mut requests = Vec::with_capacity(exports.len());
    let mut replies = Vec::with_capacity(exports.len());
    for (decoded, signal, reply) in exports {
        let (batch, rejected) = decoded.into_batch();
        requests.push((batch, Vec::new()));
        replies.push((rejected, signal, reply));
    }
    metrics.group_commits.fetch_add(1, Ordering::Relaxed);
    match coord.append_exports(requests) {
        Ok(answers) => {
            for (answer, (reasons, signal, reply)) in answers.into_iter().zip(replies) {
                let (accepted, rejected) = match signal {
                    Signal::Traces => (&metrics.spans_accepted, &metrics.spans_rejected),
                    Signal::Logs => (&metrics.log_records_accepted, &metrics.log_records_rejected),
                    Signal::Metrics => (&metrics.metrics_accepted, &metrics.metrics_rejected),
                };
                accepted.fetch_add(answer.accepted as u64, Ordering::Relaxed);
                rejected.fetch_add(reasons.count as u64, Ordering::Relaxed);
                metrics
                    .spans_duplicate
                    .fetch_add(answer.duplicates as u64, Ordering::Relaxed);
                let _ = reply.send(Ok(ExportReply {
                    rejected: reasons.count,
                    message: reasons.message_of(signal),
                }));
            }
        }
        Err(e) => {
            tracing::error!("append failed: {e}");
            // Latched before anyone is answered: a /healthz asked right after this export's
            // 503 must not still say ok.
            if let Some(why) = coord.log().failure() {
                *metrics.log_failure.lock() = Some(why.to_owned());
            }
            for (_, _, reply) in replies {
                let _ = reply.send(Err(SinkError::Unavailable(format!(
                    "spanfold could not write the spans: {e}"
                ))));
            }
        }
    }
}
