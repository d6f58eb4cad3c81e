//! The reducer, the policy and the status document on sequences of events built from the input.
//!
//! Events are the registry's spans (`spans/*.yaml`) with attributes drawn from small pools of
//! agent ids, feature names, paths, states and capabilities, so that they meet each other and
//! reach deep into the lifecycle; now and then a name is invalid or a value has the wrong type.
//! Between them come the coordinator's moves as it makes them (a cycle's decisions and worktree
//! outcomes, merges, lease verdicts, cleanup) and agents' legal reports.
//!
//! Checked (each is documented in the code or ARCHITECTURE.md):
//! - after every event: the kept tally equals a recount (`FeatureTally::of`); a feature is held
//!   by at most one agent, and holder and feature agree; a feature is held exactly when its
//!   status is "in progress"; the view's names passed `names::check`;
//! - "an illegal input changes nothing but the record of it": an event that becomes an anomaly
//!   changes nothing else (but the named agent's liveness, as the reducer's own test allows);
//! - `changes::apply` reports exactly what changed (`changes::diff` of the views around it);
//! - decisions of `policy::decide` follow its rules (a feature once, only when queued, to an
//!   agent in a state that may take work, within its limit, with every capability required;
//!   scores 0..1 rounded to 1e-3) and, recorded as the coordinator records them, apply without
//!   an anomaly, as do its worktree outcomes, merges, lease verdicts and cleanups, and an
//!   agent's legal lifecycle reports;
//! - the status document's counts agree with the view, health is 0..1, and it serialises;
//! - `View::fold` of the whole log equals the view built event by event, and so does a fold
//!   restarted from a checkpoint (the view through postcard, as the store keeps it).

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spanfold::model::{AnyValue, Event, KeyValue, Resource, Span, UnixNanos, string_array};
use spanfold::policy::{self, Decision, PolicyConfig, Weights};
use spanfold::reducer::{
    Agent, AgentState, FeatureStatus, FeatureTally, MAX_ANOMALIES, View, WorktreeStatus,
};
use spanfold::registry::{AttrType, Registry, Requirement, SpanSpec};
use spanfold::status::{self, StatusOptions};
use spanfold::{changes, names};
use spanfold_fuzz::{Choices, assert_same};

mod reducer_checks;
use reducer_checks::{check_decision, check_event, status_doc};

const AGENTS: &[&str] = &["a0", "a1", "a2", "agent-3"];
const FEATURES: &[&str] = &["f0", "f1", "f2", "feature-3"];
/// Names `names::check` refuses, used now and then in place of an agent id or feature name.
const BAD_NAMES: &[&str] = &["", "A0", "../etc", "a b", "x.lock", "a..b", "-x", "f/0"];
const PATHS: &[&str] = &["/wt/f0", "/wt/f1", "/wt/f2", "/wt/shared"];
const BRANCHES: &[&str] = &["spanfold/f0", "spanfold/f1", "main"];
const CAPS: &[&str] = &["rust", "go", "python", "Rust", " react ", ""];
const STRINGS: &[&str] = &[
    "",
    "x",
    "main",
    "/repo",
    "/wt",
    "abc123",
    "disk full",
    "a, b",
];
const INTS: &[i64] = &[
    0,
    1,
    2,
    3,
    5,
    -1,
    8,
    11,
    600,
    1024,
    1025,
    i64::MIN,
    i64::MAX,
];
const DOUBLES: &[f64] = &[
    0.0,
    0.5,
    50.0,
    100.0,
    -1.0,
    -0.0,
    1e308,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
const MERGE_RESULTS: &[&str] = &[
    "started",
    "returned",
    "gate_started",
    "gate_failed",
    "merged",
    "conflicted",
    "deferred",
    "failed",
];
/// Time steps between events: none, a nanosecond, a second, past a default lease, and more.
const STEPS: &[u64] = &[
    0,
    1,
    1_000_000_000,
    700_000_000_000,
    86_400_000_000_000,
    u64::MAX / 4,
];
const MAX_OPS: usize = 200;

fn show() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("SPANFOLD_FUZZ_SHOW").is_some())
}

fn specs() -> &'static [&'static SpanSpec] {
    static SPECS: OnceLock<Vec<&'static SpanSpec>> = OnceLock::new();
    SPECS.get_or_init(|| Registry::builtin().specs().collect())
}

fn s(v: &str) -> AnyValue {
    AnyValue::String(v.into())
}

struct Run {
    view: View,
    /// Every event applied: seq, time, span, resource.
    log: Vec<(u64, UnixNanos, Span, Resource)>,
    time: UnixNanos,
    ids: u64,
}

impl Run {
    fn span(&mut self, name: &str) -> Span {
        self.ids += 1;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&self.ids.to_be_bytes());
        trace[15] = 1;
        Span::new(trace, self.ids.to_be_bytes(), name, self.time)
    }

    /// Applies one event, checks it, and says whether it became an anomaly.
    fn apply(&mut self, span: Span, resource: Resource) -> bool {
        let seq = self.log.len() as u64 + 1;
        let before = self.view.clone();
        let ev = Event {
            seq,
            time: self.time,
            span: &span,
            resource: &resource,
        };
        let changed = changes::apply(&mut self.view, &ev);
        let anomaly = check_event(&before, &self.view, &ev, &changed);
        self.log.push((seq, self.time, span, resource));
        anomaly
    }

    /// Applies an event that must not be an anomaly.
    #[track_caller]
    fn apply_ok(&mut self, span: Span, what: &str) {
        let name = span.name.clone();
        if self.apply(span, Resource::default()) {
            let reason = self.view.anomalies.back().map(|a| a.reason.as_str());
            panic!("{what}: {name} became an anomaly: {reason:?}");
        }
    }
}

/// An agent id or feature name from `pool`, or now and then one that is refused.
fn name(c: &mut Choices, pool: &[&str]) -> AnyValue {
    let b = c.byte();
    if b >= 0xf8 {
        s(BAD_NAMES[usize::from(b) % BAD_NAMES.len()])
    } else {
        s(pool[usize::from(b) % pool.len()])
    }
}

fn list(c: &mut Choices) -> AnyValue {
    let b = c.byte();
    let items: Vec<&str> = (0..b % 4).map(|_| c.word(CAPS)).collect();
    match b >> 6 {
        0 | 1 => string_array(items),
        2 => s(&items.join(",")),
        // A list with an item that is not a string.
        _ => {
            let mut v: Vec<AnyValue> = items.into_iter().map(s).collect();
            v.push(AnyValue::Int(1));
            AnyValue::Array(v)
        }
    }
}

/// A value of another type than the registry says.
fn wrong_type(c: &mut Choices) -> AnyValue {
    match c.byte() % 8 {
        0 => AnyValue::Int(3),
        1 => AnyValue::Bool(true),
        2 => AnyValue::Double(1.5),
        3 => AnyValue::Array(vec![AnyValue::Int(1)]),
        4 => AnyValue::KvList(vec![KeyValue::new("k", s("v"))]),
        5 => AnyValue::Bytes(vec![0xff]),
        6 => AnyValue::Empty,
        _ => s("3"),
    }
}

fn value_for(c: &mut Choices, id: &str, ty: &AttrType) -> AnyValue {
    match id {
        "agent.id" => return name(c, AGENTS),
        "feature.name" => return name(c, FEATURES),
        "worktree.path" => return s(c.word(PATHS)),
        "worktree.branch" | "merge.base_branch" => return s(c.word(BRANCHES)),
        _ => {}
    }
    match ty {
        AttrType::String => s(c.word(STRINGS)),
        AttrType::Int => AnyValue::Int(*c.pick(INTS)),
        AttrType::Double => AnyValue::Double(*c.pick(DOUBLES)),
        AttrType::Boolean => AnyValue::Bool(c.byte() & 1 == 1),
        AttrType::StringArray => list(c),
        AttrType::Enum(members) => {
            let b = c.byte();
            if b >= 0xf0 || members.is_empty() {
                s("bogus")
            } else {
                s(&members[usize::from(b) % members.len()])
            }
        }
    }
}

/// A span the registry names (or one it does not), attributes drawn from the pools.
fn random_span(run: &mut Run, c: &mut Choices) {
    let specs = specs();
    let i = usize::from(c.byte()) % (specs.len() + 1);
    let Some(spec) = specs.get(i) else {
        // Unregistered: it only shows its agent is alive.
        let mut span = run.span("tool.call");
        if c.byte() & 1 == 0 {
            span = span.with("agent.id", name(c, AGENTS));
        }
        run.apply(span, Resource::default());
        return;
    };
    let mut span = run.span(&spec.name);
    let mut resource = Resource::default();
    for attr in &spec.attributes {
        let flags = c.byte();
        let include = match attr.requirement_level {
            Requirement::Required => flags & 0x0f != 0,
            _ => flags & 0x01 == 0,
        };
        if !include {
            continue;
        }
        let value = if flags >= 0xf8 {
            wrong_type(c)
        } else {
            value_for(c, &attr.id, &attr.ty)
        };
        // agent.id may come from the resource (OTEL_RESOURCE_ATTRIBUTES).
        if attr.id == "agent.id" && flags & 0x70 == 0x70 {
            resource.attributes.push(KeyValue::new("agent.id", value));
        } else {
            span.attributes.push(KeyValue::new(attr.id.as_str(), value));
        }
    }
    run.apply(span, resource);
}

/// The feature a report names, as the reducer's rule has it: any held one, or none when that
/// is unambiguous. A report that moves a feature (`needs`) without naming one is legal only if
/// the agent holds one feature, or one not waiting for its merge. None: no legal report.
fn reported(view: &View, agent: &Agent, needs: bool, c: &mut Choices) -> Option<Option<String>> {
    if !agent.assignments.is_empty() && c.byte() & 1 == 1 {
        return Some(Some(c.pick(&agent.assignments).clone()));
    }
    let open: Vec<&String> = agent
        .assignments
        .iter()
        .filter(|n| {
            view.features
                .get(*n)
                .is_some_and(|f| f.status != FeatureStatus::Merging)
        })
        .collect();
    if !needs || agent.assignments.len() <= 1 || open.len() == 1 {
        return Some(None);
    }
    // Ambiguous without a name: it names one of those with work, or none can move.
    if open.is_empty() {
        return None;
    }
    Some(Some(c.pick(&open).to_string()))
}

/// An agent's report of a state it may move to.
fn legal_progress(run: &mut Run, c: &mut Choices) {
    let id = c.word(AGENTS);
    let Some(agent) = run.view.agents.get(id) else {
        return;
    };
    let next: Vec<AgentState> = AgentState::ALL
        .into_iter()
        .filter(|&s| s == agent.state || agent.state.can_become(s))
        .filter(|&s| s != AgentState::Idle || agent.assignments.is_empty())
        .collect();
    if next.is_empty() {
        return;
    }
    let state = *c.pick(&next);
    let needs = matches!(state, AgentState::Validating | AgentState::Submitting);
    let Some(feature) = reported(&run.view, agent, needs, c) else {
        return;
    };
    // A percentage is a number from 0 to 100; anything else is an anomaly by rule.
    let percentages: Vec<f64> = DOUBLES
        .iter()
        .copied()
        .filter(|p| (0.0..=100.0).contains(p))
        .collect();
    let mut span = run
        .span("agent.work_progress")
        .with("agent.id", s(id))
        .with("agent.state", s(state.as_str()))
        .with(
            "work.progress_percentage",
            AnyValue::Double(*c.pick(&percentages)),
        );
    if let Some(f) = feature {
        span = span.with("feature.name", s(&f));
    }
    run.apply_ok(span, "a legal lifecycle report");
}

/// An agent's validation result while working or validating.
fn legal_validation(run: &mut Run, c: &mut Choices) {
    let id = c.word(AGENTS);
    let Some(agent) = run.view.agents.get(id) else {
        return;
    };
    if !matches!(agent.state, AgentState::Working | AgentState::Validating) {
        return;
    }
    let Some(feature) = reported(&run.view, agent, true, c) else {
        return;
    };
    let result = if c.byte() & 1 == 0 {
        "passed"
    } else {
        "failed"
    };
    let mut span = run
        .span("agent.validation")
        .with("agent.id", s(id))
        .with("validation.result", s(result));
    if let Some(f) = feature {
        span = span.with("feature.name", s(&f));
    }
    run.apply_ok(span, "a validation while working");
}

const WEIGHTS: &[[f64; 4]] = &[
    [0.4, 0.2, 0.2, 0.2],
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0],
    [0.1, 5.0, 0.0, 2.0],
];

/// A coordination cycle as the coordinator runs it: decide, record the decisions, record each
/// worktree's outcome.
fn cycle(run: &mut Run, c: &mut Choices) {
    let [capability, priority, complexity, load] = *c.pick(WEIGHTS);
    let config = PolicyConfig {
        weights: Weights {
            capability,
            priority,
            complexity,
            load,
        },
    };
    let d = policy::decide(&run.view, &config);
    check_decision(&run.view, &d);
    let cycle = run
        .span("coordination.cycle")
        .with(
            "coordination.cycle_number",
            AnyValue::Int(run.view.counters.cycles as i64 + 1),
        )
        .with(
            "coordination.assignments",
            AnyValue::Int(d.assignments.len() as i64),
        )
        .with(
            "coordination.features_waiting",
            AnyValue::Int(d.features_waiting as i64),
        );
    run.apply_ok(cycle, "a cycle");
    let mut planned = Vec::new();
    for a in &d.assignments {
        let f = &run.view.features[&a.feature_name];
        let path = f
            .worktree_path
            .clone()
            .unwrap_or_else(|| format!("/wt/{}", a.feature_name));
        let branch = f
            .branch_name
            .clone()
            .unwrap_or_else(|| format!("spanfold/{}", a.feature_name));
        let span = run
            .span("agent.feature_assignment")
            .with("agent.id", s(&a.agent_id))
            .with("feature.name", s(&a.feature_name))
            .with("feature.priority", s(a.priority.as_str()))
            .with("assignment.match_score", AnyValue::Double(a.score))
            .with(
                "assignment.reasons",
                string_array(a.reasons.iter().cloned()),
            )
            .with("worktree.path", s(&path))
            .with("worktree.branch", s(&branch));
        run.apply_ok(span, "a recorded decision");
        planned.push((a.agent_id.clone(), a.feature_name.clone(), path, branch));
    }
    for (agent, feature, path, branch) in planned {
        let action = c.word(&["created", "reused", "create_failed"]);
        let mut span = run
            .span("worktree.lifecycle")
            .with("worktree.action", s(action))
            .with("agent.id", s(&agent))
            .with("feature.name", s(&feature))
            .with("worktree.path", s(&path))
            .with("worktree.branch", s(&branch));
        if action == "create_failed" {
            span = span.with("worktree.error", s("disk full"));
        }
        run.apply_ok(span, "a worktree outcome");
    }
}

/// The coordinator's merge of a submitted feature, with one of its outcomes.
fn merge(run: &mut Run, c: &mut Choices) {
    let submitted: Vec<(String, String, Option<String>)> = run
        .view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Merging)
        .filter_map(|f| {
            let agent = f.assigned_agent.clone()?;
            Some((agent, f.name.clone(), f.branch_name.clone()))
        })
        .collect();
    if submitted.is_empty() {
        return;
    }
    let (agent, feature, branch) = c.pick(&submitted).clone();
    let result = c.word(MERGE_RESULTS);
    let mut span = run
        .span("coordination.feature_merge")
        .with("merge.result", s(result))
        .with("agent.id", s(&agent))
        .with("feature.name", s(&feature))
        .with(
            "worktree.branch",
            s(&branch.unwrap_or_else(|| format!("spanfold/{feature}"))),
        )
        .with("merge.base_branch", s("main"));
    span = match result {
        "started" => span.with("merge.from", s("abc123")),
        "merged" => span
            .with("merge.kind", s("fast_forward"))
            .with("merge.commit", s("def456")),
        "conflicted" => span.with("merge.conflicts", list(c)),
        _ => span.with("merge.reason", s(c.word(STRINGS))),
    };
    run.apply_ok(span, "a merge outcome");
}

/// The lease verdicts `policy::expired_leases` gives now, recorded.
fn leases(run: &mut Run) {
    let expired = policy::expired_leases(&run.view, run.time);
    let ids: Vec<&String> = expired.iter().map(|(id, _)| id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "not in id order");
    for (id, silent) in expired {
        assert_ne!(run.view.agents[&id].state, AgentState::Error);
        let span = run
            .span("agent.lease_expired")
            .with("agent.id", s(&id))
            .with("lease.silent_seconds", AnyValue::Int(silent as i64));
        run.apply_ok(span, "a lease verdict");
    }
}

/// A worktree nobody holds, removed or kept.
fn cleanup(run: &mut Run, c: &mut Choices) {
    let idle: Vec<(String, String, String)> = run
        .view
        .worktrees
        .values()
        .filter(|w| w.status != WorktreeStatus::Active)
        .map(|w| {
            (
                w.path.clone(),
                w.branch_name.clone(),
                w.feature_name.clone(),
            )
        })
        .collect();
    if idle.is_empty() {
        return;
    }
    let (path, branch, feature) = c.pick(&idle).clone();
    let action = if c.byte() & 1 == 0 { "removed" } else { "kept" };
    let span = run
        .span("worktree.lifecycle")
        .with("worktree.action", s(action))
        .with("feature.name", s(&feature))
        .with("worktree.path", s(&path))
        .with("worktree.branch", s(&branch));
    run.apply_ok(span, "a cleanup");
}

/// The log folded again from scratch, and from a checkpoint at `at`, gives the same view.
fn refold(run: &Run, at: usize) {
    let events = run.log.iter().map(|(seq, time, span, resource)| Event {
        seq: *seq,
        time: *time,
        span,
        resource,
    });
    assert_same(&View::fold(events.clone()), &run.view, "View::fold differs");
    let mut view = View::default();
    for (i, ev) in events.enumerate() {
        if i == at {
            let bytes = postcard::to_stdvec(&view).expect("a view serialises");
            view = postcard::from_bytes(&bytes).expect("a checkpoint reads back");
        }
        view.apply(&ev);
    }
    assert_same(&view, &run.view, "the fold from a checkpoint differs");
}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let checkpoint_at = usize::from(c.byte());
    let mut run = Run {
        view: View::default(),
        log: Vec::new(),
        time: 1_700_000_000_000_000_000,
        ids: 0,
    };
    for _ in 0..MAX_OPS {
        if c.is_empty() {
            break;
        }
        let op = c.byte();
        if op & 0x80 != 0 {
            run.time = run.time.saturating_add(*c.pick(STEPS));
        }
        match op % 16 {
            0..=6 => random_span(&mut run, &mut c),
            7 | 8 => legal_progress(&mut run, &mut c),
            9 => legal_validation(&mut run, &mut c),
            10 | 11 => cycle(&mut run, &mut c),
            12 => merge(&mut run, &mut c),
            13 => leases(&mut run),
            14 => cleanup(&mut run, &mut c),
            _ => status_doc(&run.view, &mut c),
        }
    }
    status_doc(&run.view, &mut c);
    if show() {
        // SPANFOLD_FUZZ_SHOW=1 with an input file: what the program did.
        for (seq, _, span, resource) in &run.log {
            eprintln!(
                "{seq:4} {} {:?} {:?}",
                span.name, span.attributes, resource.attributes
            );
        }
        let doc = status::build(&run.view, &StatusOptions::default());
        eprintln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let d = policy::decide(&run.view, &PolicyConfig::default());
    check_decision(&run.view, &d);
    refold(&run, checkpoint_at);
});
