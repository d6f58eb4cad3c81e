//! A merge queue's batch in the object database: the base tip with several feature branches
//! merged onto it one after another, each onto the result of the ones before, moving no ref.
//! The merge gate tests the last commit; if it passes, the base moves to it (`merge::land`).

use std::path::Path;

use super::{GitError, gix_err, open, ref_tip};
use crate::fact::MergeKind;

/// One branch's place in a batch: the commit the batch stood at once it was merged, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub branch: String,
    pub commit: String,
    pub kind: MergeKind,
}

/// The batch as merged: the base tip it starts from, the branches it took in order, and those
/// it left out because they conflict with the ones before them (they are merged alone later,
/// where their conflict is said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTrial {
    pub base: String,
    pub steps: Vec<Step>,
    pub left_out: Vec<String>,
}

impl BatchTrial {
    /// The commit the base branch moves to when the batch passes.
    pub fn tip(&self) -> &str {
        self.steps
            .last()
            .map_or(self.base.as_str(), |s| s.commit.as_str())
    }
}

/// Merges `branches` (with their merge commits' messages) onto the tip of `base`, in order.
pub fn trial_batch(
    repo_dir: &Path,
    base: &str,
    branches: &[(&str, String)],
) -> Result<BatchTrial, GitError> {
    let repo = open(repo_dir)?;
    let start = ref_tip(&repo, &format!("refs/heads/{base}"))?;
    let mut at = start;
    let mut trial = BatchTrial {
        base: start.to_string(),
        steps: Vec::new(),
        left_out: Vec::new(),
    };
    for (branch, message) in branches {
        let theirs = ref_tip(&repo, &format!("refs/heads/{branch}"))?;
        let merge_base = repo
            .merge_base(at, theirs)
            .map_err(gix_err("finding the merge base"))?
            .map(|id| id.detach());
        let (commit, kind) = if merge_base == Some(theirs) {
            (at, MergeKind::AlreadyMerged)
        } else if merge_base == Some(at) {
            (theirs, MergeKind::FastForward)
        } else {
            match super::merge::commit_merge(&repo, (at, theirs), (base, branch), message)? {
                Ok(commit) => (commit, MergeKind::MergeCommit),
                // Left out: merged alone later, where its conflict is said.
                Err(_) => {
                    trial.left_out.push((*branch).to_owned());
                    continue;
                }
            }
        };
        at = commit;
        trial.steps.push(Step {
            branch: (*branch).to_owned(),
            commit: commit.to_string(),
            kind,
        });
    }
    Ok(trial)
}
