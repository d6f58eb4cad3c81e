//! The non-determinism check of `replay --verify`. Pure.
//!
//! A recorded decision point is a `coordination.cycle` span: the coordinator decided on the view
//! folded up to just before it, and recorded its assignments right after it, in the same batch.
//! A lease verdict (`agent.lease_expired`) was decided on the view just before it, at the time
//! the span carries; so were the budget verdicts (`coordination.budget`) recorded together, on
//! the usage folded before them, and agents' daily budget verdicts (`coordination.agent_budget`),
//! on that usage and the day of their time. The verifier re-runs the policy at each of these points over the recorded
//! inputs and compares, like Temporal's replay check: the first difference is reported side by
//! side, with both sides' reasons.
//!
//! The merge queue's decisions are checked too: a merge that starts (`merge.result` `started`)
//! must be of a feature the queue held then — submitted, handed over by its agent, not waiting
//! for a person's approval.

use serde::Serialize;

use crate::model::hex;
use crate::model::{Event, UnixNanos};
use crate::policy::{self, PolicyConfig};
use crate::reducer::View;
use crate::usage::{NANOS_PER_USD, day_name, day_of};
use crate::vocab::{attr, span};

/// One assignment, as recorded in the log or as re-computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub agent_id: String,
    pub feature_name: String,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
}

impl Choice {
    fn same_decision(&self, other: &Choice) -> bool {
        self.agent_id == other.agent_id
            && self.feature_name == other.feature_name
            && self.score == other.score
            && self.reasons == other.reasons
    }
}

/// The first decision that re-computes differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// `assignment`, `lease_expired`, `budget`, `agent_budget` or `merge`.
    pub kind: String,
    /// The decision point: the cycle span's seq (or the first lease verdict's).
    pub seq: u64,
    pub time: UnixNanos,
    pub cycle_number: Option<i64>,
    /// Position of the differing decision within its point.
    pub index: usize,
    /// The recorded span (its seq and id) when there is one at that position.
    pub recorded_seq: Option<u64>,
    pub recorded_span_id: Option<String>,
    pub recorded: Option<Choice>,
    pub recomputed: Option<Choice>,
}

impl Divergence {
    /// Side by side, for people.
    pub fn render(&self) -> String {
        let side = |c: &Option<Choice>| match c {
            None => vec!["(nothing)".to_owned()],
            Some(c) => {
                let mut lines = vec![format!("{} → {}", c.feature_name, c.agent_id)];
                if let Some(s) = c.score {
                    lines.push(format!("score {s:.3}"));
                }
                lines.extend(c.reasons.iter().map(|r| format!("- {r}")));
                lines
            }
        };
        let left = side(&self.recorded);
        let right = side(&self.recomputed);
        let width = left
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(24);
        let mut out = format!(
            "decision {} of {} at seq {}{} differs{}:\n",
            self.index + 1,
            self.kind,
            self.seq,
            self.cycle_number
                .map(|n| format!(" (cycle {n})"))
                .unwrap_or_default(),
            match (self.recorded_seq, &self.recorded_span_id) {
                (Some(seq), Some(id)) => format!(", recorded span seq {seq} id {id}"),
                _ => String::new(),
            }
        );
        out.push_str(&format!("  {:<width$}   {}\n", "recorded", "re-computed"));
        for i in 0..left.len().max(right.len()) {
            let l = left.get(i).map(String::as_str).unwrap_or("");
            let r = right.get(i).map(String::as_str).unwrap_or("");
            out.push_str(&format!("  {l:<width$}   {r}\n"));
        }
        out
    }
}

/// A decision point whose recorded decisions are still being read.
struct Point {
    kind: &'static str,
    seq: u64,
    time: UnixNanos,
    cycle_number: Option<i64>,
    expected: Vec<Choice>,
    /// (seq, span id, decision) of each recorded decision.
    recorded: Vec<(u64, String, Choice)>,
}

/// Checks recorded decisions while the caller folds: call [`Verifier::before`] with each event
/// before applying it, and [`Verifier::finish`] at the end.
pub struct Verifier {
    config: PolicyConfig,
    pending: Option<Point>,
    /// Decision points checked.
    pub points: usize,
    /// Decisions compared.
    pub decisions: usize,
    pub divergence: Option<Divergence>,
}

/// The span name of the decisions a point of `kind` records.
fn decision_span(kind: &str) -> &'static str {
    match kind {
        "assignment" => span::AGENT_FEATURE_ASSIGNMENT,
        "budget" => span::COORDINATION_BUDGET,
        "agent_budget" => span::COORDINATION_AGENT_BUDGET,
        _ => span::AGENT_LEASE_EXPIRED,
    }
}

/// A budget verdict as a decision: the feature, its holder, what it had spent, which line.
fn budget(feature: &str, agent: &str, kind: &str, spent_usd: f64, spent_tokens: u64) -> Choice {
    Choice {
        agent_id: agent.to_owned(),
        feature_name: feature.to_owned(),
        score: Some(spent_usd),
        reasons: vec![format!("budget {kind}"), format!("{spent_tokens} tokens")],
    }
}

/// The budget verdicts `view` calls for, in feature name order (as the coordinator records them).
fn budgets_due(view: &View) -> Vec<Choice> {
    view.usage
        .budgets
        .keys()
        .filter_map(|name| {
            let due = view.budget_due(name)?;
            let holder = view.features.get(name)?.assigned_agent.as_deref();
            Some(budget(
                name,
                holder.unwrap_or_default(),
                due.kind.as_str(),
                due.spent.cost_usd(),
                due.spent.tokens.total(),
            ))
        })
        .collect()
}

/// An agent's daily budget verdict as a decision: the agent, the day, what it had spent then.
fn agent_budget(agent: &str, kind: &str, day: &str, spent_usd: f64) -> Choice {
    Choice {
        agent_id: agent.to_owned(),
        feature_name: format!("(daily budget {day})"),
        score: Some(spent_usd),
        reasons: vec![format!("budget {kind}")],
    }
}

/// The daily budget verdicts `view` calls for at `time`, by agent (as the coordinator records
/// them).
fn agent_budgets_due(view: &View, time: UnixNanos) -> Vec<Choice> {
    view.agent_budgets_due(day_of(time))
        .into_iter()
        .map(|(agent, due)| {
            let spent = due.spent_nanos as f64 / NANOS_PER_USD as f64;
            agent_budget(&agent, due.kind.as_str(), &day_name(due.day), spent)
        })
        .collect()
}

fn lease(agent_id: &str) -> Choice {
    Choice {
        agent_id: agent_id.to_owned(),
        feature_name: "(lease expired)".into(),
        score: None,
        reasons: Vec::new(),
    }
}

impl Verifier {
    pub fn new(config: PolicyConfig) -> Verifier {
        Verifier {
            config,
            pending: None,
            points: 0,
            decisions: 0,
            divergence: None,
        }
    }

    /// Looks at `ev` with `view` as it is before `ev`.
    pub fn before(&mut self, view: &View, ev: &Event<'_>) {
        if self.divergence.is_some() {
            return;
        }
        let name = ev.span.name.as_str();
        if let Some(point) = self.pending.as_mut() {
            if name == decision_span(point.kind) {
                point
                    .recorded
                    .push((ev.seq, hex(&ev.span.span_id), recorded_choice(ev)));
                return;
            }
            self.close();
            if self.divergence.is_some() {
                return;
            }
        }
        if name == span::COORDINATION_FEATURE_MERGE
            && ev.str_attr(attr::MERGE_RESULT) == Some("started")
        {
            self.check_merge(view, ev);
            return;
        }
        let (kind, expected) = match name {
            span::COORDINATION_CYCLE => (
                "assignment",
                policy::decide(view, &self.config)
                    .assignments
                    .into_iter()
                    .map(|a| Choice {
                        agent_id: a.agent_id,
                        feature_name: a.feature_name,
                        score: Some(a.score),
                        reasons: a.reasons,
                    })
                    .collect(),
            ),
            // The verdict's own time is the `now` it was decided at.
            span::AGENT_LEASE_EXPIRED => (
                "lease_expired",
                policy::expired_leases(view, ev.span.start_time_unix_nano)
                    .into_iter()
                    .map(|(id, _)| lease(&id))
                    .collect(),
            ),
            span::COORDINATION_BUDGET => ("budget", budgets_due(view)),
            // Decided, like a lease verdict, at the verdict's own time.
            span::COORDINATION_AGENT_BUDGET => (
                "agent_budget",
                agent_budgets_due(view, ev.span.start_time_unix_nano),
            ),
            _ => return,
        };
        let mut point = Point {
            kind,
            seq: ev.seq,
            time: ev.time,
            cycle_number: ev.int_attr(attr::COORDINATION_CYCLE_NUMBER),
            expected,
            recorded: Vec::new(),
        };
        // A verdict is itself the first decision of its point.
        if kind != "assignment" {
            point
                .recorded
                .push((ev.seq, hex(&ev.span.span_id), recorded_choice(ev)));
        }
        self.pending = Some(point);
    }

    /// A merge that starts: the feature must be one the merge queue held at that point.
    fn check_merge(&mut self, view: &View, ev: &Event<'_>) {
        let feature = ev.str_attr(attr::FEATURE_NAME).unwrap_or_default();
        let agent = ev.str_attr(attr::AGENT_ID).unwrap_or_default();
        let choice = |why: &str| Choice {
            agent_id: agent.to_owned(),
            feature_name: feature.to_owned(),
            score: None,
            reasons: vec![why.to_owned()],
        };
        let recorded = choice("merge started");
        let held = crate::plan::plan_merges(view)
            .into_iter()
            .find(|c| c.feature == feature && c.agent == agent);
        let expected = match held {
            None => {
                choice("not in the merge queue: not submitted, or not handed over by this agent")
            }
            Some(c) if c.awaiting_approval && !c.approved => {
                choice("waiting for a person's approval")
            }
            Some(_) => recorded.clone(),
        };
        self.points += 1;
        if expected == recorded {
            self.decisions += 1;
            return;
        }
        self.divergence = Some(Divergence {
            kind: "merge".into(),
            seq: ev.seq,
            time: ev.time,
            cycle_number: None,
            index: 0,
            recorded_seq: Some(ev.seq),
            recorded_span_id: Some(hex(&ev.span.span_id)),
            recorded: Some(recorded),
            recomputed: Some(expected),
        });
    }

    /// The input stops (`--until`) before a span named `next`: the open decision point is
    /// complete unless `next` is one more of its decisions, in which case it is left unchecked.
    pub fn cut_before(&mut self, next: &str) {
        if let Some(p) = &self.pending
            && decision_span(p.kind) == next
        {
            self.pending = None;
            return;
        }
        self.finish();
    }

    /// Ends the input: compares the last open decision point.
    pub fn finish(&mut self) {
        if self.divergence.is_none() {
            self.close();
        }
    }

    fn close(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        self.points += 1;
        for i in 0..p.expected.len().max(p.recorded.len()) {
            let rec = p.recorded.get(i);
            let exp = p.expected.get(i);
            if !matches!((rec, exp), (Some(r), Some(e)) if r.2.same_decision(e)) {
                self.divergence = Some(Divergence {
                    kind: p.kind.into(),
                    seq: p.seq,
                    time: p.time,
                    cycle_number: p.cycle_number,
                    index: i,
                    recorded_seq: rec.map(|r| r.0),
                    recorded_span_id: rec.map(|r| r.1.clone()),
                    recorded: rec.map(|r| r.2.clone()),
                    recomputed: exp.cloned(),
                });
                return;
            }
            self.decisions += 1;
        }
    }
}

fn recorded_choice(ev: &Event<'_>) -> Choice {
    if ev.span.name == span::AGENT_LEASE_EXPIRED {
        return lease(ev.str_attr(attr::AGENT_ID).unwrap_or_default());
    }
    if ev.span.name == span::COORDINATION_AGENT_BUDGET {
        return agent_budget(
            ev.str_attr(attr::AGENT_ID).unwrap_or_default(),
            ev.str_attr(attr::BUDGET_VERDICT).unwrap_or_default(),
            ev.str_attr(attr::BUDGET_DAY).unwrap_or_default(),
            ev.double_attr(attr::BUDGET_SPENT_USD).unwrap_or(f64::NAN),
        );
    }
    if ev.span.name == span::COORDINATION_BUDGET {
        let spent_tokens = ev.int_attr(attr::BUDGET_SPENT_TOKENS).unwrap_or(-1);
        return budget(
            ev.str_attr(attr::FEATURE_NAME).unwrap_or_default(),
            ev.str_attr(attr::AGENT_ID).unwrap_or_default(),
            ev.str_attr(attr::BUDGET_VERDICT).unwrap_or_default(),
            ev.double_attr(attr::BUDGET_SPENT_USD).unwrap_or(f64::NAN),
            u64::try_from(spent_tokens).unwrap_or(u64::MAX),
        );
    }
    Choice {
        agent_id: ev.str_attr(attr::AGENT_ID).unwrap_or_default().to_owned(),
        feature_name: ev
            .str_attr(attr::FEATURE_NAME)
            .unwrap_or_default()
            .to_owned(),
        score: ev.double_attr(attr::ASSIGNMENT_MATCH_SCORE),
        reasons: ev.list_attr(attr::ASSIGNMENT_REASONS),
    }
}
