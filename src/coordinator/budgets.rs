//! Budget verdicts: right after an append whose records moved a budgeted feature's spending
//! past 80% or all of its budget, the verdict is recorded (`coordination.budget`), and the fold
//! holds a feature over its budget. Decided on the view just after the crossing record's batch,
//! by the core's one rule (`View::budget_due`), which `replay --verify` checks again.
//!
//! Agents' daily budgets the same way (`coordination.agent_budget`, `View::agent_budget_due`),
//! with the day taken from the clock once and written into the verdict's time; an agent over
//! its budget is renewed by the first cycle of a later day.

use crate::fact::{AgentBudgetVerdict, BudgetVerdict, Fact, Word};
use crate::usage::{NANOS_PER_USD, day_name, day_of};

use super::{CoordError, Coordinator};

impl Coordinator {
    /// Records the verdicts the view calls for now, feature by feature in name order.
    pub(super) fn record_budget_verdicts(&mut self) -> Result<(), CoordError> {
        let spans = {
            let view = self.view.read();
            let mut spans = Vec::new();
            for (name, budget) in &view.usage.budgets {
                let Some(due) = view.budget_due(name) else {
                    continue;
                };
                let holder = view
                    .features
                    .get(name)
                    .and_then(|f| f.assigned_agent.as_deref());
                let fact = BudgetVerdict {
                    feature_name: name,
                    verdict: Word::Member(due.kind),
                    spent_usd: due.spent.cost_usd(),
                    spent_tokens: due.spent.tokens.total(),
                    usd: budget.usd_nanos.map(|n| n as f64 / NANOS_PER_USD as f64),
                    tokens: budget.tokens.map(|t| t.min(i64::MAX as u64) as i64),
                    agent_id: holder,
                };
                let (trace, span) = (self.ids.trace_id(), self.ids.span_id());
                spans.push(Fact::BudgetVerdict(fact).to_span(trace, span, self.clock.now()));
            }
            spans
        };
        if spans.is_empty() {
            return Ok(());
        }
        self.record(spans)
    }

    /// Records the daily budget verdicts due now, agent by agent in name order: the crossings
    /// and the renewals of a day begun since.
    pub(super) fn record_agent_budget_verdicts(&mut self) -> Result<(), CoordError> {
        let now = self.clock.now();
        let spans = {
            let view = self.view.read();
            let mut spans = Vec::new();
            for (agent, due) in view.agent_budgets_due(day_of(now)) {
                let Some(budget) = view.usage.agent_budgets.get(&agent) else {
                    continue;
                };
                let day = day_name(due.day);
                let fact = AgentBudgetVerdict {
                    agent_id: &agent,
                    verdict: Word::Member(due.kind),
                    day: &day,
                    spent_usd: due.spent_nanos as f64 / NANOS_PER_USD as f64,
                    usd: budget.usd_nanos as f64 / NANOS_PER_USD as f64,
                };
                let (trace, span) = (self.ids.trace_id(), self.ids.span_id());
                spans.push(Fact::AgentBudgetVerdict(fact).to_span(trace, span, now));
            }
            spans
        };
        if spans.is_empty() {
            return Ok(());
        }
        self.record(spans)
    }

    /// Whether a daily budget verdict is due now (a new day renews an agent over its budget).
    pub(super) fn agent_budget_due(&self) -> bool {
        let view = self.view.read();
        !view.usage.agent_budgets.is_empty()
            && !view.agent_budgets_due(day_of(self.clock.now())).is_empty()
    }
}
