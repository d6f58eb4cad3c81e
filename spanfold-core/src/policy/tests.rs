//! The policy's unit tests: placement, scores and leases on hand-built views, and properties
//! checked against a plain reference placement.

use super::*;
use crate::reducer::{
    Agent, AgentState, Capabilities, Complexity, Feature, FeatureStatus, FeatureTally, Priority,
    Progress, View,
};
use std::collections::{BTreeMap, BTreeSet};

fn caps(langs: &[&str], fws: &[&str], exp: &[&str]) -> Capabilities {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    Capabilities {
        languages: set(langs),
        frameworks: set(fws),
        expertise_areas: set(exp),
    }
}

fn agent(id: &str, c: Capabilities, max: u32) -> Agent {
    Agent {
        id: id.into(),
        capabilities: c,
        max_concurrent_features: max,
        preferred_complexity: None,
        state: AgentState::Idle,
        assignments: vec![],
        registered_seq: 0,
        last_activity: 0,
        progress: Progress::default(),
        error: None,
        lease_seconds: None,
        anomalies: 0,
        last_message: None,
        paused_for_budget: false,
        remote: false,
    }
}

fn feature(name: &str, p: Priority, seq: u64, req: Capabilities) -> Feature {
    Feature {
        requires: req,
        ..Feature::queued(name, p, 3, seq)
    }
}

fn view(agents: Vec<Agent>, features: Vec<Feature>) -> View {
    let mut v = View::default();
    for a in agents {
        v.agents.insert(a.id.clone(), a);
    }
    for f in features {
        v.features.insert(f.name.clone(), f);
    }
    // The counts and the queue the fold keeps with the features.
    v.tally = FeatureTally::of(v.features.values());
    v
}

/// `agent` works on `feature`, as the fold has it then: the feature in progress, held by the
/// agent.
fn work_on(v: &mut View, agent: &str, feature: &str) {
    if let Some(f) = v.features.get_mut(feature) {
        f.status = FeatureStatus::InProgress;
        f.assigned_agent = Some(agent.into());
    }
    if let Some(a) = v.agents.get_mut(agent) {
        a.assignments.push(feature.into());
    }
    v.tally = FeatureTally::of(v.features.values());
}

/// The plain reading of the policy: the sorted queue, feature by feature, every open agent
/// scored. `decide` groups the queue by requirement set for speed; it must place the same.
fn decide_plainly(view: &View, config: &PolicyConfig) -> Vec<(String, String, f64)> {
    let mut load: BTreeMap<&str, u32> = view
        .agents
        .values()
        .map(|a| (a.id.as_str(), a.assignments.len() as u32))
        .collect();
    let mut out = Vec::new();
    for f in queue(view) {
        let best = view
            .agents
            .values()
            .filter(|a| a.can_take_more() && load[a.id.as_str()] < a.max_concurrent_features)
            .filter(|a| {
                f.requires
                    .items()
                    .all(|(kind, item)| a.capabilities.items().any(|(k, i)| k == kind && i == item))
            })
            .map(|a| (score_value(config, a, f, load[a.id.as_str()]), a))
            .max_by(|(s1, a1), (s2, a2)| {
                s1.total_cmp(s2)
                    .then(load[a2.id.as_str()].cmp(&load[a1.id.as_str()]))
                    .then(a2.id.cmp(&a1.id))
            });
        if let Some((score, a)) = best {
            *load.get_mut(a.id.as_str()).expect("agent") += 1;
            out.push((a.id.clone(), f.name.clone(), score));
        }
    }
    out
}

#[test]
fn grouped_placement_equals_the_plain_reading_on_random_views() {
    const LANGS: [&str; 4] = ["rust", "go", "python", "c"];
    const FWS: [&str; 3] = ["tokio", "react", "django"];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..200 {
        let agents: Vec<Agent> = (0..next(12) + 1)
            .map(|a| {
                let langs: Vec<&str> = LANGS.iter().copied().filter(|_| next(2) == 0).collect();
                let fws: Vec<&str> = FWS.iter().copied().filter(|_| next(3) == 0).collect();
                let mut agent = agent(
                    &format!("a{a:02}"),
                    caps(&langs, &fws, &[]),
                    next(3) as u32 + 1,
                );
                agent.preferred_complexity = match next(3) {
                    0 => None,
                    1 => Some(Complexity::Low),
                    _ => Some(Complexity::High),
                };
                agent
            })
            .collect();
        let features: Vec<Feature> = (0..next(60))
            .map(|f| {
                let langs: Vec<&str> = LANGS.iter().copied().filter(|_| next(4) == 0).collect();
                let fws: Vec<&str> = FWS.iter().copied().filter(|_| next(5) == 0).collect();
                // One in eight asks for an expertise no agent has: it can only wait.
                let expertise: &[&str] = if next(8) == 0 { &["ops"] } else { &[] };
                let mut feature = feature(
                    &format!("f{f:03}"),
                    Priority::ALL[next(4) as usize],
                    next(20),
                    caps(&langs, &fws, expertise),
                );
                feature.estimated_effort = next(10) as u32 + 1;
                feature
            })
            .collect();
        let v = view(agents, features);
        let config = PolicyConfig::default();
        let d = decide(&v, &config);
        let got: Vec<_> = d
            .assignments
            .iter()
            .map(|a| (a.agent_id.clone(), a.feature_name.clone(), a.score))
            .collect();
        assert_eq!(got, decide_plainly(&v, &config), "round {round}");
        let queued = v
            .features
            .values()
            .filter(|f| f.status == FeatureStatus::Queued)
            .count();
        assert_eq!(d.features_waiting, queued - got.len(), "round {round}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Whatever the view: a feature goes to one agent, only when queued; an agent gets one
    /// only in a state that may take work, never beyond its limit, and only with every
    /// capability the feature requires.
    #[test]
    fn the_policy_never_breaks_its_rules(
        agents in proptest::collection::vec((0u8..16, 0u32..4, 0usize..7), 0..10),
        features in proptest::collection::vec((0u8..16, 0usize..8, 0usize..4), 0..40),
    ) {
        const LANGS: [&str; 4] = ["rust", "go", "python", "c"];
        let langs = |mask: u8| -> Vec<&str> {
            LANGS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, l)| *l).collect()
        };
        let mut agent_list: Vec<Agent> = agents
            .iter()
            .enumerate()
            .map(|(i, &(mask, max, state))| {
                let mut a = agent(&format!("a{i}"), caps(&langs(mask), &[], &[]), max);
                a.state = AgentState::ALL[state];
                a
            })
            .collect();
        let mut feature_list = Vec::new();
        for (i, &(mask, status, priority)) in features.iter().enumerate() {
            let mut f = feature(&format!("f{i:02}"), Priority::ALL[priority], i as u64, caps(&langs(mask), &[], &[]));
            f.status = FeatureStatus::ALL[status];
            // Features in progress are held by someone (possibly beyond the holder's limit).
            if f.status.is_in_progress() && !agent_list.is_empty() {
                let holder = &mut agent_list[i % agents.len()];
                holder.assignments.push(f.name.clone());
                f.assigned_agent = Some(holder.id.clone());
            }
            feature_list.push(f);
        }
        let v = view(agent_list, feature_list);
        let d = decide(&v, &PolicyConfig::default());
        let mut given: BTreeMap<&str, u32> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for a in &d.assignments {
            proptest::prop_assert!(seen.insert(a.feature_name.as_str()), "{} placed twice", a.feature_name);
            let f = &v.features[&a.feature_name];
            proptest::prop_assert_eq!(f.status, FeatureStatus::Queued);
            let agent = &v.agents[&a.agent_id];
            proptest::prop_assert!(matches!(agent.state, AgentState::Idle | AgentState::Claiming | AgentState::Working));
            for (kind, item) in f.requires.items() {
                proptest::prop_assert!(
                    agent.capabilities.items().any(|(k, i)| k == kind && i == item),
                    "{} lacks {kind} {item} for {}", agent.id, f.name
                );
            }
            *given.entry(agent.id.as_str()).or_default() += 1;
        }
        for (id, n) in given {
            let agent = &v.agents[id];
            proptest::prop_assert!(
                agent.assignments.len() as u32 + n <= agent.max_concurrent_features,
                "{id} holds {} and got {n} more, over its limit {}",
                agent.assignments.len(), agent.max_concurrent_features
            );
        }
        let queued = v.features.values().filter(|f| f.status == FeatureStatus::Queued).count();
        proptest::prop_assert_eq!(d.features_waiting + d.assignments.len(), queued);
    }
}

#[test]
fn only_capable_agents_get_features() {
    let v = view(
        vec![
            agent("py", caps(&["python"], &["fastapi"], &["backend"]), 1),
            agent("ts", caps(&["typescript"], &["react"], &["frontend"]), 1),
        ],
        vec![
            feature("api", Priority::High, 1, caps(&["python"], &[], &[])),
            feature(
                "ui",
                Priority::High,
                2,
                caps(&["typescript"], &["react"], &[]),
            ),
        ],
    );
    let d = decide(&v, &PolicyConfig::default());
    let pairs: Vec<_> = d
        .assignments
        .iter()
        .map(|a| (a.feature_name.as_str(), a.agent_id.as_str()))
        .collect();
    assert_eq!(pairs, [("api", "py"), ("ui", "ts")]);
    assert!(d.assignments.iter().all(|a| (0.0..=1.0).contains(&a.score)));
    assert!(d.assignments[0].reasons[0].contains("language python"));
}

#[test]
fn higher_priority_is_placed_first_and_ties_go_to_the_older() {
    let v = view(
        vec![agent("a", caps(&[], &[], &[]), 1)],
        vec![
            feature("old-low", Priority::Low, 1, caps(&[], &[], &[])),
            feature("new-high", Priority::High, 3, caps(&[], &[], &[])),
            feature("old-high", Priority::High, 2, caps(&[], &[], &[])),
        ],
    );
    let d = decide(&v, &PolicyConfig::default());
    assert_eq!(d.assignments.len(), 1);
    assert_eq!(d.assignments[0].feature_name, "old-high");
    assert_eq!(d.features_waiting, 2);
}

#[test]
fn max_concurrent_is_respected_and_load_spreads_work() {
    let v = view(
        vec![
            agent("a", caps(&[], &[], &[]), 2),
            agent("b", caps(&[], &[], &[]), 2),
        ],
        (0..5)
            .map(|i| feature(&format!("f{i}"), Priority::Medium, i, caps(&[], &[], &[])))
            .collect(),
    );
    let d = decide(&v, &PolicyConfig::default());
    let to: Vec<_> = d.assignments.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(to, ["a", "b", "a", "b"]);
    assert_eq!(d.features_waiting, 1);
}

#[test]
fn the_specialist_wins_over_the_generalist() {
    let v = view(
        vec![
            agent(
                "full",
                caps(
                    &["python", "typescript"],
                    &["fastapi", "react"],
                    &["fullstack"],
                ),
                1,
            ),
            agent("py", caps(&["python"], &[], &[]), 1),
        ],
        vec![feature(
            "api",
            Priority::High,
            1,
            caps(&["python"], &[], &[]),
        )],
    );
    let d = decide(&v, &PolicyConfig::default());
    assert_eq!(d.assignments[0].agent_id, "py");
}

#[test]
fn leases_expire_only_for_silent_agents_holding_work() {
    let mut busy = agent("busy", caps(&[], &[], &[]), 1);
    busy.assignments = vec!["f".into()];
    busy.last_activity = 1_000_000_000;
    let mut idle = agent("idle", caps(&[], &[], &[]), 1);
    idle.last_activity = 0;
    let v = view(vec![busy, idle], vec![]);
    let sec = 1_000_000_000u64;
    assert!(
        expired_leases(&v, 601 * sec - 1).is_empty(),
        "less than 600 s of silence is within the lease"
    );
    assert_eq!(expired_leases(&v, 601 * sec), [("busy".to_string(), 600)]);
    // The deadline is the last activity plus the lease, to the nanosecond.
    assert_eq!(
        lease_deadline(&v, &v.agents["busy"]),
        Some(601 * sec),
        "lease_expires_at = last_activity + lease"
    );
    // The deadline the board shows is the first moment of that verdict.
    let deadline = lease_deadline(&v, &v.agents["busy"]).expect("busy holds work");
    assert!(expired_leases(&v, deadline - 1).is_empty());
    assert_eq!(expired_leases(&v, deadline).len(), 1);
    assert_eq!(lease_deadline(&v, &v.agents["idle"]), None);
}

#[test]
fn wait_reason_names_the_missing_capability() {
    let v = view(
        vec![agent("py", caps(&["python"], &[], &[]), 1)],
        vec![feature(
            "fast",
            Priority::High,
            1,
            caps(&["rust"], &[], &[]),
        )],
    );
    let m = Matcher::new(&v);
    assert_eq!(
        wait_reason(&v, &m, &v.features["fast"]),
        "no registered agent has language rust"
    );
    assert!(decide(&v, &PolicyConfig::default()).assignments.is_empty());
}

#[test]
fn agents_in_error_or_busy_get_nothing() {
    let mut busy = agent("busy", caps(&[], &[], &[]), 1);
    busy.state = AgentState::Working;
    busy.assignments = vec!["x".into()];
    let mut broken = agent("broken", caps(&[], &[], &[]), 1);
    broken.state = AgentState::Error;
    let v = view(
        vec![busy, broken],
        vec![feature("f", Priority::High, 1, caps(&[], &[], &[]))],
    );
    assert!(decide(&v, &PolicyConfig::default()).assignments.is_empty());
    let reason = wait_reason(&v, &Matcher::new(&v), &v.features["f"]);
    assert!(
        reason.starts_with("waiting for a capable agent to be free: "),
        "{reason}"
    );
}

fn scoped(name: &str, seq: u64, paths: &[&str]) -> Feature {
    Feature {
        scopes: paths.iter().map(|p| p.to_string()).collect(),
        ..feature(name, Priority::Medium, seq, caps(&[], &[], &[]))
    }
}

#[test]
fn features_whose_paths_overlap_are_not_worked_on_at_once() {
    let free = || {
        (1..=3)
            .map(|i| agent(&format!("a{i}"), caps(&[], &[], &[]), 1))
            .collect::<Vec<_>>()
    };
    // Two queued in one cycle: the first goes, the second waits; one elsewhere goes too.
    let v = view(
        free(),
        vec![
            scoped("login", 1, &["src/auth/**"]),
            scoped("tokens", 2, &["src/auth/tokens.rs"]),
            scoped("docs", 3, &["docs/**"]),
        ],
    );
    let placed: Vec<String> = decide(&v, &PolicyConfig::default())
        .assignments
        .into_iter()
        .map(|a| a.feature_name)
        .collect();
    assert_eq!(placed, ["login", "docs"]);

    // One being worked on: the queued one waits for it, and says so.
    let mut v = v;
    work_on(&mut v, "a1", "login");
    let placed: Vec<String> = decide(&v, &PolicyConfig::default())
        .assignments
        .into_iter()
        .map(|a| a.feature_name)
        .collect();
    assert_eq!(placed, ["docs"]);
    let reason = wait_reason(&v, &Matcher::new(&v), &v.features["tokens"]);
    assert!(
        reason.starts_with("waits for feature login: its paths (src/auth/**) overlap this feature's (src/auth/tokens.rs)"),
        "{reason}"
    );

    // Allowed to overlap, it goes.
    if let Some(f) = v.features.get_mut("tokens") {
        f.allow_overlap = true;
    }
    let placed: Vec<String> = decide(&v, &PolicyConfig::default())
        .assignments
        .into_iter()
        .map(|a| a.feature_name)
        .collect();
    assert_eq!(placed, ["tokens", "docs"]);
}

#[test]
fn features_that_touch_a_barrier_path_go_one_at_a_time_whatever_they_allow() {
    let mut lock_a = scoped("deps-a", 1, &["Cargo.lock", "src/a/**"]);
    lock_a.allow_overlap = true;
    let mut lock_b = scoped("deps-b", 2, &["Cargo.toml", "Cargo.lock"]);
    lock_b.allow_overlap = true;
    let free = (1..=3)
        .map(|i| agent(&format!("a{i}"), caps(&[], &[], &[]), 1))
        .collect();
    let mut v = view(
        free,
        vec![lock_a, lock_b, scoped("other", 3, &["src/b/**"])],
    );
    let placed = |v: &View| -> Vec<String> {
        decide(v, &PolicyConfig::default())
            .assignments
            .into_iter()
            .map(|a| a.feature_name)
            .collect()
    };
    // No barrier: they allow overlap, so all go.
    assert_eq!(placed(&v), ["deps-a", "deps-b", "other"]);
    v.barrier_paths = vec!["Cargo.lock".into(), ".github/**".into()];
    assert_eq!(placed(&v), ["deps-a", "other"]);
    work_on(&mut v, "a1", "deps-a");
    let reason = wait_reason(&v, &Matcher::new(&v), &v.features["deps-b"]);
    assert!(
        reason.starts_with("waits for feature deps-a: both touch the barrier path Cargo.lock"),
        "{reason}"
    );
}
