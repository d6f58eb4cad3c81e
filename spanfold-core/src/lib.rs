//! spanfold's pure core: everything spanfold knows is a fold of its log, and this crate is that
//! fold and what is computed from it. It does no I/O and reads no clock (time is always an
//! argument), and its dependency list holds no storage, git, async, network or command-line crate,
//! so the purity is a fact the compiler checks, not a promise.
//!
//! # Map of the modules
//!
//! - [`model`]: the project's own span types, a lossless image of an OTLP export.
//! - [`names`]: the one rule for agent ids and feature names.
//! - [`registry`]: the span registry (`spans/*.yaml`, compiled in) and span validation.
//! - [`vocab`]: every span name and attribute key the registry declares, as a constant
//!   (generated from `spans/*.yaml` and checked in; a test says when it is stale).
//! - [`fact`]: one typed [`fact::Fact`] per span the fold gives meaning to — the one reading
//!   and the one writing of those spans.
//! - [`reducer`]: `View = fold(events)`, enforcing the agent lifecycle.
//! - [`policy`]: which queued feature goes to which agent, with scores and reasons.
//! - [`plan`]: a cycle's assignment step as data — placements with their worktrees, lease
//!   verdicts, and the worktree effects the coordinator then carries out.
//! - [`status`]: the status document, a pure function of the view.
//! - [`credentials`]: who is speaking — the operator, or one agent by its own token (hashed).
//! - [`task`]: what `agents next` hands an agent — the feature, its requirements, why it came back.
//! - [`changes`]: what an event changed, and what differs between two views.
//! - [`dedup`]: the window of recent span ids that catches retried exports, in fixed memory.
//! - [`verify`]: `replay --verify`, the policy re-run at every recorded decision.
//! - [`whatif`]: the recorded inputs under another policy.
//! - [`timeline`]: agents' states over a range as intervals, with markers and samples.

pub mod changes;
pub mod credentials;
pub mod dedup;
pub mod digest;
pub mod fact;
pub mod model;
pub mod names;
pub mod plan;
pub mod policy;
pub mod reducer;
pub mod registry;
pub mod status;
pub mod task;
pub mod timeline;
pub mod verify;
pub mod vocab;
pub mod whatif;
