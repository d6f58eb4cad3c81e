//! spanfold's integration tests, as modules of one test binary: cargo links one executable
//! instead of one per file, and the shared helpers in `common` are compiled once.
//!
//! Every test runs the real thing: the built `spanfold` binary, real `git init` repositories,
//! sled logs in temp dirs, servers on loopback port 0, and clients nobody here wrote (curl, the
//! OpenTelemetry Python SDK, tonic).

mod common;

mod bad_input;
mod concurrency;
mod crash;
mod credentials;
mod damaged_log;
mod dashboard;
mod demo;
mod exhaustion;
mod launcher;
mod layering;
mod lifecycle;
mod merge_batch;
mod merge_queue;
mod newcomer;
mod operator;
mod radar;
mod registry;
mod remote;
mod remote_handoff;
mod replay;
mod routing;
mod server;
mod timeline;
mod timeline_index;
mod timetravel;
mod tls;
mod usage_totals;
mod why;
mod workflow;
