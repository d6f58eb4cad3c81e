//! The policy: which queued feature goes to which agent. Pure and deterministic — it reads only
//! the view and its configuration, and every choice it makes carries its score and reasons.
//!
//! Order of placement: priority (critical first), then queue position (older first), then name.
//! Among capable agents: higher score, then lower load, then agent id — never hash order.
//!
//! - `placement`: `decide`, the cycle's placement, and `queue`, the placement order.
//! - `score`: the score of an agent for a feature, with its reasons in words.
//! - `lease`: when a silent agent loses its features.
//! - `matcher`: capabilities interned to bits, so that matching stays cheap.
//! - `waiting`: why a queued feature still waits, in words a person can act on.
//! - `scopes`: features whose declared paths overlap are not worked on at once.

mod lease;
mod matcher;
mod placement;
mod scopes;
mod score;
mod waiting;

pub use lease::{agent_lease, expired_leases, lease_deadline, lease_seconds, under_lease};
pub use matcher::Matcher;
pub use placement::{decide, queue};
pub use scopes::{globs_overlap, kept_apart};
pub use score::{score, score_value};
pub use waiting::wait_reason;

use serde::{Deserialize, Serialize};

use crate::reducer::Priority;

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

#[cfg(test)]
mod tests;
