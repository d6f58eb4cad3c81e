//! What the reducer fuzz target checks after each event and each decision: the invariants of the
//! view, what an event changed, the policy's rules and the status document's counts.

use super::*;

/// The checks after every event; true when it became an anomaly.
pub(crate) fn check_event(
    before: &View,
    after: &View,
    ev: &Event<'_>,
    changed: &[changes::Change],
) -> bool {
    assert_eq!((after.as_of.seq, after.as_of.time), (ev.seq, ev.time));
    assert_eq!(after.counters.events, before.counters.events + 1);
    let anomaly = after.counters.anomalies > before.counters.anomalies;
    assert!(after.counters.anomalies <= before.counters.anomalies + 1);
    if anomaly {
        let last = after.anomalies.back().expect("the anomaly is listed");
        assert_eq!(last.seq, ev.seq);
        assert_eq!(last.span, ev.span.name.as_str());
        assert!(!last.reason.is_empty());
        // Nothing else changed, but the named agent's liveness and its count of anomalies.
        let mut rest = after.clone();
        rest.as_of = before.as_of;
        rest.counters.events = before.counters.events;
        rest.counters.anomalies = before.counters.anomalies;
        rest.anomalies = before.anomalies.clone();
        if let Some(id) = ev.str_attr("agent.id")
            && let (Some(a), Some(b)) = (rest.agents.get_mut(id), before.agents.get(id))
        {
            a.last_activity = b.last_activity;
            a.anomalies = b.anomalies;
        }
        assert_same(
            &rest,
            before,
            &format!(
                "an illegal input ({}: {}) changed more than the record of it",
                ev.span.name, last.reason
            ),
        );
    }
    // What `changes::apply` reports is what changed.
    let reported: Vec<&changes::Change> =
        changed.iter().filter(|c| c.entity != "anomaly").collect();
    let diff = changes::diff(before, after);
    let diff: Vec<&changes::Change> = diff.iter().collect();
    assert_eq!(
        reported, diff,
        "changes::apply missed or invented a change for {} ({:?})",
        ev.span.name, ev.span.attributes
    );
    assert_eq!(
        changed.iter().any(|c| c.entity == "anomaly"),
        anomaly,
        "anomaly reported iff recorded"
    );
    invariants(after);
    anomaly
}

pub(crate) fn invariants(view: &View) {
    assert_eq!(
        view.tally,
        FeatureTally::of(view.features.values()),
        "feature counts drifted at seq {}",
        view.as_of.seq
    );
    assert!(view.anomalies.len() <= MAX_ANOMALIES);
    assert!(view.counters.anomalies >= view.anomalies.len() as u64);
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, agent) in &view.agents {
        assert_eq!(id, &agent.id);
        assert!(names::agent_id(id).is_ok(), "agent {id:?} in the view");
        assert!((1..=1024).contains(&agent.max_concurrent_features));
        for name in &agent.assignments {
            if let Some(other) = holder.insert(name, id) {
                panic!("feature {name} is held by {other} and by {id}");
            }
            let Some(f) = view.features.get(name) else {
                panic!("agent {id} holds {name}, which was never requested");
            };
            assert_eq!(
                f.assigned_agent.as_deref(),
                Some(id.as_str()),
                "agent {id} holds {name}, which names another holder"
            );
        }
    }
    for (name, f) in &view.features {
        assert_eq!(name, &f.name);
        assert!(
            names::feature_name(name).is_ok(),
            "feature {name:?} in the view"
        );
        if let Some(agent) = &f.assigned_agent {
            assert_eq!(
                holder.get(name.as_str()).copied(),
                Some(agent.as_str()),
                "feature {name} names {agent} as its holder, who does not hold it"
            );
        }
        // "Held by an agent and not finished" (FeatureStatus::is_in_progress).
        assert_eq!(
            f.status.is_in_progress(),
            f.assigned_agent.is_some(),
            "feature {name} is {} with holder {:?}",
            f.status.as_str(),
            f.assigned_agent
        );
    }
    for (path, wt) in &view.worktrees {
        assert_eq!(path, &wt.path);
    }
}

pub(crate) fn check_decision(view: &View, d: &Decision) {
    let mut placed = BTreeSet::new();
    let mut given: BTreeMap<&str, u32> = BTreeMap::new();
    for a in &d.assignments {
        assert!(
            placed.insert(a.feature_name.as_str()),
            "{} placed twice",
            a.feature_name
        );
        let f = &view.features[&a.feature_name];
        assert_eq!(f.status, FeatureStatus::Queued);
        assert_eq!(f.priority, a.priority);
        let agent = &view.agents[&a.agent_id];
        assert!(agent.can_take_more(), "{} cannot take more", agent.id);
        for (kind, item) in f.requires.items() {
            assert!(
                agent
                    .capabilities
                    .items()
                    .any(|(k, i)| k == kind && i == item),
                "{} lacks {kind} {item} for {}",
                agent.id,
                f.name
            );
        }
        assert!(
            (0.0..=1.0).contains(&a.score) && (a.score * 1000.0).round() / 1000.0 == a.score,
            "score {}",
            a.score
        );
        *given.entry(a.agent_id.as_str()).or_default() += 1;
    }
    for (id, n) in given {
        let agent = &view.agents[id];
        assert!(
            agent.assignments.len() as u32 + n <= agent.max_concurrent_features,
            "{id} holds {} and got {n} more, over its limit {}",
            agent.assignments.len(),
            agent.max_concurrent_features
        );
    }
    let queued = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Queued)
        .count();
    assert_eq!(d.features_waiting + d.assignments.len(), queued);
}

pub(crate) fn status_doc(view: &View, c: &mut Choices) {
    let agent = (c.byte() & 1 == 1).then(|| c.word(AGENTS).to_owned());
    let per_status = c.byte();
    let options = StatusOptions {
        agent: agent.clone(),
        details: c.byte() & 1 == 1,
        // Bounded lists must still count everything in the summary (checked below).
        per_status: (per_status & 1 == 1).then_some(usize::from(per_status >> 1)),
        ..StatusOptions::default()
    };
    let doc = status::build(view, &options);
    let summary = &doc.coordination_status;
    assert_eq!(summary.total_agents, view.agents.len());
    assert_eq!(
        summary.agents_by_state.values().sum::<usize>(),
        view.agents.len()
    );
    assert_eq!(summary.total_worktrees, view.worktrees.len());
    assert_eq!(
        summary.worktrees_by_status.values().sum::<usize>(),
        view.worktrees.len()
    );
    assert_eq!(
        summary.features_by_status.values().sum::<usize>(),
        view.features.len()
    );
    let count = |pred: &dyn Fn(FeatureStatus) -> bool| {
        view.features.values().filter(|f| pred(f.status)).count()
    };
    assert_eq!(
        summary.features_in_queue,
        count(&|s| s == FeatureStatus::Queued)
    );
    assert_eq!(summary.features_in_progress, count(&|s| s.is_in_progress()));
    assert_eq!(
        summary.features_completed,
        count(&|s| s == FeatureStatus::Completed)
    );
    assert_eq!(
        summary.active_agents + summary.idle_agents + summary.agents_by_state["error"],
        summary.total_agents
    );
    let health = summary.coordination_health;
    assert!((0.0..=1.0).contains(&health), "health {health}");
    assert_eq!(doc.as_of.seq, view.as_of.seq);
    // What is listed: everything asked for, but at most `per_status` of each status.
    let listed = |features: Vec<FeatureStatus>| match options.per_status {
        None => features.len(),
        Some(limit) => FeatureStatus::ALL
            .iter()
            .map(|st| features.iter().filter(|s| *s == st).count().min(limit))
            .sum(),
    };
    match &agent {
        None => {
            assert_eq!(doc.agents.len(), view.agents.len());
            let all = view.features.values().map(|f| f.status).collect();
            assert_eq!(doc.features.len(), listed(all));
        }
        Some(id) => {
            let held = view.agents.get(id).map_or(Vec::new(), |a| {
                a.assignments
                    .iter()
                    .filter_map(|n| view.features.get(n).map(|f| f.status))
                    .collect()
            });
            assert_eq!(doc.agents.len(), usize::from(view.agents.contains_key(id)));
            assert_eq!(doc.features.len(), listed(held));
        }
    }
    for f in &doc.features {
        if f.status == FeatureStatus::Queued {
            assert!(f.wait_reason.as_deref().is_some_and(|r| !r.is_empty()));
        }
    }
    serde_json::to_string(&doc).expect("the status document serialises");
}
