//! `gc`: removing the worktrees nobody holds any more, never with work they would lose.

use std::path::Path;

use crate::emit;
use crate::fact::WorktreeAction;
use crate::git;
use crate::reducer::{Config, FeatureStatus, WorktreeStatus};

use super::{CoordError, Coordinator, ours};

/// What `gc` did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub removed: Vec<GcEntry>,
    /// Not removed, with why: the uncommitted work that would be lost.
    pub kept: Vec<GcEntry>,
    /// With a remote named: feature branches (`spanfold/…`) on it that no feature still to be
    /// merged owns (merged with `spanfold.keepBranches`, kept after a merge, left by a feature
    /// cancelled, or pushed by hand). Listed, never deleted: a person decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_branches: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcEntry {
    pub path: String,
    pub feature: String,
    pub reason: Option<String>,
}

impl Coordinator {
    /// Removes worktrees nobody holds (feature merged, cancelled, or back in the queue) that have
    /// been so for at least `older_than`: only when they hold no uncommitted work, unless `force`.
    /// Branches go only when the base branch contains them.
    pub fn gc(
        &mut self,
        older_than: std::time::Duration,
        force: bool,
    ) -> Result<GcReport, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let now = self.clock.now();
        let candidates: Vec<(String, String, String)> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status != WorktreeStatus::Active && ours(&config, &w.path))
            .filter(|w| now.saturating_sub(w.since) >= older_than.as_nanos() as u64)
            .map(|w| {
                (
                    w.path.clone(),
                    w.branch_name.clone(),
                    w.feature_name.clone(),
                )
            })
            .collect();
        let mut report = GcReport::default();
        for (path, branch, feature) in candidates {
            let removal = git::remove_worktree(
                Path::new(&config.repo),
                Path::new(&path),
                &branch,
                &config.base_branch,
                force,
            );
            match removal {
                Ok(git::Removal::Removed) => {
                    let s = emit::worktree(
                        &mut self.ids,
                        self.clock.now(),
                        &emit::WorktreeSpan {
                            action: WorktreeAction::Removed,
                            agent_id: "",
                            feature: &feature,
                            path: &path,
                            branch: &branch,
                            error: None,
                            remote_url: None,
                        },
                    );
                    self.record(vec![s])?;
                    report.removed.push(GcEntry {
                        path,
                        feature,
                        reason: None,
                    });
                }
                Ok(git::Removal::Kept { reason }) => report.kept.push(GcEntry {
                    path,
                    feature,
                    reason: Some(reason),
                }),
                Err(e) => report.kept.push(GcEntry {
                    path,
                    feature,
                    reason: Some(e.to_string()),
                }),
            }
        }
        report.remote_branches = self.unowned_remote_branches(&config)?;
        Ok(report)
    }

    /// The remote's feature branches that no feature still to be merged owns, in name order.
    fn unowned_remote_branches(&self, config: &Config) -> Result<Vec<String>, CoordError> {
        let Some(theirs) = git::remote_feature_branches(Path::new(&config.repo))? else {
            return Ok(Vec::new());
        };
        let view = self.view.read();
        let owned: std::collections::BTreeSet<&str> = view
            .features
            .values()
            .filter(|f| {
                !matches!(
                    f.status,
                    FeatureStatus::Completed | FeatureStatus::Cancelled
                )
            })
            .filter_map(|f| f.branch_name.as_deref())
            .collect();
        Ok(theirs
            .into_keys()
            .filter(|b| !owned.contains(b.as_str()))
            .collect())
    }
}
