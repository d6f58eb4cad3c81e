//! What a feature's branch would bring to the base branch: its diffstat, and the diff when asked.
//! `agents show-feature` prints it for a person deciding on approval; the dashboard shows the
//! diffstat of the feature clicked. Both read the names from a status and pass them to git only
//! once they are branch names git accepts.

use std::path::Path;

use serde::Serialize;

use crate::git::{self, GitError};
use crate::reducer::FeatureStatus;
use crate::status::Status;

/// A feature's changes against the base branch.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureChanges {
    pub feature_name: String,
    pub status: FeatureStatus,
    pub branch: String,
    pub base: String,
    /// `git diff --stat` of the three-dot range: what the branch changed since it left the base.
    pub diffstat: String,
    pub diff: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("coordination is not set up; run spanfold agents init")]
    NotSetUp,
    #[error("feature {0} was never requested")]
    UnknownFeature(String),
    #[error("feature {0} has no branch yet: it was never assigned")]
    NoBranch(String),
    #[error("branch {0:?} from the log starts with '-': not passed to git")]
    LooksLikeAnOption(String),
    #[error("branch {branch} is gone ({feature} is {status}{merged}): nothing to compare")]
    BranchGone {
        feature: String,
        branch: String,
        status: &'static str,
        /// ", merged as COMMIT" for a feature that merged.
        merged: String,
    },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// The changes of feature `name` as `st` knows it; with `full`, the diff too.
pub fn feature_changes(st: &Status, name: &str, full: bool) -> Result<FeatureChanges, ReviewError> {
    let config = st.config.as_ref().ok_or(ReviewError::NotSetUp)?;
    let f = st
        .features
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ReviewError::UnknownFeature(name.to_owned()))?;
    let branch = f
        .branch_name
        .clone()
        .ok_or_else(|| ReviewError::NoBranch(name.to_owned()))?;
    // Both names reach git's command line: only what git accepts as a branch name.
    for b in [&branch, &config.base_branch] {
        git::check_branch_name(b)?;
        if b.starts_with('-') {
            return Err(ReviewError::LooksLikeAnOption(b.clone()));
        }
    }
    let repo = Path::new(&config.repo);
    // A merged feature's branch is deleted once the base contains it.
    if git::branch_tip(repo, &branch).is_err() {
        return Err(ReviewError::BranchGone {
            feature: f.name.clone(),
            branch,
            status: f.status.as_str(),
            merged: f
                .merge_commit
                .as_ref()
                .map(|c| format!(", merged as {c}"))
                .unwrap_or_default(),
        });
    }
    let range = format!("{}...{branch}", config.base_branch);
    let diffstat = git::git_cli(repo, &["diff", "--stat", &range, "--"])?;
    let diff = match full {
        true => Some(git::git_cli(repo, &["diff", &range, "--"])?),
        false => None,
    };
    Ok(FeatureChanges {
        feature_name: f.name.clone(),
        status: f.status,
        branch,
        base: config.base_branch.clone(),
        diffstat,
        diff,
    })
}
