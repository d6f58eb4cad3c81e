//! `spanfold serve`: the receivers, the API and the single writer.
//!
//! One thread owns the [`Coordinator`] and is the only writer of the log. Receivers (gRPC and
//! HTTP, on tokio) hand it decoded exports through a bounded queue; it takes everything waiting
//! (group commit), appends it as one batch with one flush, folds it, and only then answers each
//! export. A full queue answers "busy, retry" at once. The same thread runs coordination cycles:
//! on a timer, and shortly after a span that can change an assignment.

//!
//! The parts: `port` is what receivers and the API hold (the state, the metrics, the way to
//! the writer), `writer` is the writer's loop, [`http`] the HTTP port's router (its OTLP
//! receiver in `otlp_http`, the JSON API in `api` and `api_past`, their failures in
//! `api_error`), [`prometheus`] the metrics' text, and this module puts them together: bind,
//! start, serve, stop on a signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::advert::Advert;
use crate::coordinator::{CoordError, Coordinator};
pub use crate::listen::{ListenError, Listeners, Protection};
use crate::model::ResourceSpans;
use crate::otlp::grpc::Upstream;

mod api;
mod api_error;
mod api_past;
pub mod http;
mod otlp_http;
mod port;
pub mod prometheus;
#[cfg(test)]
mod tests;
mod writer;

use port::Job;
pub use port::{CYCLE_BUCKETS, Ingest, Metrics, RunError, State, Work};
use writer::write_loop;

/// How long in-flight requests get to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the writer may take to finish once the receivers stopped.
const WRITER_GRACE: Duration = Duration::from_secs(10);

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

impl ServerConfig {
    fn protection(&self) -> Protection {
        Protection {
            token: self.token.is_some(),
            tls: self.tls.is_some(),
            insecure: self.insecure,
        }
    }
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

    // The whole log's timeline, kept beside the writer from the log while the writer waits.
    let writer_waits = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (kept, keeper) = crate::timeline_keeper::Keeper::spawn(
        coord.log().reader(),
        Arc::clone(&writer_waits),
        Arc::clone(&keeper_stop),
    )
    .map_err(ServerError::Runtime)?;
    let (mut state, queue) = State::new(&coord, config.token.clone());
    state.timeline = Some(kept);
    state.grpc_port = Some(grpc_addr.port());
    state.ingest.repo = repository_of(&coord);
    let (metrics, ingest, bodies) = (
        Arc::clone(&state.metrics),
        state.ingest.clone(),
        state.bodies.clone(),
    );
    let state = Arc::new(state);

    let (upstream_tx, upstream_rx) = tokio::sync::mpsc::channel::<Vec<ResourceSpans>>(64);
    let upstream_task = config.export_endpoint.clone().map(|endpoint| {
        coord.keep_recorded();
        tokio::spawn(forward_upstream(
            endpoint,
            upstream_rx,
            Arc::clone(&metrics),
        ))
    });
    let upstream = upstream_task.is_some().then_some(upstream_tx);
    let writer = spawn_writer(coord, queue, &config, &metrics, upstream, writer_waits)?;

    let advert_path = write_advert(&config, grpc_addr, http_addr, &state.server_id);
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
    let http = http::serve(
        http_listener,
        gate,
        config.tls.as_ref().map(|t| t.http().clone()),
        Arc::clone(&state),
        stopped(stop.clone()),
    );
    let (grpc_result, http_result) =
        until_done(async { tokio::join!(grpc, http) }, stop.clone(), || {
            (Ok(()), Ok(()))
        })
        .await;
    // Receivers have answered everything in flight (or the grace period gave up on them); now
    // the writer finishes what it took and returns, even if a lingering connection still holds
    // a way to it.
    let jobs = ingest.jobs.clone();
    drop(state);
    drop(ingest);
    wind_down(jobs, writer, upstream_task, &advert_path).await?;
    // The keeper holds the log open: it stops (storing its index) before the server returns.
    keeper_stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(WRITER_GRACE, tokio::task::spawn_blocking(|| keeper.join())).await;
    grpc_result.map_err(|e| ServerError::Grpc(e.to_string()))?;
    http_result.map_err(ServerError::Http)?;
    Ok(summary(&metrics))
}

/// What the server did, from its counters.
fn summary(metrics: &Metrics) -> Summary {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Summary {
        exports: load(&metrics.exports),
        spans_accepted: load(&metrics.spans_accepted),
        spans_rejected: load(&metrics.spans_rejected),
        spans_duplicate: load(&metrics.spans_duplicate),
        cycles: load(&metrics.cycles),
    }
}

/// What `both` (the receivers) come to; once `stop` turns true, at most [`SHUTDOWN_GRACE`]
/// more, then `gave_up`: a client that never finishes its request must not hold the shutdown
/// forever.
async fn until_done<T>(
    both: impl std::future::Future<Output = T>,
    mut stop: watch::Receiver<bool>,
    gave_up: impl FnOnce() -> T,
) -> T {
    tokio::pin!(both);
    tokio::select! {
        done = &mut both => done,
        _ = stop.wait_for(|s| *s) => {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut both).await {
                Ok(done) => done,
                Err(_) => {
                    tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
                    gave_up()
                }
            }
        }
    }
}

/// After the receivers: the writer finishes what it took and returns, the forwarder drains, and
/// the advert goes.
async fn wind_down(
    jobs: std::sync::mpsc::SyncSender<Job>,
    writer: std::thread::JoinHandle<()>,
    upstream_task: Option<tokio::task::JoinHandle<()>>,
    advert_path: &std::path::Path,
) -> Result<(), ServerError> {
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
    let _ = std::fs::remove_file(advert_path);
    if joined.is_err() {
        return Err(ServerError::Stuck(WRITER_GRACE));
    }
    Ok(())
}

/// The writer thread, which owns the coordinator until the server stops.
fn spawn_writer(
    coord: Coordinator,
    queue: std::sync::mpsc::Receiver<Job>,
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
    upstream: Option<tokio::sync::mpsc::Sender<Vec<ResourceSpans>>>,
    waits: Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ServerError> {
    let metrics = Arc::clone(metrics);
    let config = config.clone();
    std::thread::Builder::new()
        .name("spanfold-writer".into())
        .spawn(move || {
            // A writer that died would leave a server that refuses everything while still
            // advertising itself; better to stop the process (what was flushed is safe).
            let run = std::panic::AssertUnwindSafe(|| {
                write_loop(coord, queue, &config, &metrics, upstream, &waits)
            });
            if std::panic::catch_unwind(run).is_err() {
                eprintln!("spanfold: the log writer failed; stopping (everything acknowledged is in the log)");
                std::process::abort();
            }
        })
        .map_err(ServerError::Runtime)
}

/// The name agents' telemetry gives the repository `coord` coordinates, said once at start: a
/// server refuses telemetry naming another (read at start: a new `spanfold.repo` needs a
/// restart). None before `agents init`, or when the repository cannot be read.
fn repository_of(coord: &Coordinator) -> Option<Arc<str>> {
    let config = coord.config().ok()?;
    match crate::git::repository_name(std::path::Path::new(&config.repo)) {
        Ok(name) => {
            eprintln!(
                "spanfold: this server coordinates repository {name:?} (spanfold.repo); telemetry naming another is refused"
            );
            Some(Arc::from(name))
        }
        Err(e) => {
            eprintln!(
                "spanfold: the repository's name could not be read ({e}); telemetry is not checked against it"
            );
            None
        }
    }
}

/// Where a client on this machine reaches a port bound at `addr`: on loopback when it is bound
/// to every address (0.0.0.0, ::), which no client can connect to as such.
fn reachable(mut addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Writes the advert the CLI finds the server by; returns its path, removed when serving ends.
fn write_advert(
    config: &ServerConfig,
    grpc_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
    server_id: &str,
) -> PathBuf {
    let (grpc_addr, http_addr) = (reachable(grpc_addr), reachable(http_addr));
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
        server_id: Some(server_id.to_owned()),
        tls_cert: config.tls.as_ref().map(|t| t.cert.display().to_string()),
    };
    advert.write(&config.coord_dir)
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
