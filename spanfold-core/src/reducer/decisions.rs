//! The coordinator's own decisions as the log records them: the setup and its settings, an
//! assignment, a lease that expired, and each step of a merge.

use super::view::QueueDone;
use super::{
    AgentError, AgentState, AsOf, Config, DEFAULT_LEASE_SECONDS, FeatureStatus, Progress, View,
    WorktreeStatus,
};
use crate::fact::{Assignment, Configure, Init, LeaseExpired, Merge, MergeResult, Word};

impl View {
    pub(super) fn init(&mut self, i: Init<'_>) {
        self.config = Some(Config {
            repo: i.repo.to_owned(),
            base_branch: i.base_branch.to_owned(),
            worktrees_dir: i.worktrees_dir.to_owned(),
            lease_seconds: i.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS),
        });
    }

    pub(super) fn configure(&mut self, c: Configure) -> Result<(), String> {
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| "a setting changed before coordination.init".to_string())?;
        if let Some(lease) = c.lease_seconds {
            config.lease_seconds = lease;
        }
        if let Some(paths) = c.barrier_paths {
            self.barrier_paths = paths;
        }
        self.set_default_budget(c.default_budget);
        Ok(())
    }

    pub(super) fn assign(&mut self, a: Assignment<'_>, at: AsOf) -> Result<(), String> {
        let (agent_id, name) = (a.agent_id, a.feature_name);
        let feature = self
            .features
            .get(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        if feature.status != FeatureStatus::Queued {
            return Err(format!(
                "feature {name} is {}, not queued; it cannot be assigned again",
                feature.status.as_str()
            ));
        }
        let agent = self
            .agents
            .get_mut(agent_id)
            .ok_or_else(|| format!("agent {agent_id} is not registered"))?;
        if !agent.can_take_more() {
            return Err(format!(
                "agent {agent_id} is {} with {}/{} features; it cannot take {name}",
                agent.state.as_str(),
                agent.assignments.len(),
                agent.max_concurrent_features
            ));
        }
        agent.assignments.push(name.to_owned());
        // The lease runs from the assignment: an agent idle for hours gets its full lease.
        agent.last_activity = agent.last_activity.max(at.time);
        if agent.state == AgentState::Idle {
            agent.state = AgentState::Claiming;
        }
        self.counters.assignments += 1;
        if let Some(f) = self.features.get_mut(name) {
            self.tally.moved(f, f.status, FeatureStatus::Assigned);
            f.status = FeatureStatus::Assigned;
            f.assigned_agent = Some(agent_id.to_owned());
            f.last_error = None;
            f.worktree_path = a.worktree_path.map(str::to_owned);
            f.branch_name = a.branch.map(str::to_owned);
        }
        Ok(())
    }

    /// The coordinator's decision that a silent agent loses its features.
    pub(super) fn lease_expired(&mut self, l: LeaseExpired<'_>, at: AsOf) -> Result<(), String> {
        let id = l.agent_id;
        let silent = l.silent_seconds.unwrap_or(0);
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| format!("agent {id} is not registered"))?;
        agent.state = AgentState::Error;
        agent.progress = Progress::default();
        agent.error = Some(AgentError {
            since: at.time,
            silent_seconds: Some(silent),
        });
        let released = std::mem::take(&mut agent.assignments);
        for name in released {
            self.requeue(
                &name,
                format!(
                    "agent {id} went silent for {silent}s, past its lease; queued again, its worktree kept with the work"
                ), at.time);
        }
        Ok(())
    }

    pub(super) fn merge(&mut self, m: Merge<'_>, at: AsOf) -> Result<(), String> {
        let (agent_id, name) = (m.agent_id, m.feature_name);
        let feature = self
            .features
            .get_mut(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        if feature.assigned_agent.as_deref() != Some(agent_id) {
            return Err(format!(
                "merge of feature {name}, which agent {agent_id} does not hold"
            ));
        }
        if feature.status != FeatureStatus::Merging {
            return Err(format!(
                "merge of feature {name}, which is {} rather than submitted",
                feature.status.as_str()
            ));
        }
        let was = feature.status;
        // Each arm changes only what its result means; an unknown result changes nothing (not
        // even merge_from, which recovery needs after a merge a crash cut off).
        let result = match m.result {
            Word::Member(result) => result,
            Word::Other(other) => return Err(format!("unknown merge.result {other:?}")),
        };
        // Running from its start to the merge's next step.
        feature.gate_running = result == MergeResult::GateStarted;
        match result {
            MergeResult::Started => {
                feature.merge_from = m.from.map(str::to_owned);
            }
            MergeResult::GateStarted | MergeResult::Deferred | MergeResult::Failed => {
                feature.merge_note = m.reason.map(str::to_owned);
            }
            MergeResult::AwaitingApproval => {
                feature.awaiting_approval = true;
                feature.merge_note = m.reason.map(str::to_owned);
            }
            MergeResult::GateFailed | MergeResult::Returned => {
                // Back to its agent with the gate's output (or what to fix) to read.
                feature.status = FeatureStatus::InProgress;
                feature.merge_note = m.reason.map(str::to_owned);
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            MergeResult::Conflicted => {
                feature.status = FeatureStatus::Conflicted;
                feature.conflicts = m.conflicts.iter().map(|c| (*c).to_owned()).collect();
                feature.merge_note = None;
                // Back to its agent: the coordinator's move, not an agent report.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            MergeResult::Merged => {
                feature.status = FeatureStatus::Completed;
                feature.assigned_agent = None;
                feature.conflicts.clear();
                feature.merge_note = None;
                feature.merged_commit = m.commit.map(str::to_owned);
                feature.merged_by = Some(agent_id.to_owned());
                feature.merged_at = Some(at.time);
                if let Some(wt) = feature
                    .worktree_path
                    .as_ref()
                    .and_then(|p| self.worktrees.get_mut(p))
                {
                    wt.status = WorktreeStatus::Completed;
                    wt.agent_id = None;
                    wt.since = at.time;
                }
                // The agent passes finished → idle (or back to work on what it still holds).
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.assignments.retain(|a| a != name);
                    agent.progress = Progress::default();
                    agent.state = if agent.assignments.is_empty() {
                        AgentState::Idle
                    } else {
                        AgentState::Working
                    };
                }
            }
        }
        if result != MergeResult::Started {
            feature.merge_from = None;
        }
        let now = feature.status;
        self.tally.moved(feature, was, now);
        if now != FeatureStatus::Merging {
            self.left_queue(queue_exit(&m, result, now == FeatureStatus::Completed, at));
        }
        if now == FeatureStatus::Completed {
            self.forget_risks(name);
        }
        Ok(())
    }
}

/// A merge outcome that took its feature out of the merge queue, as the queue remembers it.
fn queue_exit(m: &Merge<'_>, result: MergeResult, merged: bool, at: AsOf) -> QueueDone {
    let note = match merged {
        true => m.commit.map(str::to_owned),
        false if result == MergeResult::Conflicted => {
            Some(format!("conflicts in {}", m.conflicts.join(", ")))
        }
        false => m.reason.map(str::to_owned),
    };
    QueueDone {
        feature: m.feature_name.to_owned(),
        agent: m.agent_id.to_owned(),
        merged,
        note,
        at,
    }
}
