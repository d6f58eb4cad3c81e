//! Carrying out a plan's effects ([`Effect`]) and turning each outcome into the span that
//! records it. The git work goes through a [`Workspace`], so that a test can stand in for git —
//! fail one worktree, say — and check what the coordinator records when the world says no.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::emit;
use crate::git;
use crate::model::Span;
use crate::plan::Effect;
use crate::reducer::Config;

use super::Coordinator;

/// The git work a cycle's effects need. Errors are the words the outcome span records.
pub trait Workspace: Send + Sync {
    /// Makes sure `branch` (from the base branch when new) is checked out at `path`, locked
    /// with `lock_reason` (the agent's id). True when an existing worktree was reused.
    fn ensure_worktree(&self, branch: &str, path: &Path, lock_reason: &str)
    -> Result<bool, String>;

    /// Unlocks the worktree at `path`, keeping it and its work.
    fn unlock_worktree(&self, path: &Path) -> Result<(), String>;
}

/// The real workspace: the repository and base branch of the log's configuration, through
/// `git`.
#[derive(Debug, Clone)]
pub struct GitWorkspace {
    repo: PathBuf,
    base_branch: String,
}

impl GitWorkspace {
    pub fn new(config: &Config) -> GitWorkspace {
        GitWorkspace {
            repo: PathBuf::from(&config.repo),
            base_branch: config.base_branch.clone(),
        }
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

    fn unlock_worktree(&self, path: &Path) -> Result<(), String> {
        git::unlock_worktree(&self.repo, path).map_err(|e| e.to_string())
    }
}

/// What carrying out an effect came to: the `worktree.action` recorded, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub action: &'static str,
    pub error: Option<String>,
}

/// Carries out one effect.
fn execute(workspace: &dyn Workspace, effect: &Effect) -> Outcome {
    match effect {
        Effect::CreateWorktree {
            agent_id,
            path,
            branch,
            ..
        } => match workspace.ensure_worktree(branch, Path::new(path), agent_id) {
            Ok(true) => Outcome {
                action: "reused",
                error: None,
            },
            Ok(false) => Outcome {
                action: "created",
                error: None,
            },
            Err(e) => Outcome {
                action: "create_failed",
                error: Some(e),
            },
        },
        // A failed unlock is still recorded as `unlocked`, with the error: the feature is let
        // go of either way, and the next agent's lock replaces git's.
        Effect::UnlockWorktree { path, .. } => Outcome {
            action: "unlocked",
            error: workspace.unlock_worktree(Path::new(path)).err(),
        },
    }
}

impl Coordinator {
    /// Carries out worktree effects through `workspace` from here on instead of git (a test's
    /// stand-in).
    pub fn set_workspace(&mut self, workspace: Arc<dyn Workspace>) {
        self.workspace = Some(workspace);
    }

    /// Where effects are carried out: the workspace set, or git in the configured repository.
    fn workspace(&self, config: &Config) -> Arc<dyn Workspace> {
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
                },
            ));
            outcomes.push(outcome);
        }
        (outcomes, spans)
    }
}
