//! The assignment step of a coordination cycle as data: what the coordinator will record and
//! what it will then do, computed from the view alone. The coordinator records the plan's
//! decisions, carries out its [`Effect`]s and records their outcomes; because the plan is pure,
//! every rule about who gets what and where its worktree goes is tested on a view built in
//! memory, at any virtual time, without git.
//!
//! - [`plan`] and [`plan_decided`]: the cycle's placements, each with its worktree and branch.
//! - [`plan_leases`]: the agents whose lease has run out at a given moment.
//! - [`plan_releases`]: the worktrees of features let go of, still locked, to unlock.
//!
//! Each reads the view as it is when it is asked: a cycle records the lease verdicts first, and
//! the releases and placements are planned on the view those verdicts made.

use std::path::Path;

use serde::Serialize;

use crate::model::UnixNanos;
use crate::names::{self, NameError};
use crate::policy::{self, Decision, PolicyConfig};
use crate::reducer::{Config, Priority, View, WorktreeStatus};

/// Something the coordinator does outside the log once the decision behind it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Check `branch` out at `path` (the branch made from the base branch if it is new), locked
    /// for `agent_id`. A worktree already there is reused, so earlier work is never lost.
    CreateWorktree {
        agent_id: String,
        feature: String,
        path: String,
        branch: String,
    },
    /// Unlock the worktree at `path` of a feature let go of; it stays, with its work, for the
    /// next agent to get the feature.
    UnlockWorktree {
        path: String,
        branch: String,
        feature: String,
    },
}

/// One assignment of the policy, with the worktree and branch it will get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub agent_id: String,
    pub feature_name: String,
    pub priority: Priority,
    pub score: f64,
    pub reasons: Vec<String>,
    pub worktree_path: String,
    pub branch: String,
}

impl Placement {
    /// The worktree this placement needs.
    pub fn effect(&self) -> Effect {
        Effect::CreateWorktree {
            agent_id: self.agent_id.clone(),
            feature: self.feature_name.clone(),
            path: self.worktree_path.clone(),
            branch: self.branch.clone(),
        }
    }
}

/// An assignment the policy made that is not carried out: its feature's name makes no worktree
/// path. The reducer admits only valid names, so this is a defect to report, not a user error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub agent_id: String,
    pub feature_name: String,
    pub error: String,
}

/// What a cycle's assignment step records and does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CyclePlan {
    /// The number the cycle's span carries: one past the cycles the view has seen.
    pub cycle_number: u64,
    /// When the plan was made: the time its decision spans carry.
    pub at: UnixNanos,
    /// Queued features the policy left unplaced.
    pub features_waiting: usize,
    /// In the policy's order, which is the order of the spans and of the effects.
    pub placements: Vec<Placement>,
    pub skipped: Vec<Skipped>,
}

impl CyclePlan {
    /// How many assignments the policy made, skipped ones included: the count the cycle's span
    /// records.
    pub fn assignments_decided(&self) -> usize {
        self.placements.len() + self.skipped.len()
    }

    /// The worktrees to create, one per placement, in order.
    pub fn effects(&self) -> Vec<Effect> {
        self.placements.iter().map(Placement::effect).collect()
    }
}

/// The cycle's plan at `now`: the policy decides on `view`, and each assignment gets its place.
pub fn plan(view: &View, policy: &PolicyConfig, config: &Config, now: UnixNanos) -> CyclePlan {
    plan_decided(view, policy::decide(view, policy), config, now)
}

/// The cycle's plan for a decision already made on `view` (the coordinator decides once per
/// state of the view, and a cycle may follow the question "is a cycle useful?").
pub fn plan_decided(view: &View, decision: Decision, config: &Config, now: UnixNanos) -> CyclePlan {
    let mut placements = Vec::with_capacity(decision.assignments.len());
    let mut skipped = Vec::new();
    for a in decision.assignments {
        match worktree_of(view, config, &a.feature_name) {
            Ok((worktree_path, branch)) => placements.push(Placement {
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                priority: a.priority,
                score: a.score,
                reasons: a.reasons,
                worktree_path,
                branch,
            }),
            Err(e) => skipped.push(Skipped {
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                error: e.to_string(),
            }),
        }
    }
    CyclePlan {
        cycle_number: view.counters.cycles + 1,
        at: now,
        features_waiting: decision.features_waiting,
        placements,
        skipped,
    }
}

/// The worktree path and branch of `feature`. A feature placed before keeps its worktree, so
/// the next agent continues the work — but only a path this coordinator could have made
/// (`names::is_worktree_path`), whatever a log from elsewhere says; otherwise the path the name
/// makes. The branch the log knows is kept in either case.
pub fn worktree_of(
    view: &View,
    config: &Config,
    feature: &str,
) -> Result<(String, String), NameError> {
    let dir = Path::new(&config.worktrees_dir);
    let known = view.features.get(feature);
    let path = match known
        .and_then(|f| f.worktree_path.clone())
        .filter(|p| names::is_worktree_path(dir, Path::new(p)))
    {
        Some(p) => p,
        None => names::worktree_path(dir, feature)?
            .to_string_lossy()
            .into_owned(),
    };
    let branch = known
        .and_then(|f| f.branch_name.clone())
        .unwrap_or_else(|| format!("spanfold/{feature}"));
    Ok((path, branch))
}

/// An agent whose lease has run out: it loses its features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseVerdict {
    pub agent_id: String,
    /// How long it has been silent, in whole seconds.
    pub silent_seconds: u64,
}

/// The agents silent for their whole lease or longer at `now`, in agent id order.
pub fn plan_leases(view: &View, now: UnixNanos) -> Vec<LeaseVerdict> {
    policy::expired_leases(view, now)
        .into_iter()
        .map(|(agent_id, silent_seconds)| LeaseVerdict {
            agent_id,
            silent_seconds,
        })
        .collect()
}

/// The worktrees whose feature was let go of (reset, lease, cancel) and that git still holds
/// locked, in path order: each gets an [`Effect::UnlockWorktree`].
pub fn plan_releases(view: &View) -> Vec<Effect> {
    view.worktrees
        .values()
        .filter(|w| w.status == WorktreeStatus::Abandoned && w.locked)
        .map(|w| Effect::UnlockWorktree {
            path: w.path.clone(),
            branch: w.branch_name.clone(),
            feature: w.feature_name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The planner on views built by hand, at virtual times: no git, no clock, no sleeping.

    use super::*;
    use crate::reducer::{
        Agent, AgentState, Capabilities, Feature, FeatureStatus, Progress, Worktree,
    };

    const SECOND: UnixNanos = 1_000_000_000;
    const T0: UnixNanos = 1_700_000_000 * SECOND;
    const DIR: &str = "/srv/trees";

    fn config() -> Config {
        Config {
            repo: "/srv/repo".into(),
            base_branch: "main".into(),
            worktrees_dir: DIR.into(),
            lease_seconds: 60,
        }
    }

    fn agent(id: &str) -> Agent {
        Agent {
            id: id.into(),
            capabilities: Capabilities::default(),
            max_concurrent_features: 1,
            preferred_complexity: None,
            state: AgentState::Idle,
            assignments: vec![],
            registered_seq: 0,
            last_activity: T0,
            progress: Progress::default(),
            error: None,
            lease_seconds: None,
            anomalies: 0,
            last_message: None,
        }
    }

    /// A queued feature, `seq`-th in the queue.
    fn feature(name: &str, seq: u64) -> Feature {
        Feature::queued(name, Priority::Medium, 3, seq)
    }

    fn worktree(path: &str, feature: &str, status: WorktreeStatus, locked: bool) -> Worktree {
        Worktree {
            path: path.into(),
            branch_name: format!("spanfold/{feature}"),
            status,
            agent_id: None,
            feature_name: feature.into(),
            note: None,
            locked,
            since: T0,
        }
    }

    fn view(agents: Vec<Agent>, features: Vec<Feature>) -> View {
        let mut v = View {
            config: Some(config()),
            ..View::default()
        };
        v.agents = agents.into_iter().map(|a| (a.id.clone(), a)).collect();
        v.features = features.into_iter().map(|f| (f.name.clone(), f)).collect();
        v
    }

    fn placed(plan: &CyclePlan) -> Vec<(&str, &str, &str, &str)> {
        plan.placements
            .iter()
            .map(|p| {
                (
                    p.agent_id.as_str(),
                    p.feature_name.as_str(),
                    p.worktree_path.as_str(),
                    p.branch.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn each_assignment_gets_the_path_and_branch_its_name_makes() {
        let mut v = view(
            vec![agent("a1"), agent("a2")],
            vec![
                feature("f1", 1),
                feature("feature/login", 2),
                feature("f3", 3),
            ],
        );
        v.counters.cycles = 4;
        let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
        assert_eq!(plan.cycle_number, 5, "one past the cycles seen");
        assert_eq!(plan.at, T0, "the time given, never a clock's");
        assert_eq!(
            placed(&plan),
            vec![
                ("a1", "f1", "/srv/trees/f1", "spanfold/f1"),
                (
                    "a2",
                    "feature/login",
                    "/srv/trees/feature+login",
                    "spanfold/feature/login"
                ),
            ],
            "queue order, slashes flattened in the directory and kept in the branch"
        );
        assert_eq!(plan.features_waiting, 1, "f3 waits: both agents are full");
        assert!(plan.skipped.is_empty());
        assert_eq!(plan.assignments_decided(), 2);
        assert_eq!(
            plan.effects(),
            vec![
                Effect::CreateWorktree {
                    agent_id: "a1".into(),
                    feature: "f1".into(),
                    path: "/srv/trees/f1".into(),
                    branch: "spanfold/f1".into(),
                },
                Effect::CreateWorktree {
                    agent_id: "a2".into(),
                    feature: "feature/login".into(),
                    path: "/srv/trees/feature+login".into(),
                    branch: "spanfold/feature/login".into(),
                },
            ]
        );
    }

    #[test]
    fn the_placements_carry_the_policys_scores_and_reasons() {
        let v = view(vec![agent("a1")], vec![feature("f1", 1)]);
        let decision = policy::decide(&v, &PolicyConfig::default());
        let plan = plan_decided(&v, decision.clone(), &config(), T0);
        let a = &decision.assignments[0];
        let p = &plan.placements[0];
        assert_eq!(
            (
                &p.agent_id,
                &p.feature_name,
                p.priority,
                p.score,
                &p.reasons
            ),
            (
                &a.agent_id,
                &a.feature_name,
                a.priority,
                a.score,
                &a.reasons
            )
        );
        assert_eq!(plan.features_waiting, decision.features_waiting);
    }

    #[test]
    fn nothing_to_place_is_an_empty_plan() {
        let v = view(vec![], vec![feature("f1", 1)]);
        let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
        assert!(plan.placements.is_empty() && plan.effects().is_empty());
        assert_eq!(plan.features_waiting, 1);
        assert_eq!(plan.cycle_number, 1);
    }

    #[test]
    fn a_feature_placed_before_keeps_its_worktree_and_branch() {
        let mut f1 = feature("f1", 1);
        // An earlier placement under another directory name this coordinator could have made.
        f1.worktree_path = Some("/srv/trees/f1-old".into());
        f1.branch_name = Some("spanfold/f1-old".into());
        f1.last_error = Some("lease expired".into());
        let v = view(vec![agent("a1")], vec![f1]);
        let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
        assert_eq!(
            placed(&plan),
            vec![("a1", "f1", "/srv/trees/f1-old", "spanfold/f1-old")]
        );
    }

    #[test]
    fn a_path_that_is_not_ours_is_replaced_by_the_one_the_name_makes() {
        for foreign in [
            "/elsewhere/f1",
            "/srv/trees/deeper/f1",
            "/srv/trees/Not A Name",
            "/srv/trees",
            "relative/f1",
        ] {
            let mut f1 = feature("f1", 1);
            f1.worktree_path = Some(foreign.into());
            f1.branch_name = Some("spanfold/f1".into());
            let v = view(vec![agent("a1")], vec![f1]);
            let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
            assert_eq!(
                placed(&plan),
                vec![("a1", "f1", "/srv/trees/f1", "spanfold/f1")],
                "{foreign}"
            );
        }
    }

    #[test]
    fn a_name_that_makes_no_path_is_skipped_and_still_counted() {
        // The reducer admits no such name; a view that holds one anyway places around it.
        let v = view(
            vec![agent("a1"), agent("a2")],
            vec![feature("Bad Name", 1), feature("f2", 2)],
        );
        let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
        assert_eq!(
            placed(&plan),
            vec![("a2", "f2", "/srv/trees/f2", "spanfold/f2")]
        );
        assert_eq!(plan.skipped.len(), 1);
        let skipped = &plan.skipped[0];
        assert_eq!(
            (skipped.agent_id.as_str(), skipped.feature_name.as_str()),
            ("a1", "Bad Name")
        );
        assert!(skipped.error.contains("invalid"), "{}", skipped.error);
        assert_eq!(plan.assignments_decided(), 2, "the cycle span counts both");
        assert_eq!(plan.effects().len(), 1, "no worktree for the skipped one");
    }

    /// `a1` holds `f1` (in progress) and was last heard from at `T0`; the lease is 60 s.
    fn holding() -> View {
        let mut a1 = agent("a1");
        a1.state = AgentState::Working;
        a1.assignments = vec!["f1".into()];
        let mut f1 = feature("f1", 1);
        f1.status = FeatureStatus::InProgress;
        f1.assigned_agent = Some("a1".into());
        view(vec![a1, agent("a2")], vec![f1])
    }

    #[test]
    fn a_lease_runs_out_exactly_at_its_end_and_not_a_nanosecond_before() {
        let v = holding();
        let end = T0 + 60 * SECOND;
        assert!(plan_leases(&v, T0).is_empty());
        assert!(plan_leases(&v, end - 1).is_empty(), "just before");
        let verdict = |at| plan_leases(&v, at);
        assert_eq!(
            verdict(end),
            vec![LeaseVerdict {
                agent_id: "a1".into(),
                silent_seconds: 60
            }],
            "at the end"
        );
        assert_eq!(
            verdict(end + 30 * SECOND + 1)[0].silent_seconds,
            90,
            "after: whole seconds"
        );
    }

    #[test]
    fn no_lease_runs_for_an_agent_in_error_or_one_whose_feature_awaits_its_merge() {
        let late = T0 + 3600 * SECOND;
        let mut v = holding();
        v.agents.get_mut("a1").expect("a1").state = AgentState::Error;
        assert!(plan_leases(&v, late).is_empty(), "in error");
        let mut v = holding();
        v.features.get_mut("f1").expect("f1").status = FeatureStatus::Merging;
        assert!(plan_leases(&v, late).is_empty(), "merging");
        let mut v = holding();
        v.agents.get_mut("a1").expect("a1").lease_seconds = Some(7200);
        assert!(plan_leases(&v, late).is_empty(), "its own, longer lease");
    }

    #[test]
    fn abandoned_worktrees_still_locked_are_unlocked_in_path_order() {
        let mut v = view(vec![], vec![]);
        for w in [
            worktree("/srv/trees/f3", "f3", WorktreeStatus::Abandoned, true),
            worktree("/srv/trees/f1", "f1", WorktreeStatus::Abandoned, true),
            worktree("/srv/trees/f2", "f2", WorktreeStatus::Abandoned, false),
            worktree("/srv/trees/f4", "f4", WorktreeStatus::Active, true),
            worktree("/srv/trees/f5", "f5", WorktreeStatus::Completed, true),
        ] {
            v.worktrees.insert(w.path.clone(), w);
        }
        let unlock = |f: &str| Effect::UnlockWorktree {
            path: format!("/srv/trees/{f}"),
            branch: format!("spanfold/{f}"),
            feature: f.into(),
        };
        assert_eq!(plan_releases(&v), vec![unlock("f1"), unlock("f3")]);
        assert!(plan_releases(&view(vec![], vec![])).is_empty());
    }
}
