//! What happened to a feature's worktree (`worktree.lifecycle`): created or reused for its
//! agent, failed, gone missing, unlocked, removed or kept after its feature let go of it.

use super::{AgentState, AsOf, FeatureStatus, View, Worktree, WorktreeStatus};
use crate::fact::{Word, WorktreeAction, WorktreeLifecycle};
use crate::vocab::attr;

impl View {
    pub(super) fn worktree(&mut self, w: WorktreeLifecycle<'_>, at: AsOf) -> Result<(), String> {
        let (name, path) = (w.feature_name, w.path);
        match w.action {
            Word::Member(action @ (WorktreeAction::Removed | WorktreeAction::Kept)) => {
                return self.cleaned(&w, action, at);
            }
            Word::Member(WorktreeAction::Missing) => {
                // Drift: the worktree is gone. The feature keeps its place and its agent;
                // recovery recreates the worktree from the branch and records that next.
                self.worktrees.remove(path);
                return Ok(());
            }
            Word::Member(WorktreeAction::Unlocked) => {
                // Whoever let go of the feature already marked it abandoned; this is the git
                // side.
                if let Some(wt) = self.worktrees.get_mut(path) {
                    wt.locked = false;
                }
                return Ok(());
            }
            _ => {}
        }
        // Parse refuses a span that places a worktree without its agent; a fact built by hand
        // is refused the same way.
        let agent_id = w
            .agent_id
            .ok_or_else(|| WorktreeLifecycle::needs(attr::AGENT_ID))?;
        let holds = self
            .features
            .get(name)
            .is_some_and(|f| f.assigned_agent.as_deref() == Some(agent_id));
        if !holds {
            return Err(format!(
                "worktree {} for feature {name}, which agent {agent_id} does not hold",
                w.action.as_str()
            ));
        }
        match w.action {
            Word::Member(
                action
                @ (WorktreeAction::Created | WorktreeAction::Reused | WorktreeAction::Pushed),
            ) => {
                let remote_url = match action {
                    WorktreeAction::Pushed => Some(
                        w.remote_url
                            .ok_or_else(|| WorktreeLifecycle::needs(attr::WORKTREE_REMOTE_URL))?
                            .to_owned(),
                    ),
                    _ => None,
                };
                // Ports are handed out on this host only.
                let port_slot = match remote_url {
                    None => self.port_slot(path),
                    Some(_) => 0,
                };
                self.worktrees.insert(
                    path.to_owned(),
                    Worktree {
                        path: path.to_owned(),
                        branch_name: w.branch.to_owned(),
                        status: WorktreeStatus::Active,
                        agent_id: Some(agent_id.to_owned()),
                        feature_name: name.to_owned(),
                        note: w.error.map(str::to_owned),
                        // A remote agent's branch has no worktree here to lock.
                        locked: remote_url.is_none(),
                        since: at.time,
                        port_slot,
                        remote_url,
                    },
                );
                Ok(())
            }
            Word::Member(action @ (WorktreeAction::CreateFailed | WorktreeAction::PushFailed)) => {
                let error = w.error.unwrap_or("unknown error");
                let what = match action {
                    WorktreeAction::PushFailed => "its branch could not be put on the remote",
                    _ => "worktree creation failed",
                };
                // The coordinator takes back its own assignment: not an agent transition.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.assignments.retain(|a| a != name);
                    if agent.assignments.is_empty() && agent.state == AgentState::Claiming {
                        agent.state = AgentState::Idle;
                    }
                }
                self.requeue(
                    name,
                    format!("{what}: {error}; retried next cycle"),
                    at.time,
                );
                Ok(())
            }
            other => Err(format!("unknown worktree.action {:?}", other.as_str())),
        }
    }

    /// The port slot of the worktree at `path`, becoming active: the one it holds already,
    /// else the lowest that no active worktree holds. Deterministic from the log, so a replay
    /// hands out the same ports.
    fn port_slot(&mut self, path: &str) -> u32 {
        let holds = |view: &View, slot: u32, p: &str| {
            view.worktrees
                .get(p)
                .is_some_and(|w| w.status == WorktreeStatus::Active && w.port_slot == slot)
        };
        if let Some(w) = self.worktrees.get(path)
            && self.port_slots.get(&w.port_slot).map(String::as_str) == Some(path)
        {
            return w.port_slot;
        }
        let mut slot = 0;
        while self
            .port_slots
            .get(&slot)
            .is_some_and(|p| p != path && holds(self, slot, p))
        {
            slot += 1;
        }
        self.port_slots.insert(slot, path.to_owned());
        slot
    }

    /// A worktree nobody holds (its feature merged, cancelled or waiting in the queue) was
    /// removed, or kept with a reason.
    fn cleaned(
        &mut self,
        w: &WorktreeLifecycle<'_>,
        action: WorktreeAction,
        at: AsOf,
    ) -> Result<(), String> {
        let (name, path) = (w.feature_name, w.path);
        let active = self
            .worktrees
            .get(path)
            .is_some_and(|w| w.status == WorktreeStatus::Active);
        if active {
            return Err(format!(
                "cleanup of worktree {path}, which its agent still holds"
            ));
        }
        if action == WorktreeAction::Removed {
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
            wt.note = w.error.map(str::to_owned);
            wt.since = at.time;
        }
        Ok(())
    }
}
