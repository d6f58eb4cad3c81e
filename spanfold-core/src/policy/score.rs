//! The score of giving a feature to an agent, 0..1 from four weighted parts, and its reasons in
//! words for the decision span.

use super::PolicyConfig;
use crate::reducer::{Agent, Complexity, Feature, Priority};

/// What scoring needs of an agent, packed small so that a cycle's scan over every agent for
/// every placed feature stays in cache.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fit {
    capabilities: usize,
    preferred: Option<Complexity>,
    max: u32,
}

impl Fit {
    #[inline]
    pub(super) fn of(agent: &Agent) -> Fit {
        Fit {
            capabilities: agent.capabilities.len(),
            preferred: agent.preferred_complexity,
            max: agent.max_concurrent_features,
        }
    }
}

/// The four parts of the score, each 0..1: capability overlap, priority, effort against
/// preferred complexity, and free capacity.
#[inline]
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

// Inlined into the placement loop (another module, so another codegen unit without it): it
// runs once per capable agent for every feature placed.
#[inline]
pub(super) fn score_of(config: &PolicyConfig, agent: Fit, feature: &Feature, load: u32) -> f64 {
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
