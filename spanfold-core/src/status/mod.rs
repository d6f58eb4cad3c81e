//! The status document (`agent-status`, `/api/status`; its fields are the contract README.md
//! documents): a pure function of the view. Everything in it is sorted
//! and derived from the log alone, so the same log always prints the same bytes.

mod queue;

pub use queue::{QueueDoneJson, QueueEntryJson};

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::UnixNanos;
use crate::policy::{self, Matcher};
use crate::reducer::{
    Agent, AgentState, Anomaly, Capabilities, Complexity, Config, Counters, Feature, FeatureStatus,
    Priority, View, Worktree, WorktreeStatus,
};
use crate::usage::UsageJson;
use crate::vocab::attr;

#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// Only this agent in `agents`, and only the features it holds in `features` (the summary
    /// still covers everyone).
    pub agent: Option<String>,
    /// Capabilities of agents and requirements of features.
    pub details: bool,
    /// At most this many features of each status in `features` (the summary still counts them
    /// all): a board's answer stays small however many features a log has completed.
    pub per_status: Option<usize>,
    /// Only features in these statuses in `features` (empty: all).
    pub statuses: Vec<FeatureStatus>,
}

/// Feature statuses from a comma-separated list (`queued,in_progress`); empty gives none.
pub fn parse_statuses(list: &str) -> Result<Vec<FeatureStatus>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            FeatureStatus::parse(s).ok_or_else(|| {
                let known: Vec<&str> = FeatureStatus::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown feature status {s:?}; use {}", known.join(", "))
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub coordination_status: CoordinationStatus,
    /// What pulls `coordination_health` below 1, in words; empty when it is 1.
    #[serde(default)]
    pub health_notes: Vec<String>,
    pub as_of: AsOfJson,
    pub config: Option<Config>,
    pub agents: Vec<AgentJson>,
    pub features: Vec<FeatureJson>,
    pub worktrees: Vec<WorktreeJson>,
    pub anomalies: Vec<Anomaly>,
    pub counters: Counters,
    /// Present once an agent has sent OTLP logs or metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryJson>,
    /// The features waiting for their merge, in the order they are merged (higher priority
    /// first, then the earlier submission); absent when none waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_queue: Vec<QueueEntryJson>,
    /// The latest features to leave the merge queue, newest first: `merged`, or `failed`
    /// (sent back to its agent) with why; absent when none has yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_queue_done: Vec<QueueDoneJson>,
    /// The barrier paths in force (`spanfold.barrierPaths`, as recorded); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barrier_paths: Vec<String>,
}

/// The seed's summary, field for field, so existing `jq` scripts keep working.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoordinationStatus {
    pub total_agents: usize,
    pub active_agents: usize,
    pub idle_agents: usize,
    pub features_in_queue: usize,
    pub features_in_progress: usize,
    pub features_completed: usize,
    pub total_worktrees: usize,
    pub agents_by_state: BTreeMap<String, usize>,
    pub worktrees_by_status: BTreeMap<String, usize>,
    pub features_by_status: BTreeMap<String, usize>,
    pub coordination_health: f64,
    /// Tokens and dollars of every LLM request in the log; only once there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsOfJson {
    pub seq: u64,
    pub time: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignmentJson {
    pub feature_name: String,
    /// The feature's status: an agent has work to do unless it is merging.
    pub status: FeatureStatus,
    pub worktree_path: Option<String>,
    pub branch_name: Option<String>,
    /// For a remote agent: the remote its branch is on (there is no local worktree then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentJson {
    pub agent_id: String,
    pub state: AgentState,
    pub current_feature: Option<String>,
    pub worktree_path: Option<String>,
    pub assignments: Vec<AssignmentJson>,
    pub last_activity: String,
    /// When the lease runs out if the agent stays silent (RFC 3339); null when it holds no work
    /// the lease covers. The lease left is this minus the moment looked at.
    pub lease_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<f64>,
    /// Files and lines the agent last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_modified: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_added: Option<i64>,
    /// The last message it sent (`agent.communication`); `agents messages ID` lists them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageJson>,
    /// It works on another host: its features' branches are on the remote.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
    /// Its spans that the fold could not apply (the anomalies naming it).
    #[serde(default)]
    pub anomalies: u64,
    /// Its spans a server refused at the door (not in the log), since that server started;
    /// only in a server's status, and only for an agent that had any refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_spans: Option<u64>,
    /// Why the agent is in error and how it comes back; only while it is in error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesJson>,
    /// What the agent's own telemetry (Claude Code's events, …) has shown; only once it sent
    /// some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<AgentTelemetryJson>,
    /// Tokens and dollars of its LLM requests; only once there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
    /// Its daily budget; only when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<DayBudgetJson>,
}

/// An agent's daily budget in the status: what it spent on the latest day it spent, and
/// whether it is over (no work until a later day or a higher budget).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DayBudgetJson {
    pub usd_per_day: f64,
    /// `YYYY-MM-DD` (UTC) of `spent_usd`; null before it spent anything.
    pub day: Option<String>,
    pub spent_usd: f64,
    /// ok, warning or exceeded.
    pub state: String,
}

/// A feature's budget in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetJson {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
    pub state: String,
}

/// An agent's own telemetry in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentTelemetryJson {
    /// The profile its records matched (`claude`, `codex`, `gemini`, `genai`), or `otlp`.
    pub source: String,
    /// Its last recognised record: kind, name, tool, time.
    pub last_activity: Option<LastSeenJson>,
    pub tool_calls: u64,
    pub tool_failures: u64,
    pub llm_requests: u64,
    pub errors: u64,
    pub commits: u64,
    /// Its process under `spanfold agents run`, as last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessJson {
    /// started, running or exited.
    pub state: crate::fact::ProcessEvent,
    pub feature: Option<String>,
    pub command: Option<String>,
    pub pid: Option<i64>,
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastSeenJson {
    pub kind: crate::profiles::Kind,
    pub name: String,
    pub tool: Option<String>,
    pub at: String,
}

/// The agents' telemetry in the log, as the status shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryJson {
    pub log_records: u64,
    pub metrics: u64,
    /// Records no rule tied to a registered agent, by the service that sent them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unattributed: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageJson {
    pub time: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapabilitiesJson {
    #[serde(flatten)]
    pub items: Capabilities,
    pub max_concurrent_features: u32,
    pub preferred_complexity: Option<Complexity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureJson {
    pub name: String,
    pub priority: Priority,
    pub estimated_effort: u32,
    pub status: FeatureStatus,
    pub assigned_agent: Option<String>,
    pub wait_reason: Option<String>,
    /// Its local worktree; null for a remote agent's feature (see `remote_url`).
    pub worktree_path: Option<String>,
    pub branch_name: Option<String>,
    /// For a remote agent's feature: the remote its branch was pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    /// Paths of the last merge conflict (empty unless the feature conflicted).
    pub conflicts: Vec<String>,
    /// The base branch's tip once merged.
    pub merge_commit: Option<String>,
    /// Whose work was merged, and when (RFC 3339): only once merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<String>,
    /// The last merge attempt's word, while it matters: why it waits, or the failed merge
    /// gate's output.
    pub merge_note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<FeatureDetails>,
    /// What its agents' own records showed of the work on it (tool calls, LLM requests,
    /// errors, commits); only once there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<crate::reducer::ActivityCounts>,
    /// Tokens and dollars its agents' LLM requests spent on it; only once there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
    /// What it may spend, and where its spending stands (`ok`, `warning` past 80%, `exceeded`:
    /// held); only when it has a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetJson>,
    /// The conflict radar's current forecasts for it that are not clear: with the base branch
    /// (`with` null) or another active feature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflict_risk: Vec<RiskJson>,
}

/// One forecast of the conflict radar, seen from one of its two sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RiskJson {
    /// The other feature; null for the base branch.
    pub with: Option<String>,
    /// `conflict` or `overlap`.
    pub kind: String,
    pub paths: Vec<String>,
    /// The conflicting hunks' lines in the merged file, `path:first-last`.
    pub hunks: Vec<String>,
}

impl RiskJson {
    pub fn of(view: &View, name: &str) -> Vec<RiskJson> {
        view.risks_of(name)
            .map(|r| RiskJson {
                with: r.seen_from(name).flatten().map(str::to_owned),
                kind: r.kind().as_str().to_owned(),
                paths: r.paths.clone(),
                hunks: r.hunks.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureDetails {
    pub description: String,
    pub requires: Capabilities,
    pub requirements: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    /// Its scope: the paths (globs) it said it will change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_overlap: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorktreeJson {
    pub path: String,
    pub branch_name: String,
    pub status: WorktreeStatus,
    pub agent_id: Option<String>,
    pub feature_name: String,
    /// Why a merged feature's worktree was kept.
    pub note: Option<String>,
    /// Its block of ports while it is active: `SPANFOLD_PORT` is `spanfold.portBase` (20000)
    /// plus this times `spanfold.portBlock` (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_slot: Option<u32>,
    /// For a remote agent's feature: the remote its branch was pushed to; nothing is checked
    /// out at `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
}

/// RFC 3339 with milliseconds, UTC. Formatting only: no clock is read.
pub fn rfc3339(nanos: UnixNanos) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
        .to_string()
}

/// Health, 0..1: the mean of the share of agents not in error and the share of open features
/// that some registered agent is able to take. 1.0 when there is nothing to judge (no agents,
/// or no open feature: all agents idle with nothing to do is healthy).
pub fn health(view: &View, matcher: &Matcher<'_>) -> f64 {
    health_with_notes(view, matcher).0
}

/// The health and, in words, what pulls it below 1.
pub fn health_with_notes(view: &View, matcher: &Matcher<'_>) -> (f64, Vec<String>) {
    let mut notes = Vec::new();
    let agents = view.agents.len();
    let errors = view
        .agents
        .values()
        .filter(|a| a.state == AgentState::Error)
        .count();
    let agent_part = if agents == 0 {
        1.0
    } else {
        1.0 - errors as f64 / agents as f64
    };
    if errors > 0 {
        let names: Vec<&str> = view
            .agents
            .values()
            .filter(|a| a.state == AgentState::Error)
            .take(5)
            .map(|a| a.id.as_str())
            .collect();
        notes.push(format!(
            "{errors} of {agents} agent{} in error ({}{}): `agents reset ID` brings one back",
            if agents == 1 { " is" } else { "s are" },
            names.join(", "),
            if errors > names.len() { ", …" } else { "" }
        ));
    }
    // Open features counted by requirement set as the fold goes: each set is checked against
    // the agents once, and no feature is visited.
    let mut req = Vec::new();
    let (mut open, mut placeable) = (0usize, 0usize);
    for (requires, &n) in &view.tally.open_by_requires {
        open += n;
        if matcher.requires_into(requires, &mut req)
            && (0..matcher.agents.len()).any(|i| matcher.has_all(i, &req))
        {
            placeable += n;
        }
    }
    let feature_part = if open == 0 {
        1.0
    } else {
        placeable as f64 / open as f64
    };
    if placeable < open {
        let stuck = open - placeable;
        notes.push(format!(
            "{stuck} of {open} open feature{} no capable agent: register one with the capabilities they need (agent-status shows what each waits for)",
            if open == 1 { " has" } else { "s have" }
        ));
    }
    let score = (((agent_part + feature_part) / 2.0) * 1000.0).round() / 1000.0;
    (score, notes)
}

/// The status document of `view`, as `options` narrows it.
pub fn build(view: &View, options: &StatusOptions) -> Status {
    let matcher = Matcher::new(view);
    let (health, health_notes) = health_with_notes(view, &matcher);
    let agents = view
        .agents
        .values()
        .filter(|a| options.agent.as_deref().is_none_or(|id| id == a.id))
        .map(|a| agent_json(view, a, options.details))
        .collect();
    let features = listed_features(view, options)
        .into_iter()
        .map(|f| feature_json(view, &matcher, f, options.details))
        .collect();
    let worktrees = view.worktrees.values().map(worktree_json).collect();
    Status {
        coordination_status: summary(view, health),
        health_notes,
        as_of: AsOfJson {
            seq: view.as_of.seq,
            time: (view.as_of.seq > 0).then(|| rfc3339(view.as_of.time)),
        },
        config: view.config.clone(),
        agents,
        features,
        worktrees,
        anomalies: view.anomalies.iter().cloned().collect(),
        counters: view.counters.clone(),
        telemetry: (view.telemetry.log_records + view.telemetry.metrics > 0).then(|| {
            TelemetryJson {
                log_records: view.telemetry.log_records,
                metrics: view.telemetry.metrics,
                unattributed: view.telemetry.unattributed.clone(),
            }
        }),
        merge_queue: queue::entries(view),
        merge_queue_done: queue::done(view),
        barrier_paths: view.barrier_paths.clone(),
    }
}

/// The summary: agents, worktrees and features counted, and the health score.
fn summary(view: &View, health: f64) -> CoordinationStatus {
    let mut agents_by_state: BTreeMap<String, usize> = AgentState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for a in view.agents.values() {
        *agents_by_state
            .entry(a.state.as_str().to_owned())
            .or_default() += 1;
    }
    let mut worktrees_by_status: BTreeMap<String, usize> = WorktreeStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for w in view.worktrees.values() {
        *worktrees_by_status
            .entry(w.status.as_str().to_owned())
            .or_default() += 1;
    }
    // Counts kept by the fold: at 100,000 features one pass over them costs ~10 ms.
    let by_status = &view.tally.by_status;
    let counted = |pred: fn(FeatureStatus) -> bool| -> usize {
        FeatureStatus::ALL
            .iter()
            .filter(|s| pred(**s))
            .map(|s| by_status[*s as usize])
            .sum()
    };
    let features_by_status: BTreeMap<String, usize> = FeatureStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), by_status[*s as usize]))
        .collect();
    CoordinationStatus {
        total_agents: view.agents.len(),
        active_agents: view.agents.values().filter(|a| a.state.is_active()).count(),
        idle_agents: agents_by_state["idle"],
        features_in_queue: by_status[FeatureStatus::Queued as usize],
        features_in_progress: counted(FeatureStatus::is_in_progress),
        features_completed: by_status[FeatureStatus::Completed as usize],
        total_worktrees: view.worktrees.len(),
        agents_by_state,
        worktrees_by_status,
        features_by_status,
        coordination_health: health,
        usage: (!view.usage.ledger.total.is_empty()).then(|| (&view.usage.ledger.total).into()),
    }
}

/// The features `options` lists, in name order: the agent's or everyone's, in the statuses
/// asked for, at most `per_status` of each status.
fn listed_features<'v>(view: &'v View, options: &StatusOptions) -> Vec<&'v Feature> {
    // With an agent: the features it holds, looked up rather than found among all of them.
    let listed: Vec<&Feature> = match options.agent.as_deref() {
        Some(id) => view
            .agents
            .get(id)
            .map(|a| {
                let mut held: Vec<&Feature> = a
                    .assignments
                    .iter()
                    .filter_map(|name| view.features.get(name))
                    .collect();
                held.sort_by(|x, y| x.name.cmp(&y.name));
                held
            })
            .unwrap_or_default(),
        None => view.features.values().collect(),
    };
    let mut shown = [0usize; FeatureStatus::ALL.len()];
    listed
        .into_iter()
        .filter(|f| {
            if !options.statuses.is_empty() && !options.statuses.contains(&f.status) {
                return false;
            }
            let n = &mut shown[f.status as usize];
            *n += 1;
            options.per_status.is_none_or(|limit| *n <= limit)
        })
        .collect()
}

fn feature_json(view: &View, matcher: &Matcher<'_>, f: &Feature, details: bool) -> FeatureJson {
    FeatureJson {
        name: f.name.clone(),
        priority: f.priority,
        estimated_effort: f.estimated_effort,
        status: f.status,
        assigned_agent: f.assigned_agent.clone(),
        wait_reason: match f.status {
            FeatureStatus::Queued => Some(policy::wait_reason(view, matcher, f)),
            FeatureStatus::Merging => f.merge_note.clone(),
            FeatureStatus::Held => f.last_error.clone(),
            _ => None,
        },
        conflicts: f.conflicts.clone(),
        merge_commit: f.merged_commit.clone(),
        merged_by: f.merged_by.clone(),
        merged_at: f.merged_at.map(rfc3339),
        merge_note: f.merge_note.clone(),
        worktree_path: f
            .worktree_path
            .clone()
            .filter(|_| view.remote_of(f).is_none()),
        branch_name: f.branch_name.clone(),
        remote_url: view.remote_of(f).map(str::to_owned),
        details: details.then(|| FeatureDetails {
            description: f.description.clone(),
            requires: f.requires.clone(),
            requirements: f.requirements.clone(),
            acceptance_criteria: f.acceptance_criteria.clone(),
            paths: f.scopes.clone(),
            allow_overlap: f.allow_overlap,
        }),
        telemetry: view.telemetry.features.get(&f.name).copied(),
        usage: view.usage.ledger.features.get(&f.name).map(UsageJson::from),
        budget: view.usage.budgets.get(&f.name).map(|b| BudgetJson {
            usd: b
                .usd_nanos
                .map(|n| n as f64 / crate::usage::NANOS_PER_USD as f64),
            tokens: b.tokens,
            state: match (b.exceeded, b.warned) {
                (true, _) => "exceeded",
                (false, true) => "warning",
                _ => "ok",
            }
            .to_owned(),
        }),
        conflict_risk: RiskJson::of(view, &f.name),
    }
}

fn worktree_json(w: &Worktree) -> WorktreeJson {
    WorktreeJson {
        path: w.path.clone(),
        branch_name: w.branch_name.clone(),
        status: w.status,
        agent_id: w.agent_id.clone(),
        feature_name: w.feature_name.clone(),
        note: w.note.clone(),
        port_slot: (w.status == WorktreeStatus::Active && w.remote_url.is_none())
            .then_some(w.port_slot),
        remote_url: w.remote_url.clone(),
    }
}

fn agent_json(view: &View, a: &Agent, details: bool) -> AgentJson {
    let assignments: Vec<AssignmentJson> = a
        .assignments
        .iter()
        .map(|name| {
            let f = view.features.get(name);
            let remote_url = f.and_then(|f| view.remote_of(f)).map(str::to_owned);
            AssignmentJson {
                feature_name: name.clone(),
                status: f.map_or(FeatureStatus::Assigned, |f| f.status),
                worktree_path: f
                    .and_then(|f| f.worktree_path.clone())
                    .filter(|_| remote_url.is_none()),
                branch_name: f.and_then(|f| f.branch_name.clone()),
                remote_url,
            }
        })
        .collect();
    AgentJson {
        agent_id: a.id.clone(),
        state: a.state,
        current_feature: assignments.first().map(|x| x.feature_name.clone()),
        worktree_path: assignments.first().and_then(|x| x.worktree_path.clone()),
        assignments,
        last_activity: rfc3339(a.last_activity),
        lease_expires_at: policy::lease_deadline(view, a).map(rfc3339),
        progress_percentage: a.progress.percentage,
        files_modified: a.progress.files_modified,
        lines_added: a.progress.lines_added,
        last_message: a.last_message.as_ref().map(|(t, text)| MessageJson {
            time: rfc3339(*t),
            text: text.clone(),
        }),
        remote: a.remote,
        anomalies: a.anomalies,
        rejected_spans: None,
        error: (a.state == AgentState::Error).then(|| error_text(a)),
        capabilities: details.then(|| CapabilitiesJson {
            items: a.capabilities.clone(),
            max_concurrent_features: a.max_concurrent_features,
            preferred_complexity: a.preferred_complexity,
        }),
        telemetry: view
            .telemetry
            .agents
            .get(&a.id)
            .map(|t| AgentTelemetryJson {
                source: t.source.clone(),
                last_activity: t.last.as_ref().map(|l| LastSeenJson {
                    kind: l.kind,
                    name: l.name.clone(),
                    tool: l.tool.clone(),
                    at: rfc3339(l.at),
                }),
                tool_calls: t.counts.tool_calls,
                tool_failures: t.counts.tool_failures,
                llm_requests: t.counts.llm_requests,
                errors: t.counts.errors,
                commits: t.counts.commits,
                process: t.process.as_ref().map(|p| ProcessJson {
                    state: p.event,
                    feature: p.feature.clone(),
                    command: p.command.clone(),
                    pid: p.pid,
                    since: rfc3339(p.since),
                    exit_code: p.exit_code,
                    signal: p.signal.clone(),
                    outcome: p.outcome.clone(),
                }),
            }),
        usage: view
            .usage
            .ledger
            .agents
            .get(&a.id)
            .map(|u| UsageJson::from(&u.total)),
        budget: day_budget_json(view, &a.id),
    }
}

fn day_budget_json(view: &View, agent: &str) -> Option<DayBudgetJson> {
    let b = view.usage.agent_budgets.get(agent)?;
    let spent = view
        .usage
        .ledger
        .agents
        .get(agent)
        .map(|a| a.today)
        .filter(|d| d.cost_nanos > 0);
    let usd = |n: u64| n as f64 / crate::usage::NANOS_PER_USD as f64;
    let state = match (b.exceeded_on, b.warned_on) {
        (Some(_), _) => "exceeded",
        (None, Some(day)) if spent.is_some_and(|s| s.day == day) => "warning",
        _ => "ok",
    };
    Some(DayBudgetJson {
        usd_per_day: usd(b.usd_nanos),
        day: spent.map(|s| crate::usage::day_name(s.day)),
        spent_usd: spent.map_or(0.0, |s| usd(s.cost_nanos)),
        state: state.to_owned(),
    })
}

/// Why an agent is in error, and what brings it back.
fn error_text(a: &Agent) -> String {
    let why = match &a.error {
        Some(e) => match e.silent_seconds {
            Some(silent) => format!(
                "its lease expired at {} after {silent}s of silence; its features went back to the queue, their worktrees kept",
                rfc3339(e.since)
            ),
            None => format!("it reported error at {}", rfc3339(e.since)),
        },
        None => "it is in error".to_string(),
    };
    format!("{why}. `spanfold agents reset {}` brings it back", a.id)
}

/// One event as a JSON object, for `/api/events`: its place, its span and the agent it names.
pub fn event_json(ev: &crate::model::Event<'_>) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = ev
        .span
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
        .collect();
    serde_json::json!({
        "seq": ev.seq,
        "time": rfc3339(ev.time),
        "name": ev.span.name,
        "trace_id": crate::model::hex(&ev.span.trace_id),
        "span_id": crate::model::hex(&ev.span.span_id),
        "agent_id": ev.str_attr(attr::AGENT_ID),
        "attributes": attributes,
    })
}

fn value_json(v: &crate::model::AnyValue) -> serde_json::Value {
    use crate::model::AnyValue;
    match v {
        AnyValue::String(s) => serde_json::Value::from(s.as_str()),
        AnyValue::Bool(b) => serde_json::Value::from(*b),
        AnyValue::Int(i) => serde_json::Value::from(*i),
        AnyValue::Double(d) => serde_json::Value::from(*d),
        AnyValue::Array(items) => items.iter().map(value_json).collect(),
        AnyValue::KvList(kvs) => kvs
            .iter()
            .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        AnyValue::Bytes(b) => serde_json::Value::from(crate::model::hex(b)),
        AnyValue::Empty => serde_json::Value::Null,
    }
}
