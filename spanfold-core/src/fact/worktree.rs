//! The fact of `spans/worktree.yaml`: what happened to a feature's worktree.

use super::{Out, Word, closed_set, required};
use crate::model::Event;
use crate::vocab::attr;

closed_set! {
    /// `worktree.action`: what happened to a worktree.
    WorktreeAction {
        /// A new branch and worktree were made and locked.
        Created = "created",
        /// The feature's existing worktree was locked for the agent.
        Reused = "reused",
        /// The worktree could not be made; the feature went back to the queue.
        CreateFailed = "create_failed",
        /// After the merge, the worktree was removed and its branch deleted.
        Removed = "removed",
        /// After the merge, the worktree was kept so as not to lose the stated work.
        Kept = "kept",
        /// Its agent lost the feature; the worktree keeps its work, unlocked.
        Unlocked = "unlocked",
        /// Drift found on recovery: the worktree of a held feature is gone.
        Missing = "missing",
        /// For a remote agent: the feature's branch is on the remote; no local worktree.
        Pushed = "pushed",
        /// For a remote agent: the branch could not be put on the remote; the feature went
        /// back to the queue.
        PushFailed = "push_failed",
    }
}

impl WorktreeAction {
    /// Whether the action is about a worktree for an agent (and so must name it); cleanup and
    /// drift are about a worktree nobody holds.
    pub fn places(self) -> bool {
        !matches!(
            self,
            WorktreeAction::Removed
                | WorktreeAction::Kept
                | WorktreeAction::Unlocked
                | WorktreeAction::Missing
        )
    }
}

/// `worktree.lifecycle`: the outcome of acting on a worktree.
#[derive(Debug, Clone, PartialEq)]
pub struct WorktreeLifecycle<'a> {
    /// Another word is refused by the rule, after its check that the agent holds the feature.
    pub action: Word<'a, WorktreeAction>,
    /// Present whenever the action places a worktree (or is another word).
    pub agent_id: Option<&'a str>,
    pub feature_name: &'a str,
    pub path: &'a str,
    pub branch: &'a str,
    /// What went wrong, or why the worktree was kept.
    pub error: Option<&'a str>,
    /// Where the branch was pushed, for a remote agent.
    pub remote_url: Option<&'a str>,
}

impl<'a> WorktreeLifecycle<'a> {
    /// The reason a worktree span without one of its attributes is refused.
    pub(crate) fn needs(key: &str) -> String {
        format!("worktree.lifecycle needs {key}")
    }

    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| required(ev, key, || Self::needs(key));
        let action: Word<WorktreeAction> = Word::read(get(attr::WORKTREE_ACTION)?);
        let (feature_name, path, branch) = (
            get(attr::FEATURE_NAME)?,
            get(attr::WORKTREE_PATH)?,
            get(attr::WORKTREE_BRANCH)?,
        );
        let agent_id = match action {
            Word::Member(a) if !a.places() => ev.str_attr(attr::AGENT_ID),
            _ => Some(get(attr::AGENT_ID)?),
        };
        Ok(WorktreeLifecycle {
            action,
            agent_id,
            feature_name,
            path,
            branch,
            error: ev.str_attr(attr::WORKTREE_ERROR),
            remote_url: ev.str_attr(attr::WORKTREE_REMOTE_URL),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::WORKTREE_ACTION, self.action.as_str());
        out.opt_str(attr::AGENT_ID, self.agent_id);
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.str(attr::WORKTREE_PATH, self.path);
        out.str(attr::WORKTREE_BRANCH, self.branch);
        out.opt_str(attr::WORKTREE_ERROR, self.error);
        out.opt_str(attr::WORKTREE_REMOTE_URL, self.remote_url);
    }
}
