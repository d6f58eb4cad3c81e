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
//!
//! The shells, one per outside dependency:
//! - [`store`]: the append-only log in sled (only module that knows sled).
//! - [`git`]: branches and worktrees through gix (only module that knows gix).
//! - [`emit`]: builders for the spans spanfold writes, and span ids.
//! - [`coordinator`]: decide, record, act, record — the loop around the core.
//! - [`cli`]: the command line and its JSON envelope (only module that knows clap).

pub mod cli;
pub mod coordinator;
pub mod emit;
pub mod git;
pub mod model;
pub mod names;
pub mod policy;
pub mod reducer;
pub mod registry;
pub mod status;
pub mod store;
