//! The view and the records it holds: agents, features, worktrees, the configuration,
//! counters and anomalies. Plain data; the rules that change it live beside this file.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{AgentState, Complexity, FeatureStatus, FeatureTally, Priority, WorktreeStatus};
use crate::model::UnixNanos;

/// Capabilities of an agent, or what a feature requires of one. Sorted sets: order reaches users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Capabilities {
    pub languages: BTreeSet<String>,
    pub frameworks: BTreeSet<String>,
    pub expertise_areas: BTreeSet<String>,
}

impl Capabilities {
    pub fn len(&self) -> usize {
        self.languages.len() + self.frameworks.len() + self.expertise_areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every item with its kind ("language", "framework", "expertise"), in a stable order.
    pub fn items(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.languages
            .iter()
            .map(|s| ("language", s.as_str()))
            .chain(self.frameworks.iter().map(|s| ("framework", s.as_str())))
            .chain(
                self.expertise_areas
                    .iter()
                    .map(|s| ("expertise", s.as_str())),
            )
    }

    /// From the three lists a span sent (languages, frameworks, expertise): lower-cased sets.
    pub(super) fn from_lists(languages: &[&str], frameworks: &[&str], expertise: &[&str]) -> Self {
        let set = |items: &[&str]| -> BTreeSet<String> {
            items.iter().map(|s| s.to_lowercase()).collect()
        };
        Capabilities {
            languages: set(languages),
            frameworks: set(frameworks),
            expertise_areas: set(expertise),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub percentage: Option<f64>,
    pub files_modified: Option<i64>,
    pub lines_added: Option<i64>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub capabilities: Capabilities,
    pub max_concurrent_features: u32,
    pub preferred_complexity: Option<Complexity>,
    pub state: AgentState,
    /// Features held, in the order they were assigned.
    pub assignments: Vec<String>,
    pub registered_seq: u64,
    /// The agent's last span, or its last assignment if later: its lease runs from here, so
    /// `lease_expires_at` is always this plus the lease.
    pub last_activity: UnixNanos,
    pub progress: Progress,
    /// Why the agent is in error, while it is: for the agent that comes back and its operator.
    pub error: Option<AgentError>,
    /// Its own lease in seconds, if it registered with one (else the log's).
    pub lease_seconds: Option<u64>,
    /// Spans of this agent's that the fold could not apply.
    pub anomalies: u64,
    /// The last `agent.communication` message it sent, with its time.
    pub last_message: Option<(UnixNanos, String)>,
    /// It spent its daily budget: no work until a later day or a higher budget.
    #[serde(default)]
    pub paused_for_budget: bool,
    /// It works on another host: its features' branches are pushed to the remote instead of
    /// checked out here.
    #[serde(default)]
    pub remote: bool,
}

impl Agent {
    /// Whether the agent may be given another feature: it is not busy finishing one, has room,
    /// and has budget left today.
    pub fn can_take_more(&self) -> bool {
        matches!(
            self.state,
            AgentState::Idle | AgentState::Claiming | AgentState::Working
        ) && (self.assignments.len() as u32) < self.max_concurrent_features
            && !self.paused_for_budget
    }
}

/// How an agent came to be in error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentError {
    /// The log's time of the verdict (or of the agent's own report).
    pub since: UnixNanos,
    /// Seconds the agent had been silent when its lease expired; None when it reported the
    /// error itself.
    pub silent_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub description: String,
    pub priority: Priority,
    pub estimated_effort: u32,
    pub requires: Capabilities,
    pub requirements: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    pub status: FeatureStatus,
    pub assigned_agent: Option<String>,
    /// The feature's worktree, once one was decided; kept when the feature is queued again so
    /// the next agent continues the work.
    pub worktree_path: Option<String>,
    pub branch_name: Option<String>,
    /// Why the feature is back in the queue, when something went wrong.
    pub last_error: Option<String>,
    /// Position in the queue: first request's seq. Ties among equal priorities go to the older.
    pub queued_seq: u64,
    /// Paths of the last merge conflict, while the agent resolves them.
    pub conflicts: Vec<String>,
    /// Why the last merge attempt did not happen (deferred or failed), while it still waits.
    pub merge_note: Option<String>,
    /// The base branch's tip once the feature is merged.
    pub merged_commit: Option<String>,
    /// Whose work was merged, and when (the log's time of the merge).
    pub merged_by: Option<String>,
    pub merged_at: Option<UnixNanos>,
    /// The base branch's tip when a merge started and no outcome was recorded yet: what
    /// recovery needs if the process died in between.
    pub merge_from: Option<String>,
    /// When it was last submitted (the seq it became `merging` at): its place in the merge
    /// queue among features of its priority.
    #[serde(default)]
    pub submitted_seq: Option<u64>,
    /// Its merge gate started and has no result yet.
    #[serde(default)]
    pub gate_running: bool,
    /// Held for a person's approval (`spanfold.requireApproval`) since its last submission.
    #[serde(default)]
    pub awaiting_approval: bool,
    /// Approved since its last submission: it may merge.
    #[serde(default)]
    pub approved: bool,
    /// Its scope: the paths (globs) it will change; empty when it did not say.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// It may run beside features whose scope overlaps its own.
    #[serde(default)]
    pub allow_overlap: bool,
}

impl Feature {
    /// A feature just requested, queued at `seq`, with nothing else known about it yet.
    pub fn queued(name: &str, priority: Priority, estimated_effort: u32, seq: u64) -> Feature {
        Feature {
            name: name.to_owned(),
            description: String::new(),
            priority,
            estimated_effort,
            requires: Capabilities::default(),
            requirements: Vec::new(),
            acceptance_criteria: Vec::new(),
            status: FeatureStatus::Queued,
            assigned_agent: None,
            worktree_path: None,
            branch_name: None,
            last_error: None,
            queued_seq: seq,
            conflicts: Vec::new(),
            merge_note: None,
            merged_commit: None,
            merged_by: None,
            merged_at: None,
            merge_from: None,
            submitted_seq: None,
            gate_running: false,
            awaiting_approval: false,
            approved: false,
            scopes: Vec::new(),
            allow_overlap: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worktree {
    pub path: String,
    pub branch_name: String,
    pub status: WorktreeStatus,
    pub agent_id: Option<String>,
    pub feature_name: String,
    /// Why a completed feature's worktree was kept instead of removed.
    pub note: Option<String>,
    /// Locked in git for its agent. An abandoned worktree still locked is unlocked by the next
    /// cycle.
    pub locked: bool,
    /// When its status last changed (event time): `gc --older-than` measures from here.
    pub since: UnixNanos,
    /// Its block of ports (`SPANFOLD_PORT`): the lowest no other active worktree held when it
    /// became active. Meaningful while it is active.
    pub port_slot: u32,
    /// For a remote agent's feature: the URL of the remote its branch was pushed to. Nothing
    /// is checked out at `path` then; the path only names the feature's place.
    #[serde(default)]
    pub remote_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub repo: String,
    pub base_branch: String,
    pub worktrees_dir: String,
    pub lease_seconds: u64,
}

/// The lease when `agents init` set none: ten minutes.
pub const DEFAULT_LEASE_SECONDS: u64 = 600;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub events: u64,
    pub unregistered_spans: u64,
    pub cycles: u64,
    pub assignments: u64,
    pub anomalies: u64,
    /// Anomalies acknowledged by an operator (no longer listed; still in `anomalies`).
    #[serde(default)]
    pub acknowledged: u64,
}

/// What the agents' own telemetry (OTLP logs and metrics, and their spans that the profiles
/// know) came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Log records (agents' events) in the log.
    pub log_records: u64,
    /// Metrics in the log.
    pub metrics: u64,
    /// Log records and metrics no rule tied to a registered agent, by the `service.name` that
    /// sent them (at most [`MAX_SERVICES`](super::telemetry::MAX_SERVICES) names; the rest
    /// under "(other)").
    pub unattributed: BTreeMap<String, u64>,
    /// What each agent's telemetry has shown, by agent id.
    pub agents: BTreeMap<String, AgentTelemetry>,
    /// The trace id (hex) of each assignment, with its agent: a record sent in that trace (the
    /// launcher hands the agent the assignment's `TRACEPARENT`) belongs to that agent.
    pub traces: BTreeMap<String, String>,
    /// Each session (`session.id`, `conversation.id`, …) with the agent it was first seen
    /// with: the agent's records that carry only the session are still its own.
    pub sessions: BTreeMap<String, String>,
    /// What the agents' records showed of the work on each feature, by feature name: a record
    /// counts for the feature its agent held then (the one in `spanfold.feature` when it held
    /// several).
    pub features: BTreeMap<String, ActivityCounts>,
}

/// What one agent's own telemetry has shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTelemetry {
    /// The profile its records last matched (`claude`, `codex`, `gemini`, `genai`), or `otlp`.
    pub source: String,
    /// Its last recognised record.
    pub last: Option<LastSeen>,
    /// Its tool calls, LLM requests, errors and commits.
    pub counts: ActivityCounts,
    /// Its process under `spanfold agents run`, as last reported.
    pub process: Option<ProcessState>,
}

/// What agents' own records showed them doing, counted (an agent's, or a feature's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCounts {
    pub tool_calls: u64,
    /// Tool calls whose outcome said they failed.
    pub tool_failures: u64,
    pub llm_requests: u64,
    pub errors: u64,
    pub commits: u64,
}

/// An agent's process as the launcher last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    pub event: crate::fact::ProcessEvent,
    pub feature: Option<String>,
    pub command: Option<String>,
    pub pid: Option<i64>,
    /// When it was started (the launcher's `started` report).
    pub since: UnixNanos,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    pub outcome: Option<String>,
}

/// An agent's last recognised record: what it was, its name, its tool, when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    pub kind: crate::profiles::Kind,
    pub name: String,
    pub tool: Option<String>,
    pub at: UnixNanos,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub seq: u64,
    pub agent_id: Option<String>,
    pub span: String,
    /// Hex span id of the span that caused it, to find it in a trace viewer.
    pub span_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsOf {
    pub seq: u64,
    pub time: UnixNanos,
}

/// Serialisable so that checkpoints can hold it: a checkpoint is this struct at one seq.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub config: Option<Config>,
    pub agents: BTreeMap<String, Agent>,
    pub features: BTreeMap<String, Feature>,
    /// Keyed by absolute path.
    pub worktrees: BTreeMap<String, Worktree>,
    pub counters: Counters,
    pub telemetry: Telemetry,
    /// The latest [`MAX_ANOMALIES`](super::MAX_ANOMALIES), oldest first (a ring: a flood of bad spans costs O(1)
    /// each).
    pub anomalies: std::collections::VecDeque<Anomaly>,
    pub as_of: AsOf,
    /// Counts kept by the fold, so that a status summary need not walk every feature.
    pub tally: FeatureTally,
    /// The SHA-256 of each agent's current token (see `credentials`), by agent id.
    pub credentials: BTreeMap<String, String>,
    /// Port slots handed out, with the worktree path each went to: a slot is free again once
    /// that worktree is no longer active in it.
    pub port_slots: BTreeMap<u32, String>,
    /// Tokens and dollars of the agents' LLM requests, and the prices in force.
    pub usage: super::usage::UsageState,
    /// The conflict radar's current forecasts that are not clear, in the order recorded.
    #[serde(default)]
    pub risks: Vec<super::forecasts::Risk>,
    /// Barrier paths (globs, from `coordination.configure`): features whose declared paths touch
    /// the same one are never worked on at once. (Not in `Config`, which status prints as it is:
    /// checkpoints are postcard, where a field left out when empty cannot be read back.)
    #[serde(default)]
    pub barrier_paths: Vec<String>,
    /// The latest features to leave the merge queue ([`MAX_QUEUE_DONE`]), oldest first:
    /// merged, or sent back (failed).
    #[serde(default)]
    pub queue_done: std::collections::VecDeque<QueueDone>,
}

/// How many features that left the merge queue the view keeps.
pub const MAX_QUEUE_DONE: usize = 10;

/// A feature that left the merge queue, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDone {
    pub feature: String,
    pub agent: String,
    /// Merged into the base branch; otherwise sent back to its agent (a failed gate, a
    /// conflict, work to commit, a person's rejection).
    pub merged: bool,
    /// Why it was sent back, or the commit it merged at.
    pub note: Option<String>,
    pub at: AsOf,
}

impl View {
    /// The remote a remote agent's feature `f` has its branch on, if it is one.
    pub fn remote_of(&self, f: &Feature) -> Option<&str> {
        let path = f.worktree_path.as_deref()?;
        self.worktrees.get(path)?.remote_url.as_deref()
    }

    /// Notes that `feature` left the merge queue.
    pub(super) fn left_queue(&mut self, done: QueueDone) {
        if self.queue_done.len() == MAX_QUEUE_DONE {
            self.queue_done.pop_front();
        }
        self.queue_done.push_back(done);
    }
}
