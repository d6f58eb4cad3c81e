//! Reclaiming the log's promises after an interruption: worktrees git lost or never got, merges
//! a crash cut off, and features whose agents went silent (leases) or let go of them.

use crate::emit;
use crate::fact::WorktreeAction;
use crate::plan::{self, Effect};
use crate::reducer::Config;

use super::{CoordError, Coordinator};

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
        let mut notes = self.complete_interrupted_checkouts(&config)?;
        let workspace = self.workspace(&config);
        let recovery = {
            let view = self.view.read();
            let registered = workspace.registered(&plan::active_worktrees(&view))?;
            plan::plan_recovery(&view, &config, &registered)
        };
        self.record_drift(&recovery.missing, &mut notes)?;
        // After the drift is recorded: every held feature that now lacks a worktree.
        for effect in &recovery.rebuild {
            match effect {
                Effect::RebuildWorktree { feature, why, .. }
                | Effect::PushBranch {
                    feature,
                    why: Some(why),
                    ..
                } => notes.push(format!("{feature}: {}", why.note())),
                _ => {}
            }
        }
        let (_, outcomes) = self.carry_out(&config, &recovery.rebuild);
        if !outcomes.is_empty() {
            self.record(outcomes)?;
        }
        Ok(notes)
    }

    /// A merge that started and has no outcome: if the base branch moved but the main checkout
    /// stayed behind, finish the checkout; the next merge attempt then finds the feature already
    /// merged and records it. The same for a move the log has no record of (the base brought
    /// in step with a remote's), found by the announcement every move of the base leaves in
    /// the git directory until the checkout has followed (`git::last_move`).
    fn complete_interrupted_checkouts(&self, config: &Config) -> Result<Vec<String>, CoordError> {
        let interrupted = plan::plan_interrupted(&self.view.read());
        let workspace = self.workspace(config);
        let mut notes = Vec::new();
        for cut in interrupted {
            if workspace.complete_checkout(&cut.from)? {
                notes.push(format!(
                    "{}: the merge was cut off after moving {}; the main checkout was brought up to date",
                    cut.feature, config.base_branch
                ));
            }
        }
        if let Some(from) = workspace.last_move()? {
            if workspace.complete_checkout(&from)? {
                notes.push(format!(
                    "{} was moved from {from} and the main checkout was left behind (cut off); it was brought up to date",
                    config.base_branch
                ));
            }
            // Completed, or not exactly where the move left it (someone's work): done either way.
            workspace.forget_move()?;
        }
        Ok(notes)
    }

    /// Records as `missing` every active worktree git no longer has registered (removed by
    /// hand).
    fn record_drift(
        &mut self,
        missing: &[plan::Held],
        notes: &mut Vec<String>,
    ) -> Result<(), CoordError> {
        if missing.is_empty() {
            return Ok(());
        }
        let spans = missing
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
                        action: WorktreeAction::Missing,
                        agent_id: &w.agent,
                        feature: &w.feature,
                        path: &w.path,
                        branch: &w.branch,
                        error: Some("removed by hand (found on recovery)"),
                        remote_url: None,
                    },
                )
            })
            .collect();
        self.record(spans)
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
