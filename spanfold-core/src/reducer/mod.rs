//! The reducer: a pure fold of log events into the [`View`]. No I/O, no clock (time comes from
//! the event), no hash-order iteration — the same log always gives the same view.
//!
//! It enforces the agent lifecycle: a span that asks for an illegal transition changes nothing
//! and is recorded as an anomaly with its reason.
//!
//! The fold itself (this file) reads each span once as a typed [`Fact`] (`crate::fact`: a
//! span missing what its rule needs is an anomaly there) and hands it to the rules of one job:
//!
//! - `vocabulary`: the closed sets of words the view uses — feature and worktree statuses — and
//!   the agent lifecycle's moves between the states spans report.
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
mod forecasts;
mod tally;
mod telemetry;
mod usage;
mod view;
mod vocabulary;
mod worktrees;

pub use forecasts::Risk;
pub use tally::{FeatureTally, QueueKey};
pub use telemetry::MAX_SERVICES;
pub use usage::{DayBudget, DayDue, Due, FeatureBudget, SessionUsage, UsageState};
pub use view::{ActivityCounts, AgentTelemetry, LastSeen, ProcessState};
pub use view::{
    Agent, AgentError, Anomaly, AsOf, Capabilities, Config, Counters, DEFAULT_LEASE_SECONDS,
    Feature, Progress, Telemetry, View, Worktree,
};
// The words spans carry are defined with the spans; the view keeps them under these names.
pub use crate::fact::{AgentState, Complexity, Priority};
pub use vocabulary::{FeatureStatus, WorktreeStatus};

use crate::fact::Fact;
use crate::model::{AnyEvent, Batch, Event, LogEvent, MetricEvent};
use crate::vocab::attr;

/// Bumped whenever a change to this module can change the view a log folds into; derived data
/// tagged with another version is discarded and rebuilt.
pub const REDUCER_VERSION: u32 = 20;

/// Span names this reducer gives meaning to: one per [`Fact`]. A test checks this list against
/// the registry.
pub const HANDLED_SPANS: &[&str] = &Fact::NAMES;

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

    /// Folds any event in: a span ([`View::apply`]), a log record or a metric.
    pub fn apply_any(&mut self, ev: &AnyEvent<'_>) {
        match ev {
            AnyEvent::Span(e) => self.apply(e),
            AnyEvent::Log(e) => self.apply_log(e),
            AnyEvent::Metric(e) => self.apply_metric(e),
        }
    }

    /// Every event of `batch` from `from` on.
    pub fn apply_batch(&mut self, batch: &Batch, from: u64) {
        for ev in batch.all_events().filter(|e| e.seq() >= from) {
            self.apply_any(&ev);
        }
    }

    /// A log record (an agent's event): kept and counted; the agent it names is alive.
    pub fn apply_log(&mut self, ev: &LogEvent<'_>) {
        self.as_of = AsOf {
            seq: ev.seq,
            time: ev.time,
        };
        self.counters.events += 1;
        self.telemetry_log(ev);
    }

    /// A metric: kept and counted; the agent its resource names is alive.
    pub fn apply_metric(&mut self, ev: &MetricEvent<'_>) {
        self.as_of = AsOf {
            seq: ev.seq,
            time: ev.time,
        };
        self.counters.events += 1;
        self.telemetry_metric(ev);
    }

    /// Folds one event in. Never fails: what cannot be applied is recorded as an anomaly.
    pub fn apply(&mut self, ev: &Event<'_>) {
        self.as_of = AsOf {
            seq: ev.seq,
            time: ev.time,
        };
        self.counters.events += 1;
        let outcome = match Fact::parse(ev) {
            Some(Ok(fact)) => {
                let assigned = match &fact {
                    Fact::Assignment(a) => Some(a.agent_id),
                    _ => None,
                };
                let applied = self.apply_fact(fact, self.as_of);
                // Records an agent sends in its assignment's trace are that agent's; a refused
                // assignment changes nothing but its anomaly.
                if let (Ok(()), Some(agent)) = (&applied, assigned) {
                    self.remember_trace(&ev.span.trace_id, agent);
                }
                applied
            }
            Some(Err(reason)) => Err(reason),
            None => {
                self.counters.unregistered_spans += 1;
                // A span the registry does not name still shows its agent is alive; one an agent
                // profile knows (an agent's own traces) also says what it was doing.
                if !self.telemetry_span(ev)
                    && let Some(agent) = ev
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

    /// The rule of one fact, at the event's place in the log.
    fn apply_fact(&mut self, fact: Fact<'_>, at: AsOf) -> Result<(), String> {
        match fact {
            Fact::Registration(r) => self.register(r, at),
            Fact::FeatureRequest(r) => self.request_feature(r, at),
            Fact::WorkProgress(p) => self.progress(p, at),
            Fact::Validation(v) => self.validation(v, at),
            Fact::Reset(r) => self.reset(r, at),
            Fact::Communication(m) => self.message(m, at),
            Fact::Process(p) => self.process(p, at),
            Fact::Init(i) => {
                self.init(i);
                Ok(())
            }
            Fact::Configure(c) => self.configure(c),
            Fact::Prices(p) => self.prices(p),
            Fact::Budget(b) => self.set_budget(b),
            Fact::BudgetVerdict(v) => self.budget_verdict(v, at),
            Fact::AgentBudgetVerdict(v) => self.agent_budget_verdict(v, at),
            Fact::ConflictForecast(f) => self.forecast(f, at),
            Fact::Cycle(_) => {
                self.counters.cycles += 1;
                Ok(())
            }
            Fact::Assignment(a) => self.assign(a, at),
            Fact::Worktree(w) => self.worktree(w, at),
            Fact::SystemHealth(_) => Ok(()),
            Fact::Merge(m) => self.merge(m, at),
            Fact::LeaseExpired(l) => self.lease_expired(l, at),
            Fact::Cancel(c) => self.cancel(c, at),
            Fact::Reopen(r) => self.reopen(r, at),
            Fact::Review(r) => self.review(r, at),
            Fact::Acknowledge(a) => self.acknowledge(a),
            Fact::TokenIssued(t) => self.token_issued(t),
        }
    }
}

#[cfg(test)]
mod tests;
