//! Agents' daily budgets on the coordinator's own clock: the verdict right after the spending
//! that crossed it, no work for the rest of the day, and the first cycle of the next day renewing
//! the agent, which then takes work again.

use std::time::Duration;

use super::{START, coordinator, spans_of};
use crate::clock::Clock;
use crate::emit::{self, IdGen};
use crate::model::{
    AnyValue, Batch, KeyValue, LogRecord, Resource, ResourceLogs, Scope, ScopeLogs,
};
use crate::reducer::FeatureStatus;
use crate::vocab::{attr, span};

/// A Claude Code `api_request` of agent `a1` that cost `usd`.
fn spent(usd: f64, prompt: &str) -> Batch {
    let kv = |k: &str, v: AnyValue| KeyValue::new(k, v);
    let record = LogRecord {
        attributes: vec![
            kv("event.name", AnyValue::String("api_request".into())),
            kv("prompt.id", AnyValue::String(prompt.into())),
            kv("cost_usd", AnyValue::Double(usd)),
        ],
        body: AnyValue::String("claude_code.api_request".into()),
        ..LogRecord::empty()
    };
    Batch {
        resource_logs: vec![ResourceLogs {
            resource: Resource {
                attributes: vec![kv("agent.id", AnyValue::String("a1".into()))],
                ..Resource::default()
            },
            schema_url: String::new(),
            scope_logs: vec![ScopeLogs {
                scope: Scope::default(),
                schema_url: String::new(),
                log_records: vec![record],
            }],
        }],
        ..Batch::default()
    }
}

/// The daily budget verdicts in the log: (agent, verdict, day).
fn verdicts(coord: &crate::coordinator::Coordinator) -> Vec<(String, String, Option<String>)> {
    let keys = [attr::AGENT_ID, attr::BUDGET_VERDICT, attr::BUDGET_DAY];
    spans_of(coord, span::COORDINATION_AGENT_BUDGET, keys)
}

#[test]
fn an_agent_over_its_daily_budget_waits_for_the_first_cycle_of_the_next_day() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, clock) = coordinator(dir.path());
    let budgeted = emit::Registration {
        agent_id: "a1".into(),
        max_concurrent_features: 1,
        budget_usd_per_day: Some(0.5),
        ..Default::default()
    };
    let span = emit::registration(&mut IdGen::default(), clock.now(), &budgeted);
    coord
        .submit_client(vec![span])
        .expect("registered with a budget");
    assert_eq!(coord.cycle().expect("a cycle").assignments.len(), 1);

    // The spending that crosses it is judged right away: the feature goes back to the queue.
    coord
        .append_exports(vec![(spent(0.6, "p-1"), Vec::new())])
        .expect("appended");
    assert_eq!(coord.view().features["f1"].status, FeatureStatus::Queued);
    let today = crate::usage::day_name(crate::usage::day_of(START));
    assert_eq!(
        verdicts(&coord),
        vec![("a1".into(), "exceeded".into(), Some(today.clone()))]
    );

    // Later the same day: the worktree is unlocked for whoever takes the feature, and no one
    // does; then there is nothing to do, and no cycle.
    clock.advance(Duration::from_secs(60));
    let report = coord.cycle().expect("a cycle");
    assert!(report.assignments.is_empty(), "{report:?}");
    assert!(!coord.view().worktrees.values().any(|w| w.locked));
    assert!(coord.cycle_if_useful().expect("no cycle").is_none());
    assert_eq!(coord.view().features["f1"].status, FeatureStatus::Queued);

    // The next day: the cycle renews it, then places the feature with it again.
    clock.advance(Duration::from_secs(86_400));
    let report = coord
        .cycle_if_useful()
        .expect("a cycle")
        .expect("one is due");
    assert_eq!(report.assignments.len(), 1, "{report:?}");
    let tomorrow = crate::usage::day_name(crate::usage::day_of(clock.now()));
    assert_ne!(today, tomorrow);
    assert_eq!(
        verdicts(&coord)[1],
        ("a1".into(), "renewed".into(), Some(tomorrow))
    );
    assert_eq!(
        coord.view().features["f1"].assigned_agent.as_deref(),
        Some("a1")
    );
}
