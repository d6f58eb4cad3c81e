//! Placement: one coordination cycle's decision of which queued feature goes to which agent,
//! walking the queue in order.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::scopes;
use super::score::{Fit, score, score_of};
use super::{Assignment, Decision, Matcher, PolicyConfig};
use crate::reducer::{Feature, FeatureStatus, QueueKey, View};

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

/// Queued features with one requirement set (as the matcher's bits: sets that differ only in
/// capabilities no agent has are one group), in queue order, and the open agents that meet it.
struct Group<'v> {
    /// The fold's queue of each set in the group, each in queue order.
    sets: Vec<std::iter::Peekable<std::collections::btree_set::Iter<'v, QueueKey>>>,
    /// The requirement set, as the matcher's bits.
    req: Vec<u64>,
    /// Found when the group first comes up, then thinned as agents fill (agents only close
    /// during a cycle, so a group with none left is done).
    capable: Option<Vec<usize>>,
}

impl<'v> Group<'v> {
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

    /// The group's next feature in queue order, taken from it.
    fn pop(&mut self, view: &'v View) -> Option<&'v Feature> {
        loop {
            let (set, _) = self
                .sets
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.peek().map(|k| (i, *k)))
                .min_by(|a, b| a.1.cmp(b.1))?;
            let key = self.sets[set].next()?;
            // The fold keeps the queue and the features together; a name it does not know
            // would be its bug, and is passed over rather than placed.
            if let Some(f) = view.features.get(&key.name) {
                return Some(f);
            }
        }
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
        .iter_mut()
        .enumerate()
        .filter_map(|(g, group)| group.pop(view).map(|f| (Queued(f), g)))
        .collect();
    let mut decision = Decision::default();
    while slots.open_count > 0 {
        let Some((Queued(feature), g)) = heads.pop() else {
            break;
        };
        let group = &mut groups[g];
        // Its scope overlaps one being worked on (or placed this cycle): it waits, and the
        // rest of its group may go.
        if scopes::scoped(feature)
            && scoped
                .iter()
                .any(|o| scopes::kept_apart(feature, o, barriers).is_some())
        {
            if let Some(next) = group.pop(view) {
                heads.push((Queued(next), g));
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
        if let Some(next) = group.pop(view) {
            heads.push((Queued(next), g));
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

/// The fold's queue as groups by requirement set, how many features are queued, and the
/// features being worked on that said their scope (a queued one whose scope overlaps theirs
/// waits). A set requiring what no agent has joins no group. Only the sets are visited here,
/// never the features: a cycle reads a feature when it comes to place it.
fn groups_by_requirements<'v>(
    view: &'v View,
    matcher: &Matcher<'_>,
) -> (Vec<Group<'v>>, usize, Vec<&'v Feature>) {
    let queued = view.tally.by_status[FeatureStatus::Queued as usize];
    let mut group_of_bits: FxHashMap<Vec<u64>, usize> = FxHashMap::default();
    let mut groups: Vec<Group<'v>> = Vec::new();
    let mut req = Vec::new();
    for (requires, keys) in &view.tally.queue {
        // A requirement no agent has at all: its features wait.
        if !matcher.requires_into(requires, &mut req) {
            continue;
        }
        let g = *group_of_bits.entry(req.clone()).or_insert_with(|| {
            groups.push(Group {
                sets: Vec::new(),
                req: req.clone(),
                capable: None,
            });
            groups.len() - 1
        });
        groups[g].sets.push(keys.iter().peekable());
    }
    // Features in progress are the ones agents hold.
    let scoped = view
        .agents
        .values()
        .flat_map(|a| &a.assignments)
        .filter_map(|name| view.features.get(name))
        .filter(|f| f.status.is_in_progress() && scopes::scoped(f))
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
