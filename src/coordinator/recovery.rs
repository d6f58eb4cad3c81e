//! Reclaiming the log's promises after an interruption: worktrees git lost or never got, merges
//! a crash cut off, and features whose agents went silent (leases) or let go of them.

use std::path::Path;

use crate::emit;
use crate::git;
use crate::plan;
use crate::reducer::{Config, FeatureStatus, WorktreeStatus};

use super::{CoordError, Coordinator, ours};

/// A worktree as the log knows it, with the agent that holds (or held) it.
struct HeldWorktree {
    path: String,
    branch: String,
    feature: String,
    agent: String,
}

impl Coordinator {
    /// Makes git and the view agree again, recording what it finds. A held feature whose
    /// worktree is gone (removed by hand) is drift: recorded as `missing`. A held feature without
    /// a worktree — drifted, or assigned just before a crash that cut off the worktree's
    /// creation — gets it (re)created from its branch, recorded with the reason.
    pub fn recover(&mut self) -> Result<Vec<String>, CoordError> {
        self.writable()?;
        let Ok(config) = self.config() else {
            return Ok(Vec::new());
        };
        let repo = Path::new(&config.repo);
        let mut notes = self.complete_interrupted_checkouts(&config, repo)?;
        let drifted = self.record_drift(repo, &mut notes)?;
        // After the drift is recorded: every held feature that now lacks a worktree.
        self.build_missing_worktrees(&config, repo, &drifted, &mut notes)?;
        Ok(notes)
    }

    /// A merge that started and has no outcome: if the base branch moved but the main checkout
    /// stayed behind, finish the checkout; the next merge attempt then finds the feature already
    /// merged and records it.
    fn complete_interrupted_checkouts(
        &self,
        config: &Config,
        repo: &Path,
    ) -> Result<Vec<String>, CoordError> {
        let interrupted: Vec<(String, String)> = self
            .view
            .read()
            .features
            .values()
            .filter(|f| f.status == FeatureStatus::Merging)
            .filter_map(|f| Some((f.name.clone(), f.merge_from.clone()?)))
            .collect();
        let mut notes = Vec::new();
        for (feature, from) in interrupted {
            if git::complete_checkout(repo, &config.base_branch, &from)? {
                notes.push(format!(
                    "{feature}: the merge was cut off after moving {}; the main checkout was brought up to date",
                    config.base_branch
                ));
            }
        }
        Ok(notes)
    }

    /// Records as `missing` every active worktree git no longer has registered (removed by
    /// hand), and returns their paths.
    fn record_drift(
        &mut self,
        repo: &Path,
        notes: &mut Vec<String>,
    ) -> Result<Vec<String>, CoordError> {
        let registered = git::worktree_paths(repo)?;
        let drifted: Vec<HeldWorktree> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status == WorktreeStatus::Active)
            .filter(|w| {
                // Compared canonically: the configured directory may sit behind a symlink.
                match std::fs::canonicalize(&w.path) {
                    Ok(real) => !registered.contains(&real.to_string_lossy().into_owned()),
                    Err(_) => true,
                }
            })
            .map(|w| HeldWorktree {
                path: w.path.clone(),
                branch: w.branch_name.clone(),
                feature: w.feature_name.clone(),
                agent: w.agent_id.clone().unwrap_or_default(),
            })
            .collect();
        if !drifted.is_empty() {
            let spans = drifted
                .iter()
                .map(|w| {
                    notes.push(format!(
                        "worktree {} of {} was removed by hand",
                        w.path, w.feature
                    ));
                    emit::worktree(
                        &mut self.ids,
                        self.clock.now(),
                        &emit::WorktreeSpan {
                            action: "missing",
                            agent_id: &w.agent,
                            feature: &w.feature,
                            path: &w.path,
                            branch: &w.branch,
                            error: Some("removed by hand (found on recovery)"),
                        },
                    )
                })
                .collect();
            self.record(spans)?;
        }
        Ok(drifted.into_iter().map(|w| w.path).collect())
    }

    /// Held features whose worktree is not active: the ones that must be (re)built.
    fn unbuilt(&self, config: &Config) -> Vec<HeldWorktree> {
        let view = self.view.read();
        view.features
            .values()
            .filter(|f| f.status.is_in_progress())
            .filter_map(|f| {
                let path = f.worktree_path.clone().filter(|p| ours(config, p))?;
                let agent = f.assigned_agent.clone()?;
                let built = view
                    .worktrees
                    .get(&path)
                    .is_some_and(|w| w.status == WorktreeStatus::Active);
                (!built).then(|| {
                    let branch = f
                        .branch_name
                        .clone()
                        .unwrap_or_else(|| format!("spanfold/{}", f.name));
                    HeldWorktree {
                        path,
                        branch,
                        feature: f.name.clone(),
                        agent,
                    }
                })
            })
            .collect()
    }

    /// (Re)creates the worktree of every held feature that lacks one, recording each outcome
    /// with why it was needed: drift (`drifted` holds the paths removed by hand) or a crash.
    fn build_missing_worktrees(
        &mut self,
        config: &Config,
        repo: &Path,
        drifted: &[String],
        notes: &mut Vec<String>,
    ) -> Result<(), CoordError> {
        let mut outcomes = Vec::new();
        for w in self.unbuilt(config) {
            let why = if drifted.contains(&w.path) {
                "recreated from its branch after it was removed by hand"
            } else {
                "created on recovery: the assignment was recorded but not its worktree (a crash in between)"
            };
            notes.push(format!("{}: {why}", w.feature));
            let result = git::ensure_worktree(
                repo,
                &config.base_branch,
                &w.branch,
                Path::new(&w.path),
                &w.agent,
            );
            let (action, note) = match &result {
                Ok(o) if o.reused => ("reused", why.to_owned()),
                Ok(_) => ("created", why.to_owned()),
                Err(e) => ("create_failed", e.to_string()),
            };
            outcomes.push(emit::worktree(
                &mut self.ids,
                self.clock.now(),
                &emit::WorktreeSpan {
                    action,
                    agent_id: &w.agent,
                    feature: &w.feature,
                    path: &w.path,
                    branch: &w.branch,
                    error: Some(&note),
                },
            ));
        }
        if !outcomes.is_empty() {
            self.record(outcomes)?;
        }
        Ok(())
    }

    /// Silent agents lose their features: the decision is recorded, then their worktrees are
    /// unlocked (kept, with the work).
    pub(super) fn expire_leases(&mut self, config: &Config) -> Result<Vec<String>, CoordError> {
        let now = self.clock.now();
        let expired = plan::plan_leases(&self.view.read(), now);
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let spans = expired
            .iter()
            .map(|v| emit::lease_expired(&mut self.ids, now, &v.agent_id, v.silent_seconds))
            .collect();
        self.record(spans)?;
        self.release_abandoned(config)?;
        Ok(expired.into_iter().map(|v| v.agent_id).collect())
    }

    /// Unlocks the worktrees of features let go of (cancelled, requeued) now, rather than at
    /// the next cycle: what `cancel-feature` promises without a server.
    pub fn release_now(&mut self) -> Result<(), CoordError> {
        let config = self.config()?;
        self.release_abandoned(&config)
    }

    /// Unlocks worktrees whose feature was let go of (reset, lease, cancel) and records it. They
    /// keep their work; the next agent to get the feature locks it again.
    pub(super) fn release_abandoned(&mut self, config: &Config) -> Result<(), CoordError> {
        let releases = plan::plan_releases(&self.view.read());
        let (_, outcomes) = self.carry_out(config, &releases);
        if !outcomes.is_empty() {
            self.record(outcomes)?;
        }
        Ok(())
    }
}
