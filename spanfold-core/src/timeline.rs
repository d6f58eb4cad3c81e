//! The past as lanes, for the dashboard's timeline: each agent's state over a range of the log as
//! intervals, its own tool calls and LLM requests (from its telemetry) counted per step, the
//! events worth a marker (assignments, conflicts, merges, lease verdicts, anomalies), and
//! samples of queue length, health and ingest rate. Pure: fed the view at the
//! start of the range and the events after it, in order; the server does this, never the browser.
//!
//! Payloads stay bounded whatever the range: `resolution` is the most time steps the range is
//! drawn in (each step a power of two nanoseconds, see [`step_for`]). An interval shorter than
//! one step is folded into the interval before it (the lane shows what the agent mostly did),
//! samples are taken once per step, and at most [`MAX_MARKERS`] markers are listed (the rest are
//! counted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AnyEvent, Event, UnixNanos};
use crate::policy::Matcher;
use crate::reducer::{AsOf, FeatureStatus, View};
use crate::status;
use crate::vocab::{attr, span};

pub const DEFAULT_RESOLUTION: usize = 1_000;
pub const MAX_RESOLUTION: usize = 10_000;
pub const MAX_MARKERS: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub from: AsOf,
    pub to: AsOf,
    /// Events folded between `from` and `to`.
    pub events: u64,
    pub resolution: usize,
    /// One lane per agent known at any moment of the range, by agent id.
    pub lanes: Vec<Lane>,
    pub markers: Vec<Marker>,
    /// Markers beyond [`MAX_MARKERS`], not listed.
    pub markers_omitted: usize,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    pub agent_id: String,
    pub intervals: Vec<Interval>,
    /// The agent's tool calls and LLM requests, per drawing step that had any, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activity: Vec<Activity>,
}

/// What an agent's telemetry showed it doing in one drawing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Where the step begins.
    pub time: UnixNanos,
    pub tool_calls: u64,
    pub llm_requests: u64,
    /// What its usage cost in the step, in billionths of a dollar (less than zero when a
    /// session's metrics were taken back for its request events).
    #[serde(default)]
    pub cost_nanos: i64,
}

/// An agent in one state (and holding the same features) from one event to the next change.
/// `to` is where the next interval begins, or the end of the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub state: String,
    /// The features it held, comma-separated ("" for none).
    pub features: String,
    pub from_seq: u64,
    pub from_time: UnixNanos,
    pub to_seq: u64,
    pub to_time: UnixNanos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    Assignment,
    Conflict,
    Merge,
    LeaseExpired,
    Anomaly,
    /// The conflict radar forecast a conflict or an overlap: the dashboard links the two lanes.
    Risk,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub seq: u64,
    pub time: UnixNanos,
    pub kind: MarkerKind,
    pub agent_id: Option<String>,
    pub feature: Option<String>,
    pub detail: String,
    /// The agent on the other side of a risk (none for a risk with the base branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_agent: Option<String>,
}

/// The state of the whole system at one moment: after the event `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub seq: u64,
    pub time: UnixNanos,
    pub queued: usize,
    pub health: f64,
    /// Events per second received since the sample before (0 for the first).
    pub ingest_rate: f64,
}

/// The drawing step for a range `span` nanoseconds long drawn in at most `resolution` steps: the
/// smallest power of two that fits. Powers of two let a range that grows keep its step until it
/// doubles, so a timeline kept by the server can be extended and still be what a fresh fold of
/// the same range gives.
pub fn step_for(span: UnixNanos, resolution: usize) -> UnixNanos {
    let steps = resolution.clamp(1, MAX_RESOLUTION) as u64;
    span.div_ceil(steps)
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63)
}

/// Builds a timeline while the caller folds the range's events in order.
#[derive(Debug, Clone)]
pub struct Builder {
    from: AsOf,
    resolution: usize,
    step: UnixNanos,
    open: BTreeMap<String, Interval>,
    lanes: BTreeMap<String, Vec<Interval>>,
    activity: BTreeMap<String, Vec<Activity>>,
    markers: Vec<Marker>,
    markers_omitted: usize,
    samples: Vec<Sample>,
    events: u64,
}

impl Builder {
    /// Starts at `view` (the view as of the range's start), drawing in steps of `step` (see
    /// [`step_for`]); `resolution` is what the answer reports having been asked.
    pub fn new(view: &View, step: UnixNanos, resolution: usize) -> Builder {
        let from = view.as_of;
        let mut b = Builder {
            from,
            resolution: resolution.clamp(1, MAX_RESOLUTION),
            step: step.max(1),
            open: BTreeMap::new(),
            lanes: BTreeMap::new(),
            activity: BTreeMap::new(),
            markers: Vec::new(),
            markers_omitted: 0,
            samples: Vec::new(),
            events: 0,
        };
        for (id, agent) in &view.agents {
            b.open.insert(
                id.clone(),
                Interval {
                    state: agent.state.as_str().to_owned(),
                    features: agent.assignments.join(","),
                    from_seq: from.seq,
                    from_time: from.time,
                    to_seq: from.seq,
                    to_time: from.time,
                },
            );
        }
        // From the empty log there is no moment to sample before the first event.
        if from.seq > 0 {
            b.sample(view, from);
        }
        b
    }

    /// Applies any event of the log to `view` and records what it meant for the timeline: a
    /// span as [`Builder::apply`] does; an agent's own record as activity on its lane.
    pub fn apply_any(&mut self, view: &mut View, ev: &AnyEvent<'_>) {
        if let AnyEvent::Span(e) = ev
            && crate::profiles::Profiles::builtin()
                .span(&e.span.name)
                .is_none()
        {
            return self.apply(view, e);
        }
        self.events += 1;
        let counts = |view: &View, agent: &str| {
            let t = view.telemetry.agents.get(agent);
            let (tools, llm) = t.map_or((0, 0), |t| (t.counts.tool_calls, t.counts.llm_requests));
            let cost = view
                .usage
                .ledger
                .agents
                .get(agent)
                .map_or(0, |u| u.total.cost_nanos);
            (tools, llm, cost as i64)
        };
        let agent = view.record_owner(ev);
        let before = agent.as_deref().map(|a| counts(view, a));
        view.apply_any(ev);
        if let (Some(agent), Some(before)) = (agent, before) {
            let after = counts(view, &agent);
            let (tools, llm) = (
                after.0.saturating_sub(before.0),
                after.1.saturating_sub(before.1),
            );
            let cost = after.2 - before.2;
            if tools + llm > 0 || cost != 0 {
                self.active(agent, ev.time(), (tools, llm, cost));
            }
        }
        self.sample_if_due(view, ev.time());
    }

    /// Counts tool calls, LLM requests and cost for `agent` in the step that holds `time`.
    fn active(&mut self, agent: String, time: UnixNanos, (tools, llm, cost): (u64, u64, i64)) {
        let step_start = time - time % self.step;
        let lane = self.activity.entry(agent).or_default();
        match lane.last_mut() {
            Some(last) if last.time == step_start => {
                last.tool_calls += tools;
                last.llm_requests += llm;
                last.cost_nanos += cost;
            }
            _ => lane.push(Activity {
                time: step_start,
                tool_calls: tools,
                llm_requests: llm,
                cost_nanos: cost,
            }),
        }
    }

    fn sample_if_due(&mut self, view: &View, time: UnixNanos) {
        match self.samples.last() {
            Some(s) if time < s.time.saturating_add(self.step) => {}
            _ => self.sample(view, view.as_of),
        }
    }

    /// Applies the span `ev` to `view` and records what it meant for the timeline.
    pub fn apply(&mut self, view: &mut View, ev: &Event<'_>) {
        self.events += 1;
        // The agents whose lane may move: the one the span names and the holder of the
        // feature it names (the rule `changes` follows), compared before and after. Only their
        // state and features matter here, so the full change list is not built.
        let named = ev.str_attr(attr::AGENT_ID);
        let holder = ev
            .str_attr(attr::FEATURE_NAME)
            .and_then(|f| view.features.get(f))
            .and_then(|f| f.assigned_agent.clone())
            .filter(|h| Some(h.as_str()) != named);
        let snap = |view: &View, id: &str| {
            view.agents
                .get(id)
                .map(|a| (a.state, a.assignments.clone()))
        };
        let before: Vec<_> = named
            .into_iter()
            .chain(holder.as_deref())
            .map(|id| (id, snap(view, id)))
            .collect();
        let anomalies = view.counters.anomalies;
        view.apply(ev);
        for (id, was) in before {
            if snap(view, id) == was {
                continue;
            }
            let now = view.agents.get(id).map(|a| Interval {
                state: a.state.as_str().to_owned(),
                features: a.assignments.join(","),
                from_seq: ev.seq,
                from_time: ev.time,
                to_seq: ev.seq,
                to_time: ev.time,
            });
            if let Some(done) = self.open.remove(id) {
                self.close(id, done, ev.seq, ev.time, false);
            }
            if let Some(now) = now {
                self.open.insert(id.to_owned(), now);
            }
        }
        if view.counters.anomalies > anomalies
            && let Some(a) = view.anomalies.back()
        {
            let (agent, reason) = (a.agent_id.clone(), a.reason.clone());
            self.mark(ev, MarkerKind::Anomaly, agent, None, || Some(reason));
        }
        let agent = || ev.str_attr(attr::AGENT_ID).map(str::to_owned);
        let feature = || ev.str_attr(attr::FEATURE_NAME).map(str::to_owned);
        match ev.span.name.as_str() {
            span::AGENT_FEATURE_ASSIGNMENT => {
                self.mark(ev, MarkerKind::Assignment, agent(), feature(), || {
                    let score = ev.double_attr(attr::ASSIGNMENT_MATCH_SCORE).unwrap_or(0.0);
                    let reasons = ev.list_attr(attr::ASSIGNMENT_REASONS).join("; ");
                    Some(format!("score {score:.3}: {reasons}"))
                });
            }
            span::COORDINATION_FEATURE_MERGE => {
                let kind = match ev.str_attr(attr::MERGE_RESULT) {
                    Some("merged") => Some(MarkerKind::Merge),
                    Some("conflicted") => Some(MarkerKind::Conflict),
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.mark(ev, kind, agent(), feature(), || {
                        Some(match kind {
                            MarkerKind::Conflict => ev.list_attr(attr::MERGE_CONFLICTS).join(", "),
                            _ => ev.str_attr(attr::MERGE_KIND).unwrap_or_default().to_owned(),
                        })
                    });
                }
            }
            span::AGENT_LEASE_EXPIRED => {
                self.mark(ev, MarkerKind::LeaseExpired, agent(), feature(), || None);
            }
            span::COORDINATION_CONFLICT_FORECAST => self.mark_risk(view, ev),
            _ => {}
        }
        self.sample_if_due(view, ev.time);
    }

    /// The timeline up to `end`, the last event applied (`view` being the view after it). The
    /// builder is left as it was, to go on with later events.
    pub fn finish(&self, view: &View, end: AsOf) -> Timeline {
        let b = self.clone();
        b.close_at(view, end)
    }

    fn close_at(mut self, view: &View, end: AsOf) -> Timeline {
        let open = std::mem::take(&mut self.open);
        for (id, interval) in open {
            self.close(&id, interval, end.seq, end.time, true);
        }
        if self.samples.last().map(|s| s.seq) != Some(end.seq) {
            self.sample(view, end);
            // The last step is usually cut short by the end of the range: its rate is counted
            // over a whole step, as every other sample's is, rather than over the few
            // milliseconds since the last sample (a spike that never happened).
            let n = self.samples.len();
            if n >= 2 {
                let (before, last) = (&self.samples[n - 2], &self.samples[n - 1]);
                let elapsed = last.time.saturating_sub(before.time).max(self.step);
                let rate = (last.seq - before.seq) as f64 / (elapsed as f64 / 1e9);
                self.samples[n - 1].ingest_rate = (rate * 10.0).round() / 10.0;
            }
        }
        Timeline {
            from: self.from,
            to: end,
            events: self.events,
            resolution: self.resolution,
            lanes: self
                .lanes
                .into_iter()
                .map(|(agent_id, intervals)| Lane {
                    activity: self.activity.remove(&agent_id).unwrap_or_default(),
                    agent_id,
                    intervals,
                })
                .collect(),
            markers: self.markers,
            markers_omitted: self.markers_omitted,
            samples: self.samples,
        }
    }

    /// Ends `interval` at (`seq`, `time`). One shorter than a step is folded into the interval
    /// before it, except at the end of the range (the state then is the answer to "and now?");
    /// one like the interval before it continues it.
    fn close(&mut self, id: &str, mut interval: Interval, seq: u64, time: UnixNanos, at_end: bool) {
        interval.to_seq = seq;
        interval.to_time = time;
        let lane = self.lanes.entry(id.to_owned()).or_default();
        if let Some(before) = lane.last_mut()
            && before.to_seq == interval.from_seq
        {
            let same = before.state == interval.state && before.features == interval.features;
            let short = !at_end && interval.to_time - interval.from_time < self.step;
            if same || short {
                before.to_seq = seq;
                before.to_time = time;
                return;
            }
        }
        lane.push(interval);
    }

    /// A forecast that is not clear, on the lane of the feature's holder and linked to the other
    /// feature's; a clear one only ends a risk the markers already showed.
    fn mark_risk(&mut self, view: &View, ev: &Event<'_>) {
        let kind = ev.str_attr(attr::FORECAST_KIND).unwrap_or_default();
        if kind == "clear" {
            return;
        }
        let holder = |f: Option<&str>| {
            f.and_then(|f| view.features.get(f))
                .and_then(|f| f.assigned_agent.clone())
        };
        let feature = ev.str_attr(attr::FEATURE_NAME);
        let other = ev.str_attr(attr::FORECAST_OTHER_FEATURE);
        let with_agent = holder(other);
        let agent = holder(feature);
        let marked = self.mark(
            ev,
            MarkerKind::Risk,
            agent,
            feature.map(str::to_owned),
            || {
                let paths = ev.list_attr(attr::FORECAST_PATHS).join(", ");
                let hunks = ev.list_attr(attr::FORECAST_HUNKS).join(", ");
                let lines = if hunks.is_empty() {
                    String::new()
                } else {
                    format!(" (lines {hunks})")
                };
                Some(format!(
                    "{kind} with {}: {paths}{lines}",
                    other.unwrap_or("the base branch")
                ))
            },
        );
        if let Some(m) = marked {
            m.with_agent = with_agent;
        }
    }

    /// Lists a marker, its detail written only if it is listed; the marker, if listed.
    fn mark(
        &mut self,
        ev: &Event<'_>,
        kind: MarkerKind,
        agent_id: Option<String>,
        feature: Option<String>,
        detail: impl FnOnce() -> Option<String>,
    ) -> Option<&mut Marker> {
        if self.markers.len() >= MAX_MARKERS {
            self.markers_omitted += 1;
            return None;
        }
        self.markers.push(Marker {
            seq: ev.seq,
            time: ev.time,
            kind,
            agent_id,
            feature,
            detail: detail().unwrap_or_default(),
            with_agent: None,
        });
        self.markers.last_mut()
    }

    fn sample(&mut self, view: &View, at: AsOf) {
        let ingest_rate = match self.samples.last() {
            Some(s) if at.time > s.time => {
                (at.seq - s.seq) as f64 / ((at.time - s.time) as f64 / 1e9)
            }
            _ => 0.0,
        };
        self.samples.push(Sample {
            seq: at.seq,
            time: at.time,
            queued: view.tally.by_status[FeatureStatus::Queued as usize],
            health: status::health(view, &Matcher::new(view)),
            ingest_rate: (ingest_rate * 10.0).round() / 10.0,
        });
    }
}
