//! Merges and recovery through a stand-in workspace: git answers, except where a test makes it
//! say no — a merge that cannot be attempted, a main checkout with changes of its own, a
//! worktree that will not go. Each test checks what the coordinator records, in what order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::flaky::{Flaky, Op};
use super::{add_agent_and_feature, coordinator, git, spans_of, worktree_spans};
use crate::coordinator::{Coordinator, MergeReport};
use crate::emit::{self, IdGen};
use crate::fact::{MergeKind, MergeResult, WorktreeAction};
use crate::reducer::{AgentState, FeatureStatus};
use crate::vocab::{attr, span};

/// `a1` holds `f1` in its worktree, has committed a file there and reported validation
/// passed: the feature waits for its merge. Git runs through a [`Flaky`].
fn submitted(dir: &Path) -> (Coordinator, Arc<Flaky>, PathBuf) {
    let (mut coord, _clock) = coordinator(dir);
    let flaky = Flaky::over(&coord, &[], false);
    coord.set_workspace(flaky.clone());
    let cycle = coord.cycle().expect("a cycle");
    let worktree = PathBuf::from(&cycle.assignments[0].worktree_path);
    std::fs::write(worktree.join("f1.txt"), "the feature\n").expect("work");
    git(&worktree, &["add", "f1.txt"]);
    git(&worktree, &["commit", "-q", "-m", "f1"]);
    report_passed(&mut coord, "a1");
    (coord, flaky, worktree)
}

/// `agent` reports working, then its validation passed.
fn report_passed(coord: &mut Coordinator, agent: &str) {
    let now = coord.clock.now();
    let working = emit::ProgressReport {
        agent_id: agent.into(),
        state: Some(AgentState::Working),
        ..Default::default()
    };
    let spans = vec![
        emit::progress(&mut IdGen::default(), now, &working),
        emit::validation(&mut IdGen::default(), now, agent, None, true, None),
    ];
    coord.submit_client(spans).expect("reported");
}

/// The `coordination.feature_merge` spans in the log: (result, feature, reason).
fn merge_spans(coord: &Coordinator) -> Vec<(String, String, Option<String>)> {
    spans_of(
        coord,
        span::COORDINATION_FEATURE_MERGE,
        [attr::MERGE_RESULT, attr::FEATURE_NAME, attr::MERGE_REASON],
    )
}

fn results(coord: &Coordinator) -> Vec<String> {
    merge_spans(coord).into_iter().map(|(r, _, _)| r).collect()
}

fn outcomes(reports: &[MergeReport]) -> Vec<(&str, MergeResult)> {
    reports
        .iter()
        .map(|r| (r.feature_name.as_str(), r.result))
        .collect()
}

#[test]
fn a_merge_is_recorded_as_started_before_it_happens_and_its_worktree_removed_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, worktree) = submitted(dir.path());
    let reports = coord.merge_ready().expect("merged");
    assert_eq!(outcomes(&reports), vec![("f1", MergeResult::Merged)]);
    assert_eq!(reports[0].kind, Some(MergeKind::FastForward));
    assert_eq!(reports[0].worktree, Some(WorktreeAction::Removed));
    assert_eq!(
        flaky.calls()[1..],
        ["check spanfold/f1", "merge spanfold/f1", "remove f1"],
        "checked, merged, then cleaned up"
    );
    assert_eq!(results(&coord), ["started", "merged"]);
    let actions: Vec<String> = worktree_spans(&coord).into_iter().map(|w| w.0).collect();
    assert_eq!(actions, ["created", "removed"]);
    assert!(!worktree.exists());
    let view = coord.view();
    assert_eq!(view.features["f1"].status, FeatureStatus::Completed);
    assert_eq!(view.agents["a1"].state, AgentState::Idle);
}

#[test]
fn a_merge_that_cannot_be_attempted_is_its_outcome_and_is_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, _) = submitted(dir.path());
    flaky.answer(Op::Merge, Some("the object database is read-only"));
    let reports = coord.merge_ready().expect("the cycle goes on");
    assert_eq!(outcomes(&reports), vec![("f1", MergeResult::Failed)]);
    let recorded = merge_spans(&coord);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0].0, "started");
    assert_eq!(recorded[1].0, "failed");
    let reason = recorded[1].2.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("the merge could not be attempted")
            && reason.contains("the object database is read-only"),
        "{reason}"
    );
    assert_eq!(coord.view().features["f1"].status, FeatureStatus::Merging);

    flaky.answer(Op::Merge, None);
    let retry = coord.merge_ready().expect("merged");
    assert_eq!(outcomes(&retry), vec![("f1", MergeResult::Merged)]);
}

#[test]
fn a_merge_that_must_wait_is_recorded_once_per_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, _) = submitted(dir.path());
    flaky.answer(
        Op::Blocker,
        Some("the main checkout has changes: README.md"),
    );
    let first = coord.merge_ready().expect("deferred");
    assert_eq!(outcomes(&first), vec![("f1", MergeResult::Deferred)]);
    let again = coord.merge_ready().expect("still deferred");
    assert!(again.is_empty(), "the same reason is not recorded twice");
    flaky.answer(Op::Blocker, Some("the main checkout has changes: LICENSE"));
    let changed = coord.merge_ready().expect("deferred again");
    assert_eq!(outcomes(&changed), vec![("f1", MergeResult::Deferred)]);
    assert_eq!(results(&coord), ["deferred", "deferred"]);
    assert!(
        !flaky.calls().iter().any(|c| c.starts_with("merge ")),
        "no merge was tried while it was unsafe"
    );

    flaky.answer(Op::Blocker, None);
    let merged = coord.merge_ready().expect("merged");
    assert_eq!(outcomes(&merged), vec![("f1", MergeResult::Merged)]);
}

#[test]
fn a_submission_with_a_problem_goes_back_to_its_agent_untried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, _) = submitted(dir.path());
    flaky.answer(Op::Problem, Some("f1.txt is not committed"));
    let reports = coord.merge_ready().expect("returned");
    assert_eq!(outcomes(&reports), vec![("f1", MergeResult::Returned)]);
    assert_eq!(
        reports[0].reason.as_deref(),
        Some("f1.txt is not committed")
    );
    assert_eq!(results(&coord), ["returned"]);
    assert!(!flaky.calls().iter().any(|c| c.starts_with("merge ")));
    let view = coord.view();
    assert_eq!(view.features["f1"].status, FeatureStatus::InProgress);
    assert_eq!(view.agents["a1"].state, AgentState::Working);
}

#[test]
fn a_worktree_that_will_not_go_after_its_merge_is_kept_and_said_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, worktree) = submitted(dir.path());
    flaky.answer(Op::Remove, Some("device busy"));
    let reports = coord.merge_ready().expect("merged");
    assert_eq!(outcomes(&reports), vec![("f1", MergeResult::Merged)]);
    assert_eq!(reports[0].worktree, Some(WorktreeAction::Kept));
    let last = worktree_spans(&coord)
        .pop()
        .expect("the worktree's outcome");
    assert_eq!(last.0, "kept");
    let error = last.2.unwrap_or_default();
    assert!(
        error.starts_with("removing it failed") && error.contains("device busy"),
        "{error}"
    );
    assert!(worktree.exists(), "nothing is lost");
}

#[test]
fn merges_go_oldest_request_first_and_one_failing_does_not_stop_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, flaky, _) = submitted(dir.path());
    // f1 stays submitted (its merge cannot be attempted), while f2 is placed and submitted.
    flaky.answer(Op::Merge, Some("no"));
    add_agent_and_feature(&mut coord, "a2", "f2");
    let cycle = coord.cycle().expect("a cycle");
    assert_eq!(outcomes(&cycle.merges), vec![("f1", MergeResult::Failed)]);
    assert_eq!(cycle.assignments[0].feature_name, "f2");
    let worktree = PathBuf::from(&cycle.assignments[0].worktree_path);
    std::fs::write(worktree.join("f2.txt"), "more\n").expect("work");
    git(&worktree, &["add", "f2.txt"]);
    git(&worktree, &["commit", "-q", "-m", "f2"]);
    report_passed(&mut coord, "a2");

    let failing = coord.merge_ready().expect("a round");
    assert_eq!(
        outcomes(&failing),
        vec![("f1", MergeResult::Failed), ("f2", MergeResult::Failed)]
    );
    flaky.answer(Op::Merge, None);
    let merged = coord.merge_ready().expect("a round");
    assert_eq!(
        outcomes(&merged),
        vec![("f1", MergeResult::Merged), ("f2", MergeResult::Merged)]
    );
    assert_eq!(
        merged[1].kind,
        Some(MergeKind::MergeCommit),
        "f2 branched before f1 merged"
    );
}

#[test]
fn recovery_records_a_worktree_removed_by_hand_then_builds_it_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, _clock) = coordinator(dir.path());
    let flaky = Flaky::over(&coord, &[], false);
    coord.set_workspace(flaky.clone());
    let cycle = coord.cycle().expect("a cycle");
    let worktree = PathBuf::from(&cycle.assignments[0].worktree_path);
    std::fs::remove_dir_all(&worktree).expect("removed by hand");

    let notes = coord.recover().expect("recovered");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("was removed by hand"), "{notes:?}");
    assert!(
        notes[1].starts_with("f1: recreated from its branch"),
        "{notes:?}"
    );
    let recorded = worktree_spans(&coord);
    let actions: Vec<&str> = recorded.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(actions, ["created", "missing", "created"]);
    assert!(
        recorded[2]
            .2
            .as_deref()
            .is_some_and(|n| n.contains("removed by hand")),
        "the rebuild says why: {recorded:?}"
    );
    assert!(worktree.join("README.md").exists(), "checked out again");
    assert_eq!(
        flaky.calls(),
        [
            "ensure f1 spanfold/f1 for a1",
            "ensure f1 spanfold/f1 for a1"
        ]
    );
    // Git and the log agree now: a second recovery has nothing to do.
    assert!(coord.recover().expect("recovered").is_empty());
    assert_eq!(worktree_spans(&coord).len(), 3);
}

#[test]
fn a_rebuild_that_fails_on_recovery_is_recorded_and_the_feature_queued_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coord, _clock) = coordinator(dir.path());
    let flaky = Flaky::over(&coord, &[], false);
    coord.set_workspace(flaky.clone());
    let cycle = coord.cycle().expect("a cycle");
    std::fs::remove_dir_all(&cycle.assignments[0].worktree_path).expect("removed by hand");
    flaky
        .failing
        .lock()
        .expect("not poisoned")
        .push("f1".into());

    coord.recover().expect("recovered");
    let last = worktree_spans(&coord).pop().expect("an outcome");
    assert_eq!(
        (last.0.as_str(), last.2.as_deref()),
        ("create_failed", Some("no room for f1"))
    );
    let view = coord.view();
    assert_eq!(view.features["f1"].status, FeatureStatus::Queued);
    assert_eq!(view.features["f1"].assigned_agent, None);
}
