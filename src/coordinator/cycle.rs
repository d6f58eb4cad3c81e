//! One coordination cycle: recover, expire leases, plan the assignments (`plan`, pure) and
//! record the decisions, carry out the plan's worktree effects and record the outcomes, merge
//! what is submitted, record the health.

use std::path::Path;

use crate::emit;
use crate::fact::WorktreeAction;
use crate::git;
use crate::model::{Span, UnixNanos};
use crate::plan::{self, CyclePlan};
use crate::reducer::Config;
use crate::status;

use super::{CoordError, Coordinator, MergeReport};

/// One assignment as carried out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    pub agent_id: String,
    pub feature_name: String,
    pub match_score: f64,
    pub reasons: Vec<String>,
    pub worktree_path: String,
    pub branch_name: String,
    /// created, reused or create_failed; for a remote agent pushed or push_failed
    pub worktree_action: WorktreeAction,
    pub error: Option<String>,
    /// For a remote agent: the remote its branch was pushed to (nothing is made at
    /// `worktree_path` then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
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

impl Coordinator {
    /// A cycle only when the policy would assign something: automatic cycles leave no trace
    /// when there is nothing to decide.
    pub fn cycle_if_useful(&mut self) -> Result<Option<CycleReport>, CoordError> {
        if self.cycle_is_useful()? {
            self.cycle().map(Some)
        } else {
            // No cycle, but a branch may have gained a commit: the radar looks (reading the
            // tips is all it costs when none did).
            if let Ok(config) = self.config() {
                self.record_forecasts(&config)?;
            }
            Ok(None)
        }
    }

    /// One coordination cycle: plan the assignments, record the decisions, create the worktrees,
    /// record the outcomes.
    pub fn cycle(&mut self) -> Result<CycleReport, CoordError> {
        self.writable()?;
        let config = self.config()?;
        // Before anything is decided: the prices any request of this cycle on is priced with.
        self.record_prices(&config)?;
        self.record_barrier_paths(&config)?;
        let config = self.config()?;
        let recovered = self.recover()?;
        let expired = self.expire_leases(&config)?;
        // An agent whose daily budget a new day renewed may take work in this cycle.
        self.record_agent_budget_verdicts()?;
        self.release_abandoned(&config)?;
        // Planned on the view the lease verdicts and releases made.
        let plan = self.plan(&config);
        self.record_plan(&plan)?;
        crate::fault::point(crate::fault::AFTER_ASSIGNMENT_DECISION);
        let assignments = self.place(&config, &plan)?;
        let merges = self.merge_submitted(&config)?;
        self.record_forecasts(&config)?;
        let health = self.health_span(self.clock.now());
        self.record(vec![health])?;
        Ok(CycleReport {
            cycle_number: plan.cycle_number,
            assignments,
            features_waiting: plan.features_waiting,
            merges,
            leases_expired: expired,
            recovered,
        })
    }

    /// The assignment step's plan on the view as it is now, timed now; the policy decides once
    /// per state of the view.
    fn plan(&mut self, config: &Config) -> CyclePlan {
        let decision = self.decide();
        let now = self.clock.now();
        let plan = plan::plan_decided(&self.view.read(), decision, config, now);
        for s in &plan.skipped {
            tracing::error!("not placing {}: {}", s.feature_name, s.error);
        }
        plan
    }

    /// Records the cycle and its assignments, each with the worktree and branch it will get.
    fn record_plan(&mut self, plan: &CyclePlan) -> Result<(), CoordError> {
        let mut spans = Vec::with_capacity(plan.placements.len() + 1);
        spans.push(emit::cycle(
            &mut self.ids,
            plan.at,
            plan.cycle_number,
            plan.assignments_decided(),
            plan.features_waiting,
        ));
        for p in &plan.placements {
            spans.push(emit::assignment(
                &mut self.ids,
                plan.at,
                &emit::AssignmentSpan {
                    agent_id: &p.agent_id,
                    feature: &p.feature_name,
                    priority: p.priority,
                    score: p.score,
                    reasons: &p.reasons,
                    worktree_path: &p.worktree_path,
                    branch: &p.branch,
                },
            ));
        }
        self.record(spans)
    }

    /// Creates (or reuses) the planned worktrees and records the outcomes.
    fn place(&mut self, config: &Config, plan: &CyclePlan) -> Result<Vec<Placed>, CoordError> {
        let (outcomes, spans) = self.carry_out(config, &plan.effects());
        self.record(spans)?;
        Ok(plan
            .placements
            .iter()
            .zip(outcomes)
            .map(|(p, outcome)| Placed {
                agent_id: p.agent_id.clone(),
                feature_name: p.feature_name.clone(),
                match_score: p.score,
                reasons: p.reasons.clone(),
                worktree_path: p.worktree_path.clone(),
                branch_name: p.branch.clone(),
                worktree_action: outcome.action,
                error: outcome.error,
                remote_url: outcome.remote_url,
            })
            .collect())
    }

    /// Whether a cycle now would change anything: an assignment to make, or a submitted
    /// feature whose merge can proceed (or waits for a new reason).
    fn cycle_is_useful(&mut self) -> Result<bool, CoordError> {
        let Ok(config) = self.config() else {
            return Ok(false);
        };
        {
            let view = self.view.read();
            if !plan::plan_leases(&view, self.clock.now()).is_empty()
                || !plan::plan_releases(&view).is_empty()
            {
                return Ok(true);
            }
        }
        if self.agent_budget_due() {
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
        // The gate of a feature no longer submitted (cancelled, reset) has no one to report to.
        let names: Vec<String> = submitted.iter().map(|c| c.feature.clone()).collect();
        self.gates.retain(|_, g| g.tests_any(&names));
        if submitted.is_empty() {
            return Ok(false);
        }
        let blocker = git::merge_blocker(Path::new(&config.repo), &config.base_branch)?;
        // A candidate whose gate is still running, or that waits for a person's approval, has
        // nothing to decide yet.
        Ok(submitted.iter().any(|c| {
            !self.gate_busy(&c.feature)
                && !c.awaiting_approval
                && (blocker.is_none() || c.note.as_deref() != blocker.as_deref())
        }))
    }

    /// Records `spanfold.barrierPaths` (comma-separated globs) when it differs from the log's:
    /// the policy reads them from the log, so a replay decides as this cycle does.
    fn record_barrier_paths(&mut self, config: &Config) -> Result<(), CoordError> {
        let configured: Vec<String> = self
            .workspace(config)
            .config_value("spanfold.barrierPaths")?
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if configured == self.view.read().barrier_paths {
            return Ok(());
        }
        let settings = crate::fact::Configure {
            lease_seconds: None,
            default_budget: Default::default(),
            barrier_paths: Some(configured),
        };
        let span = emit::configure(&mut self.ids, self.clock.now(), settings);
        self.record(vec![span])
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
