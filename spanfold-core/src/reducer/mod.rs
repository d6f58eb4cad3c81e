//! The reducer: a pure fold of log events into the [`View`]. No I/O, no clock (time comes from
//! the event), no hash-order iteration — the same log always gives the same view.
//!
//! It enforces the agent lifecycle: a span that asks for an illegal transition changes nothing
//! and is recorded as an anomaly with its reason.
//!
//! The fold itself (this file) dispatches each span by name to the rules of one job:
//!
//! - `vocabulary`: the closed sets of words — agent states and their moves, feature and
//!   worktree statuses, priority, complexity.
//! - `view`: the view and the records it holds.
//! - `tally`: the feature counts the fold keeps so that a summary need not walk every feature.
//! - `agents`: what agents report, and the lifecycle rules their reports must follow.
//! - `features`: the queue — requests, cancels, reopens, and a feature going back to it.
//! - `worktrees`: what happened to a feature's worktree.
//! - `decisions`: the coordinator's own decisions — setup, assignment, lease expiry, merge.
//! - `anomalies`: what could not be applied, and an operator acknowledging it.

mod agents;
mod anomalies;
mod decisions;
mod features;
mod tally;
mod view;
mod vocabulary;
mod worktrees;

pub use tally::FeatureTally;
pub use view::{
    Agent, AgentError, Anomaly, AsOf, Capabilities, Config, Counters, DEFAULT_LEASE_SECONDS,
    Feature, Progress, View, Worktree,
};
pub use vocabulary::{AgentState, Complexity, FeatureStatus, Priority, WorktreeStatus};

use crate::model::Event;
use crate::vocab::{attr, span};

/// Bumped whenever a change to this module can change the view a log folds into; derived data
/// tagged with another version is discarded and rebuilt.
pub const REDUCER_VERSION: u32 = 6;

/// Span names this reducer gives meaning to. A test checks this list against the registry.
pub const HANDLED_SPANS: &[&str] = &[
    span::AGENT_COMMUNICATION,
    span::ANOMALY_ACKNOWLEDGE,
    span::AGENT_FEATURE_ASSIGNMENT,
    span::AGENT_LEASE_EXPIRED,
    span::AGENT_REGISTRATION,
    span::AGENT_RESET,
    span::AGENT_TOKEN_ISSUED,
    span::AGENT_VALIDATION,
    span::AGENT_WORK_PROGRESS,
    span::COORDINATION_CONFIGURE,
    span::COORDINATION_CYCLE,
    span::COORDINATION_FEATURE_MERGE,
    span::COORDINATION_INIT,
    span::COORDINATION_SYSTEM_HEALTH,
    span::FEATURE_CANCEL,
    span::FEATURE_REOPEN,
    span::FEATURE_REQUEST,
    span::WORKTREE_LIFECYCLE,
];

/// At most this many anomalies are kept in the view; older ones are counted, not listed.
pub const MAX_ANOMALIES: usize = 1000;

impl View {
    pub fn fold<'a>(events: impl IntoIterator<Item = Event<'a>>) -> View {
        let mut view = View::default();
        for ev in events {
            view.apply(&ev);
        }
        view
    }

    /// Why these events would be anomalies, folded in after everything else, if any would: a
    /// person's command is refused with that reason before anything is written (an agent's
    /// span, which cannot be refused that way, is kept and recorded as an anomaly instead).
    pub fn refusal<'a>(&self, events: impl IntoIterator<Item = Event<'a>>) -> Option<String> {
        let mut trial = self.clone();
        let before = trial.counters.anomalies;
        for ev in events {
            trial.apply(&ev);
            if trial.counters.anomalies > before {
                return trial.anomalies.back().map(|a| a.reason.clone());
            }
        }
        None
    }

    /// Folds one event in. Never fails: what cannot be applied is recorded as an anomaly.
    pub fn apply(&mut self, ev: &Event<'_>) {
        self.as_of = AsOf {
            seq: ev.seq,
            time: ev.time,
        };
        self.counters.events += 1;
        let outcome = match ev.span.name.as_str() {
            span::AGENT_REGISTRATION => self.register(ev),
            span::FEATURE_REQUEST => self.request_feature(ev),
            span::AGENT_WORK_PROGRESS => self.progress(ev),
            span::AGENT_VALIDATION => self.validation(ev),
            span::AGENT_RESET => self.reset(ev),
            span::AGENT_COMMUNICATION => self.message(ev),
            span::COORDINATION_INIT => self.init(ev),
            span::COORDINATION_CONFIGURE => self.configure(ev),
            span::COORDINATION_CYCLE => {
                self.counters.cycles += 1;
                Ok(())
            }
            span::AGENT_FEATURE_ASSIGNMENT => self.assign(ev),
            span::WORKTREE_LIFECYCLE => self.worktree(ev),
            span::COORDINATION_SYSTEM_HEALTH => Ok(()),
            span::COORDINATION_FEATURE_MERGE => self.merge(ev),
            span::AGENT_LEASE_EXPIRED => self.lease_expired(ev),
            span::FEATURE_CANCEL => self.cancel(ev),
            span::FEATURE_REOPEN => self.reopen(ev),
            span::ANOMALY_ACKNOWLEDGE => self.acknowledge(ev),
            span::AGENT_TOKEN_ISSUED => self.token_issued(ev),
            _ => {
                self.counters.unregistered_spans += 1;
                // A span the registry does not name still shows its agent is alive.
                if let Some(agent) = ev
                    .str_attr(attr::AGENT_ID)
                    .and_then(|id| self.agents.get_mut(id))
                {
                    agent.last_activity = ev.time;
                }
                Ok(())
            }
        };
        if let Err(reason) = outcome {
            self.anomaly(ev, reason);
        }
        // Every test that folds a small view checks the kept counts against a recount (a large
        // view would make debug builds quadratic).
        if cfg!(debug_assertions) && self.features.len() <= 300 {
            assert_eq!(
                self.tally,
                FeatureTally::of(self.features.values()),
                "feature counts drifted at seq {}",
                ev.seq
            );
        }
    }
}

#[cfg(test)]
mod tests;
