//! What changed: between the view before and after one event (`replay --step`, `history`), or
//! between two views (`diff`). Pure: snapshots of the entities an event can touch, compared.
//!
//! An event touches the agent it names, the feature it names, the agent holding that feature,
//! the features held by a touched agent, and the worktree it names. That covers every rule of
//! the reducer: a cancel names the feature but moves its agent, a lease verdict names the agent
//! but requeues its features.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::hex;
use crate::model::{Event, UnixNanos};
use crate::reducer::View;
use crate::vocab::{attr, span};

/// One field of one entity, before and after. `from: None` is "did not exist".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// agent | feature | worktree | anomaly
    pub entity: String,
    pub id: String,
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Change {
    fn new(entity: &str, id: &str, field: &str, from: Option<String>, to: Option<String>) -> Self {
        Change {
            entity: entity.to_owned(),
            id: id.to_owned(),
            field: field.to_owned(),
            from,
            to,
        }
    }

    /// `agent-1 state idle → claiming`, for one-line output.
    pub fn describe(&self) -> String {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        if self.entity == "anomaly" {
            return format!("anomaly: {}", side(&self.to));
        }
        format!(
            "{} {} {}→{}",
            self.id,
            self.field,
            side(&self.from),
            side(&self.to)
        )
    }
}

/// The fields of an agent a person follows over time.
#[derive(Debug, Clone, PartialEq)]
struct AgentSnap {
    state: String,
    features: String,
}

#[derive(Debug, Clone, PartialEq)]
struct FeatureSnap {
    status: String,
    agent: String,
    worktree: String,
    /// The conflict radar's current forecasts for it, in words.
    risk: String,
}

#[derive(Debug, Clone, PartialEq)]
struct WorktreeSnap {
    status: String,
    agent: String,
    locked: bool,
}

fn agent_snap(view: &View, id: &str) -> Option<AgentSnap> {
    view.agents.get(id).map(|a| AgentSnap {
        state: a.state.as_str().to_owned(),
        features: a.assignments.join(","),
    })
}

fn feature_snap(view: &View, name: &str) -> Option<FeatureSnap> {
    view.features.get(name).map(|f| FeatureSnap {
        status: f.status.as_str().to_owned(),
        agent: f.assigned_agent.clone().unwrap_or_default(),
        worktree: f.worktree_path.clone().unwrap_or_default(),
        risk: risk_words(view, name),
    })
}

/// `conflict with base on a.rs; overlap with f2 on b.rs`: the feature's risks, as a person
/// reads them in `history`.
fn risk_words(view: &View, name: &str) -> String {
    view.risks_of(name)
        .map(|r| {
            let with = r.seen_from(name).flatten().unwrap_or("the base branch");
            format!(
                "{} with {with} on {}",
                r.kind().as_str(),
                r.paths.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn worktree_snap(view: &View, path: &str) -> Option<WorktreeSnap> {
    view.worktrees.get(path).map(|w| WorktreeSnap {
        status: w.status.as_str().to_owned(),
        agent: w.agent_id.clone().unwrap_or_default(),
        locked: w.locked,
    })
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn compare_agent(id: &str, a: Option<&AgentSnap>, b: Option<&AgentSnap>, out: &mut Vec<Change>) {
    match (a, b) {
        (None, Some(b)) => {
            out.push(Change::new(
                "agent",
                id,
                "state",
                None,
                Some(b.state.clone()),
            ));
        }
        (Some(a), None) => {
            out.push(Change::new(
                "agent",
                id,
                "state",
                Some(a.state.clone()),
                None,
            ));
        }
        (Some(a), Some(b)) => {
            if a.state != b.state {
                out.push(Change::new(
                    "agent",
                    id,
                    "state",
                    Some(a.state.clone()),
                    Some(b.state.clone()),
                ));
            }
            if a.features != b.features {
                out.push(Change::new(
                    "agent",
                    id,
                    "features",
                    opt(&a.features),
                    opt(&b.features),
                ));
            }
        }
        (None, None) => {}
    }
}

fn compare_feature(
    name: &str,
    a: Option<&FeatureSnap>,
    b: Option<&FeatureSnap>,
    out: &mut Vec<Change>,
) {
    let empty = FeatureSnap {
        status: String::new(),
        agent: String::new(),
        worktree: String::new(),
        risk: String::new(),
    };
    if a.is_none() && b.is_none() {
        return;
    }
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    for (field, x, y) in [
        ("status", &a.status, &b.status),
        ("agent", &a.agent, &b.agent),
        ("worktree", &a.worktree, &b.worktree),
        ("risk", &a.risk, &b.risk),
    ] {
        if x != y {
            out.push(Change::new("feature", name, field, opt(x), opt(y)));
        }
    }
}

fn compare_worktree(
    path: &str,
    a: Option<&WorktreeSnap>,
    b: Option<&WorktreeSnap>,
    out: &mut Vec<Change>,
) {
    let lock = |w: &WorktreeSnap| if w.locked { "locked" } else { "unlocked" }.to_owned();
    match (a, b) {
        (None, None) => {}
        (a, b) => {
            let (sa, sb) = (a.map(|w| w.status.clone()), b.map(|w| w.status.clone()));
            if sa != sb {
                out.push(Change::new("worktree", path, "status", sa, sb));
            }
            let (aa, ab) = (a.and_then(|w| opt(&w.agent)), b.and_then(|w| opt(&w.agent)));
            if aa != ab {
                out.push(Change::new("worktree", path, "agent", aa, ab));
            }
            let (la, lb) = (a.map(lock), b.map(lock));
            if a.is_some() && b.is_some() && la != lb {
                out.push(Change::new("worktree", path, "lock", la, lb));
            }
        }
    }
}

/// What an event may change, snapshotted before it is applied.
pub struct Touched {
    agents: Vec<(String, Option<AgentSnap>)>,
    features: Vec<(String, Option<FeatureSnap>)>,
    worktrees: Vec<(String, Option<WorktreeSnap>)>,
    anomalies: u64,
}

impl Touched {
    /// Snapshots, in `view` as it is before `ev`, everything `ev` can change.
    pub fn before(view: &View, ev: &Event<'_>) -> Touched {
        let mut agents = BTreeSet::new();
        let mut features = BTreeSet::new();
        if let Some(id) = ev.str_attr(attr::AGENT_ID) {
            agents.insert(id.to_owned());
        }
        if let Some(name) = ev.str_attr(attr::FEATURE_NAME) {
            if let Some(holder) = view
                .features
                .get(name)
                .and_then(|f| f.assigned_agent.clone())
            {
                agents.insert(holder);
            }
            features.insert(name.to_owned());
        }
        // A forecast between two features changes the risks of both.
        if let Some(other) = ev.str_attr(attr::FORECAST_OTHER_FEATURE) {
            features.insert(other.to_owned());
        }
        for id in &agents {
            if let Some(a) = view.agents.get(id) {
                features.extend(a.assignments.iter().cloned());
            }
        }
        // The worktree the span names, and those of the features it touches (a cancel, reset,
        // lease verdict or merge changes them without naming them).
        let mut paths: BTreeSet<String> = ev
            .str_attr(attr::WORKTREE_PATH)
            .map(str::to_owned)
            .into_iter()
            .collect();
        paths.extend(
            features
                .iter()
                .filter_map(|f| view.features.get(f).and_then(|f| f.worktree_path.clone())),
        );
        let worktrees = paths
            .into_iter()
            .map(|p| {
                let snap = worktree_snap(view, &p);
                (p, snap)
            })
            .collect();
        Touched {
            agents: agents
                .into_iter()
                .map(|id| {
                    let snap = agent_snap(view, &id);
                    (id, snap)
                })
                .collect(),
            features: features
                .into_iter()
                .map(|name| {
                    let snap = feature_snap(view, &name);
                    (name, snap)
                })
                .collect(),
            worktrees,
            anomalies: view.counters.anomalies,
        }
    }

    /// The changes, comparing the snapshots with `view` after the event.
    pub fn after(self, view: &View) -> Vec<Change> {
        let mut out = Vec::new();
        for (id, before) in &self.agents {
            compare_agent(id, before.as_ref(), agent_snap(view, id).as_ref(), &mut out);
        }
        for (name, before) in &self.features {
            compare_feature(
                name,
                before.as_ref(),
                feature_snap(view, name).as_ref(),
                &mut out,
            );
        }
        for (path, before) in &self.worktrees {
            compare_worktree(
                path,
                before.as_ref(),
                worktree_snap(view, path).as_ref(),
                &mut out,
            );
        }
        if view.counters.anomalies > self.anomalies
            && let Some(a) = view.anomalies.back()
        {
            out.push(Change::new(
                "anomaly",
                a.agent_id.as_deref().unwrap_or(""),
                "reason",
                None,
                Some(a.reason.clone()),
            ));
        }
        out
    }
}

/// Applies `ev` to `view` and says what it changed.
pub fn apply(view: &mut View, ev: &Event<'_>) -> Vec<Change> {
    let touched = Touched::before(view, ev);
    view.apply(ev);
    touched.after(view)
}

/// Everything that differs between two views: agents, features and worktrees, in id order.
pub fn diff(a: &View, b: &View) -> Vec<Change> {
    let mut out = Vec::new();
    let ids: BTreeSet<&String> = a.agents.keys().chain(b.agents.keys()).collect();
    for id in ids {
        compare_agent(
            id,
            agent_snap(a, id).as_ref(),
            agent_snap(b, id).as_ref(),
            &mut out,
        );
    }
    let names: BTreeSet<&String> = a.features.keys().chain(b.features.keys()).collect();
    for name in names {
        compare_feature(
            name,
            feature_snap(a, name).as_ref(),
            feature_snap(b, name).as_ref(),
            &mut out,
        );
    }
    let paths: BTreeSet<&String> = a.worktrees.keys().chain(b.worktrees.keys()).collect();
    for path in paths {
        compare_worktree(
            path,
            worktree_snap(a, path).as_ref(),
            worktree_snap(b, path).as_ref(),
            &mut out,
        );
    }
    out
}

/// One step of an entity's history: the event and what it changed of that entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub time: UnixNanos,
    pub span: String,
    pub span_id: String,
    pub changes: Vec<Change>,
    /// For an assignment: its score and reasons, as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub reasons: Vec<String>,
    /// What the span says beyond its changes: see [`details`].
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub details: Vec<String>,
}

/// The "why" a span carries, as short lines for a person: a merge's outcome, commit, conflict
/// paths and reason (a gate's output), a lease verdict's silence, reported progress, a message,
/// a worktree's fate. Shown by `history` and `replay --step` beside what changed.
pub fn details(ev: &Event<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |label: &str, key: &str| {
        if let Some(v) = ev.str_attr(key).filter(|v| !v.is_empty()) {
            out.push(format!("{label}{v}"));
        }
    };
    match ev.span.name.as_str() {
        span::COORDINATION_FEATURE_MERGE => {
            push("merge ", attr::MERGE_RESULT);
            push("how: ", attr::MERGE_KIND);
            push("commit: ", attr::MERGE_COMMIT);
            push("why: ", attr::MERGE_REASON);
            let conflicts = ev.list_attr(attr::MERGE_CONFLICTS);
            if !conflicts.is_empty() {
                out.push(format!("conflicts: {}", conflicts.join(", ")));
            }
        }
        span::WORKTREE_LIFECYCLE => {
            push("worktree ", attr::WORKTREE_ACTION);
            push("note: ", attr::WORKTREE_ERROR);
        }
        span::AGENT_COMMUNICATION => {
            push("to: ", attr::COMMUNICATION_TARGET);
            push("message: ", attr::COMMUNICATION_MESSAGE);
        }
        span::AGENT_LEASE_EXPIRED => {
            if let Some(silent) = ev.int_attr(attr::LEASE_SILENT_SECONDS) {
                out.push(format!("silent for {silent}s, past its lease"));
            }
        }
        span::AGENT_WORK_PROGRESS => {
            let mut parts = Vec::new();
            if let Some(p) = ev.double_attr(attr::WORK_PROGRESS_PERCENTAGE) {
                parts.push(format!("{p}%"));
            }
            if let Some(n) = ev.int_attr(attr::WORK_FILES_MODIFIED) {
                parts.push(format!("{n} files"));
            }
            if let Some(n) = ev.int_attr(attr::WORK_LINES_ADDED) {
                parts.push(format!("+{n} lines"));
            }
            if !parts.is_empty() {
                out.push(format!("progress: {}", parts.join(", ")));
            }
        }
        span::AGENT_VALIDATION => push("validation ", attr::VALIDATION_RESULT),
        span::COORDINATION_CONFLICT_FORECAST => {
            push("forecast ", attr::FORECAST_KIND);
            push("with ", attr::FORECAST_OTHER_FEATURE);
            let hunks = ev.list_attr(attr::FORECAST_HUNKS);
            if !hunks.is_empty() {
                out.push(format!("hunks: {}", hunks.join(", ")));
            }
        }
        _ => {}
    }
    out
}

/// Which entity a history follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Agent(String),
    Feature(String),
}

impl Subject {
    fn concerns(&self, change: &Change) -> bool {
        match self {
            Subject::Agent(id) => {
                (change.entity == "agent" || change.entity == "anomaly") && change.id == *id
            }
            Subject::Feature(name) => change.entity == "feature" && change.id == *name,
        }
    }
}

/// Builds a history while the caller folds events in order.
pub struct History {
    subject: Subject,
    pub entries: Vec<HistoryEntry>,
}

impl History {
    pub fn new(subject: Subject) -> History {
        History {
            subject,
            entries: Vec::new(),
        }
    }

    /// Applies `ev` to `view`, keeping an entry when it changed the subject, or is about it
    /// and says something (reported progress, a message, a merge's reason).
    pub fn apply(&mut self, view: &mut View, ev: &Event<'_>) {
        let changes: Vec<Change> = apply(view, ev)
            .into_iter()
            .filter(|c| self.subject.concerns(c))
            .collect();
        let details = details(ev);
        let about = match &self.subject {
            Subject::Agent(id) => ev.str_attr(attr::AGENT_ID) == Some(id.as_str()),
            Subject::Feature(f) => ev.str_attr(attr::FEATURE_NAME) == Some(f.as_str()),
        };
        let says_something = about && !details.is_empty();
        if changes.is_empty() && !says_something {
            return;
        }
        let assignment = ev.span.name == span::AGENT_FEATURE_ASSIGNMENT;
        self.entries.push(HistoryEntry {
            seq: ev.seq,
            time: ev.time,
            span: ev.span.name.to_string(),
            span_id: hex(&ev.span.span_id),
            changes,
            score: assignment
                .then(|| ev.double_attr(attr::ASSIGNMENT_MATCH_SCORE))
                .flatten(),
            reasons: if assignment {
                ev.list_attr(attr::ASSIGNMENT_REASONS)
            } else {
                Vec::new()
            },
            details,
        });
    }
}
