//! The merge queue's batches. With `spanfold.mergeBatch N` (N ≥ 2) and a merge gate, up to N
//! features at the head of the queue are merged one after another onto the base tip in the
//! object database and the gate runs once, on the result. A pass moves the base to exactly that
//! commit (compare-and-swap) and every feature of the batch is merged. A failure halves the
//! next batch, and so on down to one feature at a time (bors's bisection): the features that
//! pass land, and the one that breaks is tested alone and goes back to its agent with the
//! gate's output. Every step is a `coordination.feature_merge` span: the gate started on the
//! batch, the batch's failure, each merge.

use std::path::{Path, PathBuf};

use crate::fact::{MergeResult, WorktreeAction};
use crate::git;
use crate::plan::MergeCandidate;
use crate::reducer::Config;

use super::execute::Workspace;
use super::gate::{GateCommand, RunningGate, Tested, gates_dir, short};
use super::merge::{MergeReport, merge_span};
use super::{CoordError, Coordinator};

/// The batch's key among the running gates: no feature is named with a `+`.
pub(super) const BATCH: &str = "+batch";

/// `spanfold.mergeBatch`: how many features a batch takes (1, no batches, unless set).
pub(super) fn batch_size(workspace: &dyn Workspace) -> Result<usize, CoordError> {
    Ok(workspace
        .config_value("spanfold.mergeBatch")?
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1))
}

impl Coordinator {
    /// Takes the head of the queue as a batch when batches are on: picks up a batch gate's
    /// result, then starts the next batch. True while a batch's gate runs (the round merges
    /// nothing one at a time); false when this round goes one feature at a time.
    pub(super) fn merge_batch(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        gate: &GateCommand,
        size: usize,
        reports: &mut Vec<MergeReport>,
    ) -> Result<bool, CoordError> {
        if self.gates.contains_key(BATCH)
            && self.batch_result(config, workspace, &self.mergeable(), reports)?
        {
            return Ok(true);
        }
        // What the batch's result left waiting.
        let candidates = self.mergeable();
        if candidates.is_empty() {
            self.gates.batch_limit = None;
        }
        let limit = self.gates.batch_limit.unwrap_or(size).min(size);
        // After a crash mid-merge, the one-at-a-time path completes the interrupted merge.
        if limit < 2 || candidates.iter().any(|c| c.interrupted) {
            return Ok(false);
        }
        if workspace.merge_blocker()?.is_some() {
            return Ok(false);
        }
        let mut members = Vec::new();
        for c in &candidates {
            if members.len() == limit {
                break;
            }
            let worktree = c.worktree.as_deref().map(Path::new);
            match workspace.submission_problem(worktree, &c.branch)? {
                Some(reason) => {
                    let outcome = git::MergeOutcome::Deferred { reason };
                    reports.push(self.record_merge(config, c, MergeResult::Returned, &outcome)?);
                }
                None => members.push(c.clone()),
            }
        }
        if members.len() < 2 {
            return Ok(false);
        }
        let branches: Vec<(&str, String)> = members
            .iter()
            .map(|c| (c.branch.as_str(), c.message()))
            .collect();
        let trial = workspace.trial_batch(&branches)?;
        // Those that conflict with the ones before them are merged alone, later, where their
        // conflict is said.
        members.retain(|c| trial.steps.iter().any(|s| s.branch == c.branch));
        if members.len() < 2 {
            return Ok(false);
        }
        self.start_batch(config, workspace, gate, &members, trial)?;
        Ok(true)
    }

    /// A batch's gate: true while it runs. Done, its result is acted on (the batch landed, or
    /// the next batch halved); a gate of tips that changed since is dropped. Either way the
    /// queue goes on at once.
    fn batch_result(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        candidates: &[MergeCandidate],
        reports: &mut Vec<MergeReport>,
    ) -> Result<bool, CoordError> {
        let Some(running) = self.gates.get(BATCH) else {
            return Ok(false);
        };
        let members: Vec<MergeCandidate> = running
            .members
            .iter()
            .filter_map(|m| candidates.iter().find(|c| &c.feature == m).cloned())
            .collect();
        let current = batch_tips(config, workspace, &members)?;
        if members.len() != running.members.len() || current != running.tips {
            self.gates.remove(BATCH);
            return Ok(false);
        }
        if !running.handle.is_finished() && self.background_gates {
            return Ok(true);
        }
        let Some(running) = self.gates.remove(BATCH) else {
            return Ok(false);
        };
        let (result, _) = running.handle.join().unwrap_or_else(|_| {
            let failed = git::GateResult {
                passed: false,
                summary: "the merge gate stopped unexpectedly".into(),
            };
            (failed, None)
        });
        let trial = running.batch.unwrap_or_else(|| git::BatchTrial {
            base: running.tested.base.clone(),
            steps: Vec::new(),
            left_out: Vec::new(),
        });
        if result.passed {
            self.land_batch(config, workspace, &members, &trial, reports)?;
        } else {
            // Halved until the feature that breaks is tested alone.
            self.gates.batch_limit = Some((members.len() / 2).max(1));
            let names: Vec<&str> = members.iter().map(|c| c.feature.as_str()).collect();
            let reason = format!(
                "{} (tested a batch of {}: {}, merged with {} at {}); the queue now tests fewer at a time to find the one that breaks",
                result.summary,
                members.len(),
                names.join(", "),
                config.base_branch,
                short(&trial.base)
            );
            for c in &members {
                let outcome = git::MergeOutcome::Deferred {
                    reason: reason.clone(),
                };
                reports.push(self.record_merge(config, c, MergeResult::Deferred, &outcome)?);
            }
        }
        Ok(false)
    }

    /// Moves the base to the batch's last commit, which passed, and records every member as
    /// merged (each merge's start first, for recovery), then removes their worktrees.
    fn land_batch(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        members: &[MergeCandidate],
        trial: &git::BatchTrial,
        reports: &mut Vec<MergeReport>,
    ) -> Result<(), CoordError> {
        let Some(last) = trial.steps.last() else {
            return Ok(());
        };
        let mut started = Vec::new();
        for c in members {
            started.push(self.started_span(config, c, &trial.base));
        }
        self.record(started)?;
        crate::fault::point(crate::fault::BATCH_STARTED);
        let landed = workspace
            .land(&last.branch, (&trial.base, trial.tip(), last.kind))
            .unwrap_or_else(|e| git::MergeOutcome::Failed {
                reason: format!("the merge could not be attempted: {e}"),
            });
        for c in members {
            let outcome = match &landed {
                git::MergeOutcome::Merged { commit, .. } => {
                    let kind = trial
                        .steps
                        .iter()
                        .find(|s| s.branch == c.branch)
                        .map_or(last.kind, |s| s.kind);
                    git::MergeOutcome::Merged {
                        kind,
                        commit: commit.clone(),
                    }
                }
                other => other.clone(),
            };
            let result = super::merge::result_of(&outcome);
            let mut report = self.record_merge(config, c, result, &outcome)?;
            if let (git::MergeOutcome::Merged { .. }, Some(path)) = (&outcome, c.place()) {
                let action: WorktreeAction = self.remove_merged_worktree(workspace, c, path)?;
                report.worktree = Some(action);
            }
            reports.push(report);
        }
        Ok(())
    }

    /// Records that the batch's gate starts, for each member, then starts it on its own
    /// thread in a temporary worktree of the batch's last commit.
    fn start_batch(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        gate: &GateCommand,
        members: &[MergeCandidate],
        trial: git::BatchTrial,
    ) -> Result<(), CoordError> {
        let names: Vec<&str> = members.iter().map(|c| c.feature.as_str()).collect();
        let reason = format!(
            "running the merge gate `{}` on a batch of {} ({}) merged with {} at {}",
            gate.cmd,
            members.len(),
            names.join(", "),
            config.base_branch,
            short(&trial.base)
        );
        let mut spans = Vec::new();
        for c in members {
            let outcome = git::MergeOutcome::Deferred {
                reason: reason.clone(),
            };
            let now = self.clock.now();
            spans.push(merge_span(
                &mut self.ids,
                now,
                config,
                c,
                MergeResult::GateStarted,
                &outcome,
            ));
        }
        self.record(spans)?;
        // A member's own gate tested less than the batch does.
        self.gates.retain(|k, _| !names.contains(&k.as_str()));
        let tips = batch_tips(config, workspace, members)?;
        let (cmd, timeout, copy) = (gate.cmd.clone(), gate.timeout, gate.copy.clone());
        let repo = PathBuf::from(&config.repo);
        let dir = gates_dir(config).join(format!("{}-batch", std::process::id()));
        let commit = trial.tip().to_owned();
        let handle = std::thread::spawn(move || {
            let copy: Vec<&str> = git::copy_patterns(&copy);
            let at = git::GateCheckout {
                repo_dir: &repo,
                dir: &dir,
                commit: &commit,
                copy: &copy,
            };
            (git::run_gate_on(&at, &cmd, timeout), None)
        });
        let last = trial
            .steps
            .last()
            .map_or(git::MergeKind::MergeCommit, |s| s.kind);
        let tested = Tested {
            base: trial.base.clone(),
            commit: trial.tip().to_owned(),
            kind: last,
        };
        self.gates.insert(
            BATCH.to_owned(),
            RunningGate {
                handle,
                tips,
                tested,
                members: names.iter().map(|n| (*n).to_owned()).collect(),
                batch: Some(trial),
            },
        );
        Ok(())
    }
}

/// The tips a batch is tested on: every member's branch, then the base's.
fn batch_tips(
    config: &Config,
    workspace: &dyn Workspace,
    members: &[MergeCandidate],
) -> Result<String, CoordError> {
    let mut tips = Vec::with_capacity(members.len() + 1);
    for c in members {
        tips.push(workspace.branch_tip(&c.branch)?);
    }
    tips.push(workspace.branch_tip(&config.base_branch)?);
    Ok(tips.join(" "))
}
