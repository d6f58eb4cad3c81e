//! spanfold's pure core: everything spanfold knows is a fold of its log, and this crate is that
//! fold and what is computed from it. It does no I/O and reads no clock (time is always an
//! argument), and its dependency list holds no storage, git, async, network or command-line crate,
//! so the purity is a fact the compiler checks, not a promise.
//!
//! # Map of the modules
//!
//! - [`model`]: the project's own telemetry types, a lossless image of OTLP exports of spans,
//!   log records and metrics, and the log's batches and events.
//! - [`names`]: the one rule for agent ids and feature names.
//! - [`registry`]: the span registry (`spans/*.yaml`, compiled in) and span validation.
//! - [`vocab`]: every span name and attribute key the registry declares, as a constant
//!   (generated from `spans/*.yaml` and checked in; a test says when it is stale).
//! - [`fact`]: one typed [`fact::Fact`] per span the fold gives meaning to — the one reading
//!   and the one writing of those spans.
//! - [`reducer`]: `View = fold(events)`, enforcing the agent lifecycle.
//! - [`policy`]: which queued feature goes to which agent, with scores and reasons.
//! - [`plan`]: what the coordinator records and does, as data — placements with their
//!   worktrees, lease verdicts, recovery, the merges to try, and the worktree effects.
//! - [`profiles`]: what the telemetry of Claude Code, Codex, Gemini CLI and the GenAI
//!   conventions means (`spans/profiles/*.yaml`, compiled in).
//! - [`status`]: the status document, a pure function of the view.
//! - [`credentials`]: who is speaking — the operator, or one agent by its own token (hashed).
//! - [`routing`]: which repository telemetry is for (`spanfold.repo`), and refusing another's.
//! - [`task`]: what `agents next` hands an agent — the feature, its requirements, why it came back.
//! - [`changes`]: what an event changed, and what differs between two views.
//! - [`dedup`]: the window of recent span ids that catches retried exports, in fixed memory.
//! - [`digest`]: the identity of a log record or a metric, which carry no ids.
//! - [`verify`]: `replay --verify`, the policy re-run at every recorded decision.
//! - [`whatif`]: the recorded inputs under another policy.
//! - [`timeline`]: agents' states over a range as intervals, with markers and samples.
//! - [`usage`]: tokens and dollars of agents' LLM requests, and the price table.

pub mod changes;
pub mod credentials;
pub mod dedup;
pub mod digest;
pub mod fact;
pub mod model;
pub mod names;
pub mod plan;
pub mod policy;
pub mod profiles;
pub mod reducer;
pub mod registry;
pub mod routing;
pub mod status;
pub mod task;
pub mod timeline;
pub mod usage;
pub mod verify;
pub mod vocab;
pub mod whatif;
