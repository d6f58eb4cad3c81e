//! One coordination cycle: recover, expire leases, decide the assignments and record them,
//! create their worktrees and record the outcomes, merge what is submitted, record the health.

use std::path::Path;

use crate::emit;
use crate::git;
use crate::model::{Span, UnixNanos};
use crate::names;
use crate::policy::{self, Assignment, Decision};
use crate::reducer::{Config, WorktreeStatus};
use crate::status;

use super::{CoordError, Coordinator, MergeReport, ours};

/// One assignment as carried out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    pub agent_id: String,
    pub feature_name: String,
    pub match_score: f64,
    pub reasons: Vec<String>,
    pub worktree_path: String,
    pub branch_name: String,
    /// created, reused or create_failed
    pub worktree_action: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CycleReport {
    pub cycle_number: u64,
    pub assignments: Vec<Placed>,
    pub features_waiting: usize,
    pub merges: Vec<MergeReport>,
    /// Agents that lost their features to an expired lease in this cycle.
    pub leases_expired: Vec<String>,
    /// What recovery found and did before the cycle (drift, effects a crash cut off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<String>,
}

/// An assignment recorded, with where its worktree goes.
struct Planned {
    assignment: Assignment,
    path: String,
    branch: String,
}

impl Coordinator {
    /// A cycle only when the policy would assign something: automatic cycles leave no trace
    /// when there is nothing to decide.
    pub fn cycle_if_useful(&mut self) -> Result<Option<CycleReport>, CoordError> {
        if self.cycle_is_useful()? {
            self.cycle().map(Some)
        } else {
            Ok(None)
        }
    }

    /// One coordination cycle: decide, record the decisions, create the worktrees, record the
    /// outcomes.
    pub fn cycle(&mut self) -> Result<CycleReport, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let recovered = self.recover()?;
        let expired = self.expire_leases(&config)?;
        self.release_abandoned(&config)?;
        let decision = self.decide();
        let cycle_number = self.view.read().counters.cycles + 1;
        let planned = self.record_decision(&config, &decision, cycle_number)?;
        crate::fault::point(crate::fault::AFTER_ASSIGNMENT_DECISION);
        let assignments = self.place(&config, planned)?;
        let merges = self.merge_submitted(&config)?;
        let health = self.health_span(self.clock.now());
        self.record(vec![health])?;
        Ok(CycleReport {
            cycle_number,
            assignments,
            features_waiting: decision.features_waiting,
            merges,
            leases_expired: expired,
            recovered,
        })
    }

    /// Records the cycle and its assignments, each with the worktree and branch it will get.
    fn record_decision(
        &mut self,
        config: &Config,
        decision: &Decision,
        cycle_number: u64,
    ) -> Result<Vec<Planned>, CoordError> {
        let now = self.clock.now();
        let mut planned = Vec::with_capacity(decision.assignments.len());
        let mut spans = vec![emit::cycle(
            &mut self.ids,
            now,
            cycle_number,
            decision.assignments.len(),
            decision.features_waiting,
        )];
        for a in &decision.assignments {
            let Some((path, branch)) = self.placement(config, &a.feature_name) else {
                continue;
            };
            spans.push(emit::assignment(
                &mut self.ids,
                now,
                &emit::AssignmentSpan {
                    agent_id: &a.agent_id,
                    feature: &a.feature_name,
                    priority: a.priority,
                    score: a.score,
                    reasons: &a.reasons,
                    worktree_path: &path,
                    branch: &branch,
                },
            ));
            planned.push(Planned {
                assignment: a.clone(),
                path,
                branch,
            });
        }
        self.record(spans)?;
        Ok(planned)
    }

    /// The worktree path and branch of `feature`. A feature placed before keeps its worktree,
    /// so the next agent continues the work.
    fn placement(&self, config: &Config, feature: &str) -> Option<(String, String)> {
        let (known_path, known_branch) = {
            let view = self.view.read();
            let f = view.features.get(feature);
            (
                f.and_then(|f| f.worktree_path.clone()),
                f.and_then(|f| f.branch_name.clone()),
            )
        };
        let path = match known_path.filter(|p| ours(config, p)) {
            Some(p) => p,
            None => match names::worktree_path(Path::new(&config.worktrees_dir), feature) {
                Ok(p) => p.to_string_lossy().into_owned(),
                // The reducer admits only valid names; a queue entry that is not is skipped.
                Err(e) => {
                    tracing::error!("not placing {feature}: {e}");
                    return None;
                }
            },
        };
        let branch = known_branch.unwrap_or_else(|| format!("spanfold/{feature}"));
        Some((path, branch))
    }

    /// Creates (or reuses) the planned worktrees and records the outcomes.
    fn place(&mut self, config: &Config, planned: Vec<Planned>) -> Result<Vec<Placed>, CoordError> {
        let mut placed = Vec::with_capacity(planned.len());
        let mut outcomes = Vec::with_capacity(planned.len() + 1);
        for Planned {
            assignment: a,
            path,
            branch,
        } in planned
        {
            let result = git::ensure_worktree(
                Path::new(&config.repo),
                &config.base_branch,
                &branch,
                Path::new(&path),
                &a.agent_id,
            );
            let (action, error) = match &result {
                Ok(o) if o.reused => ("reused", None),
                Ok(_) => ("created", None),
                Err(e) => ("create_failed", Some(e.to_string())),
            };
            outcomes.push(emit::worktree(
                &mut self.ids,
                self.clock.now(),
                &emit::WorktreeSpan {
                    action,
                    agent_id: &a.agent_id,
                    feature: &a.feature_name,
                    path: &path,
                    branch: &branch,
                    error: error.as_deref(),
                },
            ));
            placed.push(Placed {
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                match_score: a.score,
                reasons: a.reasons,
                worktree_path: path,
                branch_name: branch,
                worktree_action: action.to_owned(),
                error,
            });
        }
        self.record(outcomes)?;
        Ok(placed)
    }

    /// Whether a cycle now would change anything: an assignment to make, or a submitted
    /// feature whose merge can proceed (or waits for a new reason).
    fn cycle_is_useful(&mut self) -> Result<bool, CoordError> {
        let Ok(config) = self.config() else {
            return Ok(false);
        };
        if !policy::expired_leases(&self.view.read(), self.clock.now()).is_empty()
            || self
                .view
                .read()
                .worktrees
                .values()
                .any(|w| w.status == WorktreeStatus::Abandoned && w.locked)
        {
            return Ok(true);
        }
        let seq = self.view.read().as_of.seq;
        let decision = self.decide();
        let assigns = !decision.assignments.is_empty();
        self.keep_decision(seq, decision);
        if assigns {
            return Ok(true);
        }
        let submitted = self.submitted();
        if submitted.is_empty() {
            return Ok(false);
        }
        let blocker = git::merge_blocker(Path::new(&config.repo), &config.base_branch)?;
        // A candidate whose gate is still running has nothing to decide yet.
        Ok(submitted.iter().any(|c| {
            !self.gate_busy(&c.feature)
                && (blocker.is_none() || c.note.as_deref() != blocker.as_deref())
        }))
    }

    /// The health span: the status's summary of agents and features, at `time`.
    fn health_span(&mut self, time: UnixNanos) -> Span {
        let st = status::build(&self.view.read(), &status::StatusOptions::default());
        let c = st.coordination_status;
        emit::health(
            &mut self.ids,
            time,
            &emit::Health {
                total_agents: c.total_agents,
                active_agents: c.active_agents,
                health_score: c.coordination_health,
                features_completed: c.features_completed,
                features_in_queue: c.features_in_queue,
            },
        )
    }
}
