//! The feature queue: an operator requests, cancels and reopens features; a held feature
//! changes status or goes back to the queue at its old place.

use std::collections::BTreeMap;

use super::{
    AgentState, AsOf, Capabilities, Feature, FeatureStatus, Priority, Progress, View,
    WorktreeStatus,
};
use crate::fact::{Cancel, FeatureRequest, Reopen, Review, ReviewVerdict};
use crate::model::UnixNanos;

impl View {
    pub(super) fn request_feature(
        &mut self,
        r: FeatureRequest<'_>,
        at: AsOf,
    ) -> Result<(), String> {
        let name = r.name;
        let priority = r.priority.unwrap_or(Priority::Medium);
        let effort = r.estimated_effort.unwrap_or(3);
        let description = r.description.unwrap_or_default();
        let requires = Capabilities::from_lists(&r.languages, &r.frameworks, &r.expertise_areas);
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
                && existing.description == description
                && existing.requirements.iter().eq(&r.requirements)
                && existing
                    .acceptance_criteria
                    .iter()
                    .eq(&r.acceptance_criteria)
                && existing.requires == requires
                && existing.scopes.iter().eq(&r.paths)
                && existing.allow_overlap == r.allow_overlap;
            if same && existing.status.is_in_progress() {
                existing.priority = priority;
                return Ok(());
            }
            return Err(format!(
                "feature {name} is already {}; only its priority can change now (everything else only while queued)",
                existing.status.as_str()
            ));
        }
        // A re-request updates the queued feature in place; it keeps its queue position, its
        // worktree and its last error.
        match self.features.get(name) {
            Some(old) => self.tally.remove(old),
            None => self.give_default_budget(name),
        }
        let feature = self
            .features
            .entry(name.to_owned())
            .or_insert_with(|| Feature::queued(name, priority, effort, at.seq));
        feature.description = description.to_owned();
        feature.priority = priority;
        feature.estimated_effort = effort;
        feature.requires = requires;
        feature.requirements = owned(&r.requirements);
        feature.acceptance_criteria = owned(&r.acceptance_criteria);
        feature.scopes = owned(&r.paths);
        feature.allow_overlap = r.allow_overlap;
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

    pub(super) fn reopen(&mut self, r: Reopen<'_>, at: AsOf) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, r.feature_name)?;
        if !matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is {}; only a cancelled or completed feature can be reopened",
                feature.status.as_str()
            ));
        }
        // At the end of the queue, as a new request would be.
        feature.queued_seq = at.seq;
        self.tally
            .moved(feature, feature.status, FeatureStatus::Queued);
        feature.status = FeatureStatus::Queued;
        feature.assigned_agent = None;
        feature.conflicts.clear();
        feature.merge_note = None;
        feature.merge_from = None;
        // The earlier merge is in the history; the feature is open again.
        feature.merged_commit = None;
        feature.merged_by = None;
        feature.merged_at = None;
        feature.last_error = r.reason.map(|r| format!("reopened: {r}"));
        Ok(())
    }

    /// An operator withdraws a feature. Its agent lets go of it; its worktree and branch are
    /// kept (abandoned) with whatever work they hold.
    pub(super) fn cancel(&mut self, c: Cancel<'_>, at: AsOf) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, c.feature_name)?;
        if matches!(
            feature.status,
            FeatureStatus::Completed | FeatureStatus::Cancelled
        ) {
            return Err(format!(
                "feature {name} is already {}",
                feature.status.as_str()
            ));
        }
        self.withdraw(
            name,
            FeatureStatus::Cancelled,
            c.reason.map(str::to_owned),
            at,
        );
        Ok(())
    }

    /// `feature.review`: a person's verdict on a submitted feature. Approved, it may merge;
    /// rejected, it goes back to its agent with the reason, as a failed gate does.
    pub(super) fn review(&mut self, r: Review<'_>, at: AsOf) -> Result<(), String> {
        let (name, feature) = Self::named_feature(&mut self.features, r.feature_name)?;
        if feature.status != FeatureStatus::Merging {
            return Err(format!(
                "feature {name} is {}, not submitted: only a feature waiting for its merge is approved or rejected",
                feature.status.as_str()
            ));
        }
        feature.awaiting_approval = false;
        match r.verdict {
            ReviewVerdict::Approved => {
                feature.approved = true;
                feature.merge_note = None;
            }
            ReviewVerdict::Rejected => {
                let note = format!(
                    "rejected: {}; change it, commit, then validate again",
                    r.reason.unwrap_or_default()
                );
                feature.merge_note = Some(note.clone());
                let done = super::view::QueueDone {
                    feature: name.to_owned(),
                    agent: feature.assigned_agent.clone().unwrap_or_default(),
                    merged: false,
                    note: Some(note),
                    at,
                };
                self.tally
                    .moved(feature, feature.status, FeatureStatus::InProgress);
                feature.status = FeatureStatus::InProgress;
                if let Some(agent) = feature
                    .assigned_agent
                    .as_deref()
                    .and_then(|a| self.agents.get_mut(a))
                {
                    agent.state = AgentState::Working;
                }
                self.left_queue(done);
            }
        }
        Ok(())
    }

    /// `name` leaves its agent for `status` (cancelled, or held over its budget), with why:
    /// its worktree and branch are kept (abandoned) with whatever work they hold.
    pub(in crate::reducer) fn withdraw(
        &mut self,
        name: &str,
        status: FeatureStatus,
        why: Option<String>,
        at: AsOf,
    ) {
        let Some(feature) = self.features.get_mut(name) else {
            return;
        };
        self.tally.moved(feature, feature.status, status);
        feature.status = status;
        feature.last_error = why;
        let holder = feature.assigned_agent.take();
        if let Some(wt) = feature
            .worktree_path
            .as_ref()
            .and_then(|p| self.worktrees.get_mut(p))
        {
            wt.status = WorktreeStatus::Abandoned;
            wt.agent_id = None;
            wt.since = at.time;
        }
        if let Some(agent) = holder.and_then(|id| self.agents.get_mut(&id)) {
            agent.assignments.retain(|a| a != name);
            // Operator's move: an agent left with nothing to do is idle again.
            if agent.assignments.is_empty() && agent.state != AgentState::Error {
                agent.state = AgentState::Idle;
                agent.progress = Progress::default();
            }
        }
        self.forget_risks(name);
    }

    /// The feature an operator's span names, which must have been requested.
    fn named_feature<'v, 'e>(
        features: &'v mut BTreeMap<String, Feature>,
        name: &'e str,
    ) -> Result<(&'e str, &'v mut Feature), String> {
        let feature = features
            .get_mut(name)
            .ok_or_else(|| format!("feature {name} was never requested"))?;
        Ok((name, feature))
    }

    pub(in crate::reducer) fn set_feature_status(&mut self, name: &str, status: FeatureStatus) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally.moved(f, f.status, status);
            // A new submission takes its place at the back of its priority; no gate runs yet.
            if status != FeatureStatus::Merging || f.status != FeatureStatus::Merging {
                f.gate_running = false;
            }
            if status == FeatureStatus::Merging && f.status != FeatureStatus::Merging {
                f.submitted_seq = Some(self.as_of.seq);
                // A new submission is a new thing to approve.
                f.approved = false;
                f.awaiting_approval = false;
            }
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
        if status == FeatureStatus::Completed {
            self.forget_risks(name);
        }
    }

    /// Puts a held feature back in the queue at its old place; its worktree is kept, unassigned.
    pub(super) fn requeue(&mut self, name: &str, why: String, time: UnixNanos) {
        if let Some(f) = self.features.get_mut(name) {
            self.tally.moved(f, f.status, FeatureStatus::Queued);
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

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
