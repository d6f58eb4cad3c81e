//! The facts of `spans/coordination.yaml`: the coordinator's setup and settings, its cycles,
//! assignments, health summaries, merges and lease verdicts, and an operator acknowledging
//! anomalies.

use super::{Out, Priority, Word, closed_set, list, required, seconds, uint};
use crate::model::{Event, as_bool};
use crate::vocab::attr;

/// `coordination.init`: the log set up for a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Init<'a> {
    pub repo: &'a str,
    pub base_branch: &'a str,
    pub worktrees_dir: &'a str,
    /// A positive lease (600 when absent).
    pub lease_seconds: Option<u64>,
}

/// A default feature budget as a span states it: each part absent (unchanged, or none at
/// init), 0 or less (none), or a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DefaultBudget {
    pub usd: Option<f64>,
    pub tokens: Option<i64>,
}

impl DefaultBudget {
    fn read(ev: &Event<'_>) -> Result<Self, String> {
        let usd = ev.double_attr(attr::BUDGET_USD);
        if usd.is_some_and(|u| !u.is_finite()) {
            return Err("budget.usd must be a finite number of dollars".into());
        }
        Ok(DefaultBudget {
            usd,
            tokens: ev.int_attr(attr::BUDGET_TOKENS),
        })
    }

    fn write(&self, out: &mut Out) {
        out.double(attr::BUDGET_USD, self.usd);
        out.int(attr::BUDGET_TOKENS, self.tokens);
    }
}

impl<'a> Init<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| required(ev, key, || format!("{key} is missing"));
        Ok(Init {
            repo: get(attr::COORDINATION_REPO)?,
            base_branch: get(attr::COORDINATION_BASE_BRANCH)?,
            worktrees_dir: get(attr::COORDINATION_WORKTREES_DIR)?,
            lease_seconds: seconds(ev, attr::COORDINATION_LEASE_SECONDS),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::COORDINATION_REPO, self.repo);
        out.str(attr::COORDINATION_BASE_BRANCH, self.base_branch);
        out.str(attr::COORDINATION_WORKTREES_DIR, self.worktrees_dir);
        out.uint(attr::COORDINATION_LEASE_SECONDS, self.lease_seconds);
    }
}

/// `coordination.configure`: settings changed from this event on; what it leaves out stays.
#[derive(Debug, Clone, PartialEq)]
pub struct Configure {
    pub lease_seconds: Option<u64>,
    pub default_budget: DefaultBudget,
    /// The barrier paths from now on (empty: none); None when unchanged.
    pub barrier_paths: Option<Vec<String>>,
}

impl Configure {
    pub(super) fn read(ev: &Event<'_>) -> Result<Self, String> {
        let lease_seconds =
            match ev.attr(attr::COORDINATION_LEASE_SECONDS) {
                None => None,
                Some(_) => Some(seconds(ev, attr::COORDINATION_LEASE_SECONDS).ok_or_else(
                    || "coordination.lease_seconds must be a positive number".to_string(),
                )?),
            };
        let default_budget = DefaultBudget::read(ev)?;
        let barrier_paths = ev.attr(attr::COORDINATION_BARRIER_PATHS).map(|_| {
            list(ev, attr::COORDINATION_BARRIER_PATHS)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        if lease_seconds.is_none()
            && default_budget == DefaultBudget::default()
            && barrier_paths.is_none()
        {
            return Err("coordination.configure changes nothing: it carries no setting".into());
        }
        Ok(Configure {
            lease_seconds,
            default_budget,
            barrier_paths,
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.uint(attr::COORDINATION_LEASE_SECONDS, self.lease_seconds);
        self.default_budget.write(out);
        if let Some(paths) = &self.barrier_paths {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            out.list(attr::COORDINATION_BARRIER_PATHS, &paths);
        }
    }
}

/// `coordination.prices`: the price table in force from this event on (JSON; the fold reads
/// it, refusing the span when it is no table).
#[derive(Debug, Clone, PartialEq)]
pub struct Prices<'a> {
    pub date: &'a str,
    pub table: &'a str,
    pub source: Option<&'a str>,
}

impl<'a> Prices<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| required(ev, key, || format!("{key} is missing"));
        Ok(Prices {
            date: get(attr::PRICES_DATE)?,
            table: get(attr::PRICES_TABLE)?,
            source: ev.str_attr(attr::PRICES_SOURCE),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::PRICES_DATE, self.date);
        out.str(attr::PRICES_TABLE, self.table);
        out.opt_str(attr::PRICES_SOURCE, self.source);
    }
}

/// `coordination.cycle`: a cycle ran (the fold counts it; its numbers are for readers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cycle {
    pub number: Option<u64>,
    pub assignments: Option<u64>,
    pub features_waiting: Option<u64>,
}

impl Cycle {
    pub(super) fn read(ev: &Event<'_>) -> Self {
        Cycle {
            number: uint(ev, attr::COORDINATION_CYCLE_NUMBER),
            assignments: uint(ev, attr::COORDINATION_ASSIGNMENTS),
            features_waiting: uint(ev, attr::COORDINATION_FEATURES_WAITING),
        }
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.uint(attr::COORDINATION_CYCLE_NUMBER, self.number);
        out.uint(attr::COORDINATION_ASSIGNMENTS, self.assignments);
        out.uint(attr::COORDINATION_FEATURES_WAITING, self.features_waiting);
    }
}

/// `agent.feature_assignment`: a feature given to an agent, with the score and the reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment<'a> {
    pub agent_id: &'a str,
    pub feature_name: &'a str,
    /// The feature's priority when it was placed; an unknown word reads as absent.
    pub priority: Option<Priority>,
    pub match_score: Option<f64>,
    pub reasons: Vec<&'a str>,
    /// RFC 3339, as the coordinator wrote it.
    pub timestamp: Option<&'a str>,
    pub worktree_path: Option<&'a str>,
    pub branch: Option<&'a str>,
}

impl<'a> Assignment<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let (Some(agent_id), Some(feature_name)) =
            (ev.str_attr(attr::AGENT_ID), ev.str_attr(attr::FEATURE_NAME))
        else {
            return Err("an assignment needs agent.id and feature.name".into());
        };
        Ok(Assignment {
            agent_id,
            feature_name,
            priority: ev
                .str_attr(attr::FEATURE_PRIORITY)
                .and_then(Priority::parse),
            match_score: ev.double_attr(attr::ASSIGNMENT_MATCH_SCORE),
            reasons: list(ev, attr::ASSIGNMENT_REASONS),
            timestamp: ev.str_attr(attr::ASSIGNMENT_TIMESTAMP),
            worktree_path: ev.str_attr(attr::WORKTREE_PATH),
            branch: ev.str_attr(attr::WORKTREE_BRANCH),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::FEATURE_PRIORITY, self.priority.map(Priority::as_str));
        out.double(attr::ASSIGNMENT_MATCH_SCORE, self.match_score);
        out.list(attr::ASSIGNMENT_REASONS, &self.reasons);
        out.opt_str(attr::ASSIGNMENT_TIMESTAMP, self.timestamp);
        out.opt_str(attr::WORKTREE_PATH, self.worktree_path);
        out.opt_str(attr::WORKTREE_BRANCH, self.branch);
    }
}

/// `coordination.system_health`: the summary written after each cycle, for trace readers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemHealth {
    pub total_agents: Option<u64>,
    pub active_agents: Option<u64>,
    pub health_score: Option<f64>,
    pub features_completed: Option<u64>,
    pub features_in_queue: Option<u64>,
}

impl SystemHealth {
    pub(super) fn read(ev: &Event<'_>) -> Self {
        SystemHealth {
            total_agents: uint(ev, attr::COORDINATION_TOTAL_AGENTS),
            active_agents: uint(ev, attr::COORDINATION_ACTIVE_AGENTS),
            health_score: ev.double_attr(attr::COORDINATION_HEALTH_SCORE),
            features_completed: uint(ev, attr::COORDINATION_FEATURES_COMPLETED),
            features_in_queue: uint(ev, attr::COORDINATION_FEATURES_IN_QUEUE),
        }
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.uint(attr::COORDINATION_TOTAL_AGENTS, self.total_agents);
        out.uint(attr::COORDINATION_ACTIVE_AGENTS, self.active_agents);
        out.double(attr::COORDINATION_HEALTH_SCORE, self.health_score);
        out.uint(
            attr::COORDINATION_FEATURES_COMPLETED,
            self.features_completed,
        );
        out.uint(attr::COORDINATION_FEATURES_IN_QUEUE, self.features_in_queue);
    }
}

closed_set! {
    /// `merge.result`: what happened to a submitted feature's merge.
    MergeResult {
        /// The coordinator is about to merge (written before acting).
        Started = "started",
        /// The operator's merge gate started on the merged result.
        GateStarted = "gate_started",
        /// The gate failed; the feature went back to its agent.
        GateFailed = "gate_failed",
        /// Nothing changed; the feature went back to its agent to fix what the reason says.
        Returned = "returned",
        /// The base branch now contains the feature.
        Merged = "merged",
        /// Nothing changed; the feature went back to its agent to resolve the listed paths.
        Conflicted = "conflicted",
        /// Nothing changed; merging now would be unsafe. Retried.
        Deferred = "deferred",
        /// Nothing changed; the merge could not be attempted. Retried.
        Failed = "failed",
        /// Held until a person approves it (`spanfold.requireApproval`).
        AwaitingApproval = "awaiting_approval",
    }
}

closed_set! {
    /// `merge.kind`: how the base branch came to contain the feature.
    MergeKind {
        FastForward = "fast_forward",
        MergeCommit = "merge_commit",
        AlreadyMerged = "already_merged",
    }
}

closed_set! {
    /// `budget.verdict`: which line of its budget a feature's spending crossed.
    BudgetVerdictKind {
        /// 80% of a budget.
        Warning = "warning",
        /// All of a budget: the feature is held.
        Exceeded = "exceeded",
    }
}

closed_set! {
    /// `budget.verdict` on `coordination.agent_budget`: a line of an agent's daily budget
    /// crossed, or its day begun again.
    DayVerdict {
        /// 80% of the day's budget.
        Warning = "warning",
        /// All of it: the agent lets go of its features and gets no work.
        Exceeded = "exceeded",
        /// A later day began: it may work again.
        Renewed = "renewed",
    }
}

/// `coordination.agent_budget`: an agent's spending today crossed a line of its daily budget,
/// or a new day renewed it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentBudgetVerdict<'a> {
    pub agent_id: &'a str,
    pub verdict: Word<'a, DayVerdict>,
    /// `YYYY-MM-DD`, UTC.
    pub day: &'a str,
    pub spent_usd: f64,
    pub usd: f64,
}

impl<'a> AgentBudgetVerdict<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| required(ev, key, || format!("{key} is missing"));
        let number = |key: &str| {
            ev.double_attr(key)
                .filter(|u| u.is_finite())
                .ok_or_else(|| format!("{key} must be a number"))
        };
        Ok(AgentBudgetVerdict {
            agent_id: get(attr::AGENT_ID)?,
            verdict: Word::read(get(attr::BUDGET_VERDICT)?),
            day: get(attr::BUDGET_DAY)?,
            spent_usd: number(attr::BUDGET_SPENT_USD)?,
            usd: number(attr::BUDGET_USD)?,
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::BUDGET_VERDICT, self.verdict.as_str());
        out.str(attr::BUDGET_DAY, self.day);
        out.double(attr::BUDGET_SPENT_USD, Some(self.spent_usd));
        out.double(attr::BUDGET_USD, Some(self.usd));
    }
}

/// `coordination.budget`: a feature's spending crossed a line of its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetVerdict<'a> {
    pub feature_name: &'a str,
    pub verdict: Word<'a, BudgetVerdictKind>,
    pub spent_usd: f64,
    pub spent_tokens: u64,
    pub usd: Option<f64>,
    pub tokens: Option<i64>,
    pub agent_id: Option<&'a str>,
}

impl<'a> BudgetVerdict<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let verdict = required(ev, attr::BUDGET_VERDICT, || {
            "budget.verdict is missing".to_string()
        })?;
        Ok(BudgetVerdict {
            feature_name: required(ev, attr::FEATURE_NAME, || "feature.name is missing".into())?,
            verdict: Word::read(verdict),
            spent_usd: ev
                .double_attr(attr::BUDGET_SPENT_USD)
                .filter(|u| u.is_finite())
                .ok_or_else(|| "budget.spent_usd must be a number".to_string())?,
            spent_tokens: uint(ev, attr::BUDGET_SPENT_TOKENS)
                .ok_or_else(|| "budget.spent_tokens must be a count".to_string())?,
            usd: ev.double_attr(attr::BUDGET_USD),
            tokens: ev.int_attr(attr::BUDGET_TOKENS),
            agent_id: ev.str_attr(attr::AGENT_ID),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.str(attr::BUDGET_VERDICT, self.verdict.as_str());
        out.double(attr::BUDGET_SPENT_USD, Some(self.spent_usd));
        out.uint(attr::BUDGET_SPENT_TOKENS, Some(self.spent_tokens));
        out.double(attr::BUDGET_USD, self.usd);
        out.int(attr::BUDGET_TOKENS, self.tokens);
        out.opt_str(attr::AGENT_ID, self.agent_id);
    }
}

/// `coordination.feature_merge`: one step of merging a submitted feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge<'a> {
    /// Another word is refused by the rule, after its checks on the feature.
    pub result: Word<'a, MergeResult>,
    pub agent_id: &'a str,
    pub feature_name: &'a str,
    pub branch: Option<&'a str>,
    pub base_branch: Option<&'a str>,
    pub kind: Option<Word<'a, MergeKind>>,
    pub commit: Option<&'a str>,
    pub conflicts: Vec<&'a str>,
    pub reason: Option<&'a str>,
    /// The base branch's tip before the merge (on `started`).
    pub from: Option<&'a str>,
}

impl<'a> Merge<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| {
            required(ev, key, || {
                format!("coordination.feature_merge needs {key}")
            })
        };
        Ok(Merge {
            result: Word::read(get(attr::MERGE_RESULT)?),
            agent_id: get(attr::AGENT_ID)?,
            feature_name: get(attr::FEATURE_NAME)?,
            branch: ev.str_attr(attr::WORKTREE_BRANCH),
            base_branch: ev.str_attr(attr::MERGE_BASE_BRANCH),
            kind: ev.str_attr(attr::MERGE_KIND).map(Word::read),
            commit: ev.str_attr(attr::MERGE_COMMIT),
            conflicts: list(ev, attr::MERGE_CONFLICTS),
            reason: ev.str_attr(attr::MERGE_REASON),
            from: ev.str_attr(attr::MERGE_FROM),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::MERGE_RESULT, self.result.as_str());
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::WORKTREE_BRANCH, self.branch);
        out.opt_str(attr::MERGE_BASE_BRANCH, self.base_branch);
        out.opt_str(attr::MERGE_KIND, self.kind.as_ref().map(Word::as_str));
        out.opt_str(attr::MERGE_COMMIT, self.commit);
        out.list_if_any(attr::MERGE_CONFLICTS, &self.conflicts);
        out.opt_str(attr::MERGE_REASON, self.reason);
        out.opt_str(attr::MERGE_FROM, self.from);
    }
}

/// `agent.lease_expired`: the verdict that a silent agent loses its features.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseExpired<'a> {
    pub agent_id: &'a str,
    /// As sent (0 when absent).
    pub silent_seconds: Option<i64>,
}

impl<'a> LeaseExpired<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        Ok(LeaseExpired {
            agent_id: required(ev, attr::AGENT_ID, || {
                "agent.lease_expired needs agent.id".to_string()
            })?,
            silent_seconds: ev.int_attr(attr::LEASE_SILENT_SECONDS),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.int(attr::LEASE_SILENT_SECONDS, self.silent_seconds);
    }
}

/// `anomaly.acknowledge`: which anomalies an operator acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge {
    /// Every one listed so far (`anomaly.all` true, whatever `anomaly.seq` says).
    All,
    /// The one caused by the span at this seq.
    Seq(u64),
}

impl Acknowledge {
    pub(super) fn read(ev: &Event<'_>) -> Result<Self, String> {
        if ev.attr(attr::ANOMALY_ALL).and_then(as_bool) == Some(true) {
            return Ok(Acknowledge::All);
        }
        uint(ev, attr::ANOMALY_SEQ)
            .map(Acknowledge::Seq)
            .ok_or_else(|| "anomaly.acknowledge needs anomaly.seq or anomaly.all".to_string())
    }

    pub(super) fn write(&self, out: &mut Out) {
        match self {
            Acknowledge::Seq(seq) => out.uint(attr::ANOMALY_SEQ, Some(*seq)),
            Acknowledge::All => out.bool(attr::ANOMALY_ALL, true),
        }
    }
}

closed_set! {
    /// `forecast.kind`: what merging two lines of work would do.
    ForecastKind {
        /// Merging stops on conflicts.
        Conflict = "conflict",
        /// The same files change, but merge cleanly.
        Overlap = "overlap",
        /// Nothing in common.
        Clear = "clear",
    }
}

/// `coordination.conflict_forecast`: the radar's forecast for a feature merged with the base
/// branch (`other_feature` absent) or with another active feature, recorded when it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictForecast<'a> {
    pub feature_name: &'a str,
    pub other_feature: Option<&'a str>,
    pub kind: ForecastKind,
    pub paths: Vec<&'a str>,
    pub hunks: Vec<&'a str>,
    pub commit: &'a str,
    pub other_commit: &'a str,
}

impl<'a> ConflictForecast<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let get = |key: &str| required(ev, key, || format!("{key} is missing"));
        let kind = get(attr::FORECAST_KIND)?;
        Ok(ConflictForecast {
            feature_name: get(attr::FEATURE_NAME)?,
            other_feature: ev.str_attr(attr::FORECAST_OTHER_FEATURE),
            kind: <ForecastKind as super::Closed>::parse(kind).ok_or_else(|| {
                format!("forecast.kind {kind:?} is not one of conflict, overlap, clear")
            })?,
            paths: list(ev, attr::FORECAST_PATHS),
            hunks: list(ev, attr::FORECAST_HUNKS),
            commit: get(attr::FORECAST_COMMIT)?,
            other_commit: get(attr::FORECAST_OTHER_COMMIT)?,
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::FORECAST_OTHER_FEATURE, self.other_feature);
        out.str(attr::FORECAST_KIND, self.kind.as_str());
        out.list(attr::FORECAST_PATHS, &self.paths);
        out.list(attr::FORECAST_HUNKS, &self.hunks);
        out.str(attr::FORECAST_COMMIT, self.commit);
        out.str(attr::FORECAST_OTHER_COMMIT, self.other_commit);
    }
}
