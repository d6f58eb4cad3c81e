//! The reducer: a pure fold of log events into the [`View`]. No I/O, no clock (time comes from
//! the event), no hash-order iteration — the same log always gives the same view.
//!
//! It enforces the agent lifecycle: a span that asks for an illegal transition changes nothing
//! and is recorded as an anomaly with its reason.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{Event, UnixNanos, as_double, as_int, as_str};
use crate::names;

/// Bumped whenever a change to this module can change the view a log folds into; derived data
/// tagged with another version is discarded and rebuilt.
pub const REDUCER_VERSION: u32 = 6;

/// Span names this reducer gives meaning to. A test checks this list against the registry.
pub const HANDLED_SPANS: &[&str] = &[
    "agent.communication",
    "anomaly.acknowledge",
    "agent.feature_assignment",
    "agent.lease_expired",
    "agent.registration",
    "agent.reset",
    "agent.token_issued",
    "agent.validation",
    "agent.work_progress",
    "coordination.configure",
    "coordination.cycle",
    "coordination.feature_merge",
    "coordination.init",
    "coordination.system_health",
    "feature.cancel",
    "feature.reopen",
    "feature.request",
    "worktree.lifecycle",
];

/// At most this many anomalies are kept in the view; older ones are counted, not listed.
pub const MAX_ANOMALIES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Idle,
    Claiming,
    Working,
    Validating,
    Submitting,
    Finished,
    Error,
}

impl AgentState {
    pub const ALL: [AgentState; 7] = [
        AgentState::Idle,
        AgentState::Claiming,
        AgentState::Working,
        AgentState::Validating,
        AgentState::Submitting,
        AgentState::Finished,
        AgentState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Claiming => "claiming",
            AgentState::Working => "working",
            AgentState::Validating => "validating",
            AgentState::Submitting => "submitting",
            AgentState::Finished => "finished",
            AgentState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The states an agent may report next. `idle → claiming` happens through an assignment and
    /// `error → idle` through a reset; both are listed so the message can say how.
    pub fn next_states(self) -> &'static [AgentState] {
        use AgentState::*;
        match self {
            Idle => &[Claiming, Error],
            Claiming => &[Working, Error],
            Working => &[Validating, Error],
            Validating => &[Submitting, Working, Error],
            Submitting => &[Finished, Error],
            // An agent holding more than one feature goes back to work on the next one.
            Finished => &[Idle, Working, Error],
            Error => &[],
        }
    }

    pub fn can_become(self, next: AgentState) -> bool {
        self.next_states().contains(&next)
    }

    /// Neither idle nor in error: "active" in the status summary.
    pub fn is_active(self) -> bool {
        !matches!(self, AgentState::Idle | AgentState::Error)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    Low,
    Medium,
    High,
}

impl Complexity {
    pub const ALL: [Complexity; 3] = [Complexity::Low, Complexity::Medium, Complexity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Low => "low",
            Complexity::Medium => "medium",
            Complexity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Complexity> {
        Complexity::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Story points to complexity: 1-3 low, 4-6 medium, 7 and up high.
    pub fn of_effort(effort: u32) -> Complexity {
        match effort {
            0..=3 => Complexity::Low,
            4..=6 => Complexity::Medium,
            _ => Complexity::High,
        }
    }

    pub fn rank(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStatus {
    Queued,
    Assigned,
    InProgress,
    Validating,
    Merging,
    Completed,
    Conflicted,
    Cancelled,
}

impl FeatureStatus {
    pub fn parse(s: &str) -> Option<FeatureStatus> {
        FeatureStatus::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub const ALL: [FeatureStatus; 8] = [
        FeatureStatus::Queued,
        FeatureStatus::Assigned,
        FeatureStatus::InProgress,
        FeatureStatus::Validating,
        FeatureStatus::Merging,
        FeatureStatus::Completed,
        FeatureStatus::Conflicted,
        FeatureStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Queued => "queued",
            FeatureStatus::Assigned => "assigned",
            FeatureStatus::InProgress => "in_progress",
            FeatureStatus::Validating => "validating",
            FeatureStatus::Merging => "merging",
            FeatureStatus::Completed => "completed",
            FeatureStatus::Conflicted => "conflicted",
            FeatureStatus::Cancelled => "cancelled",
        }
    }

    /// Held by an agent and not finished.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            FeatureStatus::Assigned
                | FeatureStatus::InProgress
                | FeatureStatus::Validating
                | FeatureStatus::Merging
                | FeatureStatus::Conflicted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorktreeStatus {
    /// Locked for an agent that holds its feature.
    Active,
    /// Its agent let go (reset); kept with its work until the feature is placed again.
    Abandoned,
    /// Its feature is done; the worktree waits for merge and cleanup.
    Completed,
}

impl WorktreeStatus {
    pub const ALL: [WorktreeStatus; 3] = [
        WorktreeStatus::Active,
        WorktreeStatus::Abandoned,
        WorktreeStatus::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorktreeStatus::Active => "active",
            WorktreeStatus::Abandoned => "abandoned",
            WorktreeStatus::Completed => "completed",
        }
    }
}

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

    /// From the three list attributes named by `keys` (languages, frameworks, expertise).
    fn from_event(ev: &Event<'_>, keys: [&str; 3]) -> Capabilities {
        let set = |key: &str| -> BTreeSet<String> {
            ev.list_attr(key)
                .into_iter()
                .map(|s| s.to_lowercase())
                .collect()
        };
        Capabilities {
            languages: set(keys[0]),
            frameworks: set(keys[1]),
            expertise_areas: set(keys[2]),
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
}

impl Agent {
    /// Whether the agent may be given another feature: it is not busy finishing one and has room.
    pub fn can_take_more(&self) -> bool {
        matches!(
            self.state,
            AgentState::Idle | AgentState::Claiming | AgentState::Working
        ) && (self.assignments.len() as u32) < self.max_concurrent_features
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
    /// The latest [`MAX_ANOMALIES`], oldest first (a ring: a flood of bad spans costs O(1)
    /// each).
    pub anomalies: std::collections::VecDeque<Anomaly>,
    pub as_of: AsOf,
    /// Counts kept by the fold, so that a status summary need not walk every feature.
    pub tally: FeatureTally,
    /// The SHA-256 of each agent's current token (see `credentials`), by agent id.
    pub credentials: BTreeMap<String, String>,
}

/// Features counted by status, and the open ones (queued or in progress) by what they require.
/// Kept up to date at every change of a feature's status or requirements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureTally {
    /// Indexed as [`FeatureStatus::ALL`].
    pub by_status: [usize; FeatureStatus::ALL.len()],
    pub open_by_requires: BTreeMap<Capabilities, usize>,
}

impl FeatureTally {
    fn is_open(status: FeatureStatus) -> bool {
        status == FeatureStatus::Queued || status.is_in_progress()
    }

    /// Counts from scratch (tests compare it with the kept counts).
    pub fn of<'a>(features: impl IntoIterator<Item = &'a Feature>) -> FeatureTally {
        let mut tally = FeatureTally::default();
        for f in features {
            tally.add(f);
        }
        tally
    }

    fn add(&mut self, f: &Feature) {
        self.by_status[f.status as usize] += 1;
        if Self::is_open(f.status) {
            *self.open_by_requires.entry(f.requires.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, f: &Feature) {
        self.by_status[f.status as usize] -= 1;
        if Self::is_open(f.status) {
            self.leave(&f.requires);
        }
    }

    fn leave(&mut self, requires: &Capabilities) {
        if let Some(n) = self.open_by_requires.get_mut(requires) {
            *n -= 1;
            if *n == 0 {
                self.open_by_requires.remove(requires);
            }
        }
    }

    /// A feature requiring `requires` went from `from` to `to`.
    fn moved(&mut self, requires: &Capabilities, from: FeatureStatus, to: FeatureStatus) {
        self.by_status[from as usize] -= 1;
        self.by_status[to as usize] += 1;
        match (Self::is_open(from), Self::is_open(to)) {
            (true, false) => self.leave(requires),
            (false, true) => *self.open_by_requires.entry(requires.clone()).or_default() += 1,
            _ => {}
        }
    }
}

impl View {
    pub fn fold<'a>(events: impl IntoIterator<Item = Event<'a>>) -> View {
        let mut view = View::default();
        for ev in events {
            view.apply(&ev);
        }
        view
    }

    /// Why these events would be anomalies, folded in after everything else, if any would: a
    /// person's command is refused with that reason before anything is written (an agent's
    /// span, which cannot be refused that way, is kept and recorded as an anomaly instead).
    pub fn refusal<'a>(&self, events: impl IntoIterator<Item = Event<'a>>) -> Option<String> {
        let mut trial = self.clone();
        let before = trial.counters.anomalies;
        for ev in events {
            trial.apply(&ev);
            if trial.counters.anomalies > before {
                return trial.anomalies.back().map(|a| a.reason.clone());
            }
        }
        None
    }

    /// Folds one event in. Never fails: what cannot be applied is recorded as an anomaly.
    pub fn apply(&mut self, ev: &Event<'_>) {
        self.as_of = AsOf {
            seq: ev.seq,
            time: ev.time,
        };
        self.counters.events += 1;
        let outcome = match ev.span.name.as_str() {
            "agent.registration" => self.register(ev),
            "feature.request" => self.request_feature(ev),
            "agent.work_progress" => self.progress(ev),
            "agent.validation" => self.validation(ev),
            "agent.reset" => self.reset(ev),
            "agent.communication" => self.message(ev),
            "coordination.init" => self.init(ev),
            "coordination.configure" => self.configure(ev),
            "coordination.cycle" => {
                self.counters.cycles += 1;
                Ok(())
            }
            "agent.feature_assignment" => self.assign(ev),
            "worktree.lifecycle" => self.worktree(ev),
            "coordination.system_health" => Ok(()),
            "coordination.feature_merge" => self.merge(ev),
            "agent.lease_expired" => self.lease_expired(ev),
            "feature.cancel" => self.cancel(ev),
            "feature.reopen" => self.reopen(ev),
            "anomaly.acknowledge" => self.acknowledge(ev),
            "agent.token_issued" => self.token_issued(ev),
            _ => {
                self.counters.unregistered_spans += 1;
                // A span the registry does not name still shows its agent is alive.
                if let Some(agent) = ev
                    .str_attr("agent.id")
                    .and_then(|id| self.agents.get_mut(id))
                {
                    agent.last_activity = ev.time;
                }
                Ok(())
            }
        };
        if let Err(reason) = outcome {
            self.anomaly(ev, reason);
        }
        // Every test that folds a small view checks the kept counts against a recount (a large
        // view would make debug builds quadratic).
        if cfg!(debug_assertions) && self.features.len() <= 300 {
            assert_eq!(
                self.tally,
                FeatureTally::of(self.features.values()),
                "feature counts drifted at seq {}",
                ev.seq
            );
        }
    }

    fn anomaly(&mut self, ev: &Event<'_>, reason: String) {
        self.counters.anomalies += 1;
        if let Some(agent) = ev
            .str_attr("agent.id")
            .and_then(|id| self.agents.get_mut(id))
        {
            agent.anomalies += 1;
        }
        if self.anomalies.len() == MAX_ANOMALIES {
            self.anomalies.pop_front();
        }
        self.anomalies.push_back(Anomaly {
            seq: ev.seq,
            agent_id: ev.str_attr("agent.id").map(str::to_owned),
            span: ev.span.name.to_string(),
            span_id: crate::model::hex(&ev.span.span_id),
            reason,
        });
    }

    /// The registered agent a span names, with its activity refreshed.
    fn agent_of(&mut self, ev: &Event<'_>) -> Result<&mut Agent, String> {
        let id = ev
            .str_attr("agent.id")
            .ok_or_else(|| "the span has no agent.id".to_string())?;
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| format!("agent {id} is not registered; register it first"))?;
        agent.last_activity = ev.time;
        Ok(agent)
    }

    fn message(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let text = ev.str_attr("communication.message").map(str::to_owned);
        let agent = self.agent_of(ev)?;
        if let Some(text) = text {
            agent.last_message = Some((ev.time, text));
        }
        Ok(())
    }

    fn register(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let id = ev
            .str_attr("agent.id")
            .ok_or_else(|| "the span has no agent.id".to_string())?;
        names::agent_id(id).map_err(|e| e.to_string())?;
        let capabilities = Capabilities::from_event(
            ev,
            [
                "agent.languages",
                "agent.frameworks",
                "agent.expertise_areas",
            ],
        );
        let max = ev
            .int_attr("agent.max_concurrent_features")
            .unwrap_or(1)
            .clamp(1, 1024) as u32;
        let preferred = ev
            .str_attr("agent.preferred_complexity")
            .and_then(Complexity::parse);
        let lease = ev
            .int_attr("agent.lease_seconds")
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        let agent = self.agents.entry(id.to_owned()).or_insert_with(|| Agent {
            id: id.to_owned(),
            capabilities: Capabilities::default(),
            max_concurrent_features: 1,
            preferred_complexity: None,
            state: AgentState::Idle,
            assignments: Vec::new(),
            registered_seq: ev.seq,
            last_activity: ev.time,
            progress: Progress::default(),
            error: None,
            lease_seconds: None,
            anomalies: 0,
            last_message: None,
        });
        agent.capabilities = capabilities;
        agent.max_concurrent_features = max;
        agent.preferred_complexity = preferred;
        agent.lease_seconds = lease;
        agent.last_activity = ev.time;
        Ok(())
    }

    fn request_feature(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let name = ev
            .str_attr("feature.name")
            .ok_or_else(|| "the span has no feature.name".to_string())?;
        names::feature_name(name).map_err(|e| e.to_string())?;
        let priority = match ev.str_attr("feature.priority") {
            None => Priority::Medium,
            Some(p) => Priority::parse(p).ok_or_else(|| format!("unknown priority {p:?}"))?,
        };
        let effort = ev
            .int_attr("feature.estimated_effort")
            .unwrap_or(3)
            .clamp(1, 100) as u32;
        if !self.features.contains_key(name)
            && let Some(clash) = self.ref_clash(name)
        {
            return Err(format!(
                "feature {name} cannot sit beside feature {clash}: git cannot hold both branches spanfold/{name} and spanfold/{clash}; choose another name"
            ));
        }
        if let Some(existing) = self.features.get_mut(name)
            && existing.status != FeatureStatus::Queued
        {
            // Held or done: only its priority may still change, and only by a request that
            // otherwise repeats the feature as it is.
            let same = existing.estimated_effort == effort
                && existing.description == ev.str_attr("feature.description").unwrap_or_default()
                && existing.requirements == ev.list_attr("feature.requirements")
                && existing.acceptance_criteria == ev.list_attr("feature.acceptance_criteria")
                && existing.requires
                    == Capabilities::from_event(
                        ev,
                        [
                            "feature.languages",
                            "feature.frameworks",
                            "feature.expertise_areas",
                        ],
                    );
            if same && existing.status.is_in_progress() {
                existing.priority = priority;
                return Ok(());
            }
            return Err(format!(
                "feature {name} is already {}; only its priority can change now (everything else only while queued)",
                existing.status.as_str()
            ));
        }
        let requires = Capabilities::from_event(
            ev,
            [
                "feature.languages",
                "feature.frameworks",
                "feature.expertise_areas",
            ],
        );
        let description = ev
            .str_attr("feature.description")
            .unwrap_or_default()
            .to_owned();
        let requirements = ev.list_attr("feature.requirements");
        let acceptance_criteria = ev.list_attr("feature.acceptance_criteria");
        // A re-request updates the queued feature in place; it keeps its queue position, its
        // worktree and its last error.
        if let Some(old) = self.features.get(name) {
            self.tally.remove(old);
        }
        let feature = self
            .features
            .entry(name.to_owned())
            .or_insert_with(|| Feature {
                name: name.to_owned(),
                description: String::new(),
                priority,
                estimated_effort: effort,
                requires: Capabilities::default(),
                requirements: Vec::new(),
                acceptance_criteria: Vec::new(),
                status: FeatureStatus::Queued,
                assigned_agent: None,
                worktree_path: None,
                branch_name: None,
                last_error: None,
                queued_seq: ev.seq,
                conflicts: Vec::new(),
                merge_note: None,
                merged_commit: None,
                merged_by: None,
                merged_at: None,
                merge_from: None,
            });
        feature.description = description;
        feature.priority = priority;
        feature.estimated_effort = effort;
        feature.requires = requires;
        feature.requirements = requirements;
        feature.acceptance_criteria = acceptance_criteria;
        self.tally.add(feature);
        Ok(())
    }

    /// The feature a report is about: the one it names (which the agent must hold), the agent's
    /// only one, or its only one with work to do (not waiting for its merge). A report that
    /// moves a feature (`needs`) must be unambiguous: otherwise the agent would move while no
    /// feature does, and wait for a merge that never comes.
    fn reported_feature(
        &self,
        id: &str,
        named: Option<&str>,
        needs: bool,
    ) -> Result<Option<String>, String> {
        let Some(agent) = self.agents.get(id) else {
            return Err(format!("agent {id} is not registered; register it first"));
        };
        match named {
            Some(name) if agent.assignments.iter().any(|a| a == name) => {
                return Ok(Some(name.to_owned()));
            }
            Some(name) => {
                return Err(format!(
                    "agent {} does not hold feature {name} (it holds: {})",
                    agent.id,
                    list_or_none(&agent.assignments)
                ));
            }
            None if agent.assignments.len() == 1 => return Ok(agent.assignments.first().cloned()),
            None => {}
        }
        let open: Vec<String> = agent
            .assignments
            .iter()
            .filter(|n| {
                self.features
                    .get(*n)
                    .is_some_and(|f| f.status != FeatureStatus::Merging)
            })
            .cloned()
            .collect();
        match open.len() {
            1 => Ok(open.into_iter().next()),
            _ if !needs => Ok(None),
            0 if agent.assignments.is_empty() => Ok(None),
            0 => Err(format!(
                "agent {} has no feature with work to do: {} wait for their merge",
                agent.id,
                list_or_none(&agent.assignments)
            )),
            n => Err(format!(
                "agent {} holds {n} features with work to do ({}): say which one this report is about (--feature NAME, or the span attribute feature.name)",
                agent.id,
                list_or_none(&open)
            )),
        }
    }

    fn progress(&mut self, ev: &Event<'_>) -> Result<(), String> {
        // Progress reports are most of the traffic: read all their attributes in one pass.
        let [state, named, percentage, files, lines, duration] = ev.attrs([
            "agent.state",
            "feature.name",
            "work.progress_percentage",
            "work.files_modified",
            "work.lines_added",
            "work.duration_ms",
        ]);
        let next = state
            .and_then(as_str)
            .and_then(AgentState::parse)
            .ok_or_else(|| "agent.state is missing or not a lifecycle state".to_string())?;
        if next == AgentState::Idle
            && let Some(agent) = ev
                .str_attr("agent.id")
                .and_then(|id| self.agents.get_mut(id))
            && agent.state == AgentState::Claiming
        {
            // An idle report sent before the agent could see its assignment crossed the
            // decision on the wire: it is not a refusal. It does not renew the lease (nor the
            // activity the lease runs from): an agent that only ever reports idle never saw its
            // work.
            let _ = agent;
            return Ok(());
        }
        let id = self.agent_of(ev)?.id.clone();
        let needs = matches!(next, AgentState::Validating | AgentState::Submitting);
        let feature = self.reported_feature(&id, named.and_then(as_str), needs)?;
        let agent = self.agent_of(ev)?;
        let current = agent.state;
        if current == AgentState::Error && next != current {
            return Err(in_error(agent));
        }
        if next != current && !current.can_become(next) {
            return Err(illegal(current, next));
        }
        if next == AgentState::Idle && !agent.assignments.is_empty() {
            return Err(format!(
                "agent {} still holds {}; report finished for each, or reset the agent",
                agent.id,
                list_or_none(&agent.assignments)
            ));
        }
        let progress = Progress {
            percentage: percentage.and_then(as_double),
            files_modified: files.and_then(as_int),
            lines_added: lines.and_then(as_int),
            duration_ms: duration.and_then(as_int),
        };
        if let Some(p) = progress.percentage.filter(|p| !(0.0..=100.0).contains(p)) {
            return Err(format!(
                "work.progress_percentage is {p}; a percentage is a number from 0 to 100"
            ));
        }
        if let Some((key, n)) = [
            ("work.files_modified", progress.files_modified),
            ("work.lines_added", progress.lines_added),
            ("work.duration_ms", progress.duration_ms),
        ]
        .into_iter()
        .find_map(|(k, n)| n.filter(|n| *n < 0).map(|n| (k, n)))
        {
            return Err(format!("{key} is {n}; a count is 0 or more"));
        }
        // Only once nothing can refuse the report: an illegal input changes nothing.
        if next == AgentState::Error && current != next {
            agent.error = Some(AgentError {
                since: ev.time,
                silent_seconds: None,
            });
        }
        agent.state = next;
        agent.progress = progress;
        if let Some(name) = feature {
            // A feature is completed by its merge, not by its agent's word: `finished` from an
            // agent changes only the agent.
            let status = match next {
                AgentState::Working => Some(FeatureStatus::InProgress),
                AgentState::Validating => Some(FeatureStatus::Validating),
                AgentState::Submitting => Some(FeatureStatus::Merging),
                _ => None,
            };
            if let Some(status) = status {
                self.set_feature_status(&name, status);
            }
        }
        Ok(())
    }

    fn validation(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let passed = match ev.str_attr("validation.result") {
            Some("passed") => true,
            Some("failed") => false,
            _ => return Err("validation.result must be passed or failed".into()),
        };
        let id = self.agent_of(ev)?.id.clone();
        let feature = self.reported_feature(&id, ev.str_attr("feature.name"), true)?;
        let agent = self.agent_of(ev)?;
        if !matches!(agent.state, AgentState::Working | AgentState::Validating) {
            return Err(format!(
                "agent {} is {}; validation is reported while working or validating",
                agent.id,
                agent.state.as_str()
            ));
        }
        let (state, status) = if passed {
            (AgentState::Submitting, FeatureStatus::Merging)
        } else {
            (AgentState::Working, FeatureStatus::InProgress)
        };
        agent.state = state;
        if let Some(name) = feature {
            self.set_feature_status(&name, status);
        }
        Ok(())
    }

    fn set_feature_status(&mut self, name: &str, status: FeatureStatus) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally.moved(&f.requires, f.status, status);
            f.status = status;
            if status == FeatureStatus::Merging {
                f.merge_note = None;
            }
            if status == FeatureStatus::Completed {
                f.assigned_agent = None;
                if let Some(wt) = f
                    .worktree_path
                    .as_ref()
                    .and_then(|p| self.worktrees.get_mut(p))
                {
                    wt.status = WorktreeStatus::Completed;
                    wt.agent_id = None;
                }
            }
        }
    }

    fn reset(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let agent = self.agent_of(ev)?;
        agent.state = AgentState::Idle;
        agent.progress = Progress::default();
        agent.error = None;
        let released = std::mem::take(&mut agent.assignments);
        let id = agent.id.clone();
        for name in released {
            self.requeue(
                &name,
                format!("agent {id} was reset; waiting to be placed again"),
                ev.time,
            );
        }
        Ok(())
    }

    /// Puts a held feature back in the queue at its old place; its worktree is kept, unassigned.
    fn requeue(&mut self, name: &str, why: String, time: UnixNanos) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally
                .moved(&f.requires, f.status, FeatureStatus::Queued);
            f.status = FeatureStatus::Queued;
            f.assigned_agent = None;
            f.last_error = Some(why);
            if let Some(wt) = f
                .worktree_path
                .as_ref()
                .and_then(|p| self.worktrees.get_mut(p))
            {
                wt.status = WorktreeStatus::Abandoned;
                wt.agent_id = None;
                wt.since = time;
            }
        }
    }

    fn init(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .map(str::to_owned)
                .ok_or_else(|| format!("{key} is missing"))
        };
        self.config = Some(Config {
            repo: get("coordination.repo")?,
            base_branch: get("coordination.base_branch")?,
            worktrees_dir: get("coordination.worktrees_dir")?,
            lease_seconds: ev
                .int_attr("coordination.lease_seconds")
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_LEASE_SECONDS),
        });
        Ok(())
    }

    fn configure(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let lease = ev
            .int_attr("coordination.lease_seconds")
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .ok_or_else(|| "coordination.lease_seconds must be a positive number".to_string())?;
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| "a setting changed before coordination.init".to_string())?;
        config.lease_seconds = lease;
        Ok(())
    }

    fn assign(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (Some(agent_id), Some(name)) = (ev.str_attr("agent.id"), ev.str_attr("feature.name"))
        else {
            return Err("an assignment needs agent.id and feature.name".into());
        };
        let feature = self
            .features
            .get(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        if feature.status != FeatureStatus::Queued {
            return Err(format!(
                "feature {name} is {}, not queued; it cannot be assigned again",
                feature.status.as_str()
            ));
        }
        let agent = self
            .agents
            .get_mut(agent_id)
            .ok_or_else(|| format!("agent {agent_id} is not registered"))?;
        if !agent.can_take_more() {
            return Err(format!(
                "agent {agent_id} is {} with {}/{} features; it cannot take {name}",
                agent.state.as_str(),
                agent.assignments.len(),
                agent.max_concurrent_features
            ));
        }
        agent.assignments.push(name.to_owned());
        // The lease runs from the assignment: an agent idle for hours gets its full lease.
        agent.last_activity = agent.last_activity.max(ev.time);
        if agent.state == AgentState::Idle {
            agent.state = AgentState::Claiming;
        }
        self.counters.assignments += 1;
        if let Some(f) = self.features.get_mut(name) {
            self.tally
                .moved(&f.requires, f.status, FeatureStatus::Assigned);
            f.status = FeatureStatus::Assigned;
            f.assigned_agent = Some(agent_id.to_owned());
            f.last_error = None;
            f.worktree_path = ev.str_attr("worktree.path").map(str::to_owned);
            f.branch_name = ev.str_attr("worktree.branch").map(str::to_owned);
        }
        Ok(())
    }

    fn worktree(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .ok_or_else(|| format!("worktree.lifecycle needs {key}"))
        };
        let (action, name, path, branch) = (
            get("worktree.action")?,
            get("feature.name")?,
            get("worktree.path")?,
            get("worktree.branch")?,
        );
        if matches!(action, "removed" | "kept") {
            return self.cleaned(ev, name, path);
        }
        if action == "missing" {
            // Drift: the worktree is gone. The feature keeps its place and its agent; recovery
            // recreates the worktree from the branch and records that next.
            self.worktrees.remove(path);
            return Ok(());
        }
        if action == "unlocked" {
            // Whoever let go of the feature already marked it abandoned; this is the git side.
            if let Some(wt) = self.worktrees.get_mut(path) {
                wt.locked = false;
            }
            return Ok(());
        }
        let agent_id = get("agent.id")?;
        let holds = self
            .features
            .get(name)
            .is_some_and(|f| f.assigned_agent.as_deref() == Some(agent_id));
        if !holds {
            return Err(format!(
                "worktree {action} for feature {name}, which agent {agent_id} does not hold"
            ));
        }
        match action {
            "created" | "reused" => {
                self.worktrees.insert(
                    path.to_owned(),
                    Worktree {
                        path: path.to_owned(),
                        branch_name: branch.to_owned(),
                        status: WorktreeStatus::Active,
                        agent_id: Some(agent_id.to_owned()),
                        feature_name: name.to_owned(),
                        note: ev.str_attr("worktree.error").map(str::to_owned),
                        locked: true,
                        since: ev.time,
                    },
                );
                Ok(())
            }
            "create_failed" => {
                let error = ev.str_attr("worktree.error").unwrap_or("unknown error");
                // The coordinator takes back its own assignment: not an agent transition.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.assignments.retain(|a| a != name);
                    if agent.assignments.is_empty() && agent.state == AgentState::Claiming {
                        agent.state = AgentState::Idle;
                    }
                }
                self.requeue(
                    name,
                    format!("worktree creation failed: {error}; retried next cycle"),
                    ev.time,
                );
                Ok(())
            }
            other => Err(format!("unknown worktree.action {other:?}")),
        }
    }
}

impl View {
    /// An operator withdraws a feature. Its agent lets go of it; its worktree and branch are
    /// kept (abandoned) with whatever work they hold.
    /// A feature whose branch could not exist beside `name`'s: one is the other's directory in
    /// git's refs (`a` and `a/b`).
    fn ref_clash(&self, name: &str) -> Option<String> {
        let mut prefix = String::new();
        for part in name.split('/') {
            if !prefix.is_empty() && self.features.contains_key(&prefix) {
                return Some(prefix);
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
        // Names under `name/`: from "name/" up to "name0" ('0' follows '/').
        let (from, to) = (format!("{name}/"), format!("{name}0"));
        self.features
            .range::<String, _>(from..to)
            .next()
            .map(|(k, _)| k.clone())
    }

    /// The feature an operator's span names, which must have been requested.
    fn named_feature<'v, 'e>(
        features: &'v mut BTreeMap<String, Feature>,
        ev: &Event<'e>,
    ) -> Result<(&'e str, &'v mut Feature), String> {
        let name = ev
            .str_attr("feature.name")
            .ok_or_else(|| format!("{} needs feature.name", ev.span.name))?;
        let feature = features
            .get_mut(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        Ok((name, feature))
    }

    fn reopen(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, ev)?;
        if !matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is {}; only a cancelled or completed feature can be reopened",
                feature.status.as_str()
            ));
        }
        self.tally
            .moved(&feature.requires, feature.status, FeatureStatus::Queued);
        feature.status = FeatureStatus::Queued;
        // At the end of the queue, as a new request would be.
        feature.queued_seq = ev.seq;
        feature.assigned_agent = None;
        feature.conflicts.clear();
        feature.merge_note = None;
        feature.merge_from = None;
        // The earlier merge is in the history; the feature is open again.
        feature.merged_commit = None;
        feature.merged_by = None;
        feature.merged_at = None;
        feature.last_error = ev
            .str_attr("reopen.reason")
            .map(|r| format!("reopened: {r}"));
        Ok(())
    }

    fn token_issued(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let agent = ev
            .str_attr("agent.id")
            .ok_or_else(|| "agent.token_issued needs agent.id".to_string())?;
        names::agent_id(agent).map_err(|e| e.to_string())?;
        let hash = ev
            .str_attr("agent.token_sha256")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                "agent.token_issued needs agent.token_sha256: 64 hex digits".to_string()
            })?;
        self.credentials
            .insert(agent.to_owned(), hash.to_ascii_lowercase());
        Ok(())
    }

    fn acknowledge(&mut self, ev: &Event<'_>) -> Result<(), String> {
        if ev.attr("anomaly.all").and_then(crate::model::as_bool) == Some(true) {
            self.counters.acknowledged += self.anomalies.len() as u64;
            self.anomalies.clear();
            return Ok(());
        }
        let seq = ev
            .int_attr("anomaly.seq")
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| "anomaly.acknowledge needs anomaly.seq or anomaly.all".to_string())?;
        let at = self
            .anomalies
            .iter()
            .position(|a| a.seq == seq)
            .ok_or_else(|| format!("no anomaly listed at seq {seq}; agent-status lists them"))?;
        self.anomalies.remove(at);
        self.counters.acknowledged += 1;
        Ok(())
    }

    fn cancel(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, ev)?;
        if matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is already {}",
                feature.status.as_str()
            ));
        }
        self.tally
            .moved(&feature.requires, feature.status, FeatureStatus::Cancelled);
        feature.status = FeatureStatus::Cancelled;
        feature.last_error = ev.str_attr("cancel.reason").map(str::to_owned);
        let holder = feature.assigned_agent.take();
        if let Some(wt) = feature
            .worktree_path
            .as_ref()
            .and_then(|p| self.worktrees.get_mut(p))
        {
            wt.status = WorktreeStatus::Abandoned;
            wt.agent_id = None;
            wt.since = ev.time;
        }
        if let Some(agent) = holder.and_then(|id| self.agents.get_mut(&id)) {
            agent.assignments.retain(|a| a != name);
            // Operator's move: an agent left with nothing to do is idle again.
            if agent.assignments.is_empty() && agent.state != AgentState::Error {
                agent.state = AgentState::Idle;
                agent.progress = Progress::default();
            }
        }
        Ok(())
    }

    /// The coordinator's decision that a silent agent loses its features.
    fn lease_expired(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let id = ev
            .str_attr("agent.id")
            .ok_or_else(|| "agent.lease_expired needs agent.id".to_string())?;
        let silent = ev.int_attr("lease.silent_seconds").unwrap_or(0);
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| format!("agent {id} is not registered"))?;
        agent.state = AgentState::Error;
        agent.progress = Progress::default();
        agent.error = Some(AgentError {
            since: ev.time,
            silent_seconds: Some(silent),
        });
        let released = std::mem::take(&mut agent.assignments);
        for name in released {
            self.requeue(
                &name,
                format!(
                    "agent {id} went silent for {silent}s, past its lease; queued again, its worktree kept with the work"
                ), ev.time);
        }
        Ok(())
    }

    /// A merged feature's worktree was removed, or kept with a reason.
    /// A worktree nobody holds (its feature merged, cancelled or waiting in the queue) was
    /// removed, or kept with a reason.
    fn cleaned(&mut self, ev: &Event<'_>, name: &str, path: &str) -> Result<(), String> {
        let active = self
            .worktrees
            .get(path)
            .is_some_and(|w| w.status == WorktreeStatus::Active);
        if active {
            return Err(format!(
                "cleanup of worktree {path}, which its agent still holds"
            ));
        }
        if ev.str_attr("worktree.action") == Some("removed") {
            self.worktrees.remove(path);
            // A feature still to be done starts its next worktree afresh from its branch.
            if let Some(f) = self.features.get_mut(name)
                && f.worktree_path.as_deref() == Some(path)
                && f.status != FeatureStatus::Completed
            {
                f.worktree_path = None;
            }
        } else if let Some(wt) = self.worktrees.get_mut(path) {
            wt.agent_id = None;
            wt.note = ev.str_attr("worktree.error").map(str::to_owned);
            wt.since = ev.time;
        }
        Ok(())
    }

    fn merge(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .ok_or_else(|| format!("coordination.feature_merge needs {key}"))
        };
        let (result, agent_id, name) =
            (get("merge.result")?, get("agent.id")?, get("feature.name")?);
        let feature = self
            .features
            .get_mut(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        if feature.assigned_agent.as_deref() != Some(agent_id) {
            return Err(format!(
                "merge of feature {name}, which agent {agent_id} does not hold"
            ));
        }
        if feature.status != FeatureStatus::Merging {
            return Err(format!(
                "merge of feature {name}, which is {} rather than submitted",
                feature.status.as_str()
            ));
        }
        let was = feature.status;
        // Each arm changes only what its result means; an unknown result changes nothing (not
        // even merge_from, which recovery needs after a merge a crash cut off).
        match result {
            "started" => {
                feature.merge_from = ev.str_attr("merge.from").map(str::to_owned);
            }
            "gate_started" | "deferred" | "failed" => {
                feature.merge_note = ev.str_attr("merge.reason").map(str::to_owned);
            }
            "gate_failed" | "returned" => {
                // Back to its agent with the gate's output (or what to fix) to read.
                feature.status = FeatureStatus::InProgress;
                feature.merge_note = ev.str_attr("merge.reason").map(str::to_owned);
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            "conflicted" => {
                feature.status = FeatureStatus::Conflicted;
                feature.conflicts = ev.list_attr("merge.conflicts");
                feature.merge_note = None;
                // Back to its agent: the coordinator's move, not an agent report.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            "merged" => {
                feature.status = FeatureStatus::Completed;
                feature.assigned_agent = None;
                feature.conflicts.clear();
                feature.merge_note = None;
                feature.merged_commit = ev.str_attr("merge.commit").map(str::to_owned);
                feature.merged_by = Some(agent_id.to_owned());
                feature.merged_at = Some(ev.time);
                if let Some(wt) = feature
                    .worktree_path
                    .as_ref()
                    .and_then(|p| self.worktrees.get_mut(p))
                {
                    wt.status = WorktreeStatus::Completed;
                    wt.agent_id = None;
                    wt.since = ev.time;
                }
                // The agent passes finished → idle (or back to work on what it still holds).
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.assignments.retain(|a| a != name);
                    agent.progress = Progress::default();
                    agent.state = if agent.assignments.is_empty() {
                        AgentState::Idle
                    } else {
                        AgentState::Working
                    };
                }
            }
            other => return Err(format!("unknown merge.result {other:?}")),
        }
        if result != "started" {
            feature.merge_from = None;
        }
        self.tally.moved(&feature.requires, was, feature.status);
        Ok(())
    }
}

/// What an agent in error is told when it reports again: why, and how it comes back.
fn in_error(agent: &Agent) -> String {
    let why = match agent.error.as_ref().and_then(|e| e.silent_seconds) {
        Some(silent) => format!(
            "its lease expired after {silent}s of silence and its features went back to the queue"
        ),
        None => "it reported error".to_string(),
    };
    format!(
        "agent {} is in error ({why}); it comes back only through `spanfold agents reset {}`",
        agent.id, agent.id
    )
}

fn illegal(from: AgentState, to: AgentState) -> String {
    let allowed: Vec<&str> = from.next_states().iter().map(|s| s.as_str()).collect();
    let hint = match from {
        AgentState::Error => "an agent in error comes back only through `agents reset`".to_string(),
        AgentState::Idle => {
            "an idle agent becomes claiming when the coordinator assigns it a feature".to_string()
        }
        _ => format!("{} may become {}", from.as_str(), allowed.join(" or ")),
    };
    format!(
        "illegal transition {} → {}: {hint}",
        from.as_str(),
        to.as_str()
    )
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AnyValue, Resource, Span, string_array};

    /// Builds events without files, network or clock: seq and time count up by one.
    #[derive(Default)]
    struct Script {
        spans: Vec<Span>,
    }

    impl Script {
        fn span(&mut self, name: &str, attrs: &[(&str, AnyValue)]) -> &mut Self {
            let n = self.spans.len() as u8;
            let mut s = Span::new([n; 16], [n; 8], name, 0);
            for (k, v) in attrs {
                s = s.with(k, v.clone());
            }
            self.spans.push(s);
            self
        }
        fn fold(&self) -> View {
            let resource = Resource::default();
            View::fold(self.spans.iter().enumerate().map(|(i, span)| Event {
                seq: i as u64 + 1,
                time: i as u64 + 1,
                span,
                resource: &resource,
            }))
        }
    }

    fn s(v: &str) -> AnyValue {
        AnyValue::String(v.into())
    }

    fn registered() -> Script {
        let mut sc = Script::default();
        sc.span(
            "agent.registration",
            &[
                ("agent.id", s("a1")),
                ("agent.languages", string_array(["python"])),
                ("agent.max_concurrent_features", AnyValue::Int(2)),
            ],
        )
        .span("feature.request", &[("feature.name", s("f1"))]);
        sc
    }

    fn assign(sc: &mut Script, agent: &str, feature: &str) {
        sc.span(
            "agent.feature_assignment",
            &[
                ("agent.id", s(agent)),
                ("feature.name", s(feature)),
                ("worktree.path", s(&format!("/wt/{feature}"))),
                ("worktree.branch", s(&format!("spanfold/{feature}"))),
            ],
        );
    }

    #[test]
    fn registration_and_request_build_the_view() {
        let v = registered().fold();
        let a = &v.agents["a1"];
        assert_eq!(a.state, AgentState::Idle);
        assert_eq!(a.max_concurrent_features, 2);
        assert!(a.capabilities.languages.contains("python"));
        assert_eq!(v.features["f1"].status, FeatureStatus::Queued);
        assert_eq!(v.features["f1"].priority, Priority::Medium);
        assert_eq!(v.as_of, AsOf { seq: 2, time: 2 });
    }

    #[test]
    fn comma_separated_lists_are_accepted() {
        let mut sc = Script::default();
        sc.span(
            "agent.registration",
            &[
                ("agent.id", s("a1")),
                ("agent.languages", s("Python, rust")),
            ],
        );
        let v = sc.fold();
        let langs: Vec<_> = v.agents["a1"].capabilities.languages.iter().collect();
        assert_eq!(langs, ["python", "rust"]);
    }

    #[test]
    fn illegal_transition_changes_nothing_and_is_an_anomaly() {
        let mut sc = registered();
        let before = sc.fold();
        sc.span(
            "agent.work_progress",
            &[("agent.id", s("a1")), ("agent.state", s("submitting"))],
        );
        let mut after = sc.fold();
        // Any span from an agent shows it is alive (and renews its lease), and the anomaly is
        // counted on it; nothing else changes.
        assert_eq!(after.agents["a1"].last_activity, 3);
        assert_eq!(after.agents["a1"].anomalies, 1);
        if let Some(a) = after.agents.get_mut("a1") {
            a.last_activity = before.agents["a1"].last_activity;
            a.anomalies = before.agents["a1"].anomalies;
        }
        assert_eq!(after.agents, before.agents);
        assert_eq!(after.features, before.features);
        assert_eq!(after.anomalies.len(), 1);
        assert!(
            after.anomalies[0]
                .reason
                .contains("illegal transition idle → submitting"),
            "{}",
            after.anomalies[0].reason
        );
        assert_eq!(after.anomalies[0].agent_id.as_deref(), Some("a1"));
    }

    #[test]
    fn full_lifecycle_moves_agent_and_feature_together() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Claiming);
        assert_eq!(v.features["f1"].status, FeatureStatus::Assigned);
        for (state, status) in [
            ("working", FeatureStatus::InProgress),
            ("validating", FeatureStatus::Validating),
        ] {
            sc.span(
                "agent.work_progress",
                &[("agent.id", s("a1")), ("agent.state", s(state))],
            );
            assert_eq!(sc.fold().features["f1"].status, status);
        }
        sc.span(
            "agent.validation",
            &[("agent.id", s("a1")), ("validation.result", s("passed"))],
        );
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Submitting);
        assert_eq!(v.features["f1"].status, FeatureStatus::Merging);
        // Only the merge completes the feature and frees the agent.
        let merge = |result: &str| {
            vec![
                ("merge.result", s(result)),
                ("agent.id", s("a1")),
                ("feature.name", s("f1")),
                ("worktree.branch", s("spanfold/f1")),
                ("merge.base_branch", s("main")),
                ("merge.conflicts", s("src/lib.rs")),
            ]
        };
        sc.span("coordination.feature_merge", &merge("conflicted"));
        let v = sc.fold();
        assert_eq!(v.features["f1"].status, FeatureStatus::Conflicted);
        assert_eq!(v.features["f1"].conflicts, ["src/lib.rs"]);
        assert_eq!(v.agents["a1"].state, AgentState::Working);
        sc.span(
            "agent.validation",
            &[("agent.id", s("a1")), ("validation.result", s("passed"))],
        )
        .span("coordination.feature_merge", &merge("merged"));
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Idle);
        assert!(v.agents["a1"].assignments.is_empty());
        assert_eq!(v.features["f1"].status, FeatureStatus::Completed);
        assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
    }

    #[test]
    fn error_needs_a_reset_which_requeues_and_keeps_the_worktree() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        sc.span(
            "worktree.lifecycle",
            &[
                ("worktree.action", s("created")),
                ("agent.id", s("a1")),
                ("feature.name", s("f1")),
                ("worktree.path", s("/wt/f1")),
                ("worktree.branch", s("spanfold/f1")),
            ],
        )
        .span(
            "agent.work_progress",
            &[("agent.id", s("a1")), ("agent.state", s("error"))],
        )
        .span(
            "agent.work_progress",
            &[("agent.id", s("a1")), ("agent.state", s("idle"))],
        );
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Error);
        assert!(v.anomalies[0].reason.contains("agents reset"));
        sc.span("agent.reset", &[("agent.id", s("a1"))]);
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Idle);
        assert_eq!(v.features["f1"].status, FeatureStatus::Queued);
        assert_eq!(v.worktrees["/wt/f1"].status, WorktreeStatus::Abandoned);
        assert_eq!(v.features["f1"].worktree_path.as_deref(), Some("/wt/f1"));
    }

    #[test]
    fn failed_worktree_creation_requeues_with_the_error() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        sc.span(
            "worktree.lifecycle",
            &[
                ("worktree.action", s("create_failed")),
                ("agent.id", s("a1")),
                ("feature.name", s("f1")),
                ("worktree.path", s("/wt/f1")),
                ("worktree.branch", s("spanfold/f1")),
                ("worktree.error", s("disk full")),
            ],
        );
        let v = sc.fold();
        assert_eq!(v.agents["a1"].state, AgentState::Idle);
        assert_eq!(v.features["f1"].status, FeatureStatus::Queued);
        assert!(
            v.features["f1"]
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("disk full")
        );
        assert!(v.worktrees.is_empty());
    }

    #[test]
    fn a_feature_is_never_assigned_twice() {
        let mut sc = registered();
        sc.span("agent.registration", &[("agent.id", s("a2"))]);
        assign(&mut sc, "a1", "f1");
        assign(&mut sc, "a2", "f1");
        let v = sc.fold();
        assert_eq!(v.features["f1"].assigned_agent.as_deref(), Some("a1"));
        assert!(v.agents["a2"].assignments.is_empty());
        assert_eq!(v.counters.anomalies, 1);
    }

    #[test]
    fn an_unknown_merge_result_changes_nothing() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        for state in ["working", "validating", "submitting"] {
            sc.span(
                "agent.work_progress",
                &[
                    ("agent.id", s("a1")),
                    ("agent.state", s(state)),
                    ("feature.name", s("f1")),
                ],
            );
        }
        let merge = |sc: &mut Script, result: &str| {
            sc.span(
                "coordination.feature_merge",
                &[
                    ("merge.result", s(result)),
                    ("agent.id", s("a1")),
                    ("feature.name", s("f1")),
                    ("merge.from", s("0123456789abcdef0123456789abcdef01234567")),
                ],
            );
        };
        merge(&mut sc, "started");
        let before = sc.fold();
        assert!(before.features["f1"].merge_from.is_some());
        merge(&mut sc, "bogus");
        let after = sc.fold();
        assert_eq!(after.counters.anomalies, before.counters.anomalies + 1);
        assert_eq!(
            after.features["f1"], before.features["f1"],
            "merge_from kept"
        );
    }

    #[test]
    fn an_idle_report_that_crossed_its_assignment_is_a_heartbeat() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        let assigned = sc.fold();
        assert_eq!(assigned.agents["a1"].state, AgentState::Claiming);
        sc.span(
            "agent.work_progress",
            &[("agent.id", s("a1")), ("agent.state", s("idle"))],
        );
        let v = sc.fold();
        assert_eq!(v.counters.anomalies, 0, "{:?}", v.anomalies);
        let a1 = &v.agents["a1"];
        assert_eq!(a1.state, AgentState::Claiming);
        assert_eq!(
            a1.last_activity, assigned.agents["a1"].last_activity,
            "the lease runs on"
        );
        // Anything else illegal from claiming still is.
        sc.span(
            "agent.work_progress",
            &[("agent.id", s("a1")), ("agent.state", s("submitting"))],
        );
        assert_eq!(sc.fold().counters.anomalies, 1);
    }

    #[test]
    fn unknown_agents_and_unregistered_spans() {
        let mut sc = registered();
        sc.span(
            "agent.work_progress",
            &[("agent.id", s("ghost")), ("agent.state", s("working"))],
        )
        .span("tool.call", &[("agent.id", s("a1"))]);
        let v = sc.fold();
        assert!(v.anomalies[0].reason.contains("ghost is not registered"));
        assert_eq!(v.counters.unregistered_spans, 1);
        assert_eq!(v.agents["a1"].last_activity, 4);
    }

    #[test]
    fn a_held_feature_may_change_only_its_priority() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        // Anything else changed with it: an anomaly, nothing moves.
        sc.span(
            "feature.request",
            &[
                ("feature.name", s("f1")),
                ("feature.priority", s("high")),
                ("feature.description", s("something else")),
            ],
        );
        let v = sc.fold();
        assert_eq!(v.features["f1"].priority, Priority::Medium);
        assert!(
            v.anomalies[0]
                .reason
                .contains("only its priority can change")
        );
        // The feature repeated as it is, with another priority: the priority changes.
        sc.span(
            "feature.request",
            &[("feature.name", s("f1")), ("feature.priority", s("high"))],
        );
        let v = sc.fold();
        assert_eq!(v.features["f1"].priority, Priority::High);
        assert_eq!(v.features["f1"].status, FeatureStatus::Assigned);
        assert_eq!(v.counters.anomalies, 1);
    }

    #[test]
    fn a_refused_report_of_error_leaves_no_error_behind() {
        // Found by the fuzzer: the reason was set before the percentage was refused.
        let mut sc = registered();
        let before = sc.fold();
        sc.span(
            "agent.work_progress",
            &[
                ("agent.id", s("a1")),
                ("agent.state", s("error")),
                ("work.progress_percentage", AnyValue::Double(f64::NAN)),
            ],
        );
        let after = sc.fold();
        assert_eq!(after.counters.anomalies, 1);
        assert_eq!(after.agents["a1"].state, before.agents["a1"].state);
        assert_eq!(after.agents["a1"].error, None);
    }

    #[test]
    fn reopen_and_acknowledge() {
        let mut sc = registered();
        assign(&mut sc, "a1", "f1");
        sc.span("feature.reopen", &[("feature.name", s("f1"))]);
        assert!(
            sc.fold().anomalies[0]
                .reason
                .contains("only a cancelled or completed")
        );
        sc.span("feature.cancel", &[("feature.name", s("f1"))]);
        sc.span(
            "feature.reopen",
            &[("feature.name", s("f1")), ("reopen.reason", s("oops"))],
        );
        let v = sc.fold();
        assert_eq!(v.features["f1"].status, FeatureStatus::Queued);
        assert_eq!(
            v.features["f1"].last_error.as_deref(),
            Some("reopened: oops")
        );
        let seq = v.anomalies[0].seq;
        sc.span(
            "anomaly.acknowledge",
            &[("anomaly.seq", AnyValue::Int(seq as i64))],
        );
        let v = sc.fold();
        assert!(v.anomalies.is_empty());
        assert_eq!((v.counters.anomalies, v.counters.acknowledged), (1, 1));
        sc.span(
            "anomaly.acknowledge",
            &[("anomaly.seq", AnyValue::Int(seq as i64))],
        );
        assert!(sc.fold().anomalies[0].reason.contains("no anomaly listed"));
        sc.span(
            "anomaly.acknowledge",
            &[("anomaly.all", AnyValue::Bool(true))],
        );
        let v = sc.fold();
        assert!(v.anomalies.is_empty());
        assert_eq!(v.counters.acknowledged, 2);
    }

    #[test]
    fn feature_names_that_git_cannot_hold_together_are_refused() {
        let mut sc = registered();
        sc.span("feature.request", &[("feature.name", s("auth"))]);
        sc.span("feature.request", &[("feature.name", s("auth/login"))]);
        sc.span("feature.request", &[("feature.name", s("ui/form"))]);
        sc.span("feature.request", &[("feature.name", s("ui"))]);
        sc.span("feature.request", &[("feature.name", s("ui-x/form"))]);
        let v = sc.fold();
        assert!(
            v.anomalies[0]
                .reason
                .contains("cannot sit beside feature auth"),
            "{:?}",
            v.anomalies
        );
        assert!(
            v.anomalies[1]
                .reason
                .contains("cannot sit beside feature ui/form"),
            "{:?}",
            v.anomalies
        );
        assert!(v.features.contains_key("ui-x/form"));
        assert_eq!(v.anomalies.len(), 2);
    }
}
