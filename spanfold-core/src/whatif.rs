//! What-if (`replay --policy-config FILE`): the recorded inputs under another policy. Pure.
//!
//! The model, stated so that its numbers can be trusted for what they are:
//! - The inputs are the record's: when each agent registered (with its capabilities), when each
//!   feature was requested or cancelled, and when the coordinator ran its cycles.
//! - A feature's work takes as long as it took in the record: from its first assignment to its
//!   submission (the agent reporting `submitting`), whoever does it. A feature never submitted in
//!   the record is never finished in the simulation.
//! - A feature's work costs what its agents' LLM requests cost in the record (the usage folded
//!   from their telemetry): a run's cost is that of the features it completes.
//! - At each recorded cycle the simulation frees what finished, then runs the real policy
//!   ([`policy::decide`]) with the given weights and limits on the simulated queue.
//! - The same simulation runs under the current policy too, so the comparison is like for like;
//!   the record's own figures are shown beside both.
//!
//! Replay never executes effects: nothing here touches git or the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AnyEvent, Event, UnixNanos};
use crate::policy::{self, PolicyConfig, Weights};
use crate::reducer::{AgentState, FeatureStatus, View};
use crate::vocab::{attr, span};

/// What `--policy-config` may change. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhatIfConfig {
    pub weights: Option<Weights>,
    /// The lease, in seconds, for lease verdicts.
    pub lease_seconds: Option<u64>,
    /// A cap on every agent's concurrent features.
    pub max_concurrent_features: Option<u32>,
}

impl WhatIfConfig {
    fn policy(&self) -> PolicyConfig {
        PolicyConfig {
            weights: self.weights.clone().unwrap_or_default(),
        }
    }
}

/// One simulated assignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimAssignment {
    pub cycle: usize,
    pub time: UnixNanos,
    pub agent_id: String,
    pub feature_name: String,
    pub score: f64,
}

/// The figures compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub features_completed: usize,
    /// Features assigned at least once.
    pub features_assigned: usize,
    /// Seconds from request to first assignment (to the end of the record when never).
    pub mean_wait_seconds: f64,
    pub max_wait_seconds: f64,
    /// Assignments per agent.
    pub load: BTreeMap<String, usize>,
    /// Agents whose lease would have expired, summed over the cycles.
    pub lease_verdicts: usize,
    /// What the features completed cost, in US dollars, at their cost in the record.
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub cycles: usize,
    pub recorded: Outcome,
    pub current: Outcome,
    pub alternative: Outcome,
    /// Alternative assignments that the current policy did not make at the same cycle.
    pub differences: Vec<SimAssignment>,
    pub alternative_assignments: Vec<SimAssignment>,
}

/// A simulation under one policy.
struct Sim {
    config: WhatIfConfig,
    policy: PolicyConfig,
    /// Feature → (agent, finish time or never).
    held: BTreeMap<String, (String, Option<UnixNanos>)>,
    completed: BTreeMap<String, UnixNanos>,
    first_assigned: BTreeMap<String, UnixNanos>,
    assignments: Vec<SimAssignment>,
    lease_verdicts: usize,
}

impl Sim {
    fn new(config: WhatIfConfig) -> Sim {
        Sim {
            policy: config.policy(),
            config,
            held: BTreeMap::new(),
            completed: BTreeMap::new(),
            first_assigned: BTreeMap::new(),
            assignments: Vec::new(),
            lease_verdicts: 0,
        }
    }

    /// One cycle at `time` over the recorded view (for who and what exists) and the durations
    /// known so far.
    fn cycle(&mut self, number: usize, time: UnixNanos, view: &View, durations: &Durations) {
        let done: Vec<String> = self
            .held
            .iter()
            .filter(|(_, (_, end))| end.is_some_and(|end| end <= time))
            .map(|(f, _)| f.clone())
            .collect();
        for f in done {
            if let Some((_, Some(end))) = self.held.remove(&f) {
                self.completed.insert(f, end);
            }
        }
        let mut shadow = view.clone();
        for f in shadow.features.values_mut() {
            f.status = if f.status == FeatureStatus::Cancelled {
                FeatureStatus::Cancelled
            } else if self.completed.contains_key(&f.name) {
                FeatureStatus::Completed
            } else if let Some((agent, _)) = self.held.get(&f.name) {
                f.assigned_agent = Some(agent.clone());
                FeatureStatus::InProgress
            } else {
                f.assigned_agent = None;
                FeatureStatus::Queued
            };
        }
        for a in shadow.agents.values_mut() {
            a.assignments = self
                .held
                .iter()
                .filter(|(_, (holder, _))| *holder == a.id)
                .map(|(f, _)| f.clone())
                .collect();
            if a.state != AgentState::Error {
                a.state = if a.assignments.is_empty() {
                    AgentState::Idle
                } else {
                    AgentState::Working
                };
            }
            if let Some(cap) = self.config.max_concurrent_features {
                a.max_concurrent_features = a.max_concurrent_features.min(cap.max(1));
            }
        }
        if let (Some(lease), Some(c)) = (self.config.lease_seconds, shadow.config.as_mut()) {
            c.lease_seconds = lease;
        }
        // Lease verdicts are counted over the recorded silences of agents.
        let mut recorded = view.clone();
        if let (Some(lease), Some(c)) = (self.config.lease_seconds, recorded.config.as_mut()) {
            c.lease_seconds = lease;
        }
        self.lease_verdicts += policy::expired_leases(&recorded, time).len();
        for a in policy::decide(&shadow, &self.policy).assignments {
            let end = durations
                .get(&a.feature_name)
                .map(|d| time.saturating_add(*d));
            self.first_assigned
                .entry(a.feature_name.clone())
                .or_insert(time);
            self.held
                .insert(a.feature_name.clone(), (a.agent_id.clone(), end));
            self.assignments.push(SimAssignment {
                cycle: number,
                time,
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                score: a.score,
            });
        }
    }

    fn outcome(&self, facts: &Facts) -> Outcome {
        let mut completed = self.completed.len();
        // Work finishing after the last cycle but within the record still completes.
        completed += self
            .held
            .values()
            .filter(|(_, end)| end.is_some_and(|e| e <= facts.end))
            .count();
        let mut load = BTreeMap::new();
        for a in &self.assignments {
            *load.entry(a.agent_id.clone()).or_insert(0) += 1;
        }
        let (mean, max) = facts.waits(&self.first_assigned);
        let done = self.completed.keys().chain(
            self.held
                .iter()
                .filter(|(_, (_, end))| end.is_some_and(|e| e <= facts.end))
                .map(|(f, _)| f),
        );
        Outcome {
            cost_usd: facts.cost_of(done),
            features_completed: completed,
            features_assigned: self.first_assigned.len(),
            mean_wait_seconds: mean,
            max_wait_seconds: max,
            load,
            lease_verdicts: self.lease_verdicts,
        }
    }
}

type Durations = BTreeMap<String, u64>;

/// What the record says, gathered in one pass.
#[derive(Default)]
struct Facts {
    requested: BTreeMap<String, UnixNanos>,
    first_assigned: BTreeMap<String, UnixNanos>,
    submitted: BTreeMap<String, UnixNanos>,
    completed: usize,
    load: BTreeMap<String, usize>,
    lease_verdicts: usize,
    end: UnixNanos,
    /// What each feature cost in the record, in billionths of a dollar.
    costs: BTreeMap<String, u64>,
}

impl Facts {
    /// The recorded cost of `features`, in dollars (summed in billionths).
    fn cost_of<'f>(&self, features: impl Iterator<Item = &'f String>) -> f64 {
        let nanos: u64 = features.filter_map(|f| self.costs.get(f)).sum();
        nanos as f64 / crate::usage::NANOS_PER_USD as f64
    }

    fn waits(&self, assigned: &BTreeMap<String, UnixNanos>) -> (f64, f64) {
        if self.requested.is_empty() {
            return (0.0, 0.0);
        }
        let mut total = 0.0;
        let mut max: f64 = 0.0;
        for (f, &asked) in &self.requested {
            let until = assigned.get(f).copied().unwrap_or(self.end);
            let wait = until.saturating_sub(asked) as f64 / 1e9;
            total += wait;
            max = max.max(wait);
        }
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        (round(total / self.requested.len() as f64), round(max))
    }

    fn durations(&self) -> Durations {
        self.submitted
            .iter()
            .filter_map(|(f, &end)| {
                let start = *self.first_assigned.get(f)?;
                Some((f.clone(), end.saturating_sub(start)))
            })
            .collect()
    }
}

/// Runs the what-if over recorded events (in log order): the record, the current policy and the
/// alternative, side by side.
pub fn run<'a>(all: impl IntoIterator<Item = AnyEvent<'a>>, alternative: WhatIfConfig) -> Report {
    // Two passes: the first learns how long work took and what it cost (from every event,
    // agents' telemetry included), the second simulates with that at every cycle (spans).
    let (facts, events, recorded_cost) = learn(all);
    let durations = facts.durations();

    let mut current = Sim::new(WhatIfConfig::default());
    let mut alt = Sim::new(alternative);
    let mut view = View::default();
    let mut cycles = 0;
    for ev in &events {
        if ev.span.name == span::COORDINATION_CYCLE {
            cycles += 1;
            current.cycle(cycles, ev.time, &view, &durations);
            alt.cycle(cycles, ev.time, &view, &durations);
        }
        view.apply(ev);
    }
    let recorded = Outcome {
        features_completed: facts.completed,
        features_assigned: facts.first_assigned.len(),
        mean_wait_seconds: facts.waits(&facts.first_assigned).0,
        max_wait_seconds: facts.waits(&facts.first_assigned).1,
        load: facts.load.clone(),
        lease_verdicts: facts.lease_verdicts,
        cost_usd: recorded_cost,
    };
    let differences = alt
        .assignments
        .iter()
        .filter(|a| {
            !current.assignments.iter().any(|c| {
                c.cycle == a.cycle && c.agent_id == a.agent_id && c.feature_name == a.feature_name
            })
        })
        .cloned()
        .collect();
    Report {
        cycles,
        recorded,
        current: current.outcome(&facts),
        alternative: alt.outcome(&facts),
        differences,
        alternative_assignments: alt.assignments.clone(),
    }
}

/// The first pass: when features were requested, assigned and submitted, what each cost, the
/// spans to simulate over, and what the work completed in the record cost.
fn learn<'a>(all: impl IntoIterator<Item = AnyEvent<'a>>) -> (Facts, Vec<Event<'a>>, f64) {
    let mut facts = Facts::default();
    let mut view = View::default();
    let mut events: Vec<Event<'a>> = Vec::new();
    for any in all {
        view.apply_any(&any);
        let AnyEvent::Span(ev) = any else {
            continue;
        };
        events.push(ev);
        let ev = &ev;
        facts.end = ev.time;
        let name = ev.str_attr(attr::FEATURE_NAME);
        match ev.span.name.as_str() {
            span::FEATURE_REQUEST => {
                if let Some(n) = name {
                    facts.requested.entry(n.to_owned()).or_insert(ev.time);
                }
            }
            span::AGENT_FEATURE_ASSIGNMENT => {
                if let Some(n) = name {
                    facts.first_assigned.entry(n.to_owned()).or_insert(ev.time);
                }
                if let Some(a) = ev.str_attr(attr::AGENT_ID) {
                    *facts.load.entry(a.to_owned()).or_insert(0) += 1;
                }
            }
            span::AGENT_LEASE_EXPIRED => facts.lease_verdicts += 1,
            _ => {}
        }
        // Submission: the feature reached merging for the first time.
        if let Some(n) = name
            && view
                .features
                .get(n)
                .is_some_and(|f| f.status == FeatureStatus::Merging)
        {
            facts.submitted.entry(n.to_owned()).or_insert(ev.time);
        }
    }
    facts.completed = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Completed)
        .count();
    let ledger = &view.usage.ledger.features;
    facts.costs = ledger
        .iter()
        .map(|(f, u)| (f.clone(), u.cost_nanos))
        .collect();
    let done: Vec<&String> = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Completed)
        .map(|f| &f.name)
        .collect();
    let recorded_cost = facts.cost_of(done.into_iter());
    (facts, events, recorded_cost)
}
