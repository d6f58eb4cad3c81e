//! Budgets: what a feature may spend (`feature.budget`, dollars, tokens or both), and the
//! coordinator's verdicts when its spending crosses 80% (`warning`) or all (`exceeded`) of one
//! (`coordination.budget`). An exceeded feature leaves its agent and is held — its worktree
//! kept, never placed again — until its budget is raised above what it spent; it then goes
//! back to its place in the queue. What a verdict should say is [`View::budget_due`], the one
//! rule the coordinator decides with and `replay --verify` checks with.

use serde::{Deserialize, Serialize};

use crate::fact::{Budget, BudgetVerdict, BudgetVerdictKind, DefaultBudget, Word};
use crate::reducer::{AsOf, FeatureStatus, View};
use crate::usage::{NANOS_PER_USD, Usage};

/// A feature's budget and the verdicts given so far on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureBudget {
    /// Billionths of a dollar (None: no dollar budget).
    pub usd_nanos: Option<u64>,
    pub tokens: Option<u64>,
    pub warned: bool,
    pub exceeded: bool,
}

/// The verdict a feature's spending calls for, with the figures it is given on.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub kind: BudgetVerdictKind,
    pub spent: Usage,
}

impl FeatureBudget {
    /// The verdict `spent` calls for now, if a line was crossed since the last one.
    fn due(&self, spent: &Usage) -> Option<BudgetVerdictKind> {
        let tokens = spent.tokens.total();
        // Compared in integers: spent × 5 ≥ limit × 4 is spent ≥ 80% of the limit.
        let over = |limit: Option<u64>, n: u64| limit.is_some_and(|l| n >= l);
        let near = |limit: Option<u64>, n: u64| {
            limit.is_some_and(|l| u128::from(n) * 5 >= u128::from(l) * 4)
        };
        if !self.exceeded && (over(self.usd_nanos, spent.cost_nanos) || over(self.tokens, tokens)) {
            return Some(BudgetVerdictKind::Exceeded);
        }
        let near = near(self.usd_nanos, spent.cost_nanos) || near(self.tokens, tokens);
        (!self.warned && !self.exceeded && near).then_some(BudgetVerdictKind::Warning)
    }
}

impl FeatureBudget {
    /// Whether it limits anything.
    pub fn limits(&self) -> bool {
        self.usd_nanos.is_some() || self.tokens.is_some()
    }
}

/// A token limit as a span gives it (0 or less: none).
fn token_limit(tokens: Option<i64>) -> Option<u64> {
    tokens
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
}

/// Dollars as billionths, for a limit given in dollars (0 or less: none).
fn nanos(usd: Option<f64>) -> Option<u64> {
    usd.filter(|u| *u > 0.0)
        .map(|u| (u * NANOS_PER_USD as f64).round() as u64)
}

impl View {
    /// The verdict due on `feature` now, if any: none for a feature done, withdrawn or without
    /// a budget.
    pub fn budget_due(&self, feature: &str) -> Option<Due> {
        let budget = self.usage.budgets.get(feature)?;
        let status = self.features.get(feature)?.status;
        if matches!(status, FeatureStatus::Completed | FeatureStatus::Cancelled) {
            return None;
        }
        let spent = self
            .usage
            .ledger
            .features
            .get(feature)
            .copied()
            .unwrap_or_default();
        budget.due(&spent).map(|kind| Due { kind, spent })
    }

    /// `feature.budget`: the feature's limits from now on. Its verdicts start over; a held
    /// feature no longer over its budget goes back to the queue.
    pub(in crate::reducer) fn set_budget(&mut self, b: Budget<'_>) -> Result<(), String> {
        let name = b.feature_name;
        if !self.features.contains_key(name) {
            return Err(format!("feature {name} was never requested"));
        }
        let budget = FeatureBudget {
            usd_nanos: nanos(b.usd),
            tokens: token_limit(b.tokens),
            warned: false,
            exceeded: false,
        };
        let spent = self
            .usage
            .ledger
            .features
            .get(name)
            .copied()
            .unwrap_or_default();
        let still_over = budget.due(&spent) == Some(BudgetVerdictKind::Exceeded);
        self.usage.budgets.insert(name.to_owned(), budget);
        let held = self
            .features
            .get(name)
            .is_some_and(|f| f.status == FeatureStatus::Held);
        if held && !still_over {
            self.set_feature_status(name, FeatureStatus::Queued);
            // Its wait is the queue's again, not the budget's.
            if let Some(f) = self.features.get_mut(name) {
                f.last_error = None;
            }
        }
        Ok(())
    }

    /// The default feature budget from `coordination.init` or `.configure`: each part the span
    /// carries replaces the one before (0 or less: none); a part it leaves out stays.
    pub(in crate::reducer) fn set_default_budget(&mut self, d: DefaultBudget) {
        let default = &mut self.usage.default_budget;
        if d.usd.is_some() {
            default.usd_nanos = nanos(d.usd);
        }
        if d.tokens.is_some() {
            default.tokens = token_limit(d.tokens);
        }
    }

    /// A feature requested for the first time gets the default budget, if there is one.
    pub(in crate::reducer) fn give_default_budget(&mut self, feature: &str) {
        let default = &self.usage.default_budget;
        if default.limits() && !self.usage.budgets.contains_key(feature) {
            let budget = FeatureBudget {
                warned: false,
                exceeded: false,
                ..default.clone()
            };
            self.usage.budgets.insert(feature.to_owned(), budget);
        }
    }

    /// `coordination.budget`: a warning is noted; an exceeded budget holds the feature.
    pub(in crate::reducer) fn budget_verdict(
        &mut self,
        v: BudgetVerdict<'_>,
        at: AsOf,
    ) -> Result<(), String> {
        let name = v.feature_name;
        let kind = match v.verdict {
            Word::Member(kind) => kind,
            Word::Other(other) => return Err(format!("unknown budget.verdict {other:?}")),
        };
        let budget =
            self.usage.budgets.get_mut(name).ok_or_else(|| {
                format!("a budget verdict on feature {name}, which has no budget")
            })?;
        budget.warned = true;
        if kind == BudgetVerdictKind::Warning {
            return Ok(());
        }
        budget.exceeded = true;
        let open = self.features.get(name).is_some_and(|f| {
            !matches!(
                f.status,
                FeatureStatus::Completed | FeatureStatus::Cancelled | FeatureStatus::Held
            )
        });
        if open {
            let why = exceeded_words(name, &v);
            self.withdraw(name, FeatureStatus::Held, Some(why), at);
        }
        Ok(())
    }
}

/// Dollars as a wait reason says them: cents, unless the sum is smaller than a dollar.
pub(super) fn money(usd: f64) -> String {
    match usd >= 1.0 {
        true => format!("${usd:.2}"),
        false => format!("${usd:.4}"),
    }
}

/// "budget exceeded: $5.12 of $5.00; raise it with …", as the held feature's wait reason says.
fn exceeded_words(name: &str, v: &BudgetVerdict<'_>) -> String {
    let mut over = Vec::new();
    if let Some(usd) = v.usd {
        over.push(format!("{} of {}", money(v.spent_usd), money(usd)));
    }
    if let Some(tokens) = v.tokens {
        over.push(format!("{} of {tokens} tokens", v.spent_tokens));
    }
    format!(
        "budget exceeded: {}; raise it with `spanfold agents set-budget {name} --usd X` (or --tokens N) to continue",
        over.join(", ")
    )
}
