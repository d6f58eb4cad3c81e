//! A stand-in workspace: git, except where a test makes it say no. Each call is noted, so a
//! test sees which effects and questions ran, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::coordinator::{Coordinator, GitWorkspace, Workspace};
use crate::git::{self, GitError};

/// What a test can make an operation answer instead of git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Op {
    /// `submission_problem` answers with the text.
    Problem,
    /// `merge_blocker` answers with the text.
    Blocker,
    /// `merge` fails with the text.
    Merge,
    /// `remove_worktree` fails with the text.
    Remove,
}

/// Git, except that creating the worktree of a feature in `failing` fails, every unlock fails
/// when `unlock_fails`, and each operation in `answers` says what the test set.
pub(super) struct Flaky {
    git: GitWorkspace,
    pub(super) failing: Mutex<Vec<String>>,
    unlock_fails: bool,
    answers: Mutex<BTreeMap<Op, String>>,
    calls: Mutex<Vec<String>>,
}

impl Flaky {
    pub(super) fn over(coord: &Coordinator, failing: &[&str], unlock_fails: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            git: GitWorkspace::new(&coord.config().expect("initialised")),
            failing: Mutex::new(failing.iter().map(|f| f.to_string()).collect()),
            unlock_fails,
            answers: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// From now on, `op` answers `text` (None: git answers again).
    pub(super) fn answer(&self, op: Op, text: Option<&str>) {
        let mut answers = self.answers.lock().expect("not poisoned");
        match text {
            Some(t) => answers.insert(op, t.to_owned()),
            None => answers.remove(&op),
        };
    }

    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("not poisoned").clone()
    }

    fn note(&self, call: String) {
        self.calls.lock().expect("not poisoned").push(call);
    }

    fn answered(&self, op: Op) -> Option<String> {
        self.answers.lock().expect("not poisoned").get(&op).cloned()
    }
}

/// The last component of a worktree path: the feature's directory name.
fn dir_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn refused(action: &str, message: String) -> GitError {
    GitError::Gix {
        action: action.to_owned(),
        message,
    }
}

impl Workspace for Flaky {
    fn ensure_worktree(
        &self,
        branch: &str,
        path: &Path,
        lock_reason: &str,
    ) -> Result<bool, String> {
        let feature = dir_name(path);
        self.note(format!("ensure {feature} {branch} for {lock_reason}"));
        if self
            .failing
            .lock()
            .expect("not poisoned")
            .contains(&feature)
        {
            return Err(format!("no room for {feature}"));
        }
        self.git.ensure_worktree(branch, path, lock_reason)
    }

    fn push_branch(&self, branch: &str, place: &Path) -> Result<crate::git::Pushed, String> {
        self.note(format!("push {branch}"));
        self.git.push_branch(branch, place)
    }

    fn unlock_worktree(&self, path: &Path) -> Result<(), String> {
        self.note(format!("unlock {}", dir_name(path)));
        if self.unlock_fails {
            return Err("the lock is stuck".into());
        }
        self.git.unlock_worktree(path)
    }

    fn registered(&self, paths: &[&str]) -> Result<BTreeSet<String>, GitError> {
        self.git.registered(paths)
    }

    fn complete_checkout(&self, from: &str) -> Result<bool, GitError> {
        self.note(format!(
            "complete checkout from {}",
            &from[..from.len().min(7)]
        ));
        self.git.complete_checkout(from)
    }

    // The rest of the remote agents' operations reach git as they are: no stand-in hides them.
    fn last_move(&self) -> Result<Option<String>, GitError> {
        self.git.last_move()
    }

    fn forget_move(&self) -> Result<(), GitError> {
        self.git.forget_move()
    }

    fn refresh_branch(&self, branch: &str) -> Result<(), GitError> {
        self.git.refresh_branch(branch)
    }

    fn sync_base(&self, branches: &[&str]) -> Result<Option<git::Synced>, GitError> {
        self.git.sync_base(branches)
    }

    fn fetch_branch(&self, branch: &str) -> Result<(), GitError> {
        self.git.fetch_branch(branch)
    }

    fn remove_remote_branch(&self, place: &Path, branch: &str) -> Result<git::Removal, GitError> {
        self.git.remove_remote_branch(place, branch)
    }

    fn submission_problem(
        &self,
        worktree: Option<&Path>,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        self.note(format!("check {branch}"));
        match self.answered(Op::Problem) {
            Some(problem) => Ok(Some(problem)),
            None => self.git.submission_problem(worktree, branch),
        }
    }

    fn merge_blocker(&self) -> Result<Option<String>, GitError> {
        match self.answered(Op::Blocker) {
            Some(reason) => Ok(Some(reason)),
            None => self.git.merge_blocker(),
        }
    }

    fn branch_tip(&self, branch: &str) -> Result<String, GitError> {
        self.git.branch_tip(branch)
    }

    fn merge(&self, branch: &str, message: &str) -> Result<git::MergeOutcome, GitError> {
        self.note(format!("merge {branch}"));
        match self.answered(Op::Merge) {
            Some(e) => Err(refused("merging", e)),
            None => self.git.merge(branch, message),
        }
    }

    fn not_in_branch(&self, branch: &str, commits: &[&str]) -> Result<Vec<bool>, GitError> {
        self.git.not_in_branch(branch, commits)
    }

    fn trial_merge(&self, branch: &str, message: &str) -> Result<git::Trial, GitError> {
        self.git.trial_merge(branch, message)
    }

    fn trial_batch(&self, branches: &[(&str, String)]) -> Result<git::BatchTrial, GitError> {
        self.git.trial_batch(branches)
    }

    fn land(
        &self,
        branch: &str,
        tested: (&str, &str, git::MergeKind),
    ) -> Result<git::MergeOutcome, GitError> {
        self.note(format!("land {branch}"));
        self.git.land(branch, tested)
    }

    fn remove_worktree(&self, path: &Path, branch: &str) -> Result<git::Removal, GitError> {
        self.note(format!("remove {}", dir_name(path)));
        match self.answered(Op::Remove) {
            Some(e) => Err(refused("removing the worktree", e)),
            None => self.git.remove_worktree(path, branch),
        }
    }

    fn config_value(&self, key: &str) -> Result<Option<String>, GitError> {
        self.git.config_value(key)
    }
}
