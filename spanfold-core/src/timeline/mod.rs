//! The past as lanes, for the dashboard's timeline: each agent's state over a range of the log as
//! intervals, its own tool calls and LLM requests (from its telemetry) counted per step, the
//! events worth a marker (assignments, conflicts, merges, lease verdicts, anomalies), and
//! samples of queue length, health and ingest rate. Pure: fed the view at the
//! start of the range and the events after it, in order; the server does this, never the browser.
//!
//! Payloads stay bounded whatever the range: `resolution` is the most time steps the range is
//! drawn in (each step a power of two nanoseconds, see [`step_for`]). An interval shorter than
//! one step is folded into the interval before it (the lane shows what the agent mostly did),
//! samples are taken at the first event of each step (steps aligned on multiples of their
//! length), and at most [`MAX_MARKERS`] markers are listed (the rest are counted). [`Index`]
//! keeps the whole log's timeline at every step as the log is folded.

mod index;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AnyEvent, Event, UnixNanos};
use crate::policy::Matcher;
use crate::reducer::{AsOf, FeatureStatus, View};
use crate::status;
use crate::vocab::{attr, span};

pub use index::Index;

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
    /// Events per second received since the sample before, over a step at least (0 for the
    /// first).
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

/// What folding one event means for a timeline, told to what draws one: a [`Builder`] (one
/// range at one step) or an [`Index`] (the whole log, any step). [`fold`] finds it; the two
/// keep it, so they agree by construction.
pub(crate) trait Recorder {
    /// Before the event (`seq`, `time`) is applied.
    fn begin(&mut self, seq: u64, time: UnixNanos);
    /// `agent`'s lane as it stands (state and features), if it has one.
    fn lane(&self, agent: &str) -> Option<(&str, &str)>;
    /// `agent`'s lane moves at the event to `now` (state and features); `None`: it is gone.
    fn moved(&mut self, agent: &str, now: Option<(String, String)>, seq: u64, time: UnixNanos);
    /// The last span name asked about, and whether an agent's telemetry profile knows it:
    /// spans come in runs of one name, and the profiles' lookup is not free.
    fn profiled(&mut self) -> &mut Option<(String, bool)>;
    /// The event added `counts` (tool calls, LLM requests, cost) to `agent`'s activity.
    fn active(&mut self, agent: &str, time: UnixNanos, counts: (u64, u64, i64));
    fn marks(&mut self) -> &mut Marks;
    /// After the event is applied to `view`.
    fn end(&mut self, view: &View, time: UnixNanos);
}

/// The markers listed (the first [`MAX_MARKERS`]) and how many more there were.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Marks {
    #[serde(with = "marker_rows")]
    list: Vec<Marker>,
    omitted: usize,
}

/// Markers as plain rows when kept (the index is stored in a compact format that has no field
/// names, so a field skipped when empty would shift every field after it).
mod marker_rows {
    use super::{Marker, MarkerKind};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Row = (
        u64,
        u64,
        MarkerKind,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );

    pub fn serialize<S: Serializer>(list: &[Marker], s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<Row> = list
            .iter()
            .map(|m| {
                (
                    m.seq,
                    m.time,
                    m.kind,
                    m.agent_id.clone(),
                    m.feature.clone(),
                    m.detail.clone(),
                    m.with_agent.clone(),
                )
            })
            .collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Marker>, D::Error> {
        let rows = Vec::<Row>::deserialize(d)?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, time, kind, agent_id, feature, detail, with_agent)| Marker {
                    seq,
                    time,
                    kind,
                    agent_id,
                    feature,
                    detail,
                    with_agent,
                },
            )
            .collect())
    }
}

impl Marks {
    /// No more markers are listed, only counted.
    fn full(&self) -> bool {
        self.list.len() >= MAX_MARKERS
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
        if self.full() {
            self.omitted += 1;
            return None;
        }
        self.list.push(Marker {
            seq: ev.seq,
            time: ev.time,
            kind,
            agent_id,
            feature,
            detail: detail().unwrap_or_default(),
            with_agent: None,
        });
        self.list.last_mut()
    }
}

/// Applies any event of the log to `view` and tells `rec` what it meant for the timeline: a
/// coordination span may move lanes and earn a marker; an agent's own record (a log record, a
/// metric, a span of a known agent's telemetry) is activity on its lane.
pub(crate) fn fold(rec: &mut impl Recorder, view: &mut View, ev: &AnyEvent<'_>) {
    rec.begin(ev.seq(), ev.time());
    match ev {
        AnyEvent::Span(e) if !profiled(rec.profiled(), &e.span.name) => fold_span(rec, view, e),
        _ => fold_record(rec, view, ev),
    }
    rec.end(view, ev.time());
}

/// Whether a profile knows the span `name`, through the one-name `cache`.
fn profiled(cache: &mut Option<(String, bool)>, name: &str) -> bool {
    match cache {
        Some((last, known)) if last == name => *known,
        _ => {
            let known = crate::profiles::Profiles::builtin().span(name).is_some();
            *cache = Some((name.to_owned(), known));
            known
        }
    }
}

/// Whether `joined` is `parts` joined with commas, without joining them.
fn joined_eq(parts: &[String], joined: &str) -> bool {
    let mut rest = joined;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(part.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

fn fold_record(rec: &mut impl Recorder, view: &mut View, ev: &AnyEvent<'_>) {
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
    let Some(agent) = view.record_owner(ev) else {
        return view.apply_any(ev);
    };
    let before = counts(view, &agent);
    view.apply_any(ev);
    let after = counts(view, &agent);
    let (tools, llm) = (
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
    );
    let cost = after.2 - before.2;
    if tools + llm > 0 || cost != 0 {
        rec.active(&agent, ev.time(), (tools, llm, cost));
    }
}

fn fold_span(rec: &mut impl Recorder, view: &mut View, ev: &Event<'_>) {
    // The agents whose lane may move: the one the span names and the holder of the feature it
    // names (the rule `changes` follows), their state and features after it compared with
    // their lanes. Only those matter here, so the full change list is not built.
    let named = ev.str_attr(attr::AGENT_ID);
    let holder = ev
        .str_attr(attr::FEATURE_NAME)
        .and_then(|f| view.features.get(f))
        .and_then(|f| f.assigned_agent.clone())
        .filter(|h| Some(h.as_str()) != named);
    let anomalies = view.counters.anomalies;
    view.apply(ev);
    for id in [named, holder.as_deref()].into_iter().flatten() {
        let now = view.agents.get(id);
        let same = match (now, rec.lane(id)) {
            (None, None) => true,
            (Some(a), Some((state, features))) => {
                a.state.as_str() == state && joined_eq(&a.assignments, features)
            }
            _ => false,
        };
        if !same {
            let now = now.map(|a| (a.state.as_str().to_owned(), a.assignments.join(",")));
            rec.moved(id, now, ev.seq, ev.time);
        }
    }
    let marks = rec.marks();
    if view.counters.anomalies > anomalies
        && let Some(a) = view.anomalies.back()
    {
        // Copied only when listed: a flood of anomalies (spans of unknown agents) is folded
        // by a server, and all but the first markers are only counted.
        if marks.full() {
            marks.omitted += 1;
        } else {
            let (agent, reason) = (a.agent_id.clone(), a.reason.clone());
            marks.mark(ev, MarkerKind::Anomaly, agent, None, || Some(reason));
        }
    }
    let agent = || ev.str_attr(attr::AGENT_ID).map(str::to_owned);
    let feature = || ev.str_attr(attr::FEATURE_NAME).map(str::to_owned);
    match ev.span.name.as_str() {
        span::AGENT_FEATURE_ASSIGNMENT => {
            marks.mark(ev, MarkerKind::Assignment, agent(), feature(), || {
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
                marks.mark(ev, kind, agent(), feature(), || {
                    Some(match kind {
                        MarkerKind::Conflict => ev.list_attr(attr::MERGE_CONFLICTS).join(", "),
                        _ => ev.str_attr(attr::MERGE_KIND).unwrap_or_default().to_owned(),
                    })
                });
            }
        }
        span::AGENT_LEASE_EXPIRED => {
            marks.mark(ev, MarkerKind::LeaseExpired, agent(), feature(), || None);
        }
        span::COORDINATION_CONFLICT_FORECAST => mark_risk(marks, view, ev),
        _ => {}
    }
}

/// A forecast that is not clear, on the lane of the feature's holder and linked to the other
/// feature's; a clear one only ends a risk the markers already showed.
fn mark_risk(marks: &mut Marks, view: &View, ev: &Event<'_>) {
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
    let marked = marks.mark(
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

/// Builds a timeline while the caller folds the range's events in order.
#[derive(Debug, Clone)]
pub struct Builder {
    from: AsOf,
    resolution: usize,
    step: UnixNanos,
    open: BTreeMap<String, Interval>,
    lanes: BTreeMap<String, Vec<Interval>>,
    activity: BTreeMap<String, Vec<Activity>>,
    marks: Marks,
    samples: Vec<Sample>,
    events: u64,
    profiled: Option<(String, bool)>,
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
            marks: Marks::default(),
            samples: Vec::new(),
            events: 0,
            profiled: None,
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
            let (queued, health) = measures(view);
            b.sample(from, queued, health);
        }
        b
    }

    /// Applies any event of the log to `view` and records what it meant for the timeline.
    pub fn apply_any(&mut self, view: &mut View, ev: &AnyEvent<'_>) {
        fold(self, view, ev);
    }

    /// Where the step that holds `time` begins.
    fn step_start(&self, time: UnixNanos) -> UnixNanos {
        time - time % self.step
    }

    /// Counts tool calls, LLM requests and cost for `agent` in the step that begins at
    /// `step_start`.
    fn add_activity(&mut self, agent: &str, step_start: UnixNanos, counts: (u64, u64, i64)) {
        let (tools, llm, cost) = counts;
        let lane = match self.activity.get_mut(agent) {
            Some(lane) => lane,
            None => self.activity.entry(agent.to_owned()).or_default(),
        };
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

    /// Moves `agent`'s lane at (`seq`, `time`) to `now`.
    fn move_lane(&mut self, agent: &str, now: Option<(String, String)>, seq: u64, time: UnixNanos) {
        if let Some(done) = self.open.remove(agent) {
            self.close(agent, done, seq, time, false);
        }
        if let Some((state, features)) = now {
            let interval = Interval {
                state,
                features,
                from_seq: seq,
                from_time: time,
                to_seq: seq,
                to_time: time,
            };
            self.open.insert(agent.to_owned(), interval);
        }
    }

    /// The timeline up to `end`, the last event applied (`view` being the view after it). The
    /// builder is left as it was, to go on with later events.
    pub fn finish(&self, view: &View, end: AsOf) -> Timeline {
        let (queued, health) = measures(view);
        self.clone().close_at(end, queued, health)
    }

    /// The timeline ending at `end`, where `queued` features wait and the health is `health`.
    fn close_at(mut self, end: AsOf, queued: usize, health: f64) -> Timeline {
        let open = std::mem::take(&mut self.open);
        for (id, interval) in open {
            self.close(&id, interval, end.seq, end.time, true);
        }
        if self.samples.last().map(|s| s.seq) != Some(end.seq) {
            self.sample(end, queued, health);
        }
        Timeline {
            from: self.from,
            to: end,
            events: self.events,
            resolution: self.resolution,
            lanes: self
                .lanes
                .into_iter()
                .map(|(agent_id, intervals)| {
                    let mut activity = self.activity.remove(&agent_id).unwrap_or_default();
                    // A step whose costs cancelled out, with no call in it, shows nothing.
                    activity.retain(|a| a.tool_calls + a.llm_requests > 0 || a.cost_nanos != 0);
                    Lane {
                        activity,
                        agent_id,
                        intervals,
                    }
                })
                .collect(),
            markers: self.marks.list,
            markers_omitted: self.marks.omitted,
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

    /// Samples the system at `at`. Its ingest rate is counted since the sample before, over a
    /// whole step at least: samples fall on the first event of a step, so two can be closer
    /// than a step (the first late in its step), and the last is cut short by the end of the
    /// range; counted over the few milliseconds between them, the rate would draw a spike that
    /// never happened.
    fn sample(&mut self, at: AsOf, queued: usize, health: f64) {
        let ingest_rate = match self.samples.last() {
            Some(s) => {
                let elapsed = at.time.saturating_sub(s.time).max(self.step);
                at.seq.saturating_sub(s.seq) as f64 / (elapsed as f64 / 1e9)
            }
            None => 0.0,
        };
        self.samples.push(Sample {
            seq: at.seq,
            time: at.time,
            queued,
            health,
            ingest_rate: (ingest_rate * 10.0).round() / 10.0,
        });
    }

    /// Whether an event at `time` begins a new step: the first event, or one in another step
    /// than the last sample's. Steps are aligned on multiples of the step (not counted from the
    /// last sample), so that an index kept at a finer step can tell where a coarser one begins.
    fn new_step(&self, time: UnixNanos) -> bool {
        self.samples
            .last()
            .is_none_or(|s| time / self.step != s.time / self.step)
    }
}

impl Recorder for Builder {
    fn begin(&mut self, _seq: u64, _time: UnixNanos) {}

    fn lane(&self, agent: &str) -> Option<(&str, &str)> {
        self.open
            .get(agent)
            .map(|i| (i.state.as_str(), i.features.as_str()))
    }

    fn moved(&mut self, agent: &str, now: Option<(String, String)>, seq: u64, time: UnixNanos) {
        self.move_lane(agent, now, seq, time);
    }

    fn profiled(&mut self) -> &mut Option<(String, bool)> {
        &mut self.profiled
    }

    fn active(&mut self, agent: &str, time: UnixNanos, counts: (u64, u64, i64)) {
        self.add_activity(agent, self.step_start(time), counts);
    }

    fn marks(&mut self) -> &mut Marks {
        &mut self.marks
    }

    fn end(&mut self, view: &View, time: UnixNanos) {
        self.events += 1;
        if self.new_step(time) {
            let (queued, health) = measures(view);
            self.sample(view.as_of, queued, health);
        }
    }
}

/// What a sample shows of `view`: the features queued and the health.
pub fn measures(view: &View) -> (usize, f64) {
    (
        view.tally.by_status[FeatureStatus::Queued as usize],
        status::health(view, &Matcher::new(view)),
    )
}
