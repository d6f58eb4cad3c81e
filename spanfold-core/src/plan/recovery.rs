//! Recovery as data: after an interruption (a crash, a worktree removed by hand), what the log
//! promises and git does not hold. The coordinator asks git which worktrees it still has,
//! records the plan's drift, carries out its rebuilds and records their outcomes.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::Effect;
use crate::names;
use crate::reducer::{Config, FeatureStatus, View, WorktreeStatus};

/// A worktree the log holds for an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub path: String,
    pub branch: String,
    pub feature: String,
    /// Empty when the log names nobody.
    pub agent: String,
}

/// Why recovery (re)builds a held feature's worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rebuild {
    /// Git lost it: someone removed it by hand.
    Drift,
    /// The assignment was recorded and the worktree never made: a crash in between.
    Crash,
}

impl Rebuild {
    /// The note its outcome span records, for whoever reads the log later.
    pub fn note(self) -> &'static str {
        match self {
            Rebuild::Drift => "recreated from its branch after it was removed by hand",
            Rebuild::Crash => {
                "created on recovery: the assignment was recorded but not its worktree (a crash in between)"
            }
        }
    }
}

/// What recovery records and does about worktrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryPlan {
    /// Active worktrees git no longer has, in path order: each recorded as `missing` first.
    pub missing: Vec<Held>,
    /// Then every held feature without a worktree (the missing ones included), in feature
    /// order: an [`Effect::RebuildWorktree`] each.
    pub rebuild: Vec<Effect>,
}

/// The active worktrees' paths: the ones to ask git about.
pub fn active_worktrees(view: &View) -> Vec<&str> {
    view.worktrees
        .values()
        .filter(|w| w.status == WorktreeStatus::Active && w.remote_url.is_none())
        .map(|w| w.path.as_str())
        .collect()
}

/// The plan for `view`, given which of its active worktrees git still has (`registered`).
pub fn plan_recovery(view: &View, config: &Config, registered: &BTreeSet<String>) -> RecoveryPlan {
    let missing: Vec<Held> = view
        .worktrees
        .values()
        .filter(|w| w.status == WorktreeStatus::Active && w.remote_url.is_none())
        .filter(|w| !registered.contains(&w.path))
        .map(|w| Held {
            path: w.path.clone(),
            branch: w.branch_name.clone(),
            feature: w.feature_name.clone(),
            agent: w.agent_id.clone().unwrap_or_default(),
        })
        .collect();
    let drifted = |path: &str| missing.iter().any(|m| m.path == path);
    let dir = Path::new(&config.worktrees_dir);
    let rebuild = view
        .features
        .values()
        .filter(|f| f.status.is_in_progress())
        .filter_map(|f| {
            // Only a path this coordinator could have made, whatever a log from elsewhere says.
            let path = f
                .worktree_path
                .clone()
                .filter(|p| names::is_worktree_path(dir, Path::new(p)))?;
            let agent_id = f.assigned_agent.clone()?;
            let built = view
                .worktrees
                .get(&path)
                .is_some_and(|w| w.status == WorktreeStatus::Active);
            let why = match (drifted(&path), built) {
                (true, _) => Rebuild::Drift,
                (false, false) => Rebuild::Crash,
                (false, true) => return None,
            };
            let branch = f
                .branch_name
                .clone()
                .unwrap_or_else(|| format!("spanfold/{}", f.name));
            let feature = f.name.clone();
            // A remote agent's branch is pushed, never checked out here.
            Some(match view.agents.get(&agent_id).is_some_and(|a| a.remote) {
                true => Effect::PushBranch {
                    agent_id,
                    feature,
                    path,
                    branch,
                    why: Some(why),
                },
                false => Effect::RebuildWorktree {
                    agent_id,
                    feature,
                    branch,
                    path,
                    why,
                },
            })
        })
        .collect();
    RecoveryPlan { missing, rebuild }
}

/// A merge that started and has no outcome: a crash cut it off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    pub feature: String,
    /// The base branch's tip the merge started from.
    pub from: String,
}

/// The merges a crash cut off, in feature order: if the base branch moved and the main checkout
/// stayed behind, the coordinator brings the checkout up to date.
pub fn plan_interrupted(view: &View) -> Vec<Interrupted> {
    view.features
        .values()
        .filter(|f| f.status == FeatureStatus::Merging)
        .filter_map(|f| {
            Some(Interrupted {
                feature: f.name.clone(),
                from: f.merge_from.clone()?,
            })
        })
        .collect()
}
