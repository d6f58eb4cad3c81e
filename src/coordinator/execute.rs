//! Carrying out a plan's effects ([`Effect`]) and turning each outcome into the span that
//! records it. The git work goes through a [`Workspace`], so that a test can stand in for git —
//! fail one worktree, say — and check what the coordinator records when the world says no.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::emit;
use crate::fact::WorktreeAction;
use crate::git::{self, GitError};
use crate::model::Span;
use crate::plan::Effect;
use crate::reducer::Config;

use super::Coordinator;

/// The git work of the coordinator's effects and merges. The effects' errors are the words
/// their outcome spans record; the questions' errors (`GitError`) stop the operation that asked.
pub trait Workspace: Send + Sync {
    /// Makes sure `branch` (from the base branch when new) is checked out at `path`, locked
    /// with `lock_reason` (the agent's id). True when an existing worktree was reused.
    fn ensure_worktree(&self, branch: &str, path: &Path, lock_reason: &str)
    -> Result<bool, String>;

    /// Puts `branch` (from the base branch when new) on the configured remote, for a remote
    /// agent; what it was pushed to. A worktree of it at `place` (the feature was an agent's
    /// here before) lets go of the branch, keeping its files, so the agent's pushes can be
    /// fetched into it.
    fn push_branch(&self, branch: &str, place: &Path) -> Result<git::Pushed, String>;

    /// Brings `branch` here from the remote where the remote's is ahead (a feature a remote
    /// agent had, now an agent's here).
    fn refresh_branch(&self, _branch: &str) -> Result<(), GitError> {
        Ok(())
    }

    /// Unlocks the worktree at `path`, keeping it and its work.
    fn unlock_worktree(&self, path: &Path) -> Result<(), String>;

    /// Which of `paths` git has registered as worktrees.
    fn registered(&self, paths: &[&str]) -> Result<BTreeSet<String>, GitError>;

    /// After a merge cut off between moving the base branch (from `from`) and updating the
    /// main checkout: brings the checkout up to date; true when it had to.
    fn complete_checkout(&self, from: &str) -> Result<bool, GitError>;

    /// Where spanfold's last move of the base branch moved it from, while the base is still
    /// where that move put it (`git::last_move`).
    fn last_move(&self) -> Result<Option<String>, GitError> {
        Ok(None)
    }

    /// Drops the announcement [`Workspace::last_move`] read, once recovery dealt with it.
    fn forget_move(&self) -> Result<(), GitError> {
        Ok(())
    }

    /// What the agent must fix before `branch` (checked out at `worktree`) can merge: work left
    /// uncommitted, or nothing committed.
    fn submission_problem(
        &self,
        worktree: Option<&Path>,
        branch: &str,
    ) -> Result<Option<String>, GitError>;

    /// Why merging into the base branch would be unsafe now (the main checkout's own changes).
    fn merge_blocker(&self) -> Result<Option<String>, GitError>;

    /// The commit `branch` points at.
    fn branch_tip(&self, branch: &str) -> Result<String, GitError>;

    /// Merges `branch` into the base branch (a merge commit with `message` when needed).
    fn merge(&self, branch: &str, message: &str) -> Result<git::MergeOutcome, GitError>;

    /// Merges `branch` with the base branch's tip in the object database only: the commit
    /// the merge gate tests.
    fn trial_merge(&self, branch: &str, message: &str) -> Result<git::Trial, GitError>;

    /// Merges `branches` (with their messages) one after another onto the base branch's tip in
    /// the object database only: the commit a merge queue's batch tests.
    fn trial_batch(&self, branches: &[(&str, String)]) -> Result<git::BatchTrial, GitError>;

    /// For each of `commits`, whether `branch` does not contain it.
    fn not_in_branch(&self, branch: &str, commits: &[&str]) -> Result<Vec<bool>, GitError>;

    /// Moves the base branch from `from` to `commit`, the tested merge of `branch`, if it has
    /// not moved meanwhile.
    fn land(
        &self,
        branch: &str,
        tested: (&str, &str, git::MergeKind),
    ) -> Result<git::MergeOutcome, GitError>;

    /// Removes a merged feature's worktree at `path` and its branch, unless it holds work.
    fn remove_worktree(&self, path: &Path, branch: &str) -> Result<git::Removal, GitError>;

    /// A value of the repository's configuration (the merge gate's command and timeout).
    fn config_value(&self, key: &str) -> Result<Option<String>, GitError>;

    /// With a remote named for remote agents: brings the base branch and the remote's to the
    /// same commit where one contains the other, fetching remote agents' `branches` in the same
    /// exchange. None without one.
    fn sync_base(&self, branches: &[&str]) -> Result<Option<git::Synced>, GitError> {
        let _ = branches;
        Ok(None)
    }

    /// Brings a remote agent's `branch` here as the remote has it.
    fn fetch_branch(&self, branch: &str) -> Result<(), GitError> {
        let _ = branch;
        Ok(())
    }

    /// After a remote agent's feature merged: its branch deleted on the remote and here,
    /// unless that would lose work; `place` is its worktree's path.
    fn remove_remote_branch(&self, place: &Path, branch: &str) -> Result<git::Removal, GitError> {
        self.remove_worktree(place, branch)
    }
}

/// The real workspace: the repository and base branch of the log's configuration, through
/// `git`.
#[derive(Debug, Clone)]
pub struct GitWorkspace {
    repo: PathBuf,
    base_branch: String,
    /// The remote `spanfold.remote` names, read once for all the work this workspace does.
    remote: std::sync::OnceLock<Option<git::Remote>>,
}

impl GitWorkspace {
    pub fn new(config: &Config) -> GitWorkspace {
        GitWorkspace {
            repo: PathBuf::from(&config.repo),
            base_branch: config.base_branch.clone(),
            remote: std::sync::OnceLock::new(),
        }
    }

    /// The remote named for remote agents, if one is (a misnamed one is an error each time).
    fn remote(&self) -> Result<Option<&git::Remote>, GitError> {
        if let Some(remote) = self.remote.get() {
            return Ok(remote.as_ref());
        }
        let named = git::named_remote(&self.repo)?;
        Ok(self.remote.get_or_init(|| named).as_ref())
    }
}

impl Workspace for GitWorkspace {
    fn ensure_worktree(
        &self,
        branch: &str,
        path: &Path,
        lock_reason: &str,
    ) -> Result<bool, String> {
        git::ensure_worktree(&self.repo, &self.base_branch, branch, path, lock_reason)
            .map(|o| o.reused)
            .map_err(|e| e.to_string())
    }

    fn push_branch(&self, branch: &str, place: &Path) -> Result<git::Pushed, String> {
        let remote = self
            .remote()
            .and_then(|r| git::required(r.cloned()))
            .map_err(|e| e.to_string())?;
        // A worktree here that had the branch says the feature was an agent's here.
        let worked_here =
            git::release_branch(&self.repo, place, branch).map_err(|e| e.to_string())?;
        git::push_branch(&self.repo, &remote, &self.base_branch, branch, worked_here)
            .map_err(|e| e.to_string())
    }

    fn refresh_branch(&self, branch: &str) -> Result<(), GitError> {
        match self.remote()? {
            Some(remote) => git::fetch_ahead(&self.repo, remote, &self.base_branch, branch),
            None => Ok(()),
        }
    }

    fn unlock_worktree(&self, path: &Path) -> Result<(), String> {
        git::unlock_worktree(&self.repo, path).map_err(|e| e.to_string())
    }

    fn registered(&self, paths: &[&str]) -> Result<BTreeSet<String>, GitError> {
        git::registered_worktrees(&self.repo, paths)
    }

    fn complete_checkout(&self, from: &str) -> Result<bool, GitError> {
        git::complete_checkout(&self.repo, &self.base_branch, from)
    }

    fn last_move(&self) -> Result<Option<String>, GitError> {
        git::last_move(&self.repo, &self.base_branch)
    }

    fn forget_move(&self) -> Result<(), GitError> {
        git::forget_move(&self.repo)
    }

    fn submission_problem(
        &self,
        worktree: Option<&Path>,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        git::submission_problem(&self.repo, worktree, &self.base_branch, branch)
    }

    fn merge_blocker(&self) -> Result<Option<String>, GitError> {
        git::merge_blocker(&self.repo, &self.base_branch)
    }

    fn branch_tip(&self, branch: &str) -> Result<String, GitError> {
        git::branch_tip(&self.repo, branch)
    }

    fn merge(&self, branch: &str, message: &str) -> Result<git::MergeOutcome, GitError> {
        git::merge_through_remote(
            &self.repo,
            self.remote()?,
            &self.base_branch,
            branch,
            message,
        )
    }

    fn not_in_branch(&self, branch: &str, commits: &[&str]) -> Result<Vec<bool>, GitError> {
        git::not_in_branch(&self.repo, branch, commits)
    }

    fn trial_merge(&self, branch: &str, message: &str) -> Result<git::Trial, GitError> {
        git::trial_merge(&self.repo, &self.base_branch, branch, message)
    }

    fn trial_batch(&self, branches: &[(&str, String)]) -> Result<git::BatchTrial, GitError> {
        git::trial_batch(&self.repo, &self.base_branch, branches)
    }

    fn land(
        &self,
        branch: &str,
        tested: (&str, &str, git::MergeKind),
    ) -> Result<git::MergeOutcome, GitError> {
        git::land_through_remote(
            &self.repo,
            self.remote()?,
            &self.base_branch,
            branch,
            tested,
        )
    }

    fn remove_worktree(&self, path: &Path, branch: &str) -> Result<git::Removal, GitError> {
        git::remove_worktree(&self.repo, path, branch, &self.base_branch, false)
    }

    fn config_value(&self, key: &str) -> Result<Option<String>, GitError> {
        git::config_value(&self.repo, key)
    }

    fn sync_base(&self, branches: &[&str]) -> Result<Option<git::Synced>, GitError> {
        match self.remote()? {
            Some(remote) => {
                git::sync_base(&self.repo, remote, &self.base_branch, branches).map(Some)
            }
            None => Ok(None),
        }
    }

    fn fetch_branch(&self, branch: &str) -> Result<(), GitError> {
        let remote = git::required(self.remote()?.cloned())?;
        git::fetch_branch(&self.repo, &remote, &self.base_branch, branch)
    }

    fn remove_remote_branch(&self, place: &Path, branch: &str) -> Result<git::Removal, GitError> {
        let remote = git::required(self.remote()?.cloned())?;
        git::remove_remote_branch(&self.repo, &remote, &self.base_branch, branch, place)
    }
}

/// What carrying out an effect came to: the `worktree.action` recorded, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub action: WorktreeAction,
    pub error: Option<String>,
    /// Where a remote agent's branch was pushed.
    pub remote_url: Option<String>,
}

impl Outcome {
    fn local(action: WorktreeAction, error: Option<String>) -> Outcome {
        Outcome {
            action,
            error,
            remote_url: None,
        }
    }
}

/// Carries out one effect.
fn execute(workspace: &dyn Workspace, effect: &Effect) -> Outcome {
    use WorktreeAction::*;
    match effect {
        Effect::CreateWorktree {
            agent_id,
            path,
            branch,
            from_remote,
            ..
        } => {
            // Without the remote's work the agent starts from the branch as it is here, and
            // the span says why.
            let stale = match from_remote {
                true => workspace.refresh_branch(branch).err().map(|e| {
                    format!("{branch} could not be brought from the remote, so the worktree has it as it was here: {e}")
                }),
                false => None,
            };
            match workspace.ensure_worktree(branch, Path::new(path), agent_id) {
                Ok(true) => Outcome::local(Reused, stale),
                Ok(false) => Outcome::local(Created, stale),
                Err(e) => Outcome::local(CreateFailed, Some(e)),
            }
        }
        // Rebuilt or not, the span says why recovery needed it.
        Effect::RebuildWorktree {
            agent_id,
            path,
            branch,
            why,
            ..
        } => match workspace.ensure_worktree(branch, Path::new(path), agent_id) {
            Ok(reused) => Outcome::local(
                if reused { Reused } else { Created },
                Some(why.note().to_owned()),
            ),
            Err(e) => Outcome::local(CreateFailed, Some(e)),
        },
        // Pushed or found there, the remote holds the branch for its agent.
        Effect::PushBranch {
            branch, why, path, ..
        } => match workspace.push_branch(branch, Path::new(path)) {
            Ok(pushed) => Outcome {
                action: Pushed,
                error: why.map(|w| w.note().to_owned()),
                remote_url: Some(pushed.url),
            },
            Err(e) => Outcome::local(PushFailed, Some(e)),
        },
        // A failed unlock is still recorded as `unlocked`, with the error: the feature is let
        // go of either way, and the next agent's lock replaces git's.
        Effect::UnlockWorktree { path, .. } => {
            Outcome::local(Unlocked, workspace.unlock_worktree(Path::new(path)).err())
        }
    }
}

impl Coordinator {
    /// Carries out worktree effects through `workspace` from here on instead of git (a test's
    /// stand-in).
    pub fn set_workspace(&mut self, workspace: Arc<dyn Workspace>) {
        self.workspace = Some(workspace);
    }

    /// Where effects are carried out: the workspace set, or git in the configured repository.
    pub(super) fn workspace(&self, config: &Config) -> Arc<dyn Workspace> {
        self.workspace
            .clone()
            .unwrap_or_else(|| Arc::new(GitWorkspace::new(config)))
    }

    /// Carries out `effects` in order and returns each outcome with the span that records it,
    /// timed when the outcome is known. Recording them is the caller's: the spans go into the
    /// log as one batch after the last effect.
    pub(super) fn carry_out(
        &mut self,
        config: &Config,
        effects: &[Effect],
    ) -> (Vec<Outcome>, Vec<Span>) {
        let workspace = self.workspace(config);
        let mut outcomes = Vec::with_capacity(effects.len());
        let mut spans = Vec::with_capacity(effects.len());
        for effect in effects {
            let outcome = execute(workspace.as_ref(), effect);
            let (agent_id, feature, path, branch) = match effect {
                Effect::CreateWorktree {
                    agent_id,
                    feature,
                    path,
                    branch,
                    ..
                }
                | Effect::RebuildWorktree {
                    agent_id,
                    feature,
                    path,
                    branch,
                    ..
                }
                | Effect::PushBranch {
                    agent_id,
                    feature,
                    path,
                    branch,
                    ..
                } => (agent_id.as_str(), feature, path, branch),
                Effect::UnlockWorktree {
                    path,
                    branch,
                    feature,
                } => ("", feature, path, branch),
            };
            spans.push(emit::worktree(
                &mut self.ids,
                self.clock.now(),
                &emit::WorktreeSpan {
                    action: outcome.action,
                    agent_id,
                    feature,
                    path,
                    branch,
                    error: outcome.error.as_deref(),
                    remote_url: outcome.remote_url.as_deref(),
                },
            ));
            outcomes.push(outcome);
        }
        (outcomes, spans)
    }
}
