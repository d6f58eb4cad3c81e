//! Budget verdicts: right after an append whose records moved a budgeted feature's spending
//! past 80% or all of its budget, the verdict is recorded (`coordination.budget`), and the fold
//! holds a feature over its budget. Decided on the view just after the crossing record's batch,
//! by the core's one rule (`View::budget_due`), which `replay --verify` checks again.

use crate::fact::{BudgetVerdict, Fact, Word};
use crate::usage::NANOS_PER_USD;

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
}
