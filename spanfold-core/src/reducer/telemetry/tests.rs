//! The identity rules and profiles of agents' own telemetry, on views built in memory.

use super::*;
use crate::model::{
    AnyValue, Batch, KeyValue, LogRecord, Metric, MetricData, Resource, ResourceLogs,
    ResourceMetrics, ResourceSpans, Scope, ScopeLogs, ScopeMetrics, Span,
};

pub(in crate::reducer) fn s(v: &str) -> AnyValue {
    AnyValue::String(v.into())
}

pub(in crate::reducer) fn resource(pairs: &[(&str, &str)]) -> Resource {
    Resource {
        attributes: pairs.iter().map(|(k, v)| KeyValue::new(*k, s(v))).collect(),
        ..Resource::default()
    }
}

/// Claude Code's event `name` with these attributes, as its log record carries it.
pub(in crate::reducer) fn claude(name: &str, attrs: &[(&str, AnyValue)]) -> LogRecord {
    let mut attributes = vec![KeyValue::new("event.name", s(name))];
    attributes.extend(attrs.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
    LogRecord {
        body: s(&format!("claude_code.{name}")),
        attributes,
        ..LogRecord::empty()
    }
}

/// `a1` registered; its lease starts at time 1.
pub(in crate::reducer) fn registered() -> View {
    let mut view = View::default();
    let span = Span::new([1; 16], [1; 8], "agent.registration", 0).with("agent.id", s("a1"));
    let batch = Batch::of_spans(
        1,
        1,
        vec![ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            vec![span],
        )],
    );
    view.apply_batch(&batch, 0);
    view
}

pub(in crate::reducer) fn logs(
    view: &mut View,
    at: u64,
    resource: Resource,
    records: Vec<LogRecord>,
) {
    let batch = Batch {
        first_seq: view.as_of.seq + 1,
        received_at: at,
        resource_logs: vec![ResourceLogs {
            resource,
            schema_url: String::new(),
            scope_logs: vec![ScopeLogs {
                scope: Scope::default(),
                schema_url: String::new(),
                log_records: records,
            }],
        }],
        ..Batch::default()
    };
    view.apply_batch(&batch, 0);
}

#[test]
fn claude_codes_events_are_read_through_its_profile_and_keep_its_agent_alive() {
    let mut view = registered();
    let who = resource(&[("agent.id", "a1"), ("service.name", "claude-code")]);
    let records = vec![
        claude("user_prompt", &[]),
        claude("api_request", &[("model", s("claude-sonnet-4-5"))]),
        claude(
            "tool_result",
            &[("tool_name", s("Edit")), ("success", s("true"))],
        ),
        claude(
            "tool_result",
            &[("tool_name", s("Bash")), ("success", AnyValue::Bool(false))],
        ),
        claude("api_error", &[]),
        claude("something_new", &[]),
    ];
    logs(&mut view, 50, who, records);
    assert_eq!(view.agents["a1"].last_activity, 50, "a sign of life");
    let t = &view.telemetry.agents["a1"];
    assert_eq!(t.source, "claude");
    assert_eq!((t.counts.tool_calls, t.counts.tool_failures), (2, 1));
    assert_eq!((t.counts.llm_requests, t.counts.errors), (1, 1));
    let last = t.last.as_ref().expect("a recognised record");
    assert_eq!(
        (last.kind, last.name.as_str(), last.at),
        (Kind::Error, "claude_code.api_error", 50),
        "the unknown event after it is alive, not a new last activity"
    );
    assert_eq!(view.telemetry.log_records, 6);
    assert_eq!(view.counters.events, 7);
    assert!(view.telemetry.unattributed.is_empty());
}

#[test]
fn a_record_belongs_to_the_agent_it_names_or_to_its_assignments_trace() {
    let mut view = registered();
    view.remember_trace(&[9; 16], "a1");
    let in_trace = LogRecord {
        trace_id: vec![9; 16],
        ..claude("tool_result", &[("tool_name", s("Read"))])
    };
    logs(
        &mut view,
        20,
        resource(&[("service.name", "claude-code")]),
        vec![in_trace],
    );
    assert_eq!(view.telemetry.agents["a1"].counts.tool_calls, 1);
    // Nobody's: not named, not in an assignment's trace; or an agent nobody registered.
    let stray = LogRecord {
        trace_id: vec![8; 16],
        ..claude("tool_result", &[])
    };
    logs(
        &mut view,
        30,
        resource(&[("service.name", "claude-code")]),
        vec![stray],
    );
    logs(
        &mut view,
        31,
        resource(&[("agent.id", "ghost")]),
        vec![claude("api_request", &[])],
    );
    assert_eq!(
        view.telemetry.unattributed,
        std::collections::BTreeMap::from([("claude-code".into(), 1), ("(none)".into(), 1)])
    );
    assert_eq!(view.agents["a1"].last_activity, 20);
    assert!(!view.agents.contains_key("ghost"), "no agent made up");
}

#[test]
fn a_lease_that_would_run_out_does_not_while_the_agent_sends_telemetry() {
    const SECOND: u64 = 1_000_000_000;
    let holding = || {
        let mut view = registered();
        let a1 = view.agents.get_mut("a1").expect("a1");
        a1.lease_seconds = Some(60);
        a1.state = crate::reducer::AgentState::Working;
        a1.assignments = vec!["f1".into()];
        let mut f1 = crate::reducer::Feature::queued("f1", crate::reducer::Priority::Medium, 3, 1);
        f1.status = crate::reducer::FeatureStatus::InProgress;
        f1.assigned_agent = Some("a1".into());
        view.features.insert("f1".into(), f1);
        view
    };
    let later = 1 + 70 * SECOND;
    let silent = holding();
    assert_eq!(
        crate::policy::expired_leases(&silent, later),
        vec![("a1".to_owned(), 70)],
        "silent for 70 s of a 60 s lease"
    );
    let mut busy = holding();
    let who = resource(&[("agent.id", "a1")]);
    logs(
        &mut busy,
        1 + 40 * SECOND,
        who,
        vec![claude("tool_result", &[])],
    );
    assert!(
        crate::policy::expired_leases(&busy, later).is_empty(),
        "a long tool call reported only in its own telemetry keeps the lease"
    );
}

#[test]
fn a_refused_assignment_leaves_no_trace_to_tie_records_to() {
    // Found by the fuzzer: an assignment of a feature never requested is an anomaly, and
    // must change nothing else — its trace was remembered all the same.
    let mut view = registered();
    let assignment = Span::new([7; 16], [7; 8], "agent.feature_assignment", 0)
        .with("agent.id", s("a1"))
        .with("feature.name", s("f1"))
        .with("worktree.path", s("/wt/f1"))
        .with("worktree.branch", s("spanfold/f1"));
    let batch = Batch::of_spans(
        2,
        2,
        vec![ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            vec![assignment],
        )],
    );
    view.apply_batch(&batch, 0);
    assert_eq!(view.counters.anomalies, 1);
    assert!(
        view.telemetry.traces.is_empty(),
        "{:?}",
        view.telemetry.traces
    );
}

#[test]
fn unattributed_services_are_counted_apart_up_to_a_bound() {
    let mut view = registered();
    for i in 0..MAX_SERVICES + 5 {
        let service = format!("svc-{i:03}");
        logs(
            &mut view,
            5,
            resource(&[("service.name", &service)]),
            vec![LogRecord::empty()],
        );
    }
    let counts = &view.telemetry.unattributed;
    assert_eq!(counts.len(), MAX_SERVICES + 1);
    assert_eq!(counts.get(OTHER_SERVICES), Some(&5));
}

#[test]
fn codexs_sse_event_is_an_llm_request_only_when_the_response_completed() {
    let mut view = registered();
    let sse = |kind: &str| LogRecord {
        attributes: vec![
            KeyValue::new("event.name", s("codex.sse_event")),
            KeyValue::new("event.kind", s(kind)),
        ],
        ..LogRecord::empty()
    };
    let who = resource(&[("agent.id", "a1")]);
    logs(
        &mut view,
        5,
        who,
        vec![sse("response.output_text.delta"), sse("response.completed")],
    );
    let t = &view.telemetry.agents["a1"];
    assert_eq!((t.source.as_str(), t.counts.llm_requests), ("codex", 1));
}

/// A Claude Code token counter whose only identity is `session.id` on its data point.
fn session_metric(view: &mut View, at: u64, session: &str) {
    let point = crate::model::NumberPoint {
        attributes: vec![KeyValue::new("session.id", s(session))],
        start_time_unix_nano: 0,
        time_unix_nano: at,
        value: crate::model::Number::Int(10),
        exemplars: Vec::new(),
        flags: 0,
    };
    let metric = Metric {
        name: "claude_code.token.usage".into(),
        description: String::new(),
        unit: "tokens".into(),
        metadata: Vec::new(),
        data: MetricData::Sum {
            points: vec![point],
            temporality: 1,
            monotonic: true,
        },
    };
    metrics(
        view,
        at,
        resource(&[("service.name", "claude-code")]),
        metric,
    );
}

/// `metric` from `resource`, folded as the next batch at time `at`.
pub(in crate::reducer) fn metrics(view: &mut View, at: u64, resource: Resource, metric: Metric) {
    let batch = Batch {
        first_seq: view.as_of.seq + 1,
        received_at: at,
        resource_metrics: vec![ResourceMetrics {
            resource,
            schema_url: String::new(),
            scope_metrics: vec![ScopeMetrics {
                scope: Scope::default(),
                schema_url: String::new(),
                metrics: vec![metric],
            }],
        }],
        ..Batch::default()
    };
    view.apply_batch(&batch, 0);
}

#[test]
fn a_session_first_seen_with_its_agent_places_the_records_that_carry_only_it() {
    let mut view = registered();
    session_metric(&mut view, 10, "s-1");
    assert_eq!(view.telemetry.unattributed.get("claude-code"), Some(&1));
    assert!(view.telemetry.sessions.is_empty(), "no agent named it yet");
    let who = resource(&[("agent.id", "a1"), ("service.name", "claude-code")]);
    let prompt = claude("user_prompt", &[("session.id", s("s-1"))]);
    logs(&mut view, 20, who, vec![prompt]);
    assert_eq!(
        view.telemetry.sessions.get("s-1").map(String::as_str),
        Some("a1")
    );
    session_metric(&mut view, 30, "s-1");
    session_metric(&mut view, 40, "s-2");
    assert_eq!(view.agents["a1"].last_activity, 30);
    assert_eq!(
        view.telemetry.unattributed.get("claude-code"),
        Some(&2),
        "only the metric of the unknown session stays unattributed"
    );
    // A session stays with the agent it was first seen with.
    let span = Span::new([2; 16], [2; 8], "agent.registration", 0).with("agent.id", s("a2"));
    let batch = Batch::of_spans(
        view.as_of.seq + 1,
        50,
        vec![ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            vec![span],
        )],
    );
    view.apply_batch(&batch, 0);
    let other = resource(&[("agent.id", "a2"), ("service.name", "claude-code")]);
    logs(
        &mut view,
        60,
        other,
        vec![claude("user_prompt", &[("session.id", s("s-1"))])],
    );
    assert_eq!(
        view.telemetry.sessions.get("s-1").map(String::as_str),
        Some("a1")
    );
}

#[test]
fn a_metric_names_its_agent_by_its_resource() {
    let mut view = registered();
    let metric = Metric {
        name: "claude_code.commit.count".into(),
        description: String::new(),
        unit: String::new(),
        metadata: Vec::new(),
        data: MetricData::Empty,
    };
    metrics(&mut view, 70, resource(&[("agent.id", "a1")]), metric);
    assert_eq!(view.telemetry.metrics, 1);
    let t = &view.telemetry.agents["a1"];
    assert_eq!(t.counts.commits, 0, "a counter's export is not one commit");
    assert_eq!(t.last.as_ref().map(|l| l.kind), Some(Kind::Commit));
    assert_eq!(view.agents["a1"].last_activity, 70);
}

/// `spans` folded as the next batch, at time `at`.
pub(in crate::reducer) fn spans(view: &mut View, at: u64, spans: Vec<Span>) {
    let batch = Batch::of_spans(
        view.as_of.seq + 1,
        at,
        vec![ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            spans,
        )],
    );
    view.apply_batch(&batch, 0);
}

#[test]
fn a_record_counts_for_the_feature_its_agent_held_or_named_among_several() {
    let mut view = registered();
    let n = |i: u8| ([i; 16], [i; 8]);
    let mut made = vec![
        Span::new(n(2).0, n(2).1, "agent.registration", 0)
            .with("agent.id", s("a1"))
            .with("agent.max_concurrent_features", AnyValue::Int(2)),
    ];
    for (i, f) in [(3, "f1"), (4, "f2")] {
        made.push(Span::new(n(i).0, n(i).1, "feature.request", 0).with("feature.name", s(f)));
    }
    spans(&mut view, 2, made);
    let assign = |i: u8, f: &str| {
        Span::new(n(i).0, n(i).1, "agent.feature_assignment", 0)
            .with("agent.id", s("a1"))
            .with("feature.name", s(f))
            .with("worktree.path", s(&format!("/wt/{f}")))
            .with("worktree.branch", s(&format!("spanfold/{f}")))
    };
    spans(&mut view, 3, vec![assign(5, "f1")]);
    let tool = || claude("tool_result", &[("tool_name", s("Edit"))]);
    // One feature held: the record is about it, named or not.
    logs(&mut view, 4, resource(&[("agent.id", "a1")]), vec![tool()]);
    spans(&mut view, 5, vec![assign(6, "f2")]);
    // Two held: the one the resource names; a record naming neither counts for no feature.
    let on_f2 = resource(&[("agent.id", "a1"), ("spanfold.feature", "f2")]);
    logs(
        &mut view,
        6,
        on_f2,
        vec![tool(), claude("api_request", &[])],
    );
    logs(&mut view, 7, resource(&[("agent.id", "a1")]), vec![tool()]);
    let features = &view.telemetry.features;
    assert_eq!(features["f1"].tool_calls, 1, "{features:?}");
    assert_eq!(
        (features["f2"].tool_calls, features["f2"].llm_requests),
        (1, 1)
    );
    assert_eq!(view.telemetry.agents["a1"].counts.tool_calls, 3);
    assert!(view.anomalies.is_empty(), "{:?}", view.anomalies);
}
