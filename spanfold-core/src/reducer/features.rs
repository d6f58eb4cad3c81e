//! The feature queue: an operator requests, cancels and reopens features; a held feature
//! changes status or goes back to the queue at its old place.

use std::collections::BTreeMap;

use super::{
    AgentState, Capabilities, Feature, FeatureStatus, Priority, Progress, View, WorktreeStatus,
};
use crate::model::{Event, UnixNanos};
use crate::names;
use crate::vocab::attr;

impl View {
    pub(super) fn request_feature(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let name = ev
            .str_attr(attr::FEATURE_NAME)
            .ok_or_else(|| "the span has no feature.name".to_string())?;
        names::feature_name(name).map_err(|e| e.to_string())?;
        let priority = match ev.str_attr(attr::FEATURE_PRIORITY) {
            None => Priority::Medium,
            Some(p) => Priority::parse(p).ok_or_else(|| format!("unknown priority {p:?}"))?,
        };
        let effort = ev
            .int_attr(attr::FEATURE_ESTIMATED_EFFORT)
            .unwrap_or(3)
            .clamp(1, 100) as u32;
        if !self.features.contains_key(name)
            && let Some(clash) = self.ref_clash(name)
        {
            return Err(format!(
                "feature {name} cannot sit beside feature {clash}: git cannot hold both branches spanfold/{name} and spanfold/{clash}; choose another name"
            ));
        }
        if let Some(existing) = self.features.get_mut(name)
            && existing.status != FeatureStatus::Queued
        {
            // Held or done: only its priority may still change, and only by a request that
            // otherwise repeats the feature as it is.
            let same = existing.estimated_effort == effort
                && existing.description
                    == ev.str_attr(attr::FEATURE_DESCRIPTION).unwrap_or_default()
                && existing.requirements == ev.list_attr(attr::FEATURE_REQUIREMENTS)
                && existing.acceptance_criteria == ev.list_attr(attr::FEATURE_ACCEPTANCE_CRITERIA)
                && existing.requires
                    == Capabilities::from_event(
                        ev,
                        [
                            attr::FEATURE_LANGUAGES,
                            attr::FEATURE_FRAMEWORKS,
                            attr::FEATURE_EXPERTISE_AREAS,
                        ],
                    );
            if same && existing.status.is_in_progress() {
                existing.priority = priority;
                return Ok(());
            }
            return Err(format!(
                "feature {name} is already {}; only its priority can change now (everything else only while queued)",
                existing.status.as_str()
            ));
        }
        let requires = Capabilities::from_event(
            ev,
            [
                attr::FEATURE_LANGUAGES,
                attr::FEATURE_FRAMEWORKS,
                attr::FEATURE_EXPERTISE_AREAS,
            ],
        );
        let description = ev
            .str_attr(attr::FEATURE_DESCRIPTION)
            .unwrap_or_default()
            .to_owned();
        let requirements = ev.list_attr(attr::FEATURE_REQUIREMENTS);
        let acceptance_criteria = ev.list_attr(attr::FEATURE_ACCEPTANCE_CRITERIA);
        // A re-request updates the queued feature in place; it keeps its queue position, its
        // worktree and its last error.
        if let Some(old) = self.features.get(name) {
            self.tally.remove(old);
        }
        let feature = self
            .features
            .entry(name.to_owned())
            .or_insert_with(|| Feature {
                name: name.to_owned(),
                description: String::new(),
                priority,
                estimated_effort: effort,
                requires: Capabilities::default(),
                requirements: Vec::new(),
                acceptance_criteria: Vec::new(),
                status: FeatureStatus::Queued,
                assigned_agent: None,
                worktree_path: None,
                branch_name: None,
                last_error: None,
                queued_seq: ev.seq,
                conflicts: Vec::new(),
                merge_note: None,
                merged_commit: None,
                merged_by: None,
                merged_at: None,
                merge_from: None,
            });
        feature.description = description;
        feature.priority = priority;
        feature.estimated_effort = effort;
        feature.requires = requires;
        feature.requirements = requirements;
        feature.acceptance_criteria = acceptance_criteria;
        self.tally.add(feature);
        Ok(())
    }

    /// A feature whose branch could not exist beside `name`'s: one is the other's directory in
    /// git's refs (`a` and `a/b`).
    fn ref_clash(&self, name: &str) -> Option<String> {
        let mut prefix = String::new();
        for part in name.split('/') {
            if !prefix.is_empty() && self.features.contains_key(&prefix) {
                return Some(prefix);
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
        // Names under `name/`: from "name/" up to "name0" ('0' follows '/').
        let (from, to) = (format!("{name}/"), format!("{name}0"));
        self.features
            .range::<String, _>(from..to)
            .next()
            .map(|(k, _)| k.clone())
    }

    pub(super) fn reopen(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, ev)?;
        if !matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is {}; only a cancelled or completed feature can be reopened",
                feature.status.as_str()
            ));
        }
        self.tally
            .moved(&feature.requires, feature.status, FeatureStatus::Queued);
        feature.status = FeatureStatus::Queued;
        // At the end of the queue, as a new request would be.
        feature.queued_seq = ev.seq;
        feature.assigned_agent = None;
        feature.conflicts.clear();
        feature.merge_note = None;
        feature.merge_from = None;
        // The earlier merge is in the history; the feature is open again.
        feature.merged_commit = None;
        feature.merged_by = None;
        feature.merged_at = None;
        feature.last_error = ev
            .str_attr(attr::REOPEN_REASON)
            .map(|r| format!("reopened: {r}"));
        Ok(())
    }

    /// An operator withdraws a feature. Its agent lets go of it; its worktree and branch are
    /// kept (abandoned) with whatever work they hold.
    pub(super) fn cancel(&mut self, ev: &Event<'_>) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, ev)?;
        if matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is already {}",
                feature.status.as_str()
            ));
        }
        self.tally
            .moved(&feature.requires, feature.status, FeatureStatus::Cancelled);
        feature.status = FeatureStatus::Cancelled;
        feature.last_error = ev.str_attr(attr::CANCEL_REASON).map(str::to_owned);
        let holder = feature.assigned_agent.take();
        if let Some(wt) = feature
            .worktree_path
            .as_ref()
            .and_then(|p| self.worktrees.get_mut(p))
        {
            wt.status = WorktreeStatus::Abandoned;
            wt.agent_id = None;
            wt.since = ev.time;
        }
        if let Some(agent) = holder.and_then(|id| self.agents.get_mut(&id)) {
            agent.assignments.retain(|a| a != name);
            // Operator's move: an agent left with nothing to do is idle again.
            if agent.assignments.is_empty() && agent.state != AgentState::Error {
                agent.state = AgentState::Idle;
                agent.progress = Progress::default();
            }
        }
        Ok(())
    }

    /// The feature an operator's span names, which must have been requested.
    fn named_feature<'v, 'e>(
        features: &'v mut BTreeMap<String, Feature>,
        ev: &Event<'e>,
    ) -> Result<(&'e str, &'v mut Feature), String> {
        let name = ev
            .str_attr(attr::FEATURE_NAME)
            .ok_or_else(|| format!("{} needs feature.name", ev.span.name))?;
        let feature = features
            .get_mut(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        Ok((name, feature))
    }

    pub(super) fn set_feature_status(&mut self, name: &str, status: FeatureStatus) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally.moved(&f.requires, f.status, status);
            f.status = status;
            if status == FeatureStatus::Merging {
                f.merge_note = None;
            }
            if status == FeatureStatus::Completed {
                f.assigned_agent = None;
                if let Some(wt) = f
                    .worktree_path
                    .as_ref()
                    .and_then(|p| self.worktrees.get_mut(p))
                {
                    wt.status = WorktreeStatus::Completed;
                    wt.agent_id = None;
                }
            }
        }
    }

    /// Puts a held feature back in the queue at its old place; its worktree is kept, unassigned.
    pub(super) fn requeue(&mut self, name: &str, why: String, time: UnixNanos) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally
                .moved(&f.requires, f.status, FeatureStatus::Queued);
            f.status = FeatureStatus::Queued;
            f.assigned_agent = None;
            f.last_error = Some(why);
            if let Some(wt) = f
                .worktree_path
                .as_ref()
                .and_then(|p| self.worktrees.get_mut(p))
            {
                wt.status = WorktreeStatus::Abandoned;
                wt.agent_id = None;
                wt.since = time;
            }
        }
    }
}
