//! Why a queued feature is still waiting, in words a person can act on.

use super::Matcher;
use crate::reducer::{Agent, AgentState, Feature, View};

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
    if let Some(reason) = scope_wait(view, feature) {
        return reason;
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

/// Why a feature whose scope overlaps one being worked on waits: which one, and where.
fn scope_wait(view: &View, feature: &Feature) -> Option<String> {
    if !super::scopes::scoped(feature) {
        return None;
    }
    let barriers = view.barrier_paths.as_slice();
    view.features
        .values()
        .filter(|o| o.status.is_in_progress())
        .find_map(|o| {
            let apart = super::scopes::kept_apart(feature, o, barriers)?;
            let (mine, theirs) = (apart.mine, apart.theirs);
            Some(match apart.barrier {
                Some(barrier) => format!(
                    "waits for feature {}: both touch the barrier path {barrier} (its {theirs}, this feature's {mine}), and features that touch a barrier path go one at a time",
                    o.name
                ),
                None => format!(
                    "waits for feature {}: its paths ({theirs}) overlap this feature's ({mine}); `add-feature {} --allow-overlap` lets them be worked on at once",
                    o.name, feature.name
                ),
            })
        })
}
