//! Usage folded from records shaped as each agent's documentation says, checked to the token and
//! the billionth of a dollar.

use super::super::telemetry::tests::{claude, logs, metrics, registered, resource, s, spans};
use crate::model::{AnyValue, KeyValue, LogRecord, Metric, MetricData, Number, NumberPoint, Span};
use crate::reducer::View;
use crate::usage::{CostSource, PriceTable, Usage, day_of};

/// a1 registered and holding feature f1.
fn holding_f1() -> View {
    let mut view = registered();
    spans(
        &mut view,
        2,
        vec![Span::new([2; 16], [2; 8], "feature.request", 0).with("feature.name", s("f1"))],
    );
    spans(
        &mut view,
        3,
        vec![
            Span::new([3; 16], [3; 8], "agent.feature_assignment", 0)
                .with("agent.id", s("a1"))
                .with("feature.name", s("f1"))
                .with("worktree.path", s("/wt/f1"))
                .with("worktree.branch", s("spanfold/f1")),
        ],
    );
    view
}

fn prices(view: &mut View, at: u64) {
    let table = serde_json::to_string(&PriceTable::builtin()).expect("json");
    let span = Span::new([4; 16], [4; 8], "coordination.prices", 0)
        .with("prices.date", s("2026-12-05"))
        .with("prices.table", s(&table));
    spans(view, at, vec![span]);
}

fn int(n: i64) -> AnyValue {
    AnyValue::Int(n)
}

fn a1() -> crate::model::Resource {
    resource(&[("agent.id", "a1"), ("service.name", "claude-code")])
}

#[test]
fn claudes_reported_costs_are_summed_per_agent_feature_model_and_day() {
    let mut view = holding_f1();
    let request = |cost: f64| {
        claude(
            "api_request",
            &[
                ("model", s("claude-sonnet-4-5-20250929")),
                ("input_tokens", int(1000)),
                ("output_tokens", int(500)),
                ("cache_read_tokens", int(10_000)),
                ("cache_creation_tokens", int(2000)),
                ("cost_usd", AnyValue::Double(cost)),
                ("session.id", s("s-1")),
            ],
        )
    };
    let at = 1_796_492_146_000_000_000;
    logs(&mut view, at, a1(), vec![request(0.021), request(0.0105)]);
    let ledger = &view.usage.ledger;
    let expect = |u: &Usage| {
        assert_eq!(
            (
                u.tokens.input,
                u.tokens.output,
                u.tokens.cache_read,
                u.tokens.cache_creation
            ),
            (2000, 1000, 20_000, 4000)
        );
        assert_eq!((u.cost_nanos, u.llm_requests), (31_500_000, 2));
        assert_eq!(u.cost_source(), Some(CostSource::Reported));
    };
    expect(&ledger.total);
    expect(&ledger.agents["a1"].total);
    expect(&ledger.features["f1"]);
    expect(&ledger.models["claude-sonnet-4-5-20250929"]);
    expect(&ledger.days[&day_of(at)]);
    let session = &ledger.sessions["s-1"];
    assert_eq!(session.agent, "a1");
    expect(&session.total);
    expect(&session.features["f1"]);
}

/// Codex's `sse_event` once the response completed: input counts the cache read, output the
/// reasoning, as OpenAI's API does.
fn codex_completed(model: &str) -> LogRecord {
    let attrs = [
        ("event.name", s("codex.sse_event")),
        ("event.kind", s("response.completed")),
        ("model", s(model)),
        ("input_token_count", int(10_000)),
        ("cached_token_count", int(4000)),
        ("output_token_count", int(2000)),
        ("reasoning_token_count", int(500)),
        ("conversation.id", s("c-1")),
    ];
    LogRecord {
        attributes: attrs
            .iter()
            .map(|(k, v)| KeyValue::new(*k, v.clone()))
            .collect(),
        ..LogRecord::empty()
    }
}

#[test]
fn tokens_are_priced_with_the_table_the_log_recorded_before_them() {
    let mut view = holding_f1();
    let codex = resource(&[("agent.id", "a1"), ("service.name", "codex")]);
    // No table in the log yet: counted, unpriced.
    logs(
        &mut view,
        5,
        codex.clone(),
        vec![codex_completed("gpt-5-codex")],
    );
    prices(&mut view, 6);
    logs(
        &mut view,
        7,
        codex.clone(),
        vec![codex_completed("gpt-5-codex")],
    );
    logs(&mut view, 8, codex, vec![codex_completed("grok-9")]);
    let model = &view.usage.ledger.models["gpt-5-codex"];
    // Counted as Claude Code counts: 6000 uncached input, 1500 output besides 500 reasoning.
    assert_eq!(
        (
            model.tokens.input,
            model.tokens.cache_read,
            model.tokens.output,
            model.tokens.reasoning
        ),
        (12_000, 8000, 3000, 1000)
    );
    // One priced request: 6000 × $1.25 + 2000 × $10 + 4000 × $0.125 per million = $0.028.
    assert_eq!(
        (model.cost_nanos, model.priced, model.unpriced),
        (28_000_000, 1, 1)
    );
    assert_eq!(
        model.cost_source(),
        Some(CostSource::Unpriced),
        "a lower bound"
    );
    let unknown = &view.usage.ledger.models["grok-9"];
    assert_eq!(
        (unknown.cost_nanos, unknown.unpriced, unknown.tokens.input),
        (0, 1, 6000)
    );
    assert_eq!(view.usage.ledger.total.llm_requests, 3);
}

/// One delta (1) or cumulative (2) sum point of `name` for session `session`.
fn metric(
    view: &mut View,
    at: u64,
    name: &str,
    points: Vec<(&str, &str, f64, u64)>,
    temporality: i32,
) {
    let points = points
        .into_iter()
        .map(|(session, kind, value, start)| NumberPoint {
            attributes: vec![
                KeyValue::new("session.id", s(session)),
                KeyValue::new("type", s(kind)),
                KeyValue::new("model", s("claude-sonnet-4-5")),
            ],
            start_time_unix_nano: start,
            time_unix_nano: at,
            value: Number::Double(value),
            exemplars: Vec::new(),
            flags: 0,
        })
        .collect();
    let metric = Metric {
        name: name.into(),
        description: String::new(),
        unit: String::new(),
        metadata: Vec::new(),
        data: MetricData::Sum {
            points,
            temporality,
            monotonic: true,
        },
    };
    metrics(view, at, a1(), metric);
}

#[test]
fn metrics_count_only_for_a_session_that_sent_no_request_events() {
    let mut view = holding_f1();
    metric(
        &mut view,
        10,
        "claude_code.token.usage",
        vec![("s-1", "input", 100.0, 0)],
        1,
    );
    metric(
        &mut view,
        11,
        "claude_code.cost.usage",
        vec![("s-1", "", 0.5, 0)],
        1,
    );
    let total = view.usage.ledger.total;
    assert_eq!(
        (total.tokens.input, total.cost_nanos, total.llm_requests),
        (100, 500_000_000, 0)
    );
    assert_eq!(total.cost_source(), Some(CostSource::Reported));
    // The session's request event arrives: what its metrics said is taken back, the event
    // counts, and its later metrics count no more.
    let request = claude(
        "api_request",
        &[
            ("model", s("claude-sonnet-4-5")),
            ("input_tokens", int(100)),
            ("cost_usd", AnyValue::Double(0.25)),
            ("session.id", s("s-1")),
        ],
    );
    logs(&mut view, 12, a1(), vec![request]);
    metric(
        &mut view,
        13,
        "claude_code.token.usage",
        vec![("s-1", "output", 70.0, 0)],
        1,
    );
    let total = view.usage.ledger.total;
    assert_eq!(
        (
            total.tokens.input,
            total.tokens.output,
            total.cost_nanos,
            total.llm_requests
        ),
        (100, 0, 250_000_000, 1)
    );
    assert_eq!(view.usage.ledger.features["f1"], total);
    assert_eq!(
        view.usage.ledger.sessions["s-1"].total, total,
        "what the session's metrics said is taken back from the session too"
    );
    // A cumulative series counts what it grew by, and all of it again after a restart.
    for (at, value, start) in [(20, 100.0, 1), (21, 250.0, 1), (22, 30.0, 2)] {
        metric(
            &mut view,
            at,
            "claude_code.token.usage",
            vec![("s-2", "cacheRead", value, start)],
            2,
        );
    }
    assert_eq!(view.usage.ledger.total.tokens.cache_read, 280);
}

fn budget(view: &mut View, at: u64, usd: f64) {
    let span = Span::new([6; 16], [at as u8; 8], "feature.budget", 0)
        .with("feature.name", s("f1"))
        .with("budget.usd", AnyValue::Double(usd));
    spans(view, at, vec![span]);
}

fn spend(view: &mut View, at: u64, cost: f64) {
    let request = claude(
        "api_request",
        &[
            ("model", s("claude-sonnet-4-5")),
            ("input_tokens", int(100)),
            ("cost_usd", AnyValue::Double(cost)),
            ("prompt.id", s(&format!("p-{at}"))),
        ],
    );
    logs(view, at, a1(), vec![request]);
}

/// The verdict the view calls for, recorded as the coordinator records it.
fn decide(view: &mut View, at: u64) -> Option<crate::fact::BudgetVerdictKind> {
    let due = view.budget_due("f1")?;
    let verdict = crate::fact::BudgetVerdict {
        feature_name: "f1",
        verdict: crate::fact::Word::Member(due.kind),
        spent_usd: due.spent.cost_usd(),
        spent_tokens: due.spent.tokens.total(),
        usd: Some(0.02),
        tokens: None,
        agent_id: Some("a1"),
    };
    let span = crate::fact::Fact::BudgetVerdict(verdict).to_span([7; 16], [at as u8; 8], 0);
    spans(view, at, vec![span]);
    Some(due.kind)
}

#[test]
fn a_feature_over_its_budget_is_held_until_the_budget_is_raised() {
    use crate::fact::BudgetVerdictKind::{Exceeded, Warning};
    use crate::reducer::{AgentState, FeatureStatus};
    let mut view = holding_f1();
    budget(&mut view, 10, 0.02);
    spend(&mut view, 11, 0.0123);
    assert_eq!(
        decide(&mut view, 12),
        None,
        "61% of the budget: nothing to say"
    );
    spend(&mut view, 13, 0.004);
    assert_eq!(decide(&mut view, 14), Some(Warning), "81.5%");
    assert_eq!(decide(&mut view, 15), None, "a warning is given once");
    spend(&mut view, 16, 0.004);
    assert_eq!(decide(&mut view, 17), Some(Exceeded));
    let f = &view.features["f1"];
    assert_eq!(
        (f.status, f.assigned_agent.as_deref()),
        (FeatureStatus::Held, None)
    );
    assert_eq!(
        f.last_error.as_deref(),
        Some(
            "budget exceeded: $0.0203 of $0.0200; raise it with `spanfold agents set-budget f1 --usd X` (or --tokens N) to continue"
        )
    );
    assert_eq!(view.agents["a1"].state, AgentState::Idle);
    assert_eq!(
        view.features["f1"].worktree_path.as_deref(),
        Some("/wt/f1"),
        "kept"
    );
    // Raised, but not above what it spent: still held. Raised above: back in the queue.
    budget(&mut view, 18, 0.02);
    assert_eq!(view.features["f1"].status, FeatureStatus::Held);
    budget(&mut view, 19, 1.0);
    assert_eq!(view.features["f1"].status, FeatureStatus::Queued);
    assert_eq!(view.features["f1"].last_error, None);
    assert!(view.anomalies.is_empty(), "{:?}", view.anomalies);
    assert_eq!(
        view.tally,
        crate::reducer::FeatureTally::of(view.features.values())
    );
}

const DAY: u64 = 86_400_000_000_000;

/// a1 registered again, with a daily budget (`None`: without).
fn day_budget(view: &mut View, at: u64, usd: Option<f64>) {
    let mut span =
        Span::new([8; 16], [at as u8; 8], "agent.registration", 0).with("agent.id", s("a1"));
    if let Some(usd) = usd {
        span = span.with("agent.budget_usd_per_day", AnyValue::Double(usd));
    }
    spans(view, at, vec![span]);
}

/// The daily verdict due at `at`, recorded as the coordinator records it (at that time).
fn decide_day(view: &mut View, at: u64) -> Option<crate::fact::DayVerdict> {
    let due = view.agent_budget_due("a1", day_of(at))?;
    let usd = view.usage.agent_budgets["a1"].usd_nanos as f64 / 1e9;
    let day = crate::usage::day_name(due.day);
    let verdict = crate::fact::AgentBudgetVerdict {
        agent_id: "a1",
        verdict: crate::fact::Word::Member(due.kind),
        day: &day,
        spent_usd: due.spent_nanos as f64 / 1e9,
        usd,
    };
    let span = crate::fact::Fact::AgentBudgetVerdict(verdict).to_span([9; 16], [at as u8; 8], at);
    spans(view, at, vec![span]);
    Some(due.kind)
}

#[test]
fn an_agent_over_its_daily_budget_lets_go_of_its_work_until_a_new_day_renews_it() {
    use crate::fact::DayVerdict::{Exceeded, Renewed, Warning};
    use crate::reducer::FeatureStatus;
    let mut view = holding_f1();
    day_budget(&mut view, 10, Some(0.05));
    spend(&mut view, 11, 0.03);
    assert_eq!(decide_day(&mut view, 12), None, "60% of the day's budget");
    spend(&mut view, 13, 0.011);
    assert_eq!(decide_day(&mut view, 14), Some(Warning), "82%");
    assert_eq!(decide_day(&mut view, 15), None, "warned once a day");
    spend(&mut view, 16, 0.01);
    assert_eq!(decide_day(&mut view, 17), Some(Exceeded));
    let f = &view.features["f1"];
    assert_eq!(
        (f.status, f.assigned_agent.as_deref()),
        (FeatureStatus::Queued, None)
    );
    assert_eq!(
        f.worktree_path.as_deref(),
        Some("/wt/f1"),
        "kept with the work"
    );
    assert_eq!(
        f.last_error.as_deref(),
        Some(
            "agent a1 spent its daily budget ($0.0510 of $0.0500 on 1970-01-01); queued again, its worktree kept with the work"
        )
    );
    let a1 = &view.agents["a1"];
    assert!(
        a1.assignments.is_empty() && !a1.can_take_more(),
        "no work today"
    );
    assert_eq!(decide_day(&mut view, 18), None, "still the same day");
    // The feature is not the agent's to keep: another agent may take it, and does.
    assert!(
        crate::policy::decide(&view, &Default::default())
            .assignments
            .is_empty()
    );
    // Spending on a later day starts over; the agent waits for the renewal all the same.
    spend(&mut view, DAY + 1, 0.001);
    assert!(!view.agents["a1"].can_take_more());
    assert_eq!(decide_day(&mut view, DAY + 2), Some(Renewed));
    assert!(view.agents["a1"].can_take_more());
    assert_eq!(view.agent_spent_on("a1", day_of(DAY)), 1_000_000);
    assert_eq!(decide_day(&mut view, DAY + 3), None);
    let placed = crate::policy::decide(&view, &Default::default());
    assert_eq!(placed.assignments.len(), 1, "f1 goes to a1 again");
    assert!(view.anomalies.is_empty(), "{:?}", view.anomalies);
}

#[test]
fn a_daily_budget_raised_above_todays_spending_lets_the_agent_work_again() {
    use crate::fact::DayVerdict::Exceeded;
    let mut view = holding_f1();
    day_budget(&mut view, 10, Some(0.01));
    spend(&mut view, 11, 0.02);
    assert_eq!(decide_day(&mut view, 12), Some(Exceeded));
    day_budget(&mut view, 13, Some(0.015));
    assert!(
        !view.agents["a1"].can_take_more(),
        "still below what it spent"
    );
    day_budget(&mut view, 14, Some(1.0));
    assert!(view.agents["a1"].can_take_more());
    assert_eq!(decide_day(&mut view, 15), None, "2% of the new budget");
    // Registering without one removes it: nothing more is due.
    day_budget(&mut view, 16, None);
    assert!(view.usage.agent_budgets.is_empty());
    assert_eq!(view.agent_budget_due("a1", 0), None);
}

#[test]
fn a_default_budget_goes_to_the_features_requested_after_it() {
    let mut view = registered();
    let request = |name: &str, at: u8| {
        Span::new([2; 16], [at; 8], "feature.request", 0).with("feature.name", s(name))
    };
    spans(&mut view, 2, vec![request("before", 2)]);
    let init = Span::new([3; 16], [3; 8], "coordination.init", 0)
        .with("coordination.repo", s("/r"))
        .with("coordination.base_branch", s("main"))
        .with("coordination.worktrees_dir", s("/w"));
    let configure = |at: u8, usd: f64| {
        Span::new([3; 16], [at; 8], "coordination.configure", 0)
            .with("budget.usd", AnyValue::Double(usd))
    };
    spans(&mut view, 3, vec![init, configure(4, 2.5)]);
    spans(
        &mut view,
        5,
        vec![request("after", 5), request("defaulted", 9)],
    );
    let own = Span::new([6; 16], [6; 8], "feature.budget", 0)
        .with("feature.name", s("after"))
        .with("budget.usd", AnyValue::Double(9.0));
    spans(&mut view, 6, vec![own]);
    spans(&mut view, 7, vec![configure(7, 0.0), request("later", 8)]);
    let budgets = &view.usage.budgets;
    assert_eq!(budgets.get("before"), None, "requested before the default");
    assert_eq!(budgets["defaulted"].usd_nanos, Some(2_500_000_000));
    assert_eq!(budgets["defaulted"].tokens, None);
    assert_eq!(
        budgets["after"].usd_nanos,
        Some(9_000_000_000),
        "its own wins"
    );
    assert_eq!(budgets.get("later"), None, "the default was removed");
    assert_eq!(
        view.config.as_ref().map(|c| c.lease_seconds),
        Some(600),
        "lease left as it was"
    );
    assert!(view.anomalies.is_empty(), "{:?}", view.anomalies);
}
