//! Merging submitted features: each is checked (the agent's work committed, the main checkout
//! clean, the merge gate passed), its merge is recorded before it happens and its outcome after,
//! and the worktree of a merged feature is removed.

use std::path::Path;
use std::sync::Arc;

use crate::emit::{self, IdGen};
use crate::fact::{MergeKind, MergeResult, WorktreeAction};
use crate::git;
use crate::model::{Span, UnixNanos};
use crate::plan::{self, MergeCandidate};
use crate::reducer::{Config, FeatureStatus};

use super::execute::Workspace;
use super::gate::{GateCommand, GateVerdict, Tested};
use super::{CoordError, Coordinator};

/// One merge attempt as carried out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MergeReport {
    pub feature_name: String,
    pub agent_id: String,
    pub result: MergeResult,
    pub commit: Option<String>,
    pub kind: Option<MergeKind>,
    pub conflicts: Vec<String>,
    pub reason: Option<String>,
    /// removed or kept, after a merge
    pub worktree: Option<WorktreeAction>,
}

impl MergeReport {
    pub(super) fn new(
        feature: &str,
        agent: &str,
        result: MergeResult,
        outcome: &git::MergeOutcome,
    ) -> MergeReport {
        let mut r = MergeReport {
            feature_name: feature.to_owned(),
            agent_id: agent.to_owned(),
            result,
            commit: None,
            kind: None,
            conflicts: Vec::new(),
            reason: None,
            worktree: None,
        };
        match outcome {
            git::MergeOutcome::Merged { kind, commit } => {
                r.kind = Some(*kind);
                r.commit = Some(commit.clone());
            }
            git::MergeOutcome::Conflicted { paths } => r.conflicts = paths.clone(),
            git::MergeOutcome::Deferred { reason } | git::MergeOutcome::Failed { reason } => {
                r.reason = Some(reason.clone())
            }
        }
        r
    }
}

/// Where a round of merges happens, and its gate (read once per round).
struct MergeSettings {
    workspace: Arc<dyn Workspace>,
    gate: Option<GateCommand>,
}

/// The span recording a merge decision or outcome for `c`: `result` with what `outcome` holds.
pub(super) fn merge_span(
    ids: &mut IdGen,
    time: UnixNanos,
    config: &Config,
    c: &MergeCandidate,
    result: MergeResult,
    outcome: &git::MergeOutcome,
) -> Span {
    let (kind, commit, conflicts, reason) = match outcome {
        git::MergeOutcome::Merged { kind, commit } => {
            (Some(*kind), Some(commit.clone()), Vec::new(), None)
        }
        git::MergeOutcome::Conflicted { paths } => (None, None, paths.clone(), None),
        git::MergeOutcome::Deferred { reason } | git::MergeOutcome::Failed { reason } => {
            (None, None, Vec::new(), Some(reason.clone()))
        }
    };
    emit::merge(
        ids,
        time,
        &emit::MergeSpan {
            result,
            agent_id: &c.agent,
            feature: &c.feature,
            branch: &c.branch,
            base: &config.base_branch,
            kind,
            commit: commit.as_deref(),
            conflicts: &conflicts,
            reason: reason.as_deref(),
            from: None,
        },
    )
}

/// The `result` a merge's outcome is recorded with.
pub(super) fn result_of(outcome: &git::MergeOutcome) -> MergeResult {
    match outcome {
        git::MergeOutcome::Merged { .. } => MergeResult::Merged,
        git::MergeOutcome::Conflicted { .. } => MergeResult::Conflicted,
        git::MergeOutcome::Deferred { .. } => MergeResult::Deferred,
        git::MergeOutcome::Failed { .. } => MergeResult::Failed,
    }
}

impl Coordinator {
    /// Merges what is ready (gates that finished included), and nothing else: the rest of a
    /// cycle the CLI ran before it waited for its gates. What changed meanwhile is re-checked:
    /// a feature no longer submitted is not merged, a branch that moved is gated again.
    pub fn merge_ready(&mut self) -> Result<Vec<MergeReport>, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let reports = self.merge_submitted(&config)?;
        // Gates of features that are no longer waiting for their merge have nothing to say.
        let merging: Vec<String> = self.submitted().into_iter().map(|c| c.feature).collect();
        self.gates
            .retain(|_, g| g.tests_any(&merging) || !g.is_finished());
        Ok(reports)
    }

    /// Whether a submitted feature waits for its merge.
    pub fn merges_waiting(&self) -> bool {
        self.view.read().tally.by_status[FeatureStatus::Merging as usize] > 0
    }

    /// When the main checkout's index last changed (None without a repository or index).
    pub fn index_modified(&self) -> Option<std::time::SystemTime> {
        let config = self.config().ok()?;
        git::index_modified(Path::new(&config.repo))
    }

    /// Submitted features whose merge is worth trying now, in the queue's order.
    pub(super) fn submitted(&self) -> Vec<MergeCandidate> {
        plan::plan_merges(&self.view.read())
    }

    /// The submitted features that may merge this round: with `spanfold.requireApproval`, only
    /// the approved ones (and any whose merge a crash cut off, which recovery completes).
    pub(super) fn mergeable(&self) -> Vec<MergeCandidate> {
        let mut out = self.submitted();
        out.retain(|c| !self.unfetched.contains(&c.feature));
        if self.require_approval {
            out.retain(|c| c.approved || c.interrupted);
        }
        out
    }

    /// Records the hold of each submitted feature that waits for a person's approval, once.
    fn hold_for_approval(&mut self, config: &Config) -> Result<Vec<MergeReport>, CoordError> {
        let mut reports = Vec::new();
        let held: Vec<MergeCandidate> = self
            .submitted()
            .into_iter()
            .filter(|c| !c.approved && !c.interrupted && !c.awaiting_approval)
            .collect();
        for c in held {
            let outcome = git::MergeOutcome::Deferred {
                reason: format!(
                    "waiting for approval (spanfold.requireApproval): see it with spanfold agents show-feature {f} --diff, then spanfold agents approve {f}, or reject {f} --reason TEXT",
                    f = c.feature
                ),
            };
            reports.push(self.record_merge(config, &c, MergeResult::AwaitingApproval, &outcome)?);
        }
        Ok(reports)
    }

    /// Merges each submitted feature: record the decision, merge, record the outcome, clean up.
    /// A merge that must wait is recorded only when its reason changes, so retries every cycle
    /// leave no trail of identical spans.
    pub(super) fn merge_submitted(
        &mut self,
        config: &Config,
    ) -> Result<Vec<MergeReport>, CoordError> {
        let workspace = self.workspace(config);
        let gate = GateCommand::read(workspace.as_ref())?;
        // Temporary worktrees of gates a dead process ran: removed before any gate starts.
        self.drop_stale_gate_worktrees(config);
        let size = super::batch::batch_size(workspace.as_ref())?;
        self.require_approval = workspace
            .config_value("spanfold.requireApproval")?
            .is_some_and(|v| {
                matches!(
                    v.trim().to_lowercase().as_str(),
                    "true" | "yes" | "on" | "1"
                )
            });
        // With a remote named, the base and remote agents' branches first: a person asked to
        // approve sees the branch as it will merge.
        let mut reports = Vec::new();
        if !self.sync_remote(config, workspace.as_ref(), &mut reports)? {
            return Ok(reports);
        }
        if self.require_approval {
            reports.extend(self.hold_for_approval(config)?);
        }
        let settings = MergeSettings { workspace, gate };
        if let Some(gate) = settings.gate.as_ref().filter(|_| size > 1)
            && self.merge_batch(
                config,
                settings.workspace.as_ref(),
                gate,
                size,
                &mut reports,
            )?
        {
            // The head of the queue is a batch under test, or just done with: the rest waits.
            return Ok(reports);
        }
        for candidate in self.mergeable() {
            if let Some(report) = self.merge_candidate(config, &settings, &candidate)? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    /// Takes one submitted feature as far as it can go now; a report when something was
    /// recorded about it.
    fn merge_candidate(
        &mut self,
        config: &Config,
        settings: &MergeSettings,
        c: &MergeCandidate,
    ) -> Result<Option<MergeReport>, CoordError> {
        let workspace = settings.workspace.as_ref();
        // The agent's to fix: work left uncommitted, or nothing committed at all. (Not after
        // a merge a crash cut off: the base may already hold the branch.)
        let problem = match c.interrupted {
            true => None,
            false => {
                workspace.submission_problem(c.worktree.as_deref().map(Path::new), &c.branch)?
            }
        };
        // A remote agent has no worktree here: all that can be missing is a push.
        let problem = match (&c.remote, problem) {
            (Some(r), Some(_)) => Some(format!(
                "{branch} on the remote {url} has no commit that {base} does not already contain: nothing to merge; push your commits to it (git push {url} HEAD:refs/heads/{branch}), then validate again",
                branch = c.branch,
                url = r.url,
                base = config.base_branch
            )),
            (_, problem) => problem,
        };
        if let Some(reason) = problem {
            let outcome = git::MergeOutcome::Deferred { reason };
            return self
                .record_merge(config, c, MergeResult::Returned, &outcome)
                .map(Some);
        }
        if let Some(reason) = workspace.merge_blocker()? {
            // Already recorded with this reason: retries leave no trail of identical spans.
            if c.note.as_deref() == Some(reason.as_str()) {
                return Ok(None);
            }
            let outcome = git::MergeOutcome::Deferred { reason };
            return self
                .record_merge(config, c, MergeResult::Deferred, &outcome)
                .map(Some);
        }
        // The merge gate: the operator's command, from the repository's configuration (never
        // from a span), run on the merged result; only a pass lets the base move, to exactly
        // the commit that passed.
        let mut tested = None;
        if let Some(gate) = &settings.gate {
            match self.gate(config, workspace, c, gate)? {
                GateVerdict::Passed(t) => tested = Some(t),
                GateVerdict::Running => return Ok(None),
                GateVerdict::Stays(git::MergeOutcome::Conflicted { paths }) => {
                    let outcome = git::MergeOutcome::Conflicted { paths };
                    return self
                        .record_merge(config, c, MergeResult::Conflicted, &outcome)
                        .map(Some);
                }
                // Already merged (or nothing to test): the plain merge says so.
                GateVerdict::Stays(_) => {}
                GateVerdict::Failed(reason) => {
                    // The feature that breaks is found: batches are whole again.
                    self.gates.batch_limit = None;
                    let outcome = git::MergeOutcome::Deferred { reason };
                    return self
                        .record_merge(config, c, MergeResult::GateFailed, &outcome)
                        .map(Some);
                }
            }
        }
        let outcome = self.attempt_merge(config, workspace, c, tested.as_ref())?;
        let result = result_of(&outcome);
        let mut report = self.record_merge(config, c, result, &outcome)?;
        if let (git::MergeOutcome::Merged { .. }, Some(path)) = (&outcome, c.place()) {
            let action = self.remove_merged_worktree(workspace, c, path)?;
            report.worktree = Some(action);
        }
        Ok(Some(report))
    }

    /// Records `result` for `c`, and reports it.
    pub(super) fn record_merge(
        &mut self,
        config: &Config,
        c: &MergeCandidate,
        result: MergeResult,
        outcome: &git::MergeOutcome,
    ) -> Result<MergeReport, CoordError> {
        let span = merge_span(&mut self.ids, self.clock.now(), config, c, result, outcome);
        self.record(vec![span])?;
        Ok(MergeReport::new(&c.feature, &c.agent, result, outcome))
    }

    /// Records that the merge starts, with the base branch's tip it starts from (what recovery
    /// needs after a crash), then merges. An error of the merge itself is its outcome, recorded
    /// as `failed`, rather than the cycle's error: the cycle goes on with the next feature.
    fn attempt_merge(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        c: &MergeCandidate,
        tested: Option<&Tested>,
    ) -> Result<git::MergeOutcome, CoordError> {
        let from = workspace.branch_tip(&config.base_branch)?;
        let started = self.started_span(config, c, &from);
        self.record(vec![started])?;
        let merged = match tested {
            Some(t) => workspace.land(&c.branch, (&t.base, &t.commit, t.kind)),
            None => workspace.merge(&c.branch, &c.message()),
        };
        let outcome = merged.unwrap_or_else(|e| git::MergeOutcome::Failed {
            reason: format!("the merge could not be attempted: {e}"),
        });
        // Merged on a remote's base and not here yet: the next round brings it here.
        if let git::MergeOutcome::Merged { commit, .. } = &outcome
            && workspace.branch_tip(&config.base_branch).ok().as_ref() != Some(commit)
        {
            self.sync_due = true;
        }
        Ok(outcome)
    }

    /// The span that records a merge of `c` starting from the base's tip `from`.
    pub(super) fn started_span(&mut self, config: &Config, c: &MergeCandidate, from: &str) -> Span {
        emit::merge(
            &mut self.ids,
            self.clock.now(),
            &emit::MergeSpan {
                result: MergeResult::Started,
                agent_id: &c.agent,
                feature: &c.feature,
                branch: &c.branch,
                base: &config.base_branch,
                kind: None,
                commit: None,
                conflicts: &[],
                reason: None,
                from: Some(from),
            },
        )
    }

    /// Removes a merged feature's worktree (kept if it holds uncommitted work), or a remote
    /// agent's branch, and records what became of it: `removed` or `kept`.
    pub(super) fn remove_merged_worktree(
        &mut self,
        workspace: &dyn Workspace,
        c: &MergeCandidate,
        path: &str,
    ) -> Result<WorktreeAction, CoordError> {
        let removal = match &c.remote {
            Some(_) => workspace.remove_remote_branch(Path::new(path), &c.branch),
            None => workspace.remove_worktree(Path::new(path), &c.branch),
        };
        let (action, note) = match removal {
            Ok(git::Removal::Removed) => (WorktreeAction::Removed, None),
            Ok(git::Removal::Kept { reason }) => (WorktreeAction::Kept, Some(reason)),
            Err(e) => (
                WorktreeAction::Kept,
                Some(format!("removing it failed: {e}")),
            ),
        };
        let s = emit::worktree(
            &mut self.ids,
            self.clock.now(),
            &emit::WorktreeSpan {
                action,
                agent_id: &c.agent,
                feature: &c.feature,
                path,
                branch: &c.branch,
                error: note.as_deref(),
                remote_url: c.remote.as_ref().map(|r| r.url.as_str()),
            },
        );
        self.record(vec![s])?;
        Ok(action)
    }
}
