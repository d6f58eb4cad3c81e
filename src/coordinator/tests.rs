//! The coordinator on a real log and a real repository, with a clock that moves only when a
//! test says so: leases run out without anyone sleeping.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::model::UnixNanos;
use crate::reducer::AgentState;

const START: UnixNanos = 1_700_000_000_000_000_000;

/// A repository with one commit on `main`, made by git with an identity of its own (the
/// machine may have none).
fn repository(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").expect("a file");
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "first"]);
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
    let now = clock.now();
    let agent = emit::Registration {
        agent_id: "a1".into(),
        max_concurrent_features: 1,
        ..Default::default()
    };
    let feature = emit::FeatureRequest {
        name: "f1".into(),
        description: "the first feature".into(),
        estimated_effort: 1,
        ..Default::default()
    };
    let spans = vec![
        emit::registration(&mut IdGen::default(), now, &agent),
        emit::feature_request(&mut IdGen::default(), now, &feature),
    ];
    coord.submit_client(spans).expect("registered and queued");
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
    assert_eq!(first.assignments[0].worktree_action, "created");
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
