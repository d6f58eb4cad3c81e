//! `spanfold serve`: the receivers, the API and the single writer.
//!
//! One thread owns the [`Coordinator`] and is the only writer of the log. Receivers (gRPC and
//! HTTP, on tokio) hand it decoded exports through a bounded queue; it takes everything waiting
//! (group commit), appends it as one batch with one flush, folds it, and only then answers each
//! export. A full queue answers "busy, retry" at once. The same thread runs coordination cycles:
//! on a timer, and shortly after a span that can change an assignment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use bytes::Bytes;

use parking_lot::RwLock;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{oneshot, watch};

use crate::client::{ADVERT_FILE, Advert};
use crate::coordinator::{CoordError, Coordinator, CycleReport};
use crate::credentials::Principal;
pub use crate::listen::{ListenError, Listeners, Protection};
use crate::model::ResourceSpans;
use crate::otlp::grpc::{ExportError, ExportReply, ExportSink, SinkError, Upstream, decode_export};
use crate::otlp::{DecodeError, Decoded};
use crate::reducer::View;
use crate::registry::{Origin, Registry};
use crate::store::LogReader;

/// Exports waiting for the writer before receivers answer "busy".
const QUEUE_DEPTH: usize = 256;
/// Most spans one group commit takes, so one flush stays short.
const GROUP_MAX_SPANS: usize = 64 * 1024;
/// How often the main checkout's index is looked at while a merge waits for it to be clean.
const INDEX_POLL: Duration = Duration::from_secs(1);

/// How long after a relevant span a cycle runs: later spans of the same burst join it.
const REACT_AFTER: Duration = Duration::from_millis(150);
/// How long in-flight requests get to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the writer may take to finish once the receivers stopped.
const WRITER_GRACE: Duration = Duration::from_secs(10);
/// Exports decoded at once. A decoded export can take many times its body's size (an empty
/// attribute is 2 bytes on the wire), and the blocking pool would otherwise decode hundreds at
/// once. One per core, at least two, so that one large export being decoded does not make every
/// small one wait behind it, and at most four, as each may take a hundred megabytes or more
/// while it decodes (see `otlp::MAX_ITEMS_PER_EXPORT` and `otlp::json::MAX_OBJECTS`).
fn decode_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub coord_dir: PathBuf,
    pub grpc: String,
    pub http: String,
    /// Timed cycles, if any.
    pub interval: Option<Duration>,
    /// Cycle soon after a span that can change an assignment.
    pub react: bool,
    pub token: Option<String>,
    pub export_endpoint: Option<String>,
    /// TLS on both ports (`--tls-cert`, `--tls-key`).
    pub tls: Option<crate::tls::Tls>,
    /// Listen beyond loopback without TLS or a token (`--insecure`).
    pub insecure: bool,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Coordinator(#[from] CoordError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the OTLP/gRPC server failed: {0}")]
    Grpc(String),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error(
        "the log writer did not finish within {0:?} of the shutdown (a write that never returns); everything acknowledged is in the log. Stopping anyway"
    )]
    Stuck(Duration),
}

/// Counters for /metrics, shared by receivers and the writer.
#[derive(Debug, Default)]
pub struct Metrics {
    pub exports: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_duplicate: AtomicU64,
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
    fn observe_cycle(&self, elapsed: Duration) {
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
    /// The whole log's timeline, extended as the log grows (a dashboard in live mode).
    pub live_timeline: parking_lot::Mutex<crate::timetravel::LiveTimeline>,
    /// Random per start; in the advert and in the `spanfold-server` header of every answer, so
    /// a CLI that finds a stale advert can tell that another server now answers at its address.
    pub server_id: String,
    /// The bytes of export bodies in flight, shared with the gRPC port.
    pub bodies: crate::inflight::Budget,
}

impl ServerConfig {
    fn protection(&self) -> Protection {
        Protection {
            token: self.token.is_some(),
            tls: self.tls.is_some(),
            insecure: self.insecure,
        }
    }
}

impl State {
    /// Who an `authorization` value (if any) shows is speaking: the operator token, or an agent's
    /// own (see `credentials`); or why the request is refused.
    pub fn principal(&self, authorization: Option<&str>) -> Result<Principal, String> {
        crate::credentials::principal(self.token.as_deref(), authorization, &self.view.read())
    }
}

enum Job {
    Export {
        decoded: Decoded,
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

/// The receivers' way to the writer.
#[derive(Clone)]
pub struct Ingest {
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
    decoding: Arc<tokio::sync::Semaphore>,
}

impl ExportSink for Ingest {
    async fn export(&self, body: Bytes, principal: Principal) -> Result<ExportReply, ExportError> {
        self.submit(Origin::Client, principal, move || decode_export(&body))
            .await
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
        let decoded = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut decoded = decode()?;
            let registry = Registry::builtin();
            let mut violations = registry.retain_valid(&mut decoded.resource_spans, origin);
            if let Principal::Agent(agent) = &principal {
                violations.extend(crate::credentials::retain_agents_own(
                    &mut decoded.resource_spans,
                    agent,
                    registry,
                ));
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
            Ok(decoded)
        })
        .await
        .map_err(|e| ExportError::Sink(SinkError::Unavailable(format!("decoding failed: {e}"))))?
        .map_err(ExportError::Decode)?;
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job::Export { decoded, reply }) {
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
    ) -> Result<T, String> {
        self.run_as(Work::Other, work).await
    }

    /// [`Ingest::run`], saying what the work is.
    pub async fn run_as<T: Send + 'static>(
        &self,
        kind: Work,
        work: impl FnOnce(&mut Coordinator) -> Result<T, CoordError> + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Run(
            Box::new(move |coord: &mut Coordinator| {
                let _ = reply.send(work(coord).map_err(|e| e.to_string()));
            }),
            kind,
        );
        self.jobs
            .try_send(job)
            .map_err(|_| "spanfold is busy or shutting down; retry".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("the writer stopped".into()))
    }

    /// Runs a coordination cycle now (the CLI's `coordination-cycle` against a server).
    pub async fn cycle(&self) -> Result<CycleReport, String> {
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

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub exports: u64,
    pub spans_accepted: u64,
    pub spans_rejected: u64,
    pub spans_duplicate: u64,
    pub cycles: u64,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: ServerConfig) -> Result<Summary, ServerError> {
    // The addresses first: a port in use is said at once, before waiting for the log's lock.
    // Loopback by default (the CLI's defaults); any other address was typed by the operator.
    let listeners = Listeners::bind(&config.grpc, &config.http, config.protection())?;
    let mut coord = Coordinator::open(&config.coord_dir)?;
    coord.config()?;
    coord.background_gates();
    // Before serving: finish what a crash interrupted and record any drift.
    for note in coord.recover()? {
        eprintln!("spanfold: recovery: {note}");
    }
    coord.prepare_appends()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let result = runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        serve_on(config, coord, listeners, stop_rx).await
    });
    // Connections the grace period gave up on are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serves until `stop` turns true, on listeners bound from `config`.
pub async fn serve(
    config: ServerConfig,
    coord: Coordinator,
    stop: watch::Receiver<bool>,
) -> Result<Summary, ServerError> {
    let listeners = Listeners::bind(&config.grpc, &config.http, config.protection())?;
    serve_on(config, coord, listeners, stop).await
}

/// Serves until `stop` turns true, on listeners already bound.
pub async fn serve_on(
    config: ServerConfig,
    mut coord: Coordinator,
    listeners: Listeners,
    stop: watch::Receiver<bool>,
) -> Result<Summary, ServerError> {
    let (grpc_socket, http_socket) = listeners.into_parts();
    let grpc_listener =
        tokio::net::TcpListener::from_std(grpc_socket).map_err(ServerError::Http)?;
    let http_listener =
        tokio::net::TcpListener::from_std(http_socket).map_err(ServerError::Http)?;
    let grpc_addr = grpc_listener.local_addr().map_err(ServerError::Http)?;
    let http_addr = http_listener.local_addr().map_err(ServerError::Http)?;

    let metrics = Arc::new(Metrics::default());
    let (jobs, queue) = sync_channel(QUEUE_DEPTH);
    let ingest = Ingest {
        jobs,
        metrics: Arc::clone(&metrics),
        decoding: Arc::new(tokio::sync::Semaphore::new(decode_slots())),
    };
    let bodies =
        crate::inflight::Budget::new(crate::inflight::BODY_BUDGET, crate::inflight::BODY_DEADLINE);
    let state = Arc::new(State {
        view: coord.shared_view(),
        metrics: Arc::clone(&metrics),
        log: coord.log().reader(),
        ingest: ingest.clone(),
        token: config.token.clone(),
        scrubber: Default::default(),
        live_timeline: Default::default(),
        server_id: crate::model::hex(&crate::emit::IdGen::default().trace_id()),
        bodies: bodies.clone(),
    });

    let (upstream_tx, upstream_rx) = tokio::sync::mpsc::channel::<Vec<ResourceSpans>>(64);
    let upstream_task = config.export_endpoint.clone().map(|endpoint| {
        coord.keep_recorded();
        tokio::spawn(forward_upstream(
            endpoint,
            upstream_rx,
            Arc::clone(&metrics),
        ))
    });
    let writer = {
        let metrics = Arc::clone(&metrics);
        let config = config.clone();
        let upstream = upstream_task.is_some().then_some(upstream_tx);
        std::thread::Builder::new()
            .name("spanfold-writer".into())
            .spawn(move || {
                // A writer that died would leave a server that refuses everything while still
                // advertising itself; better to stop the process (what was flushed is safe).
                let run = std::panic::AssertUnwindSafe(|| {
                    write_loop(coord, queue, &config, &metrics, upstream)
                });
                if std::panic::catch_unwind(run).is_err() {
                    eprintln!("spanfold: the log writer failed; stopping (everything acknowledged is in the log)");
                    std::process::abort();
                }
            })
            .map_err(ServerError::Runtime)?
    };

    let advert = Advert {
        pid: std::process::id(),
        http: format!(
            "{}://{http_addr}",
            if config.tls.is_some() {
                "https"
            } else {
                "http"
            }
        ),
        grpc: grpc_addr.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        server_id: Some(state.server_id.clone()),
        tls_cert: config.tls.as_ref().map(|t| t.cert.display().to_string()),
    };
    let advert_path = config.coord_dir.join(ADVERT_FILE);
    if let Ok(text) = serde_json::to_string_pretty(&advert) {
        // Written whole then renamed, so a reader never sees half a file.
        let tmp = config.coord_dir.join(format!("{ADVERT_FILE}.tmp"));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &advert_path);
        }
    }
    tracing::info!(%grpc_addr, %http_addr, "spanfold serving");
    eprintln!(
        "spanfold: OTLP/gRPC on {grpc_addr}, OTLP/HTTP and API on http://{http_addr} (log in {})",
        config.coord_dir.display()
    );

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let gate = crate::conn::Gate::for_this_process();
    let grpc = crate::otlp::grpc::serve(
        grpc_listener,
        gate.clone(),
        config.tls.as_ref().map(|t| t.grpc().clone()),
        bodies,
        ingest.clone(),
        {
            let state = Arc::clone(&state);
            Arc::new(move |presented: Option<&str>| state.principal(presented))
        },
        stopped(stop.clone()),
    );
    let http = crate::http::serve(
        http_listener,
        gate,
        config.tls.as_ref().map(|t| t.http().clone()),
        Arc::clone(&state),
        stopped(stop.clone()),
    );
    // A client that never finishes its request must not hold the shutdown forever.
    let both = async { tokio::join!(grpc, http) };
    tokio::pin!(both);
    let mut stopping = stop.clone();
    let (grpc_result, http_result) = tokio::select! {
        done = &mut both => done,
        _ = stopping.wait_for(|s| *s) => {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut both).await {
                Ok(done) => done,
                Err(_) => {
                    tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
                    (Ok(()), Ok(()))
                }
            }
        }
    };
    // Receivers have answered everything in flight (or the grace period gave up on them); now
    // the writer finishes what it took and returns, even if a lingering connection still holds
    // a way to it.
    let jobs = ingest.jobs.clone();
    drop(state);
    drop(ingest);
    let joined = tokio::time::timeout(
        WRITER_GRACE,
        tokio::task::spawn_blocking(move || {
            let _ = jobs.send(Job::Stop);
            drop(jobs);
            writer.join()
        }),
    )
    .await;
    if let Some(task) = upstream_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = std::fs::remove_file(&advert_path);
    if joined.is_err() {
        return Err(ServerError::Stuck(WRITER_GRACE));
    }
    grpc_result.map_err(|e| ServerError::Grpc(e.to_string()))?;
    http_result.map_err(ServerError::Http)?;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(Summary {
        exports: load(&metrics.exports),
        spans_accepted: load(&metrics.spans_accepted),
        spans_rejected: load(&metrics.spans_rejected),
        spans_duplicate: load(&metrics.spans_duplicate),
        cycles: load(&metrics.cycles),
    })
}

async fn forward_upstream(
    endpoint: String,
    mut rx: tokio::sync::mpsc::Receiver<Vec<ResourceSpans>>,
    metrics: Arc<Metrics>,
) {
    let mut upstream = Upstream::new(&endpoint);
    while let Some(spans) = rx.recv().await {
        if let Err(e) = upstream.export(&spans).await {
            metrics.upstream_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("decision spans not forwarded: {e}");
        }
    }
}

/// Spans that can change what a cycle decides.
fn wakes_the_policy(decoded: &Decoded) -> bool {
    decoded.resource_spans.iter().any(|rs| {
        rs.scope_spans.iter().any(|ss| {
            ss.spans.iter().any(|s| {
                matches!(
                    s.name.as_str(),
                    "agent.registration"
                        | "feature.request"
                        | "agent.reset"
                        | "agent.work_progress"
                        | "agent.validation"
                        | "feature.cancel"
                )
            })
        })
    })
}

fn write_loop(
    mut coord: Coordinator,
    queue: Receiver<Job>,
    config: &ServerConfig,
    metrics: &Metrics,
    upstream: Option<tokio::sync::mpsc::Sender<Vec<ResourceSpans>>>,
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
        // A running merge gate is checked on every few hundred milliseconds.
        let gate_check = coord
            .gates_running()
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
        let mut exports = Vec::new();
        let mut cycle_requests = Vec::new();
        let mut spans = 0;
        let mut stopping = false;
        let mut take = |job: Job, spans: &mut usize| match job {
            Job::Export { decoded, reply } => {
                *spans += decoded
                    .resource_spans
                    .iter()
                    .map(|r| r.span_count())
                    .sum::<usize>();
                exports.push((decoded, reply));
            }
            Job::Run(work, kind) => cycle_requests.push((work, kind)),
            Job::Stop => stopping = true,
        };
        if let Some(job) = first {
            take(job, &mut spans);
            while spans < GROUP_MAX_SPANS {
                match queue.try_recv() {
                    Ok(job) => take(job, &mut spans),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        if stopping {
            open = false;
        }
        if !exports.is_empty() {
            if config.react
                && react_at.is_none()
                && exports.iter().any(|(d, _)| wakes_the_policy(d))
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
            react_at = None;
            let started = Instant::now();
            let outcome = coord.cycle_if_useful();
            note_cycle(metrics, outcome.as_ref().err());
            if let Ok(Some(report)) = outcome {
                metrics.observe_cycle(started.elapsed());
                say(&report);
                // A merge freed its agent: what waited for a free agent may go now.
                if config.react && report.merges.iter().any(|m| m.result == "merged") {
                    react_at = Some(Instant::now() + REACT_AFTER);
                }
            }
            forward(&mut coord, &upstream);
        }
    }
}

/// A failing cycle is never silent: said once per change of reason, and kept for /healthz and
/// the status until a cycle succeeds.
fn note_cycle(metrics: &Metrics, error: Option<&CoordError>) {
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
fn say(report: &CycleReport) {
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

type Pending = (Decoded, oneshot::Sender<Result<ExportReply, SinkError>>);

/// One group commit: append all the (validated) exports with one flush, then answer each.
fn commit(coord: &mut Coordinator, exports: Vec<Pending>, metrics: &Metrics) {
    let mut requests = Vec::with_capacity(exports.len());
    let mut replies = Vec::with_capacity(exports.len());
    for (decoded, reply) in exports {
        requests.push((decoded.resource_spans, Vec::new()));
        replies.push((decoded.rejected, reply));
    }
    metrics.group_commits.fetch_add(1, Ordering::Relaxed);
    match coord.append_validated(requests) {
        Ok(answers) => {
            for (answer, (reasons, reply)) in answers.into_iter().zip(replies) {
                metrics
                    .spans_accepted
                    .fetch_add(answer.accepted as u64, Ordering::Relaxed);
                metrics
                    .spans_rejected
                    .fetch_add(reasons.count as u64, Ordering::Relaxed);
                metrics
                    .spans_duplicate
                    .fetch_add(answer.duplicates as u64, Ordering::Relaxed);
                let _ = reply.send(Ok(ExportReply::from(&reasons)));
            }
        }
        Err(e) => {
            tracing::error!("append failed: {e}");
            // Latched before anyone is answered: a /healthz asked right after this export's
            // 503 must not still say ok.
            if let Some(why) = coord.log().failure() {
                *metrics.log_failure.lock() = Some(why.to_owned());
            }
            for (_, reply) in replies {
                let _ = reply.send(Err(SinkError::Unavailable(format!(
                    "spanfold could not write the spans: {e}"
                ))));
            }
        }
    }
}
