//! The policy: which queued feature goes to which agent. Pure and deterministic — it reads only
//! the view and its configuration, and every choice it makes carries its score and reasons.
//!
//! Order of placement: priority (critical first), then queue position (older first), then name.
//! Among capable agents: higher score, then lower load, then agent id — never hash order.

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use crate::reducer::{
    Agent, AgentState, Capabilities, Complexity, Feature, FeatureStatus, Priority, View,
};

/// Weights of the score's four parts; they are normalised by their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub capability: f64,
    pub priority: f64,
    pub complexity: f64,
    pub load: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            capability: 0.4,
            priority: 0.2,
            complexity: 0.2,
            load: 0.2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub weights: Weights,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub agent_id: String,
    pub feature_name: String,
    pub priority: Priority,
    /// 0..1, rounded to three decimals so that it prints and compares the same everywhere.
    pub score: f64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decision {
    pub assignments: Vec<Assignment>,
    /// Queued features left unplaced by this cycle.
    pub features_waiting: usize,
}

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
    queue: std::collections::BinaryHeap<Queued<'v>>,
    /// Found when the group first comes up, then thinned as agents fill (agents only close
    /// during a cycle, so a group with none left is done).
    capable: Option<Vec<usize>>,
}

pub fn decide(view: &View, config: &PolicyConfig) -> Decision {
    let matcher = Matcher::new(view);
    let fits: Vec<Fit> = matcher.agents.iter().map(|a| Fit::of(a)).collect();
    // Slots left per agent index, updated as this cycle places features.
    let mut load: Vec<u32> = matcher
        .agents
        .iter()
        .map(|a| a.assignments.len() as u32)
        .collect();
    let mut open: Vec<bool> = matcher.agents.iter().map(|a| a.can_take_more()).collect();
    let mut open_count = open.iter().filter(|o| **o).count();
    // Placing walks the queue in order; a feature goes to the best open agent that meets its
    // requirements, or waits. Features share a few requirement sets, so the queue is split by
    // set and merged back in order: a set that no open agent meets is passed over whole,
    // instead of each of its features scanning every agent (100,000 features, 1,000 agents).
    let mut queued = 0usize;
    // Keyed by the requirements as written, then by their bits: sets that differ only in
    // capabilities no agent has are told apart by the first and merged by the second.
    let mut group_of_set: FxHashMap<&Capabilities, Option<usize>> = FxHashMap::default();
    let mut group_of_bits: FxHashMap<Vec<u64>, usize> = FxHashMap::default();
    let mut members: Vec<Vec<Queued<'_>>> = Vec::new();
    let mut reqs: Vec<Vec<u64>> = Vec::new();
    let mut req = Vec::new();
    for feature in view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Queued)
    {
        queued += 1;
        let group = *group_of_set.entry(&feature.requires).or_insert_with(|| {
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
    let mut groups: Vec<Group<'_>> = members
        .into_iter()
        .map(|m| Group {
            queue: m.into(),
            capable: None,
        })
        .collect();
    // The head of each group with its index; names are unique, so the index never decides.
    let mut heads: std::collections::BinaryHeap<(Queued<'_>, usize)> = groups
        .iter()
        .enumerate()
        .filter_map(|(g, group)| group.queue.peek().map(|q| (Queued(q.0), g)))
        .collect();
    let mut decision = Decision::default();
    while open_count > 0 {
        let Some((Queued(feature), g)) = heads.pop() else {
            break;
        };
        let group = &mut groups[g];
        group.queue.pop();
        let capable = group.capable.get_or_insert_with(|| {
            (0..matcher.agents.len())
                .filter(|&i| open[i] && matcher.has_all(i, &reqs[g]))
                .collect()
        });
        capable.retain(|&i| open[i]);
        let mut best: Option<(usize, f64)> = None;
        for &i in capable.iter() {
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
        // No open agent meets this set, now or later in the cycle: the group is done.
        let Some((i, _)) = best else {
            continue;
        };
        let agent = matcher.agents[i];
        let (score, reasons) = score(config, agent, feature, load[i]);
        decision.assignments.push(Assignment {
            agent_id: agent.id.clone(),
            feature_name: feature.name.clone(),
            priority: feature.priority,
            score,
            reasons,
        });
        load[i] += 1;
        if load[i] >= agent.max_concurrent_features {
            open[i] = false;
            open_count -= 1;
        }
        if let Some(next) = group.queue.peek() {
            heads.push((Queued(next.0), g));
        }
    }
    // Every queued feature not placed waits.
    decision.features_waiting = queued - decision.assignments.len();
    decision
}

/// What scoring needs of an agent, packed small so that a cycle's scan over every agent for
/// every placed feature stays in cache.
#[derive(Debug, Clone, Copy)]
struct Fit {
    capabilities: usize,
    preferred: Option<Complexity>,
    max: u32,
}

impl Fit {
    fn of(agent: &Agent) -> Fit {
        Fit {
            capabilities: agent.capabilities.len(),
            preferred: agent.preferred_complexity,
            max: agent.max_concurrent_features,
        }
    }
}

/// The four parts of the score, each 0..1: capability overlap, priority, effort against
/// preferred complexity, and free capacity.
fn parts(agent: Fit, feature: &Feature, load: u32) -> [f64; 4] {
    let required = feature.requires.len();
    let capability = if required == 0 {
        0.5
    } else {
        // Specialists first: the more of an agent's capabilities a feature uses, the better.
        required as f64 / agent.capabilities.max(required) as f64
    };
    let priority = match feature.priority {
        Priority::Low => 0.25,
        Priority::Medium => 0.5,
        Priority::High => 0.75,
        Priority::Critical => 1.0,
    };
    let level = Complexity::of_effort(feature.estimated_effort);
    let complexity = agent.preferred.map_or(0.5, |pref| {
        1.0 - (level.rank().abs_diff(pref.rank()) as f64) / 2.0
    });
    let max = agent.max.max(1);
    let free = 1.0 - (load.min(max) as f64) / max as f64;
    [capability, priority, complexity, free]
}

/// The score of giving `feature` to `agent` when it already holds `load` features, 0..1,
/// rounded to three decimals.
pub fn score_value(config: &PolicyConfig, agent: &Agent, feature: &Feature, load: u32) -> f64 {
    score_of(config, Fit::of(agent), feature, load)
}

fn score_of(config: &PolicyConfig, agent: Fit, feature: &Feature, load: u32) -> f64 {
    let w = &config.weights;
    let [capability, priority, complexity, free] = parts(agent, feature, load);
    let total = w.capability + w.priority + w.complexity + w.load;
    let raw = if total > 0.0 {
        (w.capability * capability
            + w.priority * priority
            + w.complexity * complexity
            + w.load * free)
            / total
    } else {
        0.0
    };
    (raw.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

/// The score with its reasons in words, for the decision span.
pub fn score(
    config: &PolicyConfig,
    agent: &Agent,
    feature: &Feature,
    load: u32,
) -> (f64, Vec<String>) {
    let mut reasons = Vec::with_capacity(4);
    if feature.requires.is_empty() {
        reasons.push("no capability required".to_string());
    } else {
        let items: Vec<String> = feature
            .requires
            .items()
            .map(|(kind, item)| format!("{kind} {item}"))
            .collect();
        reasons.push(format!(
            "has {} ({} of its {} capabilities used)",
            items.join(", "),
            feature.requires.len(),
            agent.capabilities.len()
        ));
    }
    reasons.push(format!("priority {}", feature.priority.as_str()));
    let level = Complexity::of_effort(feature.estimated_effort);
    reasons.push(match agent.preferred_complexity {
        None => format!(
            "effort {} ({}), no complexity preference",
            feature.estimated_effort,
            level.as_str()
        ),
        Some(pref) => format!(
            "effort {} ({}) against preferred {}",
            feature.estimated_effort,
            level.as_str(),
            pref.as_str()
        ),
    });
    reasons.push(format!(
        "load {load}/{}",
        agent.max_concurrent_features.max(1)
    ));
    (score_value(config, agent, feature, load), reasons)
}

/// Agents holding features that have been silent longer than the lease at `now`, with how long,
/// in agent id order. `now` is an input: the time the coordinator decides, recorded in the log
/// with the decision, so replay reaches the same verdict.
pub fn expired_leases(view: &View, now: crate::model::UnixNanos) -> Vec<(String, u64)> {
    view.agents
        .values()
        .filter(|a| under_lease(view, a))
        .filter_map(|a| {
            let elapsed = now.saturating_sub(a.last_activity);
            (elapsed >= agent_lease(view, a).saturating_mul(1_000_000_000))
                .then(|| (a.id.clone(), elapsed / 1_000_000_000))
        })
        .collect()
}

/// The agent's lease: its own, if it registered with one, else the log's.
pub fn agent_lease(view: &View, agent: &Agent) -> u64 {
    agent.lease_seconds.unwrap_or_else(|| lease_seconds(view))
}

/// The lease in force: the configured one, or the default before `agents init`.
pub fn lease_seconds(view: &View) -> u64 {
    view.config
        .as_ref()
        .map_or(crate::reducer::DEFAULT_LEASE_SECONDS, |c| c.lease_seconds)
}

/// Whether the lease applies to `agent`: it holds work that it, not the coordinator, must move
/// on (a submitted feature waits for the merge, not for its agent), and it is not in error.
pub fn under_lease(view: &View, agent: &Agent) -> bool {
    agent.state != AgentState::Error
        && agent.assignments.iter().any(|f| {
            view.features
                .get(f)
                .is_none_or(|f| f.status != FeatureStatus::Merging)
        })
}

/// When `agent`'s lease runs out if it stays silent: from this moment on `expired_leases`
/// names it. None when no lease applies.
pub fn lease_deadline(view: &View, agent: &Agent) -> Option<crate::model::UnixNanos> {
    under_lease(view, agent).then(|| {
        agent
            .last_activity
            .saturating_add(agent_lease(view, agent).saturating_mul(1_000_000_000))
    })
}

/// Why a queued feature is still waiting, in words a person can act on.
pub fn wait_reason(view: &View, matcher: &Matcher<'_>, feature: &Feature) -> String {
    if let Some(error) = &feature.last_error {
        return error.clone();
    }
    if view.agents.is_empty() {
        return "no agents registered; register one with `agents register-agent`".into();
    }
    let mut req = Vec::new();
    if !matcher.requirement_into(feature, &mut req) {
        let missing = feature
            .requires
            .items()
            .find(|(kind, item)| !matcher.known(kind, item))
            .map(|(kind, item)| format!("{kind} {item}"))
            .unwrap_or_default();
        return format!("no registered agent has {missing}");
    }
    let capable: Vec<&Agent> = (0..matcher.agents.len())
        .filter(|&i| matcher.has_all(i, &req))
        .map(|i| matcher.agents[i])
        .collect();
    if capable.is_empty() {
        let needs: Vec<String> = feature
            .requires
            .items()
            .map(|(kind, item)| format!("{kind} {item}"))
            .collect();
        return format!(
            "no single registered agent has all of: {}",
            needs.join(", ")
        );
    }
    if capable.iter().any(|a| a.can_take_more()) {
        // Honest with or without a server: nothing here promises that a cycle will come.
        return "an agent can take it: the next coordination cycle places it (a server runs one by itself unless --manual; else `spanfold agents coordination-cycle`)".into();
    }
    if capable.iter().all(|a| a.state == AgentState::Error) {
        let ids: Vec<&str> = capable.iter().map(|a| a.id.as_str()).collect();
        return format!(
            "every capable agent is in error ({}); reset one with `agents reset`",
            ids.join(", ")
        );
    }
    let busy: Vec<String> = capable
        .iter()
        .map(|a| {
            format!(
                "{} ({}, {}/{})",
                a.id,
                a.state.as_str(),
                a.assignments.len(),
                a.max_concurrent_features
            )
        })
        .collect();
    format!(
        "waiting for a capable agent to be free: {}",
        busy.join(", ")
    )
}

/// Capabilities interned to bits once per cycle, so matching 10,000 features against 100 agents
/// is a few word comparisons each instead of string lookups.
pub struct Matcher<'v> {
    pub agents: Vec<&'v Agent>,
    index: FxHashMap<(&'static str, &'v str), usize>,
    /// Each agent's capabilities as bits, `words` words per agent, side by side.
    bits: Vec<u64>,
    words: usize,
}

impl<'v> Matcher<'v> {
    pub fn new(view: &'v View) -> Self {
        let agents: Vec<&Agent> = view.agents.values().collect();
        let mut index = FxHashMap::default();
        // Lookups only: the map is never iterated, so its order cannot reach a decision.
        for agent in &agents {
            for key in agent.capabilities.items() {
                let next = index.len();
                index.entry(key).or_insert(next);
            }
        }
        let words = index.len().div_ceil(64).max(1);
        let mut bits = vec![0u64; words * agents.len()];
        for (a, agent) in agents.iter().enumerate() {
            let set = &mut bits[a * words..(a + 1) * words];
            for key in agent.capabilities.items() {
                let bit = index[&key];
                set[bit / 64] |= 1 << (bit % 64);
            }
        }
        Matcher {
            agents,
            index,
            bits,
            words,
        }
    }

    fn known(&self, kind: &'static str, item: &str) -> bool {
        self.index.contains_key(&(kind, item))
    }

    /// Writes the feature's requirements as bits into `set`; false when some requirement is one
    /// that no agent has.
    pub fn requirement_into(&self, feature: &Feature, set: &mut Vec<u64>) -> bool {
        self.requires_into(&feature.requires, set)
    }

    /// The same for a requirement set.
    pub fn requires_into(&self, requires: &Capabilities, set: &mut Vec<u64>) -> bool {
        set.clear();
        set.resize(self.words, 0);
        for key in requires.items() {
            let Some(&bit) = self.index.get(&key) else {
                return false;
            };
            set[bit / 64] |= 1 << (bit % 64);
        }
        true
    }

    pub fn has_all(&self, agent: usize, req: &[u64]) -> bool {
        self.bits[agent * self.words..(agent + 1) * self.words]
            .iter()
            .zip(req)
            .all(|(have, need)| need & !have == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reducer::Progress;
    use std::collections::{BTreeMap, BTreeSet};

    fn caps(langs: &[&str], fws: &[&str], exp: &[&str]) -> Capabilities {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        Capabilities {
            languages: set(langs),
            frameworks: set(fws),
            expertise_areas: set(exp),
        }
    }

    fn agent(id: &str, c: Capabilities, max: u32) -> Agent {
        Agent {
            id: id.into(),
            capabilities: c,
            max_concurrent_features: max,
            preferred_complexity: None,
            state: AgentState::Idle,
            assignments: vec![],
            registered_seq: 0,
            last_activity: 0,
            progress: Progress::default(),
            error: None,
            lease_seconds: None,
            anomalies: 0,
            last_message: None,
        }
    }

    fn feature(name: &str, p: Priority, seq: u64, req: Capabilities) -> Feature {
        Feature {
            name: name.into(),
            description: String::new(),
            priority: p,
            estimated_effort: 3,
            requires: req,
            requirements: vec![],
            acceptance_criteria: vec![],
            status: FeatureStatus::Queued,
            assigned_agent: None,
            worktree_path: None,
            branch_name: None,
            last_error: None,
            queued_seq: seq,
            conflicts: vec![],
            merge_note: None,
            merged_commit: None,
            merged_by: None,
            merged_at: None,
            merge_from: None,
        }
    }

    fn view(agents: Vec<Agent>, features: Vec<Feature>) -> View {
        let mut v = View::default();
        for a in agents {
            v.agents.insert(a.id.clone(), a);
        }
        for f in features {
            v.features.insert(f.name.clone(), f);
        }
        v
    }

    /// The plain reading of the policy: the sorted queue, feature by feature, every open agent
    /// scored. `decide` groups the queue by requirement set for speed; it must place the same.
    fn decide_plainly(view: &View, config: &PolicyConfig) -> Vec<(String, String, f64)> {
        let mut load: BTreeMap<&str, u32> = view
            .agents
            .values()
            .map(|a| (a.id.as_str(), a.assignments.len() as u32))
            .collect();
        let mut out = Vec::new();
        for f in queue(view) {
            let best = view
                .agents
                .values()
                .filter(|a| a.can_take_more() && load[a.id.as_str()] < a.max_concurrent_features)
                .filter(|a| {
                    f.requires.items().all(|(kind, item)| {
                        a.capabilities.items().any(|(k, i)| k == kind && i == item)
                    })
                })
                .map(|a| (score_value(config, a, f, load[a.id.as_str()]), a))
                .max_by(|(s1, a1), (s2, a2)| {
                    s1.total_cmp(s2)
                        .then(load[a2.id.as_str()].cmp(&load[a1.id.as_str()]))
                        .then(a2.id.cmp(&a1.id))
                });
            if let Some((score, a)) = best {
                *load.get_mut(a.id.as_str()).expect("agent") += 1;
                out.push((a.id.clone(), f.name.clone(), score));
            }
        }
        out
    }

    #[test]
    fn grouped_placement_equals_the_plain_reading_on_random_views() {
        const LANGS: [&str; 4] = ["rust", "go", "python", "c"];
        const FWS: [&str; 3] = ["tokio", "react", "django"];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200 {
            let agents: Vec<Agent> = (0..next(12) + 1)
                .map(|a| {
                    let langs: Vec<&str> = LANGS.iter().copied().filter(|_| next(2) == 0).collect();
                    let fws: Vec<&str> = FWS.iter().copied().filter(|_| next(3) == 0).collect();
                    let mut agent = agent(
                        &format!("a{a:02}"),
                        caps(&langs, &fws, &[]),
                        next(3) as u32 + 1,
                    );
                    agent.preferred_complexity = match next(3) {
                        0 => None,
                        1 => Some(Complexity::Low),
                        _ => Some(Complexity::High),
                    };
                    agent
                })
                .collect();
            let features: Vec<Feature> = (0..next(60))
                .map(|f| {
                    let langs: Vec<&str> = LANGS.iter().copied().filter(|_| next(4) == 0).collect();
                    let fws: Vec<&str> = FWS.iter().copied().filter(|_| next(5) == 0).collect();
                    // One in eight asks for an expertise no agent has: it can only wait.
                    let expertise: &[&str] = if next(8) == 0 { &["ops"] } else { &[] };
                    let mut feature = feature(
                        &format!("f{f:03}"),
                        Priority::ALL[next(4) as usize],
                        next(20),
                        caps(&langs, &fws, expertise),
                    );
                    feature.estimated_effort = next(10) as u32 + 1;
                    feature
                })
                .collect();
            let v = view(agents, features);
            let config = PolicyConfig::default();
            let d = decide(&v, &config);
            let got: Vec<_> = d
                .assignments
                .iter()
                .map(|a| (a.agent_id.clone(), a.feature_name.clone(), a.score))
                .collect();
            assert_eq!(got, decide_plainly(&v, &config), "round {round}");
            let queued = v
                .features
                .values()
                .filter(|f| f.status == FeatureStatus::Queued)
                .count();
            assert_eq!(d.features_waiting, queued - got.len(), "round {round}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Whatever the view: a feature goes to one agent, only when queued; an agent gets one
        /// only in a state that may take work, never beyond its limit, and only with every
        /// capability the feature requires.
        #[test]
        fn the_policy_never_breaks_its_rules(
            agents in proptest::collection::vec((0u8..16, 0u32..4, 0usize..7), 0..10),
            features in proptest::collection::vec((0u8..16, 0usize..8, 0usize..4), 0..40),
        ) {
            const LANGS: [&str; 4] = ["rust", "go", "python", "c"];
            let langs = |mask: u8| -> Vec<&str> {
                LANGS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, l)| *l).collect()
            };
            let mut agent_list: Vec<Agent> = agents
                .iter()
                .enumerate()
                .map(|(i, &(mask, max, state))| {
                    let mut a = agent(&format!("a{i}"), caps(&langs(mask), &[], &[]), max);
                    a.state = AgentState::ALL[state];
                    a
                })
                .collect();
            let mut feature_list = Vec::new();
            for (i, &(mask, status, priority)) in features.iter().enumerate() {
                let mut f = feature(&format!("f{i:02}"), Priority::ALL[priority], i as u64, caps(&langs(mask), &[], &[]));
                f.status = FeatureStatus::ALL[status];
                // Features in progress are held by someone (possibly beyond the holder's limit).
                if f.status.is_in_progress() && !agent_list.is_empty() {
                    let holder = &mut agent_list[i % agents.len()];
                    holder.assignments.push(f.name.clone());
                    f.assigned_agent = Some(holder.id.clone());
                }
                feature_list.push(f);
            }
            let v = view(agent_list, feature_list);
            let d = decide(&v, &PolicyConfig::default());
            let mut given: BTreeMap<&str, u32> = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for a in &d.assignments {
                proptest::prop_assert!(seen.insert(a.feature_name.as_str()), "{} placed twice", a.feature_name);
                let f = &v.features[&a.feature_name];
                proptest::prop_assert_eq!(f.status, FeatureStatus::Queued);
                let agent = &v.agents[&a.agent_id];
                proptest::prop_assert!(matches!(agent.state, AgentState::Idle | AgentState::Claiming | AgentState::Working));
                for (kind, item) in f.requires.items() {
                    proptest::prop_assert!(
                        agent.capabilities.items().any(|(k, i)| k == kind && i == item),
                        "{} lacks {kind} {item} for {}", agent.id, f.name
                    );
                }
                *given.entry(agent.id.as_str()).or_default() += 1;
            }
            for (id, n) in given {
                let agent = &v.agents[id];
                proptest::prop_assert!(
                    agent.assignments.len() as u32 + n <= agent.max_concurrent_features,
                    "{id} holds {} and got {n} more, over its limit {}",
                    agent.assignments.len(), agent.max_concurrent_features
                );
            }
            let queued = v.features.values().filter(|f| f.status == FeatureStatus::Queued).count();
            proptest::prop_assert_eq!(d.features_waiting + d.assignments.len(), queued);
        }
    }

    #[test]
    fn only_capable_agents_get_features() {
        let v = view(
            vec![
                agent("py", caps(&["python"], &["fastapi"], &["backend"]), 1),
                agent("ts", caps(&["typescript"], &["react"], &["frontend"]), 1),
            ],
            vec![
                feature("api", Priority::High, 1, caps(&["python"], &[], &[])),
                feature(
                    "ui",
                    Priority::High,
                    2,
                    caps(&["typescript"], &["react"], &[]),
                ),
            ],
        );
        let d = decide(&v, &PolicyConfig::default());
        let pairs: Vec<_> = d
            .assignments
            .iter()
            .map(|a| (a.feature_name.as_str(), a.agent_id.as_str()))
            .collect();
        assert_eq!(pairs, [("api", "py"), ("ui", "ts")]);
        assert!(d.assignments.iter().all(|a| (0.0..=1.0).contains(&a.score)));
        assert!(d.assignments[0].reasons[0].contains("language python"));
    }

    #[test]
    fn higher_priority_is_placed_first_and_ties_go_to_the_older() {
        let v = view(
            vec![agent("a", caps(&[], &[], &[]), 1)],
            vec![
                feature("old-low", Priority::Low, 1, caps(&[], &[], &[])),
                feature("new-high", Priority::High, 3, caps(&[], &[], &[])),
                feature("old-high", Priority::High, 2, caps(&[], &[], &[])),
            ],
        );
        let d = decide(&v, &PolicyConfig::default());
        assert_eq!(d.assignments.len(), 1);
        assert_eq!(d.assignments[0].feature_name, "old-high");
        assert_eq!(d.features_waiting, 2);
    }

    #[test]
    fn max_concurrent_is_respected_and_load_spreads_work() {
        let v = view(
            vec![
                agent("a", caps(&[], &[], &[]), 2),
                agent("b", caps(&[], &[], &[]), 2),
            ],
            (0..5)
                .map(|i| feature(&format!("f{i}"), Priority::Medium, i, caps(&[], &[], &[])))
                .collect(),
        );
        let d = decide(&v, &PolicyConfig::default());
        let to: Vec<_> = d.assignments.iter().map(|a| a.agent_id.as_str()).collect();
        assert_eq!(to, ["a", "b", "a", "b"]);
        assert_eq!(d.features_waiting, 1);
    }

    #[test]
    fn the_specialist_wins_over_the_generalist() {
        let v = view(
            vec![
                agent(
                    "full",
                    caps(
                        &["python", "typescript"],
                        &["fastapi", "react"],
                        &["fullstack"],
                    ),
                    1,
                ),
                agent("py", caps(&["python"], &[], &[]), 1),
            ],
            vec![feature(
                "api",
                Priority::High,
                1,
                caps(&["python"], &[], &[]),
            )],
        );
        let d = decide(&v, &PolicyConfig::default());
        assert_eq!(d.assignments[0].agent_id, "py");
    }

    #[test]
    fn leases_expire_only_for_silent_agents_holding_work() {
        let mut busy = agent("busy", caps(&[], &[], &[]), 1);
        busy.assignments = vec!["f".into()];
        busy.last_activity = 1_000_000_000;
        let mut idle = agent("idle", caps(&[], &[], &[]), 1);
        idle.last_activity = 0;
        let v = view(vec![busy, idle], vec![]);
        let sec = 1_000_000_000u64;
        assert!(
            expired_leases(&v, 601 * sec - 1).is_empty(),
            "less than 600 s of silence is within the lease"
        );
        assert_eq!(expired_leases(&v, 601 * sec), [("busy".to_string(), 600)]);
        // The deadline is the last activity plus the lease, to the nanosecond.
        assert_eq!(
            lease_deadline(&v, &v.agents["busy"]),
            Some(601 * sec),
            "lease_expires_at = last_activity + lease"
        );
        // The deadline the board shows is the first moment of that verdict.
        let deadline = lease_deadline(&v, &v.agents["busy"]).expect("busy holds work");
        assert!(expired_leases(&v, deadline - 1).is_empty());
        assert_eq!(expired_leases(&v, deadline).len(), 1);
        assert_eq!(lease_deadline(&v, &v.agents["idle"]), None);
    }

    #[test]
    fn wait_reason_names_the_missing_capability() {
        let v = view(
            vec![agent("py", caps(&["python"], &[], &[]), 1)],
            vec![feature(
                "fast",
                Priority::High,
                1,
                caps(&["rust"], &[], &[]),
            )],
        );
        let m = Matcher::new(&v);
        assert_eq!(
            wait_reason(&v, &m, &v.features["fast"]),
            "no registered agent has language rust"
        );
        assert!(decide(&v, &PolicyConfig::default()).assignments.is_empty());
    }

    #[test]
    fn agents_in_error_or_busy_get_nothing() {
        let mut busy = agent("busy", caps(&[], &[], &[]), 1);
        busy.state = AgentState::Working;
        busy.assignments = vec!["x".into()];
        let mut broken = agent("broken", caps(&[], &[], &[]), 1);
        broken.state = AgentState::Error;
        let v = view(
            vec![busy, broken],
            vec![feature("f", Priority::High, 1, caps(&[], &[], &[]))],
        );
        assert!(decide(&v, &PolicyConfig::default()).assignments.is_empty());
        let reason = wait_reason(&v, &Matcher::new(&v), &v.features["f"]);
        assert!(
            reason.starts_with("waiting for a capable agent to be free: "),
            "{reason}"
        );
    }
}
