//! The coordinator's own decisions as the log records them: the setup and its settings, an
//! assignment, a lease that expired, and each step of a merge.

use super::{
    AgentError, AgentState, Config, DEFAULT_LEASE_SECONDS, FeatureStatus, Progress, View,
    WorktreeStatus,
};
use crate::model::Event;
use crate::vocab::attr;

impl View {
    pub(super) fn init(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .map(str::to_owned)
                .ok_or_else(|| format!("{key} is missing"))
        };
        self.config = Some(Config {
            repo: get(attr::COORDINATION_REPO)?,
            base_branch: get(attr::COORDINATION_BASE_BRANCH)?,
            worktrees_dir: get(attr::COORDINATION_WORKTREES_DIR)?,
            lease_seconds: ev
                .int_attr(attr::COORDINATION_LEASE_SECONDS)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_LEASE_SECONDS),
        });
        Ok(())
    }

    pub(super) fn configure(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let lease = ev
            .int_attr(attr::COORDINATION_LEASE_SECONDS)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .ok_or_else(|| "coordination.lease_seconds must be a positive number".to_string())?;
        let config = self
            .config
            .as_mut()
            .ok_or_else(|| "a setting changed before coordination.init".to_string())?;
        config.lease_seconds = lease;
        Ok(())
    }

    pub(super) fn assign(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (Some(agent_id), Some(name)) =
            (ev.str_attr(attr::AGENT_ID), ev.str_attr(attr::FEATURE_NAME))
        else {
            return Err("an assignment needs agent.id and feature.name".into());
        };
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
        agent.last_activity = agent.last_activity.max(ev.time);
        if agent.state == AgentState::Idle {
            agent.state = AgentState::Claiming;
        }
        self.counters.assignments += 1;
        if let Some(f) = self.features.get_mut(name) {
            self.tally
                .moved(&f.requires, f.status, FeatureStatus::Assigned);
            f.status = FeatureStatus::Assigned;
            f.assigned_agent = Some(agent_id.to_owned());
            f.last_error = None;
            f.worktree_path = ev.str_attr(attr::WORKTREE_PATH).map(str::to_owned);
            f.branch_name = ev.str_attr(attr::WORKTREE_BRANCH).map(str::to_owned);
        }
        Ok(())
    }

    /// The coordinator's decision that a silent agent loses its features.
    pub(super) fn lease_expired(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let id = ev
            .str_attr(attr::AGENT_ID)
            .ok_or_else(|| "agent.lease_expired needs agent.id".to_string())?;
        let silent = ev.int_attr(attr::LEASE_SILENT_SECONDS).unwrap_or(0);
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| format!("agent {id} is not registered"))?;
        agent.state = AgentState::Error;
        agent.progress = Progress::default();
        agent.error = Some(AgentError {
            since: ev.time,
            silent_seconds: Some(silent),
        });
        let released = std::mem::take(&mut agent.assignments);
        for name in released {
            self.requeue(
                &name,
                format!(
                    "agent {id} went silent for {silent}s, past its lease; queued again, its worktree kept with the work"
                ), ev.time);
        }
        Ok(())
    }

    pub(super) fn merge(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let get = |key: &str| {
            ev.str_attr(key)
                .ok_or_else(|| format!("coordination.feature_merge needs {key}"))
        };
        let (result, agent_id, name) = (
            get(attr::MERGE_RESULT)?,
            get(attr::AGENT_ID)?,
            get(attr::FEATURE_NAME)?,
        );
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
        match result {
            "started" => {
                feature.merge_from = ev.str_attr(attr::MERGE_FROM).map(str::to_owned);
            }
            "gate_started" | "deferred" | "failed" => {
                feature.merge_note = ev.str_attr(attr::MERGE_REASON).map(str::to_owned);
            }
            "gate_failed" | "returned" => {
                // Back to its agent with the gate's output (or what to fix) to read.
                feature.status = FeatureStatus::InProgress;
                feature.merge_note = ev.str_attr(attr::MERGE_REASON).map(str::to_owned);
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            "conflicted" => {
                feature.status = FeatureStatus::Conflicted;
                feature.conflicts = ev.list_attr(attr::MERGE_CONFLICTS);
                feature.merge_note = None;
                // Back to its agent: the coordinator's move, not an agent report.
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.state = AgentState::Working;
                }
            }
            "merged" => {
                feature.status = FeatureStatus::Completed;
                feature.assigned_agent = None;
                feature.conflicts.clear();
                feature.merge_note = None;
                feature.merged_commit = ev.str_attr(attr::MERGE_COMMIT).map(str::to_owned);
                feature.merged_by = Some(agent_id.to_owned());
                feature.merged_at = Some(ev.time);
                if let Some(wt) = feature
                    .worktree_path
                    .as_ref()
                    .and_then(|p| self.worktrees.get_mut(p))
                {
                    wt.status = WorktreeStatus::Completed;
                    wt.agent_id = None;
                    wt.since = ev.time;
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
            other => return Err(format!("unknown merge.result {other:?}")),
        }
        if result != "started" {
            feature.merge_from = None;
        }
        self.tally.moved(&feature.requires, was, feature.status);
        Ok(())
    }
}
