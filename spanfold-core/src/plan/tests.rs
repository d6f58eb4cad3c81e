//! The planner on views built by hand, at virtual times: no git, no clock, no sleeping.

use super::*;
use crate::reducer::{Agent, AgentState, Capabilities, Feature, FeatureStatus, Progress, Worktree};

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
        paused_for_budget: false,
        remote: false,
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
        port_slot: 0,
        remote_url: None,
    }
}

fn view(agents: Vec<Agent>, features: Vec<Feature>) -> View {
    let mut v = View {
        config: Some(config()),
        ..View::default()
    };
    v.agents = agents.into_iter().map(|a| (a.id.clone(), a)).collect();
    v.features = features.into_iter().map(|f| (f.name.clone(), f)).collect();
    // As the fold keeps them: a held feature is among its holder's assignments, and the counts
    // and the queue agree with the features.
    for f in v.features.values() {
        if let Some(a) = f.assigned_agent.as_ref().and_then(|a| v.agents.get_mut(a))
            && !a.assignments.contains(&f.name)
        {
            a.assignments.push(f.name.clone());
        }
    }
    v.tally = crate::reducer::FeatureTally::of(v.features.values());
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
                from_remote: false,
            },
            Effect::CreateWorktree {
                agent_id: "a2".into(),
                feature: "feature/login".into(),
                path: "/srv/trees/feature+login".into(),
                branch: "spanfold/feature/login".into(),
                from_remote: false,
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

/// `agent` holds `name` in its worktree under the configured directory (`path` overrides it).
fn held(name: &str, agent: &str, seq: u64, path: Option<&str>) -> Feature {
    let mut f = feature(name, seq);
    f.status = FeatureStatus::InProgress;
    f.assigned_agent = Some(agent.into());
    f.worktree_path = Some(path.map_or_else(|| format!("{DIR}/{name}"), str::to_owned));
    f
}

fn rebuild(name: &str, agent: &str, why: Rebuild) -> Effect {
    Effect::RebuildWorktree {
        agent_id: agent.into(),
        feature: name.into(),
        path: format!("{DIR}/{name}"),
        branch: format!("spanfold/{name}"),
        why,
    }
}

#[test]
fn recovery_rebuilds_what_git_lost_and_what_a_crash_never_made() {
    let mut v = view(
        vec![],
        vec![
            held("f1", "a1", 1, None),
            held("f2", "a2", 2, None),
            held("f3", "a3", 3, None),
            held("f4", "a4", 4, Some("/elsewhere/f4")),
        ],
    );
    // f1's and f2's worktrees were made; f3's never was (a crash after its assignment).
    for name in ["f1", "f2"] {
        let mut w = worktree(&format!("{DIR}/{name}"), name, WorktreeStatus::Active, true);
        w.agent_id = Some(name.replace('f', "a"));
        v.worktrees.insert(w.path.clone(), w);
    }
    let git_has: std::collections::BTreeSet<String> = [format!("{DIR}/f1")].into();
    assert_eq!(active_worktrees(&v), vec!["/srv/trees/f1", "/srv/trees/f2"]);

    let plan = plan_recovery(&v, &config(), &git_has);
    assert_eq!(
        plan.missing,
        vec![Held {
            path: format!("{DIR}/f2"),
            branch: "spanfold/f2".into(),
            feature: "f2".into(),
            agent: "a2".into(),
        }],
        "f2 was removed by hand"
    );
    assert_eq!(
        plan.rebuild,
        vec![
            rebuild("f2", "a2", Rebuild::Drift),
            rebuild("f3", "a3", Rebuild::Crash)
        ],
        "f1 is fine; f4's path is not one this coordinator makes, so it is left alone"
    );

    // Once git has them all, nothing is left to do.
    let all = [1, 2, 3].map(|i| format!("{DIR}/f{i}")).into();
    let mut healed = v.clone();
    let mut f3 = worktree(&format!("{DIR}/f3"), "f3", WorktreeStatus::Active, true);
    f3.agent_id = Some("a3".into());
    healed.worktrees.insert(f3.path.clone(), f3);
    let plan = plan_recovery(&healed, &config(), &all);
    assert!(
        plan.missing.is_empty() && plan.rebuild.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn only_merges_a_crash_cut_off_are_completed() {
    let mut cut = held("f1", "a1", 1, None);
    cut.status = FeatureStatus::Merging;
    cut.merge_from = Some("0123abc".into());
    let mut waiting = held("f2", "a2", 2, None);
    waiting.status = FeatureStatus::Merging;
    let v = view(vec![], vec![cut, waiting, held("f3", "a3", 3, None)]);
    assert_eq!(
        plan_interrupted(&v),
        vec![Interrupted {
            feature: "f1".into(),
            from: "0123abc".into()
        }]
    );
}

#[test]
fn merges_are_tried_oldest_request_first_once_their_agent_has_handed_them_over() {
    let mut agents = Vec::new();
    let mut features = Vec::new();
    // (feature, queued seq, its agent's state)
    for (name, seq, state) in [
        ("late", 9, AgentState::Submitting),
        ("early", 2, AgentState::Finished),
        ("busy", 1, AgentState::Working),
    ] {
        let id = format!("agent-{name}");
        let mut a = agent(&id);
        a.state = state;
        agents.push(a);
        let mut f = held(name, &id, seq, None);
        f.status = FeatureStatus::Merging;
        features.push(f);
    }
    features[0].worktree_path = Some("/elsewhere/late".into());
    features[0].merge_note = Some("the main checkout has changes".into());
    features[1].merge_from = Some("0123abc".into());
    let v = view(agents, features);
    let candidates = plan_merges(&v);
    let order: Vec<&str> = candidates.iter().map(|c| c.feature.as_str()).collect();
    assert_eq!(order, ["early", "late"], "busy's agent is still working");
    assert_eq!(candidates[0].worktree.as_deref(), Some("/srv/trees/early"));
    assert!(candidates[0].interrupted);
    assert_eq!(
        candidates[1].worktree, None,
        "a path that is not ours is never touched"
    );
    assert_eq!(
        candidates[1].note.as_deref(),
        Some("the main checkout has changes")
    );
    assert_eq!(
        candidates[1].message(),
        "Merge spanfold/late (late, by agent agent-late)"
    );
}

#[test]
fn the_merge_queue_takes_higher_priority_first_then_the_earlier_submission() {
    let mut agents = Vec::new();
    let mut features = Vec::new();
    // (feature, priority, requested at, submitted at)
    for (name, priority, queued, submitted) in [
        ("low-first", Priority::Low, 1, 5),
        ("high-late", Priority::High, 2, 20),
        ("high-early", Priority::High, 3, 10),
    ] {
        let id = format!("agent-{name}");
        let mut a = agent(&id);
        a.state = AgentState::Submitting;
        agents.push(a);
        let mut f = held(name, &id, queued, None);
        f.status = FeatureStatus::Merging;
        f.priority = priority;
        f.submitted_seq = Some(submitted);
        features.push(f);
    }
    features[1].gate_running = true;
    features[0].merge_note = Some("the main checkout has changes".into());
    let v = view(agents, features);
    let order: Vec<String> = plan_merges(&v).into_iter().map(|c| c.feature).collect();
    assert_eq!(order, ["high-early", "high-late", "low-first"]);
    let status = crate::status::build(&v, &Default::default());
    let shown: Vec<(usize, &str, &str, Option<&str>)> = status
        .merge_queue
        .iter()
        .map(|e| {
            (
                e.position,
                e.feature.as_str(),
                e.state.as_str(),
                e.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (1, "high-early", "waiting", None),
            (2, "high-late", "testing", None),
            (
                3,
                "low-first",
                "waiting",
                Some("the main checkout has changes")
            ),
        ]
    );
}

#[test]
fn a_feature_forecast_to_conflict_with_another_active_one_merges_first_among_its_priority() {
    let mut agents = Vec::new();
    let mut features = Vec::new();
    for (name, submitted) in [("early", 10), ("late", 20)] {
        let id = format!("agent-{name}");
        let mut a = agent(&id);
        a.state = AgentState::Submitting;
        agents.push(a);
        let mut f = held(name, &id, 1, None);
        f.status = FeatureStatus::Merging;
        f.submitted_seq = Some(submitted);
        features.push(f);
    }
    features.push(held("still-working", "agent-w", 3, None));
    agents.push(agent("agent-w"));
    let mut v = view(agents, features);
    let order =
        |v: &View| -> Vec<String> { plan_merges(v).into_iter().map(|c| c.feature).collect() };
    assert_eq!(order(&v), ["early", "late"]);
    v.risks.push(crate::reducer::Risk {
        feature: "late".into(),
        other: Some("still-working".into()),
        conflict: true,
        paths: vec!["src/auth.rs".into()],
        hunks: Vec::new(),
        commit: "a".repeat(40),
        other_commit: "b".repeat(40),
        at: Default::default(),
    });
    assert_eq!(
        order(&v),
        ["late", "early"],
        "the sooner it lands, the sooner the other can resolve"
    );
}

#[test]
fn a_remote_agents_placement_pushes_its_branch_and_recovery_never_asks_git_for_a_worktree() {
    let mut remote = agent("cloud");
    remote.remote = true;
    let v = view(
        vec![remote, agent("local")],
        vec![feature("f1", 1), feature("f2", 2)],
    );
    let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
    let mut effects = plan.effects();
    effects.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let pushed = effects
        .iter()
        .filter(
            |e| matches!(e, Effect::PushBranch { agent_id, why: None, .. } if agent_id == "cloud"),
        )
        .count();
    let made = effects
        .iter()
        .filter(|e| matches!(e, Effect::CreateWorktree { agent_id, .. } if agent_id == "local"))
        .count();
    assert_eq!((pushed, made), (1, 1), "{effects:?}");

    // Held by the remote agent: its branch is on the remote, nothing to ask git about; a
    // crash before the push pushes it on recovery, with why.
    let mut remote = agent("cloud");
    remote.remote = true;
    let mut v = view(
        vec![remote],
        vec![held("f1", "cloud", 1, None), held("f2", "cloud", 2, None)],
    );
    let mut w = worktree(&format!("{DIR}/f1"), "f1", WorktreeStatus::Active, false);
    w.agent_id = Some("cloud".into());
    w.remote_url = Some("git://example/project.git".into());
    v.worktrees.insert(w.path.clone(), w);
    assert!(active_worktrees(&v).is_empty(), "never asked of git");
    let recovery = plan_recovery(&v, &config(), &std::collections::BTreeSet::new());
    assert!(
        recovery.missing.is_empty(),
        "a remote branch is never missing here"
    );
    assert_eq!(
        recovery.rebuild,
        vec![Effect::PushBranch {
            agent_id: "cloud".into(),
            feature: "f2".into(),
            path: format!("{DIR}/f2"),
            branch: "spanfold/f2".into(),
            why: Some(Rebuild::Crash),
        }]
    );
}

#[test]
fn a_feature_a_remote_agent_had_is_brought_from_the_remote_for_an_agent_here() {
    let path = format!("{DIR}/f1");
    let mut f1 = feature("f1", 1);
    f1.worktree_path = Some(path.clone());
    let mut v = view(vec![agent("local")], vec![f1, feature("f2", 2)]);
    let mut w = worktree(&path, "f1", WorktreeStatus::Active, false);
    w.remote_url = Some("git://example/project.git".into());
    v.worktrees.insert(path, w);
    let plan = plan(&v, &PolicyConfig::default(), &config(), T0);
    let effects = plan.effects();
    let from_remote: Vec<(&str, bool)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::CreateWorktree {
                feature,
                from_remote,
                ..
            } => Some((feature.as_str(), *from_remote)),
            _ => None,
        })
        .collect();
    assert_eq!(from_remote, [("f1", true)], "{effects:?}");
}
