//! Agents' daily budgets: what an agent's LLM requests may cost in a day (UTC), set when it
//! registers (`agent.budget_usd_per_day`). The coordinator's verdicts (`coordination.agent_budget`)
//! warn at 80%, and at all of it make the agent let go of its features (queued again, their
//! worktrees kept) and take no work until a later day renews it or its budget is raised. What
//! a verdict should say is [`View::agent_budget_due`], the one rule the coordinator decides with
//! and `replay --verify` checks with; the day is an input, never read from a clock.

use serde::{Deserialize, Serialize};

use super::budget::money;
use crate::fact::{AgentBudgetVerdict, DayVerdict, Word};
use crate::reducer::{AgentState, AsOf, Progress, View};
use crate::usage::{NANOS_PER_USD, day_number, day_of};

/// An agent's daily budget and the verdicts given on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBudget {
    /// Billionths of a dollar a day.
    pub usd_nanos: u64,
    /// The day it was last warned on.
    pub warned_on: Option<u32>,
    /// The day it went over, while it waits for a later one (or a higher budget).
    pub exceeded_on: Option<u32>,
}

/// The verdict an agent's day calls for, with what it spent that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayDue {
    pub kind: DayVerdict,
    pub day: u32,
    pub spent_nanos: u64,
}

impl View {
    /// What `agent` spent on `day` (UTC days since 1970-01-01), in billionths of a dollar.
    pub fn agent_spent_on(&self, agent: &str, day: u32) -> u64 {
        self.usage
            .ledger
            .agents
            .get(agent)
            .map_or(0, |a| a.today.on(day))
    }

    /// The verdict due on `agent`'s daily budget on `today`, if any: a renewal once a later day
    /// has begun for an agent over its budget; else a line its spending today crossed.
    pub fn agent_budget_due(&self, agent: &str, today: u32) -> Option<DayDue> {
        let budget = self.usage.agent_budgets.get(agent)?;
        let spent_nanos = self.agent_spent_on(agent, today);
        let due = |kind| DayDue {
            kind,
            day: today,
            spent_nanos,
        };
        if let Some(day) = budget.exceeded_on {
            return (today > day).then(|| due(DayVerdict::Renewed));
        }
        let limit = budget.usd_nanos;
        if spent_nanos >= limit {
            return Some(due(DayVerdict::Exceeded));
        }
        // In integers: spent × 5 ≥ limit × 4 is spent ≥ 80% of the limit.
        let near = u128::from(spent_nanos) * 5 >= u128::from(limit) * 4;
        (near && budget.warned_on != Some(today)).then(|| due(DayVerdict::Warning))
    }

    /// Every verdict due on `today`, by agent name (the order the coordinator records them in).
    pub fn agent_budgets_due(&self, today: u32) -> Vec<(String, DayDue)> {
        self.usage
            .agent_budgets
            .keys()
            .filter_map(|a| Some((a.clone(), self.agent_budget_due(a, today)?)))
            .collect()
    }

    /// A registration's daily budget (None: none). A budget raised above what the agent spent
    /// today lets an agent over its old one work again; the log's time says which day it is.
    pub(in crate::reducer) fn set_day_budget(&mut self, agent: &str, usd: Option<f64>, at: AsOf) {
        let Some(usd) = usd else {
            self.usage.agent_budgets.remove(agent);
            self.pause(agent, false);
            return;
        };
        let usd_nanos = (usd * NANOS_PER_USD as f64).round() as u64;
        let spent = self.agent_spent_on(agent, day_of(at.time));
        let budget = self
            .usage
            .agent_budgets
            .entry(agent.to_owned())
            .or_default();
        budget.usd_nanos = usd_nanos;
        if budget.exceeded_on.is_some() && spent < usd_nanos {
            budget.exceeded_on = None;
            self.pause(agent, false);
        }
    }

    /// `coordination.agent_budget`: a warning is noted; an exceeded agent lets go of its
    /// features and waits; a renewed one may work again.
    pub(in crate::reducer) fn agent_budget_verdict(
        &mut self,
        v: AgentBudgetVerdict<'_>,
        at: AsOf,
    ) -> Result<(), String> {
        let id = v.agent_id;
        let kind = match v.verdict {
            Word::Member(kind) => kind,
            Word::Other(other) => return Err(format!("unknown budget.verdict {other:?}")),
        };
        // The day the verdict names: decided on, whatever time it reached the log.
        let today = day_number(v.day)
            .ok_or_else(|| format!("budget.day {:?} is no day: YYYY-MM-DD", v.day))?;
        let budget =
            self.usage.agent_budgets.get_mut(id).ok_or_else(|| {
                format!("a budget verdict on agent {id}, which has no daily budget")
            })?;
        match kind {
            DayVerdict::Warning => budget.warned_on = Some(today),
            DayVerdict::Renewed => {
                budget.exceeded_on = None;
                self.pause(id, false);
            }
            DayVerdict::Exceeded => {
                budget.warned_on = Some(today);
                budget.exceeded_on = Some(today);
                self.pause(id, true);
                self.release_for_budget(id, &v, at);
            }
        }
        Ok(())
    }

    fn pause(&mut self, agent: &str, paused: bool) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.paused_for_budget = paused;
        }
    }

    /// An agent over its daily budget lets go of its features: queued again for another agent,
    /// their worktrees kept with the work.
    fn release_for_budget(&mut self, id: &str, v: &AgentBudgetVerdict<'_>, at: AsOf) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        let released = std::mem::take(&mut agent.assignments);
        if agent.state != AgentState::Error {
            agent.state = AgentState::Idle;
        }
        agent.progress = Progress::default();
        for name in released {
            self.requeue(
                &name,
                format!(
                    "agent {id} spent its daily budget ({} of {} on {}); queued again, its worktree kept with the work",
                    money(v.spent_usd),
                    money(v.usd),
                    v.day
                ),
                at.time,
            );
        }
    }
}
