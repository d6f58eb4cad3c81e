//! The coordinator on a real log and a real repository, with a clock that moves only when a
//! test says so: leases run out without anyone sleeping. A stand-in `Workspace` makes git say
//! no where a test needs it to.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod budgets;
mod flaky;
mod merges;

use super::*;
use crate::clock::ManualClock;
use crate::fact::WorktreeAction;
use crate::model::UnixNanos;
use crate::reducer::{AgentState, FeatureStatus};
use crate::vocab::{attr, span};
use flaky::Flaky;

const START: UnixNanos = 1_700_000_000_000_000_000;

/// Runs git in `dir` with an identity of its own (the machine may have none).
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository with one commit on `main`.
fn repository(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").expect("a file");
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    repo
}

/// An initialised coordinator on its own clock (lease: 60 s), with agent `a1` registered and
/// feature `f1` queued.
fn coordinator(dir: &Path) -> (Coordinator, ManualClock) {
    let repo = repository(dir);
    let mut coord = Coordinator::create(&dir.join("log")).expect("a new log");
    let clock = ManualClock::at(START);
    coord.set_clock(Arc::new(clock.clone()));
    let worktrees = dir.join("worktrees");
    let (repo, worktrees) = (repo.display().to_string(), worktrees.display().to_string());
    assert!(coord.init(&repo, "main", &worktrees, 60).expect("init"));
    add_agent_and_feature(&mut coord, "a1", "f1");
    (coord, clock)
}

#[test]
fn what_the_coordinator_writes_is_timed_by_its_clock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (coord, clock) = coordinator(dir.path());
    assert_eq!(clock.now(), START);
    let reader = coord.log().reader();
    let first = reader
        .batches_from(1)
        .next()
        .expect("a batch")
        .expect("readable");
    assert_eq!(
        first.received_at, START,
        "the init's receive time is the clock's"
    );
}

#[test]
fn a_lease_runs_out_when_the_clock_passes_it_and_not_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, clock) = coordinator(dir.path());
    let first = coord.cycle().expect("a cycle");
    assert_eq!(first.assignments.len(), 1, "{first:?}");
    assert_eq!(
        first.assignments[0].worktree_action,
        WorktreeAction::Created
    );
    let worktree = PathBuf::from(&first.assignments[0].worktree_path);
    assert!(worktree.join("README.md").exists());

    // A second short of the lease: nothing expires.
    clock.advance(Duration::from_secs(59));
    let quiet = coord.cycle().expect("a cycle");
    assert!(quiet.leases_expired.is_empty(), "{quiet:?}");
    assert_eq!(coord.view().agents["a1"].state, AgentState::Claiming);

    // Past it: the verdict is recorded, the agent is in error, the worktree kept and unlocked.
    clock.advance(Duration::from_secs(2));
    let expired = coord.cycle().expect("a cycle");
    assert_eq!(expired.leases_expired, vec!["a1".to_owned()]);
    let view = coord.view();
    assert_eq!(view.agents["a1"].state, AgentState::Error);
    assert_eq!(
        view.features["f1"].status,
        crate::reducer::FeatureStatus::Queued
    );
    let kept = view
        .worktrees
        .values()
        .next()
        .expect("the worktree is kept");
    assert!(!kept.locked, "unlocked for the next agent");
    assert!(worktree.join("README.md").exists(), "its work is kept");
}

#[test]
fn a_cycle_is_run_only_when_it_would_do_something() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, clock) = coordinator(dir.path());
    let report = coord.cycle_if_useful().expect("a cycle");
    assert_eq!(report.map(|r| r.assignments.len()), Some(1));
    // The feature is taken and the agent is busy: nothing to decide, nothing written.
    let events = coord.view().counters.events;
    clock.advance(Duration::from_secs(10));
    assert!(coord.cycle_if_useful().expect("no cycle").is_none());
    assert_eq!(coord.view().counters.events, events);
}

/// A client span that took the ids of a decision before it was written does not erase the
/// decision: the decision is stored under new ids.
#[test]
fn a_decision_is_never_dropped_as_a_duplicate_of_a_client_span() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut coord = Coordinator::create(dir.path()).expect("log");
    let taken = emit::IdGen::default().span("tool.call", 1);
    let (trace, span) = (taken.trace_id, taken.span_id);
    coord
        .submit(vec![emit::wrap("agent", vec![taken])], Origin::Client)
        .expect("client span stored");
    let mut decision = emit::init(&mut IdGen::default(), 2, "/r", "main", "/w", 600);
    decision.trace_id = trace;
    decision.span_id = span;
    coord.record(vec![decision]).expect("recorded");
    let view = coord.view();
    assert_eq!(view.counters.events, 2, "both spans are in the log");
    assert!(view.config.is_some(), "the decision was applied");
}

/// Registers agent `id` (one feature at a time) and queues feature `name`.
fn add_agent_and_feature(coord: &mut Coordinator, id: &str, name: &str) {
    let now = coord.clock.now();
    let agent = emit::Registration {
        agent_id: id.into(),
        max_concurrent_features: 1,
        ..Default::default()
    };
    let feature = emit::FeatureRequest {
        name: name.into(),
        description: format!("the feature {name}"),
        estimated_effort: 1,
        ..Default::default()
    };
    let spans = vec![
        emit::registration(&mut IdGen::default(), now, &agent),
        emit::feature_request(&mut IdGen::default(), now, &feature),
    ];
    coord.submit_client(spans).expect("registered and queued");
}

/// The `worktree.lifecycle` spans in the log, oldest first: (action, feature, error).
fn worktree_spans(coord: &Coordinator) -> Vec<(String, String, Option<String>)> {
    spans_of(
        coord,
        span::WORKTREE_LIFECYCLE,
        [
            attr::WORKTREE_ACTION,
            attr::FEATURE_NAME,
            attr::WORKTREE_ERROR,
        ],
    )
}

/// The spans named `name` in the log, oldest first, each as the values of `keys` (the first two
/// empty when absent).
fn spans_of(
    coord: &Coordinator,
    name: &str,
    keys: [&str; 3],
) -> Vec<(String, String, Option<String>)> {
    let reader = coord.log().reader();
    let mut out = Vec::new();
    for batch in reader.batches_from(1) {
        let batch = batch.expect("readable");
        for ev in batch.events().filter(|ev| ev.span.name == name) {
            let get = |key| ev.str_attr(key).map(str::to_owned);
            out.push((
                get(keys[0]).unwrap_or_default(),
                get(keys[1]).unwrap_or_default(),
                get(keys[2]),
            ));
        }
    }
    out
}

#[test]
fn a_worktree_that_cannot_be_created_is_recorded_and_its_feature_queued_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, clock) = coordinator(dir.path());
    add_agent_and_feature(&mut coord, "a2", "f2");
    let flaky = Flaky::over(&coord, &["f2"], false);
    coord.set_workspace(flaky.clone());

    let report = coord.cycle().expect("a cycle");
    let outcomes: Vec<_> = report
        .assignments
        .iter()
        .map(|p| {
            (
                p.agent_id.as_str(),
                p.feature_name.as_str(),
                p.worktree_action.as_str(),
                p.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a1", "f1", "created", None),
            ("a2", "f2", "create_failed", Some("no room for f2")),
        ]
    );
    assert_eq!(
        flaky.calls(),
        vec![
            "ensure f1 spanfold/f1 for a1",
            "ensure f2 spanfold/f2 for a2"
        ],
        "the plan's effects, in the plan's order"
    );
    assert_eq!(
        worktree_spans(&coord),
        vec![
            ("created".into(), "f1".into(), None),
            (
                "create_failed".into(),
                "f2".into(),
                Some("no room for f2".into())
            ),
        ],
        "each outcome recorded, the failure with its error"
    );
    {
        let view = coord.view();
        let f2 = &view.features["f2"];
        assert_eq!(f2.status, FeatureStatus::Queued, "back in the queue");
        assert_eq!(f2.assigned_agent, None);
        assert!(
            f2.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no room for f2")),
            "{:?}",
            f2.last_error
        );
        assert_eq!(view.agents["a2"].state, AgentState::Idle);
        assert!(view.agents["a2"].assignments.is_empty());
        assert_eq!(view.features["f1"].assigned_agent.as_deref(), Some("a1"));
    }

    // Once the workspace lets it, the next cycle places the feature again.
    flaky.failing.lock().expect("not poisoned").clear();
    clock.advance(Duration::from_secs(1));
    let retry = coord.cycle().expect("a cycle");
    let again: Vec<_> = retry
        .assignments
        .iter()
        .map(|p| (p.feature_name.as_str(), p.worktree_action.as_str()))
        .collect();
    assert_eq!(again, vec![("f2", "created")]);
    assert_eq!(
        coord.view().features["f2"].assigned_agent.as_deref(),
        Some("a2")
    );
}

#[test]
fn an_unlock_that_fails_is_recorded_with_its_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, clock) = coordinator(dir.path());
    let flaky = Flaky::over(&coord, &[], true);
    coord.set_workspace(flaky.clone());
    let first = coord.cycle().expect("a cycle");
    assert_eq!(
        first.assignments[0].worktree_action,
        WorktreeAction::Created
    );

    clock.advance(Duration::from_secs(61));
    let expired = coord.cycle().expect("a cycle");
    assert_eq!(expired.leases_expired, vec!["a1".to_owned()]);
    assert_eq!(
        flaky.calls(),
        vec!["ensure f1 spanfold/f1 for a1", "unlock f1"],
        "the lease's worktree is unlocked, and nothing is placed: a1 is in error"
    );
    assert_eq!(
        worktree_spans(&coord).last(),
        Some(&(
            "unlocked".into(),
            "f1".into(),
            Some("the lock is stuck".into())
        ))
    );
    let view = coord.view();
    let kept = view
        .worktrees
        .values()
        .next()
        .expect("the worktree is kept");
    assert!(!kept.locked, "the log lets go of it either way");
}
