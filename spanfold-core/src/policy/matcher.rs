//! Capabilities interned to bits once per cycle, so that matching features against agents is
//! word comparisons instead of string lookups.

use rustc_hash::FxHashMap;

use crate::reducer::{Agent, Capabilities, Feature, View};

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

    pub(super) fn known(&self, kind: &'static str, item: &str) -> bool {
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

    #[inline]
    pub fn has_all(&self, agent: usize, req: &[u64]) -> bool {
        self.bits[agent * self.words..(agent + 1) * self.words]
            .iter()
            .zip(req)
            .all(|(have, need)| need & !have == 0)
    }
}
