//! The assignment step of a coordination cycle as data: what the coordinator will record and
//! what it will then do, computed from the view alone. The coordinator records the plan's
//! decisions, carries out its [`Effect`]s and records their outcomes; because the plan is pure,
//! every rule about who gets what and where its worktree goes is tested on a view built in
//! memory, at any virtual time, without git.
//!
//! - [`plan`] and [`plan_decided`]: the cycle's placements, each with its worktree and branch.
//! - [`plan_leases`]: the agents whose lease has run out at a given moment.
//! - [`plan_releases`]: the worktrees of features let go of, still locked, to unlock.
//! - [`plan_recovery`] and [`plan_interrupted`] (`recovery.rs`): after an interruption, the
//!   worktrees git lost or never got, and the merges a crash cut off.
//! - [`plan_merges`] (`merges.rs`): the submitted features whose merge is worth trying, in order.
//!
//! Each reads the view as it is when it is asked: a cycle records the lease verdicts first, and
//! the releases and placements are planned on the view those verdicts made.

mod merges;
mod recovery;

use std::path::Path;

use serde::Serialize;

pub use merges::{MergeCandidate, RemoteBranch, merge_queue, plan_merges, queue_place};
pub use recovery::{
    Held, Interrupted, Rebuild, RecoveryPlan, active_worktrees, plan_interrupted, plan_recovery,
};

use crate::model::UnixNanos;
use crate::names::{self, NameError};
use crate::policy::{self, Decision, PolicyConfig};
use crate::reducer::{Config, Priority, View, WorktreeStatus};

/// Something the coordinator does outside the log once the decision behind it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Check `branch` out at `path` (the branch made from the base branch if it is new), locked
    /// for `agent_id`. A worktree already there is reused, so earlier work is never lost.
    /// `from_remote`: the feature was a remote agent's, so its work is on the remote: the branch
    /// is brought here from there first, where the remote's is ahead.
    CreateWorktree {
        agent_id: String,
        feature: String,
        path: String,
        branch: String,
        from_remote: bool,
    },
    /// Unlock the worktree at `path` of a feature let go of; it stays, with its work, for the
    /// next agent to get the feature.
    UnlockWorktree {
        path: String,
        branch: String,
        feature: String,
    },
    /// On recovery: check out again, from its branch, the worktree of a feature `agent_id`
    /// holds that has none, recording why it was needed.
    RebuildWorktree {
        agent_id: String,
        feature: String,
        path: String,
        branch: String,
        why: Rebuild,
    },
    /// For a remote agent: put `branch` (made from the base branch when new) on the remote,
    /// for `agent_id` to clone or fetch; nothing is checked out here. `path` names the
    /// feature's place. On recovery, `why` says why it was needed.
    PushBranch {
        agent_id: String,
        feature: String,
        path: String,
        branch: String,
        why: Option<Rebuild>,
    },
}

/// One assignment of the policy, with the worktree and branch it will get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub agent_id: String,
    pub feature_name: String,
    pub priority: Priority,
    pub score: f64,
    pub reasons: Vec<String>,
    pub worktree_path: String,
    pub branch: String,
    /// The agent works on another host: the branch goes to the remote, no worktree is made.
    pub remote: bool,
    /// The feature was a remote agent's before: its work is on the remote.
    pub from_remote: bool,
}

impl Placement {
    /// The worktree this placement needs, or for a remote agent the branch on the remote.
    pub fn effect(&self) -> Effect {
        let (agent_id, feature, path, branch) = (
            self.agent_id.clone(),
            self.feature_name.clone(),
            self.worktree_path.clone(),
            self.branch.clone(),
        );
        match self.remote {
            false => Effect::CreateWorktree {
                agent_id,
                feature,
                path,
                branch,
                from_remote: self.from_remote,
            },
            true => Effect::PushBranch {
                agent_id,
                feature,
                path,
                branch,
                why: None,
            },
        }
    }
}

/// An assignment the policy made that is not carried out: its feature's name makes no worktree
/// path. The reducer admits only valid names, so this is a defect to report, not a user error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub agent_id: String,
    pub feature_name: String,
    pub error: String,
}

/// What a cycle's assignment step records and does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CyclePlan {
    /// The number the cycle's span carries: one past the cycles the view has seen.
    pub cycle_number: u64,
    /// When the plan was made: the time its decision spans carry.
    pub at: UnixNanos,
    /// Queued features the policy left unplaced.
    pub features_waiting: usize,
    /// In the policy's order, which is the order of the spans and of the effects.
    pub placements: Vec<Placement>,
    pub skipped: Vec<Skipped>,
}

impl CyclePlan {
    /// How many assignments the policy made, skipped ones included: the count the cycle's span
    /// records.
    pub fn assignments_decided(&self) -> usize {
        self.placements.len() + self.skipped.len()
    }

    /// The worktrees to create, one per placement, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.placements.iter().map(Placement::effect).collect()
    }
}

/// The cycle's plan at `now`: the policy decides on `view`, and each assignment gets its place.
pub fn plan(view: &View, policy: &PolicyConfig, config: &Config, now: UnixNanos) -> CyclePlan {
    plan_decided(view, policy::decide(view, policy), config, now)
}

/// The cycle's plan for a decision already made on `view` (the coordinator decides once per
/// state of the view, and a cycle may follow the question "is a cycle useful?").
pub fn plan_decided(view: &View, decision: Decision, config: &Config, now: UnixNanos) -> CyclePlan {
    let mut placements = Vec::with_capacity(decision.assignments.len());
    let mut skipped = Vec::new();
    for a in decision.assignments {
        match worktree_of(view, config, &a.feature_name) {
            Ok((worktree_path, branch)) => placements.push(Placement {
                remote: view.agents.get(&a.agent_id).is_some_and(|g| g.remote),
                from_remote: view
                    .features
                    .get(&a.feature_name)
                    .is_some_and(|f| view.remote_of(f).is_some()),
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                priority: a.priority,
                score: a.score,
                reasons: a.reasons,
                worktree_path,
                branch,
            }),
            Err(e) => skipped.push(Skipped {
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                error: e.to_string(),
            }),
        }
    }
    CyclePlan {
        cycle_number: view.counters.cycles + 1,
        at: now,
        features_waiting: decision.features_waiting,
        placements,
        skipped,
    }
}

/// The worktree path and branch of `feature`. A feature placed before keeps its worktree, so
/// the next agent continues the work — but only a path this coordinator could have made
/// (`names::is_worktree_path`), whatever a log from elsewhere says; otherwise the path the name
/// makes. The branch the log knows is kept in either case.
pub fn worktree_of(
    view: &View,
    config: &Config,
    feature: &str,
) -> Result<(String, String), NameError> {
    let dir = Path::new(&config.worktrees_dir);
    let known = view.features.get(feature);
    let path = match known
        .and_then(|f| f.worktree_path.clone())
        .filter(|p| names::is_worktree_path(dir, Path::new(p)))
    {
        Some(p) => p,
        None => names::worktree_path(dir, feature)?
            .to_string_lossy()
            .into_owned(),
    };
    let branch = known
        .and_then(|f| f.branch_name.clone())
        .unwrap_or_else(|| format!("spanfold/{feature}"));
    Ok((path, branch))
}

/// An agent whose lease has run out: it loses its features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseVerdict {
    pub agent_id: String,
    /// How long it has been silent, in whole seconds.
    pub silent_seconds: u64,
}

/// The agents silent for their whole lease or longer at `now`, in agent id order.
pub fn plan_leases(view: &View, now: UnixNanos) -> Vec<LeaseVerdict> {
    policy::expired_leases(view, now)
        .into_iter()
        .map(|(agent_id, silent_seconds)| LeaseVerdict {
            agent_id,
            silent_seconds,
        })
        .collect()
}

/// The worktrees whose feature was let go of (reset, lease, cancel) and that git still holds
/// locked, in path order: each gets an [`Effect::UnlockWorktree`].
pub fn plan_releases(view: &View) -> Vec<Effect> {
    view.worktrees
        .values()
        .filter(|w| w.status == WorktreeStatus::Abandoned && w.locked)
        .map(|w| Effect::UnlockWorktree {
            path: w.path.clone(),
            branch: w.branch_name.clone(),
            feature: w.feature_name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
