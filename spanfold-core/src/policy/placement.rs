//! Placement: one coordination cycle's decision of which queued feature goes to which agent,
//! walking the queue in order.

use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

use super::scopes;
use super::score::{Fit, score, score_of};
use super::{Assignment, Decision, Matcher, PolicyConfig};
use crate::reducer::{Capabilities, Feature, FeatureStatus, View};

/// Queued features in placement order.
pub fn queue(view: &View) -> Vec<&Feature> {
    let mut queued: Vec<&Feature> = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Queued)
        .collect();
    // Names are unique, so this is a total order and an unstable sort is still deterministic.
    queued.sort_unstable_by(|a, b| Queued(b).cmp(&Queued(a)));
    queued
}

/// A queued feature ordered as the queue is: greater means placed earlier.
struct Queued<'v>(&'v Feature);

impl Ord for Queued<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0, other.0);
        a.priority
            .cmp(&b.priority)
            .then(b.queued_seq.cmp(&a.queued_seq))
            .then_with(|| b.name.cmp(&a.name))
    }
}

impl PartialOrd for Queued<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Queued<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Queued<'_> {}

/// Queued features with one requirement set, in queue order, and the open agents that meet it.
struct Group<'v> {
    queue: BinaryHeap<Queued<'v>>,
    /// The requirement set, as the matcher's bits.
    req: Vec<u64>,
    /// Found when the group first comes up, then thinned as agents fill (agents only close
    /// during a cycle, so a group with none left is done).
    capable: Option<Vec<usize>>,
}

impl Group<'_> {
    /// The open agents that meet the group's requirements.
    fn capable(&mut self, matcher: &Matcher<'_>, open: &[bool]) -> &[usize] {
        let req = &self.req;
        let capable = self.capable.get_or_insert_with(|| {
            (0..matcher.agents.len())
                .filter(|&i| open[i] && matcher.has_all(i, req))
                .collect()
        });
        capable.retain(|&i| open[i]);
        capable
    }
}

/// One coordination cycle's placement: which queued features go to which open agents.
pub fn decide(view: &View, config: &PolicyConfig) -> Decision {
    let matcher = Matcher::new(view);
    let fits: Vec<Fit> = matcher.agents.iter().map(|a| Fit::of(a)).collect();
    let mut slots = Slots::of(&matcher);
    // Placing walks the queue in order; a feature goes to the best open agent that meets its
    // requirements, or waits. Features share a few requirement sets, so the queue is split by
    // set and merged back in order: a set that no open agent meets is passed over whole,
    // instead of each of its features scanning every agent (100,000 features, 1,000 agents).
    let (mut groups, queued, mut scoped) = groups_by_requirements(view, &matcher);
    let barriers = view.barrier_paths.as_slice();
    // The head of each group with its index; names are unique, so the index never decides.
    let mut heads: BinaryHeap<(Queued<'_>, usize)> = groups
        .iter()
        .enumerate()
        .filter_map(|(g, group)| group.queue.peek().map(|q| (Queued(q.0), g)))
        .collect();
    let mut decision = Decision::default();
    while slots.open_count > 0 {
        let Some((Queued(feature), g)) = heads.pop() else {
            break;
        };
        let group = &mut groups[g];
        group.queue.pop();
        // Its scope overlaps one being worked on (or placed this cycle): it waits, and the
        // rest of its group may go.
        if scopes::scoped(feature)
            && scoped
                .iter()
                .any(|o| scopes::kept_apart(feature, o, barriers).is_some())
        {
            if let Some(next) = group.queue.peek() {
                heads.push((Queued(next.0), g));
            }
            continue;
        }
        let capable = group.capable(&matcher, &slots.open);
        // No open agent meets this set, now or later in the cycle: the group is done.
        let Some(i) = best_agent(config, &matcher, &fits, &slots.load, capable, feature) else {
            continue;
        };
        let agent = matcher.agents[i];
        let (score, reasons) = score(config, agent, feature, slots.load[i]);
        decision.assignments.push(Assignment {
            agent_id: agent.id.clone(),
            feature_name: feature.name.clone(),
            priority: feature.priority,
            score,
            reasons,
        });
        slots.take(i, agent.max_concurrent_features);
        if scopes::scoped(feature) {
            scoped.push(feature);
        }
        if let Some(next) = group.queue.peek() {
            heads.push((Queued(next.0), g));
        }
    }
    // Every queued feature not placed waits.
    decision.features_waiting = queued - decision.assignments.len();
    decision
}

/// Slots left per agent index, updated as this cycle places features.
struct Slots {
    load: Vec<u32>,
    open: Vec<bool>,
    open_count: usize,
}

impl Slots {
    fn of(matcher: &Matcher<'_>) -> Slots {
        let load: Vec<u32> = matcher
            .agents
            .iter()
            .map(|a| a.assignments.len() as u32)
            .collect();
        let open: Vec<bool> = matcher.agents.iter().map(|a| a.can_take_more()).collect();
        let open_count = open.iter().filter(|o| **o).count();
        Slots {
            load,
            open,
            open_count,
        }
    }

    /// Agent `i` takes one more feature; once it holds `max` it is closed for the cycle.
    fn take(&mut self, i: usize, max: u32) {
        self.load[i] += 1;
        if self.load[i] >= max {
            self.open[i] = false;
            self.open_count -= 1;
        }
    }
}

/// A requirement set as a map key, hashed by the size and first item of each of its lists only.
/// Equal sets hash alike, which is all a key needs; hashing every item of every set cost a third
/// of a cycle (10,000 queued features), and a lookup compares the whole set anyway.
#[derive(PartialEq, Eq)]
struct SetKey<'v>(&'v Capabilities);

impl Hash for SetKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let c = self.0;
        for list in [&c.languages, &c.frameworks, &c.expertise_areas] {
            list.len().hash(state);
            list.first().hash(state);
        }
    }
}

/// The queued features split into groups by requirement set, each in queue order, how many
/// features are queued, and the features being worked on that said their scope (a queued one
/// whose scope overlaps theirs waits). A feature requiring what no agent has joins no group.
fn groups_by_requirements<'v>(
    view: &'v View,
    matcher: &Matcher<'_>,
) -> (Vec<Group<'v>>, usize, Vec<&'v Feature>) {
    let mut queued = 0usize;
    // Keyed by the requirements as written, then by their bits: sets that differ only in
    // capabilities no agent has are told apart by the first and merged by the second.
    let mut group_of_set: FxHashMap<SetKey<'_>, Option<usize>> = FxHashMap::default();
    let mut group_of_bits: FxHashMap<Vec<u64>, usize> = FxHashMap::default();
    let mut members: Vec<Vec<Queued<'_>>> = Vec::new();
    let mut reqs: Vec<Vec<u64>> = Vec::new();
    let mut req = Vec::new();
    let mut scoped = Vec::new();
    for feature in view.features.values() {
        if feature.status != FeatureStatus::Queued {
            if feature.status.is_in_progress() && scopes::scoped(feature) {
                scoped.push(feature);
            }
            continue;
        }
        queued += 1;
        let group = *group_of_set
            .entry(SetKey(&feature.requires))
            .or_insert_with(|| {
                // A requirement no agent has at all: the feature waits.
                if !matcher.requirement_into(feature, &mut req) {
                    return None;
                }
                Some(*group_of_bits.entry(req.clone()).or_insert_with(|| {
                    members.push(Vec::new());
                    reqs.push(req.clone());
                    members.len() - 1
                }))
            });
        if let Some(g) = group {
            members[g].push(Queued(feature));
        }
    }
    let groups = members
        .into_iter()
        .zip(reqs)
        .map(|(m, req)| Group {
            queue: m.into(),
            req,
            capable: None,
        })
        .collect();
    (groups, queued, scoped)
}

/// The best agent among `capable` for `feature`: higher score, then lower load, then agent id.
fn best_agent(
    config: &PolicyConfig,
    matcher: &Matcher<'_>,
    fits: &[Fit],
    load: &[u32],
    capable: &[usize],
    feature: &Feature,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &i in capable {
        let score = score_of(config, fits[i], feature, load[i]);
        let better = match best {
            None => true,
            Some((j, best_score)) => {
                score > best_score
                    || (score == best_score && load[i] < load[j])
                    || (score == best_score
                        && load[i] == load[j]
                        && matcher.agents[i].id < matcher.agents[j].id)
            }
        };
        if better {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}
