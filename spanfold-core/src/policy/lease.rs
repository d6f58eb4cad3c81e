//! The lease: how long an agent holding work may stay silent before the coordinator takes its
//! features back, and who is past it at a given moment.

use crate::reducer::{Agent, AgentState, FeatureStatus, View};

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
