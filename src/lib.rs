//! spanfold coordinates AI coding agents working in parallel on one git repository. Agents speak
//! OpenTelemetry spans; every span is appended to a log, and everything spanfold knows is a fold
//! of that log.
//!
//! # Map of the modules
//!
//! The pure core lives in the crate `spanfold-core` (no I/O, no clock, no hash-order iteration;
//! its dependency list holds no I/O crate) and is re-exported here under the same names:
//! [`model`], [`names`], [`vocab`] (every span and attribute name, generated from
//! `spans/*.yaml`), [`registry`], [`fact`] (the typed spans the fold reads and `emit` writes),
//! [`reducer`], [`policy`], [`plan`] (a cycle's assignment step as data), [`status`],
//! [`credentials`], [`task`], [`changes`], [`dedup`], [`verify`], [`whatif`], [`timeline`].
//!
//! The shells, one per outside dependency:
//! - [`store`]: the append-only log in sled (only module that knows sled).
//! - [`git`]: branches, worktrees, merges and gates through gix (only module that knows gix).
//! - [`emit`]: builders for the spans spanfold writes, and span ids.
//! - [`clock`]: time as an input: the coordinator's "now", the system's or a test's.
//! - [`coordinator`]: decide, record, act, record — the loop around the core.
//! - [`holder`]: who holds the log's lock (pid and command), from /proc/locks.
//! - [`fault`]: test-only crash points between a decision and its effect.
//! - [`timetravel`]: the past — points, checkpoints, `view_at`, history, diff, export.
//! - [`replay`]: recorded traces folded again on worker threads, away from the live log.
//! - [`otlp`]: OTLP protobuf/JSON/gzip, the ingest port both receivers share, and the gRPC
//!   TraceService (only module that knows opentelemetry-proto, prost and tonic).
//! - [`activity`]: the server's lines for its operator (assignments, merges, refusals).
//! - [`listen`]: where the server listens — bound first, never beyond loopback unprotected.
//! - [`conn`]: the receivers' connections, bounded and closed when idle; the accept loops.
//! - [`tls`]: TLS on both receivers (only module that knows rustls).
//! - [`inflight`]: the bytes of export bodies in flight, bounded, and each body's deadline.
//! - [`server`]: `spanfold serve` — composition, the port (state, metrics, jobs), the single
//!   writer with group commit, the HTTP API and `/metrics` (only module that knows axum).
//! - [`advert`]: the file a running server leaves for the CLI to find it (written by one, read by
//!   the other).
//! - [`client`]: the CLI's way to a running server (only module that knows ureq).
//! - [`setup`]: a repository set up for coordination (base branch, worktrees directory,
//!   the coordination directory kept out of `git status`).
//! - [`backend`]: where CLI commands go — the log directly, or a running server.
//! - [`envelope`]: the JSON envelope, for the CLI's `--json` and the API alike.
//! - [`demo`]: `spanfold demo` — a scratch repository, the server in-process, simulated agents.
//! - [`review`]: what a feature's branch would bring (diffstat, diff), for show-feature and the
//!   dashboard.
//! - [`render`]: the text a person reads — tables and lines, every reason the JSON has.
//! - [`cli`]: the command line, a module per command group (only module that knows clap).

pub use spanfold_core::{
    changes, credentials, dedup, digest, fact, model, names, plan, policy, profiles, reducer,
    registry, routing, status, task, timeline, usage, verify, vocab, whatif,
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
pub mod demo_agent;
pub mod emit;
pub mod envelope;
pub mod fault;
pub mod git;
pub mod holder;
pub mod inflight;
pub mod launcher;
pub mod listen;
pub mod otlp;
pub mod render;
pub mod replay;
pub mod review;
pub mod server;
pub mod setup;
pub mod store;
pub mod timeline_keeper;
pub mod timetravel;
pub mod tls;
