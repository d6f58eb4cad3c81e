//! The whole log's timeline kept as the log is folded, ready at any drawing step: what the
//! dashboard asks first. Drawing it from the log folds every event (seconds at millions of
//! events); drawing it from here costs the lane changes and markers kept, and a bounded number
//! of steps, whatever the log's length.
//!
//! Kept, as [`Recorder`] is told them:
//! - every lane change and the first [`MAX_MARKERS`] markers, as they are: a [`Builder`] at any
//!   step draws from them exactly what it draws from the events;
//! - for samples and activity, levels of steps (2^20 ns, about a millisecond, then each eight
//!   times the one before): at each level, the first event of every step that has one, with
//!   the queue and the health after it and the activity counters of the agents that moved since
//!   the level's last such record. Steps are aligned on multiples of their length, so a coarser
//!   step begins where one of a finer level's does: a timeline at step `s` reads the coarsest
//!   level whose step is no longer than `s` (at most eight records per step drawn).
//!
//! As the log's range grows, a level finer than the whole log is ever drawn at (its range in
//! [`MAX_RESOLUTION`] steps) is dropped: the kept records stay bounded. Pure like the rest of the
//! core: the caller folds and persists it (derived data, tagged with the reducer version, as
//! checkpoints are).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{Builder, MAX_RESOLUTION, Marks, Recorder, Timeline, fold, measures, step_for};
use crate::model::{AnyEvent, Batch, UnixNanos};
use crate::reducer::{AsOf, View};

/// The finest step kept, as a power of two nanoseconds (about a millisecond): a whole log
/// drawn finer than this spans under a second at the default resolution and is folded instead.
const FINEST_SHIFT: u32 = 20;
/// Each level's step is 2^LEVEL_SHIFT times the one before.
const LEVEL_SHIFT: u32 = 3;
/// Levels up to steps of 2^62 ns, past any log's range.
const LEVELS: u32 = 15;

/// See the module's documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    as_of: AsOf,
    /// When the first event was received: where the whole log's timeline begins.
    start: Option<UnixNanos>,
    events: u64,
    transitions: Vec<Transition>,
    /// Each agent's lane as it stands: state and features.
    lanes: BTreeMap<String, (String, String)>,
    marks: Marks,
    /// Each agent's activity so far, by the number it was given on its first activity.
    counters: Vec<Counter>,
    /// The numbers, by agent: looked up for every record folded, never listed (so hashed),
    /// and made again from `counters` when read back.
    #[serde(skip)]
    numbers: FxHashMap<String, u32>,
    levels: Vec<Level>,
    /// A receive time went backwards (the store never writes one): steps can no longer be told
    /// apart by time alone, so nothing more is kept and every question is folded instead.
    broken: bool,
    /// About how many bytes the kept records take, to space out writing them.
    weight: usize,
    #[serde(skip)]
    profiled: Option<(String, bool)>,
    /// Records were begun at the event being folded: their measures are taken after it.
    #[serde(skip)]
    begun: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transition {
    seq: u64,
    time: UnixNanos,
    agent: String,
    /// State and features from here on; none when the agent is gone.
    now: Option<(String, String)>,
}

/// Tool calls, LLM requests and cost in billionths of a dollar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Totals(u64, u64, i64);

impl Totals {
    fn since(self, before: Totals) -> (u64, u64, i64) {
        (
            self.0.saturating_sub(before.0),
            self.1.saturating_sub(before.1),
            self.2 - before.2,
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counter {
    agent: String,
    totals: Totals,
    /// Levels (one bit each) that have this agent listed to go in their next record.
    pending: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Level {
    shift: u32,
    /// Dropped: the whole log is never drawn this finely again.
    dropped: bool,
    /// The step of the last event seen, counted in this level's steps.
    step: Option<u64>,
    records: Vec<Record>,
    /// Agents whose activity moved since the last record.
    moved: Vec<u32>,
}

/// The first event of a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    seq: u64,
    time: UnixNanos,
    /// After the event.
    queued: usize,
    health: f64,
    /// Before the event: the totals of the agents whose activity moved since the last record.
    totals: Vec<(u32, Totals)>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            as_of: AsOf::default(),
            start: None,
            events: 0,
            transitions: Vec::new(),
            lanes: BTreeMap::new(),
            marks: Marks::default(),
            counters: Vec::new(),
            numbers: FxHashMap::default(),
            levels: (0..LEVELS)
                .map(|i| Level {
                    shift: FINEST_SHIFT + LEVEL_SHIFT * i,
                    dropped: false,
                    step: None,
                    records: Vec::new(),
                    moved: Vec::new(),
                })
                .collect(),
            broken: false,
            weight: 0,
            profiled: None,
            begun: false,
        }
    }
}

impl Index {
    /// Applies `ev` to `view` (the view of every event before it, as this index is) and keeps
    /// what it means for the timeline.
    pub fn apply_any(&mut self, view: &mut View, ev: &AnyEvent<'_>) {
        fold(self, view, ev);
    }

    /// [`Index::apply_any`] for every event of `batch` from `from` on.
    pub fn apply_batch(&mut self, view: &mut View, batch: &Batch, from: u64) {
        for ev in batch.all_events().filter(|e| e.seq() >= from) {
            self.apply_any(view, &ev);
        }
    }

    /// The last event kept.
    pub fn as_of(&self) -> AsOf {
        self.as_of
    }

    /// About how many bytes it takes.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The timeline of the whole log (`view` being the view after its last event, as this
    /// index is) drawn in at most `resolution` steps: what
    /// `Builder::new(&View::default(), step, resolution)` gives having folded every event.
    /// None when it cannot be told from here: a view at another point, or see [`Index::draw`].
    pub fn timeline(&self, view: &View, resolution: usize) -> Option<Timeline> {
        if view.as_of != self.as_of {
            return None;
        }
        self.draw(measures(view), resolution)
    }

    /// [`Index::timeline`] given what the view after the last event kept shows (its
    /// [`measures`]), for a caller that would rather not hold the view while it draws. None
    /// for an empty log, a step finer than any kept, or a clock that went backwards.
    pub fn draw(&self, (queued, health): (usize, f64), resolution: usize) -> Option<Timeline> {
        if self.broken || self.as_of.seq == 0 {
            return None;
        }
        let end = self.as_of;
        let step = step_for(end.time.saturating_sub(self.start?), resolution);
        let level = self
            .levels
            .iter()
            .rfind(|l| !l.dropped && 1u64.checked_shl(l.shift).is_some_and(|s| s <= step))?;
        let mut b = Builder::new(&View::default(), step, resolution);
        for t in &self.transitions {
            b.move_lane(&t.agent, t.now.clone(), t.seq, t.time);
        }
        self.draw_steps(level, step, &mut b);
        b.events = self.events;
        b.marks = self.marks.clone();
        Some(b.close_at(end, queued, health))
    }

    /// Samples and activity at `step` from `level`'s records into `b`. A run is the events of
    /// one step; its first event is a record at every finer level.
    fn draw_steps(&self, level: &Level, step: UnixNanos, b: &mut Builder) {
        // Each agent's totals as of the record being read (before its event), and, for the
        // agents whose totals moved in the current run, their totals when it began.
        let mut now: BTreeMap<u32, Totals> = BTreeMap::new();
        let mut run_start: BTreeMap<u32, Totals> = BTreeMap::new();
        let mut run: Option<u64> = None;
        for r in &level.records {
            for &(agent, totals) in &r.totals {
                let was = now.insert(agent, totals).unwrap_or_default();
                run_start.entry(agent).or_insert(was);
            }
            let this = r.time / step;
            if run == Some(this) {
                continue;
            }
            if let Some(run) = run {
                self.add_run(b, run * step, &mut run_start, |a| now[&a]);
            }
            run_start.clear();
            b.sample(
                AsOf {
                    seq: r.seq,
                    time: r.time,
                },
                r.queued,
                r.health,
            );
            run = Some(this);
        }
        // The last run ends at the last event: the totals now.
        for &agent in &level.moved {
            let was = now.get(&agent).copied().unwrap_or_default();
            run_start.entry(agent).or_insert(was);
        }
        if let Some(run) = run {
            self.add_run(b, run * step, &mut run_start, |a| {
                self.counters[a as usize].totals
            });
        }
    }

    /// The activity of the run that began at `step_start`: each agent's totals at its end less
    /// those at its start.
    fn add_run(
        &self,
        b: &mut Builder,
        step_start: UnixNanos,
        run_start: &mut BTreeMap<u32, Totals>,
        end: impl Fn(u32) -> Totals,
    ) {
        for (&agent, &start) in run_start.iter() {
            let counts = end(agent).since(start);
            if counts.0 + counts.1 > 0 || counts.2 != 0 {
                b.add_activity(&self.counters[agent as usize].agent, step_start, counts);
            }
        }
    }

    /// Drops the levels finer than the whole log will ever be drawn at: its range only grows.
    fn drop_fine_levels(&mut self) {
        let Some(start) = self.start else { return };
        let finest = step_for(self.as_of.time.saturating_sub(start), MAX_RESOLUTION);
        let live = self.levels.iter().filter(|l| !l.dropped).count();
        for (i, level) in self.levels.iter_mut().enumerate() {
            // The next level up is at most `finest`: this one is never chosen again.
            let next = level.shift + LEVEL_SHIFT;
            if level.dropped || live <= 1 || 1u64.checked_shl(next).is_none_or(|s| s > finest) {
                continue;
            }
            level.dropped = true;
            self.weight = self.weight.saturating_sub(level.records.len() * 40);
            level.records = Vec::new();
            for agent in std::mem::take(&mut level.moved) {
                self.counters[agent as usize].pending &= !(1 << i);
            }
            return;
        }
    }
}

impl Recorder for Index {
    fn begin(&mut self, seq: u64, time: UnixNanos) {
        if self.broken {
            return;
        }
        if time < self.as_of.time {
            *self = Index {
                broken: true,
                ..Index::default()
            };
            return;
        }
        self.start.get_or_insert(time);
        // Time never goes back here: while the finest level stays in its step, so do all.
        let finest = self.levels.iter().find(|l| !l.dropped);
        if finest.is_some_and(|l| l.step == Some(time >> l.shift)) {
            return;
        }
        let Index {
            levels,
            counters,
            weight,
            begun,
            ..
        } = self;
        for (i, level) in levels.iter_mut().enumerate() {
            let step = time >> level.shift;
            if level.dropped || level.step == Some(step) {
                continue;
            }
            level.step = Some(step);
            let totals: Vec<(u32, Totals)> = level
                .moved
                .drain(..)
                .map(|agent| {
                    let counter = &mut counters[agent as usize];
                    counter.pending &= !(1 << i);
                    (agent, counter.totals)
                })
                .collect();
            *weight += 40 + totals.len() * 28;
            *begun = true;
            level.records.push(Record {
                seq,
                time,
                queued: 0,
                health: 0.0,
                totals,
            });
        }
    }

    fn lane(&self, agent: &str) -> Option<(&str, &str)> {
        self.lanes
            .get(agent)
            .map(|(state, features)| (state.as_str(), features.as_str()))
    }

    fn profiled(&mut self) -> &mut Option<(String, bool)> {
        &mut self.profiled
    }

    fn moved(&mut self, agent: &str, now: Option<(String, String)>, seq: u64, time: UnixNanos) {
        // Kept even once broken: the lanes decide what the fold reports as moved.
        match &now {
            Some(lane) => {
                self.lanes.insert(agent.to_owned(), lane.clone());
            }
            None => {
                self.lanes.remove(agent);
            }
        }
        if self.broken {
            return;
        }
        self.weight += 64 + agent.len();
        self.transitions.push(Transition {
            seq,
            time,
            agent: agent.to_owned(),
            now,
        });
    }

    fn active(&mut self, agent: &str, _time: UnixNanos, (tools, llm, cost): (u64, u64, i64)) {
        if self.broken {
            return;
        }
        if self.numbers.len() != self.counters.len() {
            // Read back: the numbers were not stored.
            self.numbers = (0u32..)
                .zip(&self.counters)
                .map(|(n, c)| (c.agent.clone(), n))
                .collect();
        }
        let number = match self.numbers.get(agent) {
            Some(&n) => n,
            None => {
                let n = self.counters.len() as u32;
                self.numbers.insert(agent.to_owned(), n);
                self.counters.push(Counter {
                    agent: agent.to_owned(),
                    totals: Totals::default(),
                    pending: 0,
                });
                n
            }
        };
        let counter = &mut self.counters[number as usize];
        counter.totals.0 += tools;
        counter.totals.1 += llm;
        counter.totals.2 += cost;
        for (i, level) in self.levels.iter_mut().enumerate() {
            if !level.dropped && counter.pending & (1 << i) == 0 {
                counter.pending |= 1 << i;
                level.moved.push(number);
            }
        }
    }

    fn marks(&mut self) -> &mut Marks {
        &mut self.marks
    }

    fn end(&mut self, view: &View, _time: UnixNanos) {
        if self.broken {
            return;
        }
        self.events += 1;
        self.as_of = view.as_of;
        if !std::mem::take(&mut self.begun) {
            return;
        }
        let seq = view.as_of.seq;
        let mut measured = None;
        for level in self.levels.iter_mut().filter(|l| !l.dropped) {
            if let Some(record) = level.records.last_mut().filter(|r| r.seq == seq) {
                let (queued, health) = *measured.get_or_insert_with(|| measures(view));
                record.queued = queued;
                record.health = health;
            }
        }
        if measured.is_some() {
            self.drop_fine_levels();
        }
    }
}
