//! Which submitted features to try merging, and in what order: read from the view alone. Each
//! merge then goes as far as git lets it (the coordinator's `merge` module).

use std::path::Path;

use serde::Serialize;

use crate::names;
use crate::reducer::{AgentState, Feature, FeatureStatus, Priority, View};

/// A submitted feature waiting for its merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeCandidate {
    pub feature: String,
    pub agent: String,
    pub branch: String,
    /// Its worktree, if it is one this coordinator could have made (never a remote agent's).
    pub worktree: Option<String>,
    /// For a remote agent's feature: where its branch is (it is fetched from there before it
    /// merges, and deleted there after).
    pub remote: Option<RemoteBranch>,
    /// The reason recorded when it last had to wait.
    pub note: Option<String>,
    /// A merge was started and has no outcome (a crash): the base may already contain it.
    pub interrupted: bool,
    /// Which submission it is (its seq in the log; 0 for a log from before they were
    /// numbered).
    pub submitted_seq: u64,
    /// A person approved it since its last submission.
    pub approved: bool,
    /// Its hold for approval is recorded already.
    pub awaiting_approval: bool,
}

/// A remote agent's feature branch: its place (the path its worktree record is kept under) and
/// the remote it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteBranch {
    pub path: String,
    pub url: String,
}

impl MergeCandidate {
    /// Where its worktree record is: its worktree, or a remote agent's branch's place.
    pub fn place(&self) -> Option<&String> {
        self.worktree
            .as_ref()
            .or(self.remote.as_ref().map(|r| &r.path))
    }

    /// The message of the merge commit, when the merge needs one.
    pub fn message(&self) -> String {
        format!(
            "Merge {} ({}, by agent {})",
            self.branch, self.feature, self.agent
        )
    }
}

/// Submitted features whose agent has handed them over (submitting or finished), in the merge
/// queue's order ([`queue_place`]): a deterministic order of merges.
pub fn plan_merges(view: &View) -> Vec<MergeCandidate> {
    let dir = view.config.as_ref().map(|c| Path::new(&c.worktrees_dir));
    // Submitted features are held by their agents: reading the agents' holdings finds them
    // without walking every feature (at 100,000 features a walk costs ~10 ms, on every status).
    let mut out: Vec<_> = view
        .agents
        .values()
        .flat_map(|a| &a.assignments)
        .filter_map(|name| view.features.get(name))
        .filter(|f| f.status == FeatureStatus::Merging)
        .filter_map(|f| {
            let agent = view.agents.get(f.assigned_agent.as_deref()?)?;
            // Each feature once, through its holder.
            if !agent.assignments.contains(&f.name) {
                return None;
            }
            if !matches!(agent.state, AgentState::Submitting | AgentState::Finished) {
                return None;
            }
            let remote = f
                .worktree_path
                .as_ref()
                .filter(|p| dir.is_some_and(|d| names::is_worktree_path(d, Path::new(p))))
                .and_then(|p| view.worktrees.get(p))
                .and_then(|w| {
                    Some(RemoteBranch {
                        path: w.path.clone(),
                        url: w.remote_url.clone()?,
                    })
                });
            let candidate = MergeCandidate {
                feature: f.name.clone(),
                agent: agent.id.clone(),
                branch: f
                    .branch_name
                    .clone()
                    .unwrap_or_else(|| format!("spanfold/{}", f.name)),
                worktree: f
                    .worktree_path
                    .clone()
                    .filter(|p| dir.is_some_and(|d| names::is_worktree_path(d, Path::new(p))))
                    .filter(|_| remote.is_none()),
                remote,
                note: f.merge_note.clone(),
                interrupted: f.merge_from.is_some(),
                submitted_seq: f.submitted_seq.unwrap_or(0),
                approved: f.approved,
                awaiting_approval: f.awaiting_approval,
            };
            Some((queue_place(view, f), candidate))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.feature.cmp(&b.1.feature)));
    out.into_iter().map(|(_, c)| c).collect()
}

/// A submitted feature's place in the merge queue: higher priority first; among equals, one
/// the conflict radar sees conflicting with another active feature first (the sooner it lands,
/// the sooner the other can merge it in and resolve); then the earlier submission (then the
/// earlier request, for a log from before submissions were numbered).
pub fn queue_place(view: &View, f: &Feature) -> (std::cmp::Reverse<Priority>, bool, u64, u64) {
    let clears_a_conflict = view
        .risks
        .iter()
        .any(|r| r.conflict && r.other.is_some() && r.seen_from(&f.name).is_some());
    (
        std::cmp::Reverse(f.priority),
        !clears_a_conflict,
        f.submitted_seq.unwrap_or(0),
        f.queued_seq,
    )
}

/// The features waiting for their merge, in the queue's order.
pub fn merge_queue(view: &View) -> Vec<&Feature> {
    let mut queue: Vec<&Feature> = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Merging)
        .collect();
    queue.sort_by(|a, b| {
        queue_place(view, a)
            .cmp(&queue_place(view, b))
            .then_with(|| a.name.cmp(&b.name))
    });
    queue
}
