//! spanfold coordinates AI coding agents working in parallel on one git repository. Agents speak
//! OpenTelemetry spans; every span is appended to a log, and everything spanfold knows is a fold
//! of that log.
//!
//! # Map of the modules
//!
//! The pure core — no I/O, no clock, no hash-order iteration:
//! - [`model`]: the project's own span types, a lossless image of an OTLP export.
//! - [`names`]: the one rule for agent ids and feature names.
//! - [`registry`]: the span registry (`spans/*.yaml`, compiled in) and span validation.
//! - [`reducer`]: `View = fold(events)`, enforcing the agent lifecycle.
//! - [`policy`]: which queued feature goes to which agent, with scores and reasons.
//! - [`status`]: the status document, a pure function of the view.
//! - [`credentials`]: who is speaking — the operator, or one agent by its own token (hashed).
//! - [`task`]: what `agents next` hands an agent — the feature, its requirements, why it came back.
//! - [`changes`]: what an event changed, and what differs between two views.
//! - [`dedup`]: the window of recent span ids that catches retried exports, in fixed memory.
//! - [`verify`]: `replay --verify`, the policy re-run at every recorded decision.
//! - [`whatif`]: the recorded inputs under another policy.
//! - [`timeline`]: agents' states over a range as intervals, with markers and samples.
//!
//! The shells, one per outside dependency:
//! - [`store`]: the append-only log in sled (only module that knows sled).
//! - [`git`]: branches and worktrees through gix (only module that knows gix).
//! - [`emit`]: builders for the spans spanfold writes, and span ids.
//! - [`coordinator`]: decide, record, act, record — the loop around the core.
//! - [`holder`]: who holds the log's lock (pid and command), from /proc/locks.
//! - [`fault`]: test-only crash points between a decision and its effect.
//! - [`timetravel`]: the past — points, checkpoints, `view_at`, history, diff, export.
//! - [`replay`]: recorded traces folded again on worker threads, away from the live log.
//! - [`otlp`]: OTLP protobuf/JSON/gzip and the gRPC TraceService (only module that knows
//!   opentelemetry-proto, prost and tonic).
//! - [`activity`]: the server's lines for its operator (assignments, merges, refusals).
//! - [`listen`]: where the server listens — bound first, never beyond loopback unprotected.
//! - [`conn`]: the receivers' connections, bounded and closed when idle; the HTTP/1 accept loop.
//! - [`tls`]: TLS on both receivers (only module that knows rustls).
//! - [`inflight`]: the bytes of export bodies in flight, bounded, and each body's deadline.
//! - [`server`]: `spanfold serve` — receivers, the single writer with group commit, cycles.
//! - [`prometheus`]: `/metrics` as Prometheus text.
//! - [`http`]: OTLP/HTTP, the JSON API and metrics (only module that knows axum).
//! - [`advert`]: the file a running server leaves for the CLI to find it (written by one, read by
//!   the other).
//! - [`clock`]: time as an input: the coordinator's "now", the system's or a test's.
//! - [`client`]: the CLI's way to a running server (only module that knows ureq).
//! - [`backend`]: where CLI commands go — the log directly, or a running server.
//! - [`demo`]: `spanfold demo` — a scratch repository, the server in-process, simulated agents.
//! - [`render`]: the text a person reads — tables and lines, every reason the JSON has.
//! - [`cli`]: the command line, a module per command group, and the JSON envelope the API also
//!   answers with (only module that knows clap).

pub use spanfold_core::{
    changes, credentials, dedup, model, names, policy, reducer, registry, status, task, timeline,
    verify, whatif,
};

pub mod activity;
pub mod advert;
pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod conn;
pub mod coordinator;
pub mod demo;
pub mod emit;
pub mod envelope;
pub mod fault;
pub mod git;
pub mod holder;
pub mod inflight;
pub mod listen;
pub mod otlp;
pub mod render;
pub mod replay;
pub mod server;
pub mod store;
pub mod timetravel;
pub mod tls;
