//! The reducer's unit tests: small scripted logs folded without files, network or clock.

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
    let submitted = v.features["f1"].submitted_seq;
    assert_eq!(submitted, Some(v.as_of.seq), "its place in the merge queue");
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
    sc.span("coordination.feature_merge", &merge("gate_started"));
    assert!(sc.fold().features["f1"].gate_running, "its gate runs");
    sc.span("coordination.feature_merge", &merge("conflicted"));
    let v = sc.fold();
    assert!(!v.features["f1"].gate_running);
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

#[test]
fn each_active_worktree_has_its_own_port_slot_and_a_freed_one_is_taken_again() {
    let mut sc = registered();
    sc.span("feature.request", &[("feature.name", s("f2"))])
        .span("feature.request", &[("feature.name", s("f3"))])
        .span("agent.registration", &[("agent.id", s("a2"))]);
    let created = |sc: &mut Script, agent: &str, feature: &str| {
        assign(sc, agent, feature);
        sc.span(
            "worktree.lifecycle",
            &[
                ("worktree.action", s("created")),
                ("agent.id", s(agent)),
                ("feature.name", s(feature)),
                ("worktree.path", s(&format!("/wt/{feature}"))),
                ("worktree.branch", s(&format!("spanfold/{feature}"))),
            ],
        );
    };
    created(&mut sc, "a1", "f1");
    created(&mut sc, "a1", "f2");
    created(&mut sc, "a2", "f3");
    let slots = |v: &View| -> Vec<(String, u32)> {
        v.worktrees
            .values()
            .filter(|w| w.status == WorktreeStatus::Active)
            .map(|w| (w.feature_name.clone(), w.port_slot))
            .collect()
    };
    let v = sc.fold();
    assert_eq!(
        slots(&v),
        [("f1".into(), 0), ("f2".into(), 1), ("f3".into(), 2)]
    );
    sc.span("feature.cancel", &[("feature.name", s("f2"))])
        .span("feature.request", &[("feature.name", s("f4"))]);
    created(&mut sc, "a1", "f4");
    let v = sc.fold();
    assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
    assert_eq!(
        slots(&v),
        [("f1".into(), 0), ("f3".into(), 2), ("f4".into(), 1)],
        "f2's slot is free once its worktree is no longer active"
    );
}

#[test]
fn a_merged_feature_takes_its_conflict_risks_with_it() {
    let mut sc = registered();
    sc.span("feature.request", &[("feature.name", s("f2"))]);
    assign(&mut sc, "a1", "f1");
    assign(&mut sc, "a1", "f2");
    let forecast = |other: Option<&str>| {
        let mut attrs = vec![
            ("feature.name", s("f1")),
            ("forecast.kind", s("conflict")),
            ("forecast.paths", s("src/lib.rs")),
            ("forecast.commit", s("aaaa")),
            ("forecast.other_commit", s("bbbb")),
        ];
        if let Some(o) = other {
            attrs.push(("forecast.other_feature", s(o)));
        }
        attrs
    };
    sc.span("coordination.conflict_forecast", &forecast(None))
        .span("coordination.conflict_forecast", &forecast(Some("f2")));
    assert_eq!(sc.fold().risks_of("f1").count(), 2);
    for state in ["working", "validating"] {
        sc.span(
            "agent.work_progress",
            &[
                ("agent.id", s("a1")),
                ("feature.name", s("f1")),
                ("agent.state", s(state)),
            ],
        );
    }
    sc.span(
        "agent.validation",
        &[
            ("agent.id", s("a1")),
            ("feature.name", s("f1")),
            ("validation.result", s("passed")),
        ],
    )
    .span(
        "coordination.feature_merge",
        &[
            ("merge.result", s("merged")),
            ("agent.id", s("a1")),
            ("feature.name", s("f1")),
            ("worktree.branch", s("spanfold/f1")),
            ("merge.base_branch", s("main")),
        ],
    );
    let v = sc.fold();
    assert_eq!(v.features["f1"].status, FeatureStatus::Completed);
    assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
    // Neither the base-branch risk nor the pair with f2 outlives the merge.
    assert_eq!(v.risks_of("f1").count(), 0, "{:?}", v.risks);
    assert_eq!(v.risks_of("f2").count(), 0, "{:?}", v.risks);
}
