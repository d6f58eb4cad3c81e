//! The conflict radar in the cycle: when an active feature's branch or the base branch gained a
//! commit since the last look, every active branch is merged in memory with the base tip and
//! with each other branch it shares a changed path with (`git::Radar`), and a
//! `coordination.conflict_forecast` is recorded for each pair whose forecast changed. Reading
//! the tips is all a look costs when nothing moved (and, with remote agents at work, one look
//! at the remote, their branches fetched where they moved there).

use std::path::Path;

use crate::fact::{ConflictForecast, Fact, ForecastKind};
use crate::git::{self, CommitId, PairForecast};
use crate::model::Span;
use crate::reducer::{Config, Risk, View, WorktreeStatus};

use super::{CoordError, Coordinator};

/// The radar and what it last looked at: the base tip and each active (feature, tip).
pub struct RadarState {
    radar: git::Radar,
    seen: Option<(CommitId, Vec<(String, CommitId)>)>,
}

impl Coordinator {
    /// Looks at the branches and records the forecasts that changed. The radar is advice: a
    /// repository it cannot read is logged and the cycle goes on.
    pub(super) fn record_forecasts(&mut self, config: &Config) -> Result<(), CoordError> {
        // A test's stand-in workspace has no branches to merge; a kept replay records nothing.
        if self.workspace.is_some() || self.writable().is_err() {
            return Ok(());
        }
        let active = active_branches(&self.view.read());
        if active.is_empty() && self.view.read().risks.is_empty() {
            return Ok(());
        }
        self.refresh_remote_branches(config);
        let pass = match self.radar_pass(config, &active) {
            Ok(Some(pass)) => pass,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!("conflict radar: {e}");
                return Ok(());
            }
        };
        let spans = {
            let view = self.view.read();
            changed_forecasts(&view, &pass)
                .into_iter()
                .map(|f| {
                    let (trace, span) = (self.ids.trace_id(), self.ids.span_id());
                    Fact::ConflictForecast(f).to_span(trace, span, self.clock.now())
                })
                .collect::<Vec<Span>>()
        };
        if spans.is_empty() {
            return Ok(());
        }
        self.record(spans)
    }

    /// Remote agents' active branches brought here where they moved on the remote (one look
    /// at it per cycle), so the radar forecasts with their work before it is submitted. Advice
    /// like the radar: a remote that does not answer is logged.
    fn refresh_remote_branches(&self, config: &Config) {
        let branches: Vec<String> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status == WorktreeStatus::Active && w.remote_url.is_some())
            .map(|w| w.branch_name.clone())
            .collect();
        if branches.is_empty() {
            return;
        }
        let names: Vec<&str> = branches.iter().map(String::as_str).collect();
        if let Err(e) = git::refresh_branches(Path::new(&config.repo), &config.base_branch, &names)
        {
            tracing::warn!("conflict radar: remote agents' branches not fetched: {e}");
        }
    }

    /// The radar's pass over `active` (feature, branch), or `None` when no tip moved since the
    /// last one.
    fn radar_pass(
        &mut self,
        config: &Config,
        active: &[(String, String)],
    ) -> Result<Option<Pass>, git::GitError> {
        if self.radar.is_none() {
            self.radar = Some(RadarState {
                radar: git::Radar::open(Path::new(&config.repo))?,
                seen: None,
            });
        }
        let Some(state) = self.radar.as_mut() else {
            return Ok(None);
        };
        let mut names: Vec<&str> = vec![config.base_branch.as_str()];
        names.extend(active.iter().map(|(_, branch)| branch.as_str()));
        let tips = state.radar.tips(&names);
        let Some(base) = tips[0] else {
            return Ok(None);
        };
        let branches: Vec<(String, CommitId)> = active
            .iter()
            .zip(&tips[1..])
            .filter_map(|((feature, _), tip)| Some((feature.clone(), (*tip)?)))
            .collect();
        let snapshot = (base, branches);
        if state.seen.as_ref() == Some(&snapshot) {
            return Ok(None);
        }
        let pairs = state.radar.pass(base, &snapshot.1)?;
        let pass = Pass {
            base: base.to_string(),
            tips: snapshot
                .1
                .iter()
                .map(|(f, tip)| (f.clone(), tip.to_string()))
                .collect(),
            pairs,
        };
        state.seen = Some(snapshot);
        Ok(Some(pass))
    }
}

/// One pass's forecasts, with the tips (hex) they were made on.
struct Pass {
    base: String,
    /// (feature, tip) of every branch the pass looked at.
    tips: Vec<(String, String)>,
    pairs: Vec<PairForecast>,
}

impl Pass {
    fn tip(&self, feature: &str) -> &str {
        self.tips
            .iter()
            .find(|(f, _)| f == feature)
            .map_or("", |(_, tip)| tip.as_str())
    }

    /// The pass's own copy of a feature's name.
    fn name(&self, feature: &str) -> &str {
        self.tips
            .iter()
            .find(|(f, _)| f == feature)
            .map_or("", |(f, _)| f.as_str())
    }

    /// The commit the other side of a pair was at: another feature's tip, or the base tip.
    fn other_tip(&self, other: Option<&str>) -> &str {
        other.map_or(self.base.as_str(), |o| self.tip(o))
    }
}

/// Features whose branches the radar watches: held by an agent and not finished, with a branch.
fn active_branches(view: &View) -> Vec<(String, String)> {
    view.features
        .values()
        .filter(|f| f.status.is_in_progress())
        .filter_map(|f| Some((f.name.clone(), f.branch_name.clone()?)))
        .collect()
}

/// The forecasts to record: each pair of the pass whose forecast differs from the view's (a
/// missing risk is clear), and a clear one for each risk of the view between two features the
/// pass looked at that it no longer lists (they no longer share a path).
fn changed_forecasts<'p>(view: &View, pass: &'p Pass) -> Vec<ConflictForecast<'p>> {
    let mut out = Vec::new();
    for p in &pass.pairs {
        let known = view
            .risks
            .iter()
            .find(|r| r.feature == p.feature && r.other == p.other);
        let same = match known {
            None => p.forecast.kind == ForecastKind::Clear,
            Some(r) => {
                r.kind() == p.forecast.kind
                    && r.paths == p.forecast.paths
                    && r.hunks == p.forecast.hunks
            }
        };
        if !same {
            out.push(ConflictForecast {
                feature_name: &p.feature,
                other_feature: p.other.as_deref(),
                kind: p.forecast.kind,
                paths: p.forecast.paths.iter().map(String::as_str).collect(),
                hunks: p.forecast.hunks.iter().map(String::as_str).collect(),
                commit: pass.tip(&p.feature),
                other_commit: pass.other_tip(p.other.as_deref()),
            });
        }
    }
    for r in &view.risks {
        let listed = pass
            .pairs
            .iter()
            .any(|p| p.feature == r.feature && p.other == r.other);
        if listed || !looked_at(pass, r) {
            continue;
        }
        out.push(ConflictForecast {
            feature_name: pass.name(&r.feature),
            other_feature: r.other.as_deref().map(|o| pass.name(o)),
            kind: ForecastKind::Clear,
            paths: Vec::new(),
            hunks: Vec::new(),
            commit: pass.tip(&r.feature),
            other_commit: pass.other_tip(r.other.as_deref().map(|o| pass.name(o))),
        });
    }
    out
}

/// Whether the pass saw both sides of `r` (a feature it did not see is not active: the fold
/// dropped or will drop its risks).
fn looked_at(pass: &Pass, r: &Risk) -> bool {
    let seen = |name: &str| pass.tips.iter().any(|(f, _)| f == name);
    seen(&r.feature) && r.other.as_deref().is_none_or(seen)
}
