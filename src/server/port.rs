//! The server's port: what the receivers and the API hold — the shared state, the counters for
//! /metrics, and [`Ingest`], their one way to the writer (a closed set of [`Job`]s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use bytes::Bytes;

use parking_lot::RwLock;
use thiserror::Error;
use tokio::sync::oneshot;

use super::writer::{note_cycle, say};
use crate::coordinator::{CoordError, Coordinator, CycleReport};
use crate::credentials::Principal;
use crate::otlp::ingest::{ExportError, ExportReply, ExportSink, SinkError};
use crate::otlp::{DecodeError, Decoded, Signal};
use crate::reducer::View;
use crate::registry::{Origin, Registry};
use crate::store::LogReader;

/// Exports waiting for the writer before receivers answer "busy".
const QUEUE_DEPTH: usize = 256;

/// Exports decoded at once. A decoded export can take many times its body's size (an empty
/// attribute is 2 bytes on the wire), and the blocking pool would otherwise decode hundreds at
/// once. One per core, at least two, so that one large export being decoded does not make every
/// small one wait behind it, and at most four, as each may take a hundred megabytes or more
/// while it decodes (see `otlp::MAX_ITEMS_PER_EXPORT` and `otlp::json::MAX_OBJECTS`).
fn decode_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// Counters for /metrics, shared by receivers and the writer.
#[derive(Debug, Default)]
pub struct Metrics {
    pub exports: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_duplicate: AtomicU64,
    /// Log records and metrics accepted and durably appended (duplicates included), and
    /// refused.
    pub log_records_accepted: AtomicU64,
    pub log_records_rejected: AtomicU64,
    pub metrics_accepted: AtomicU64,
    pub metrics_rejected: AtomicU64,
    pub busy: AtomicU64,
    pub group_commits: AtomicU64,
    pub cycles: AtomicU64,
    pub upstream_failures: AtomicU64,
    /// Set once an append failed: the log refuses writes until a restart, and /healthz says so.
    pub log_failure: parking_lot::Mutex<Option<String>>,
    /// Why the last coordination cycle failed, until one succeeds.
    pub cycle_failure: parking_lot::Mutex<Option<String>>,
    /// Spans refused per agent, and the rate limit on saying so.
    pub refusals: parking_lot::Mutex<crate::activity::Refusals>,
    /// Cycle durations: counts per bucket of [`CYCLE_BUCKETS`] (le), then +Inf.
    pub cycle_buckets: [AtomicU64; 9],
    pub cycle_seconds_micros: AtomicU64,
}

pub const CYCLE_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

impl Metrics {
    pub(super) fn observe_cycle(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = CYCLE_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(CYCLE_BUCKETS.len());
        self.cycle_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.cycle_seconds_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.cycles.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the API handlers share.
pub struct State {
    pub view: Arc<RwLock<View>>,
    pub metrics: Arc<Metrics>,
    pub log: LogReader,
    pub ingest: Ingest,
    pub token: Option<String>,
    /// Views kept for `/api/status?at=`, so a dashboard's scrubber steps cheaply.
    pub scrubber: parking_lot::Mutex<crate::timetravel::Scrubber>,
    /// The whole log's timeline index, kept beside the writer: the dashboard's first question.
    pub timeline: Option<Arc<RwLock<crate::timeline_keeper::Kept>>>,
    /// The whole log's timeline, extended as the log grows, for what the index cannot draw.
    pub live_timeline: parking_lot::Mutex<crate::timetravel::LiveTimeline>,
    /// Random per start; in the advert and in the `spanfold-server` header of every answer, so
    /// a CLI that finds a stale advert can tell that another server now answers at its address.
    pub server_id: String,
    /// The bytes of export bodies in flight, shared with the gRPC port.
    pub bodies: crate::inflight::Budget,
    /// The OTLP/gRPC port, for a client on another host (which has no advert to read it from).
    pub grpc_port: Option<u16>,
}

impl State {
    /// The state of a server about to serve `coord`'s log, and the queue its writer takes jobs
    /// from.
    pub(super) fn new(coord: &Coordinator, token: Option<String>) -> (State, Receiver<Job>) {
        let metrics = Arc::new(Metrics::default());
        let (jobs, queue) = sync_channel(QUEUE_DEPTH);
        let ingest = Ingest {
            jobs,
            metrics: Arc::clone(&metrics),
            decoding: Arc::new(tokio::sync::Semaphore::new(decode_slots())),
            repo: None,
        };
        let bodies = crate::inflight::Budget::new(
            crate::inflight::BODY_BUDGET,
            crate::inflight::BODY_DEADLINE,
        );
        let state = State {
            view: coord.shared_view(),
            metrics,
            log: coord.log().reader(),
            ingest,
            token,
            scrubber: Default::default(),
            timeline: None,
            live_timeline: Default::default(),
            server_id: crate::model::hex(&crate::emit::IdGen::default().trace_id()),
            bodies,
            grpc_port: None,
        };
        (state, queue)
    }

    /// Who an `authorization` value (if any) shows is speaking: the operator token, or an agent's
    /// own (see `credentials`); or why the request is refused.
    pub fn principal(&self, authorization: Option<&str>) -> Result<Principal, String> {
        crate::credentials::principal(self.token.as_deref(), authorization, &self.view.read())
    }
}

pub(super) enum Job {
    Export {
        decoded: Decoded,
        signal: Signal,
        reply: oneshot::Sender<Result<ExportReply, SinkError>>,
    },
    /// Work on the coordinator itself (a cycle, gc, a person's command) asked for through the
    /// API.
    Run(Box<dyn FnOnce(&mut Coordinator) + Send>, Work),
    /// The server is stopping: finish what is taken, then return, whoever still holds a sender
    /// (a connection the grace period gave up on keeps its clone of the ingest).
    Stop,
}

/// What a job on the coordinator is, for what the writer does after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A coordination cycle: timed for /metrics.
    Cycle,
    /// Spans from a person's command that can change what the policy decides: a cycle follows.
    Wakes,
    /// Anything else (gc).
    Other,
}

/// Why work asked of the writer ([`Ingest::run`]) did not give its answer. Each says what the
/// API has always said; which status it answers with is the endpoint's (see `api`).
#[derive(Debug, Error)]
pub enum RunError {
    /// The queue is full, or the writer takes no more jobs: the work was not taken.
    #[error("spanfold is busy or shutting down; retry")]
    Busy,
    /// The writer took the work but stopped before answering.
    #[error("the writer stopped")]
    Stopped,
    /// The coordinator ran the work and failed it.
    #[error(transparent)]
    Coord(#[from] CoordError),
}

/// The receivers' way to the writer.
#[derive(Clone)]
pub struct Ingest {
    pub(super) jobs: SyncSender<Job>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) decoding: Arc<tokio::sync::Semaphore>,
    /// The repository this server coordinates, by the name its agents' telemetry gives it:
    /// resources naming another are refused (a Collector routed them to the wrong server).
    pub(super) repo: Option<Arc<str>>,
}

impl ExportSink for Ingest {
    async fn export(
        &self,
        body: Bytes,
        signal: Signal,
        principal: Principal,
    ) -> Result<ExportReply, ExportError> {
        self.submit(Origin::Client, principal, signal, move || {
            signal.decode(&body)
        })
        .await
    }
}

/// Refuses, with the reason, the resources of `decoded` that name another repository than
/// `repo` (a Collector routed them to the wrong server).
fn keep_this_repository(decoded: &mut Decoded, repo: &str) {
    let refused = crate::routing::retain_this_repository(
        &mut decoded.resource_spans,
        &mut decoded.resource_logs,
        &mut decoded.resource_metrics,
        repo,
    );
    for (count, reason) in refused {
        decoded.rejected.push_counted(count, reason);
    }
}

impl Ingest {
    /// Decodes an export with `decode`, validates it and hands it to the writer; answers once
    /// its spans are durable. Decoding and validation need no log state, so they run before the
    /// queue, in parallel with the writer, and off the async workers so that a big export
    /// cannot stall the API.
    pub async fn submit(
        &self,
        origin: Origin,
        principal: Principal,
        signal: Signal,
        decode: impl FnOnce() -> Result<Decoded, DecodeError> + Send + 'static,
    ) -> Result<ExportReply, ExportError> {
        self.metrics.exports.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::clone(&self.decoding)
            .acquire_owned()
            .await
            .map_err(|_| {
                ExportError::Sink(SinkError::Unavailable("spanfold is shutting down".into()))
            })?;
        let metrics = Arc::clone(&self.metrics);
        let repo = self.repo.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut decoded = decode()?;
            if let Some(repo) = repo {
                keep_this_repository(&mut decoded, &repo);
            }
            let registry = Registry::builtin();
            let mut violations = registry.retain_valid(&mut decoded.resource_spans, origin);
            if let Principal::Agent(agent) = &principal {
                violations.extend(crate::credentials::retain_agents_own(
                    &mut decoded.resource_spans,
                    agent,
                    registry,
                ));
                for reason in crate::credentials::retain_agents_own_telemetry(
                    &mut decoded.resource_logs,
                    &mut decoded.resource_metrics,
                    agent,
                ) {
                    decoded.rejected.push(reason);
                }
            }
            // Agents' log records and metrics: no registry names them, the limits still hold.
            for reason in crate::registry::retain_valid_logs(&mut decoded.resource_logs)
                .into_iter()
                .chain(crate::registry::retain_valid_metrics(
                    &mut decoded.resource_metrics,
                ))
            {
                decoded.rejected.push(reason);
            }
            for v in violations {
                let line = metrics.refusals.lock().refused(
                    v.agent.as_deref(),
                    &v.span,
                    &v.rule,
                    Instant::now(),
                );
                if let Some(line) = line {
                    eprintln!("spanfold: {}", crate::render::one_line(&line));
                }
                decoded.rejected.push(v.to_string());
            }
            decoded.digest_logs();
            Ok(decoded)
        })
        .await
        .map_err(|e| ExportError::Sink(SinkError::Unavailable(format!("decoding failed: {e}"))))?
        .map_err(ExportError::Decode)?;
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job::Export {
            decoded,
            signal,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.busy.fetch_add(1, Ordering::Relaxed);
                return Err(ExportError::Sink(SinkError::Busy));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ExportError::Sink(SinkError::Unavailable(
                    "spanfold is shutting down".into(),
                )));
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(SinkError::Unavailable("the writer stopped".into())))
            .map_err(ExportError::Sink)
    }

    /// Runs `work` on the writer thread, in turn with the exports, and returns its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Coordinator) -> Result<T, CoordError> + Send + 'static,
    ) -> Result<T, RunError> {
        self.run_as(Work::Other, work).await
    }

    /// [`Ingest::run`], saying what the work is.
    pub async fn run_as<T: Send + 'static>(
        &self,
        kind: Work,
        work: impl FnOnce(&mut Coordinator) -> Result<T, CoordError> + Send + 'static,
    ) -> Result<T, RunError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Run(
            Box::new(move |coord: &mut Coordinator| {
                let _ = reply.send(work(coord).map_err(RunError::Coord));
            }),
            kind,
        );
        self.jobs.try_send(job).map_err(|_| RunError::Busy)?;
        answer.await.unwrap_or(Err(RunError::Stopped))
    }

    /// Runs a coordination cycle now (the CLI's `coordination-cycle` against a server).
    pub async fn cycle(&self) -> Result<CycleReport, RunError> {
        let metrics = Arc::clone(&self.metrics);
        self.run_as(Work::Cycle, move |coord| {
            let outcome = coord.cycle();
            note_cycle(&metrics, outcome.as_ref().err());
            let report = outcome?;
            say(&report);
            Ok(report)
        })
        .await
    }
}
