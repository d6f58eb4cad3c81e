//! What happened to a feature's worktree (`worktree.lifecycle`): created or reused for its
//! agent, failed, gone missing, unlocked, removed or kept after its feature let go of it.

use super::{AgentState, FeatureStatus, View, Worktree, WorktreeStatus};
use crate::model::Event;
use crate::vocab::attr;

impl View {
    pub(super) fn worktree(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .ok_or_else(|| format!("worktree.lifecycle needs {key}"))
        };
        let (action, name, path, branch) = (
            get(attr::WORKTREE_ACTION)?,
            get(attr::FEATURE_NAME)?,
            get(attr::WORKTREE_PATH)?,
            get(attr::WORKTREE_BRANCH)?,
        );
        if matches!(action, "removed" | "kept") {
            return self.cleaned(ev, name, path);
        }
        if action == "missing" {
            // Drift: the worktree is gone. The feature keeps its place and its agent; recovery
            // recreates the worktree from the branch and records that next.
            self.worktrees.remove(path);
            return Ok(());
        }
        if action == "unlocked" {
            // Whoever let go of the feature already marked it abandoned; this is the git side.
            if let Some(wt) = self.worktrees.get_mut(path) {
                wt.locked = false;
            }
            return Ok(());
        }
        let agent_id = get(attr::AGENT_ID)?;
        let holds = self
            .features
            .get(name)
            .is_some_and(|f| f.assigned_agent.as_deref() == Some(agent_id));
        if !holds {
            return Err(format!(
                "worktree {action} for feature {name}, which agent {agent_id} does not hold"
            ));
        }
        match action {
            "created" | "reused" => {
                self.worktrees.insert(
                    path.to_owned(),
                    Worktree {
                        path: path.to_owned(),
                        branch_name: branch.to_owned(),
                        status: WorktreeStatus::Active,
                        agent_id: Some(agent_id.to_owned()),
                        feature_name: name.to_owned(),
                        note: ev.str_attr(attr::WORKTREE_ERROR).map(str::to_owned),
                        locked: true,
                        since: ev.time,
                    },
                );
                Ok(())
            }
            "create_failed" => {
                let error = ev.str_attr(attr::WORKTREE_ERROR).unwrap_or("unknown error");
                // The coordinator takes back its own assignment: not an agent transition.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.assignments.retain(|a| a != name);
                    if agent.assignments.is_empty() && agent.state == AgentState::Claiming {
                        agent.state = AgentState::Idle;
                    }
                }
                self.requeue(
                    name,
                    format!("worktree creation failed: {error}; retried next cycle"),
                    ev.time,
                );
                Ok(())
            }
            other => Err(format!("unknown worktree.action {other:?}")),
        }
    }

    /// A worktree nobody holds (its feature merged, cancelled or waiting in the queue) was
    /// removed, or kept with a reason.
    fn cleaned(&mut self, ev: &Event<'_>, name: &str, path: &str) -> Result<(), String> {
        let active = self
            .worktrees
            .get(path)
            .is_some_and(|w| w.status == WorktreeStatus::Active);
        if active {
            return Err(format!(
                "cleanup of worktree {path}, which its agent still holds"
            ));
        }
        if ev.str_attr(attr::WORKTREE_ACTION) == Some("removed") {
            self.worktrees.remove(path);
            // A feature still to be done starts its next worktree afresh from its branch.
            if let Some(f) = self.features.get_mut(name)
                && f.worktree_path.as_deref() == Some(path)
                && f.status != FeatureStatus::Completed
            {
                f.worktree_path = None;
            }
        } else if let Some(wt) = self.worktrees.get_mut(path) {
            wt.agent_id = None;
            wt.note = ev.str_attr(attr::WORKTREE_ERROR).map(str::to_owned);
            wt.since = ev.time;
        }
        Ok(())
    }
}
