//! The merge gate tests the merged result, not the feature's branch alone: the base branch only
//! ever moves to a commit that passed (the rule of every merge queue).

use crate::common::{Sandbox, assign, submit};

/// The gate: a name `cli.txt` uses must be defined in `lib.txt`.
const GATE: &str = "test ! -f cli.txt || grep -q \"fn $(cat cli.txt)\" lib.txt";

fn feature<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no feature {name}: {status}"))
}

/// Whether the gate passes on the tree `rev` names.
fn passes_at(sb: &Sandbox, rev: &str) -> bool {
    let dir = sb
        .tmp
        .path()
        .join(format!("check-{}", rev.replace('/', "-")));
    sb.git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        dir.to_str().unwrap_or(""),
        rev,
    ]);
    let ok = std::process::Command::new("sh")
        .args(["-c", GATE])
        .current_dir(&dir)
        .status()
        .is_ok_and(|s| s.success());
    sb.git(&["worktree", "remove", "--force", dir.to_str().unwrap_or("")]);
    ok
}

#[test]
fn two_features_that_pass_alone_but_break_together_never_reach_the_base() {
    let sb = Sandbox::new("main");
    sb.commit_as_agent(&sb.repo, "lib.txt", "fn word_count\n", "a library");
    sb.ok(&["agents", "init", "--validate-cmd", GATE]);
    // Branched from the same base: one starts using word_count, the other renames it.
    let cli = assign(&sb, "a1", "cli-entry");
    let stats = assign(&sb, "a2", "stats-chars");
    sb.commit_as_agent(&cli, "cli.txt", "word_count", "the CLI counts words");
    sb.commit_as_agent(&stats, "lib.txt", "fn count_words\n", "rename word_count");
    assert!(
        passes_at(&sb, "spanfold/stats-chars"),
        "the rename passes alone"
    );

    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    let landed = sb.git(&["rev-parse", "main"]);

    // Merged cleanly with main (no textual conflict), the rename breaks the CLI: refused.
    submit(&sb, "a2");
    let queue = &sb.status()["merge_queue"];
    assert_eq!(
        (
            &queue[0]["feature"],
            &queue[0]["state"],
            &queue[0]["position"]
        ),
        (&"stats-chars".into(), &"waiting".into(), &1.into()),
        "{queue}"
    );
    let text = sb.run(&["agents", "agent-status"]).stdout;
    assert!(
        text.contains("Merge queue: 1. stats-chars (waiting)"),
        "{text}"
    );
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "gate_failed", "{cycle}");
    assert_eq!(sb.git(&["rev-parse", "main"]), landed, "main did not move");
    assert!(passes_at(&sb, "main"), "main passes its gate");
    let status = sb.status();
    let f = feature(&status, "stats-chars");
    assert_eq!(f["status"], "in_progress", "back to its agent: {f}");
    let note = f["merge_note"].as_str().unwrap_or_default();
    assert!(
        note.contains("tested on spanfold/stats-chars merged with main at"),
        "the note says what was tested: {note}"
    );
    assert!(
        note.contains("spanfold/stats-chars passes the gate alone: it breaks together with what merged into main since it branched: cli-entry"),
        "and what it breaks with: {note}"
    );
    // The temporary worktree of the merged result is gone, from the disk and from git.
    let gates = sb.repo.with_extension("worktrees").join(".spanfold-gates");
    let left: Vec<_> = std::fs::read_dir(&gates)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let listed = sb.git(&["worktree", "list", "--porcelain"]);
    assert!(!listed.contains(".spanfold-gates"), "{listed}");

    // Fixed on top of main (the CLI follows the rename), it passes and lands.
    let who = ["-c", "user.name=a2", "-c", "user.email=a2@localhost"];
    sb.git_in(
        &stats,
        &[&who[..], &["merge", "-q", "--no-edit", "main"]].concat(),
    );
    sb.commit_as_agent(
        &stats,
        "cli.txt",
        "count_words",
        "the CLI follows the rename",
    );
    submit(&sb, "a2");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert!(passes_at(&sb, "main"));
}

#[test]
fn a_process_killed_while_its_gate_runs_leaves_no_gate_worktree_and_merges_once() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--validate-cmd", "sleep 30"]);
    let wt = assign(&sb, "a1", "slow");
    sb.commit_as_agent(&wt, "work.txt", "work\n", "work");
    submit(&sb, "a1");
    // The cycle waits for its gate; it is killed while the merged result is checked out.
    let gates = crate::common::kill_a_cycle_in_its_gate(&sb, "slow", &["work.txt"]);
    assert_eq!(
        sb.git(&["log", "--format=%s", "-1", "main"]).trim(),
        "initial"
    );

    // Restarted with a gate that passes: the leftover checkout is removed, the feature merges
    // once.
    sb.git(&["config", "spanfold.validateCmd", "true"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert!(!gates.exists(), "no gate worktree remains");
    let listed = sb.git(&["worktree", "list", "--porcelain"]);
    assert!(!listed.contains(".spanfold-gates"), "{listed}");
    let again = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(
        again["merges"],
        serde_json::json!([]),
        "nothing merges twice"
    );
    let work = sb.git(&["log", "--format=%s", "main"]);
    assert_eq!(work.lines().filter(|l| *l == "work").count(), 1, "{work}");
}

#[test]
fn a_base_that_moves_while_the_merged_result_is_tested_is_tested_again() {
    let sb = Sandbox::new("main");
    // The gate commits to main in the main checkout, once: the base moves under the test.
    let mark = sb.tmp.path().join("moved-once");
    let gate = format!(
        "test -f {m} || {{ touch {m} && git -C {r} -c user.name=u -c user.email=u@localhost commit -q --allow-empty -m moved; }}",
        m = mark.display(),
        r = sb.repo.display()
    );
    sb.ok(&["agents", "init", "--validate-cmd", &gate]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1 work");
    submit(&sb, "a1");
    // The result that passed was made on a tip main has left: not landed; tested again on the
    // new tip (the command waits for the gates its round starts), it lands on top of it.
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let results: Vec<(&str, &str)> = cycle["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["result"].as_str().unwrap_or(""),
                        m["reason"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(results.len(), 1, "{cycle}");
    assert_eq!(results[0].0, "merged", "{cycle}");
    // Two gates: the first on the old tip (its pass not used), the second on the new one.
    let history = sb.run(&["history", "--feature", "f1"]).stdout;
    assert_eq!(
        history.matches("merge gate_started").count(),
        2,
        "{history}"
    );
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main^1"]).trim(),
        "moved",
        "landed on the new tip"
    );
    let log = sb.git(&["log", "--format=%s", "main"]);
    assert!(log.contains("moved") && log.contains("f1 work"), "{log}");
}

#[test]
fn with_approval_required_a_submitted_feature_waits_for_a_person_who_can_send_it_back() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.git(&["config", "spanfold.requireApproval", "true"]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1 work");
    let refused = sb.fails(&["agents", "approve", "f1"]);
    assert!(refused.contains("not submitted"), "{refused}");
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "awaiting_approval", "{cycle}");
    assert_eq!(sb.status()["merge_queue"][0]["state"], "awaiting_approval");
    let again = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(again["merges"], serde_json::json!([]), "held, said once");
    let shown = sb.run(&["agents", "show-feature", "f1"]).stdout;
    assert!(
        shown.contains("f1.txt") && shown.contains("1 file changed"),
        "{shown}"
    );
    let diff = sb.ok(&["agents", "show-feature", "f1", "--diff"]);
    assert!(
        diff["diff"].as_str().is_some_and(|d| d.contains("+f1")),
        "{diff}"
    );

    // Sent back with the reason, which its agent reads in its task.
    sb.ok(&["agents", "reject", "f1", "--reason", "say what f1 is for"]);
    let f = feature(&sb.status(), "f1").clone();
    assert_eq!(f["status"], "in_progress", "{f}");
    let next = sb.run(&["agents", "next", "a1"]).stdout;
    assert!(next.contains("rejected: say what f1 is for"), "{next}");
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "initial"
    );

    // Submitted again, it needs a new approval; approved, it merges.
    sb.commit_as_agent(
        &wt,
        "f1.txt",
        "f1: counts words\n",
        "f1 says what it is for",
    );
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "awaiting_approval", "{cycle}");
    sb.ok(&["agents", "approve", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");

    // replay --verify re-checks the queue: without the approval, that merge could not start.
    let path = sb.tmp.path().join("approval.jsonl");
    let p = path.to_str().unwrap_or("");
    sb.ok(&["export", "-o", p]);
    let ok = sb.run(&["replay", p, "--verify"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // The approval's span renamed to one nothing reads: as if no one had approved.
    let without: Vec<String> = text
        .lines()
        .map(
            |l| match l.contains("feature.review") && l.contains("approved") {
                true => l.replace("feature.review", "feature.unread"),
                false => l.to_owned(),
            },
        )
        .collect();
    assert_ne!(
        without.join("\n"),
        text.trim_end(),
        "the approval was found"
    );
    std::fs::write(&path, without.join("\n") + "\n").unwrap_or_default();
    let bad = sb.run(&["--json", "replay", p, "--verify"]);
    assert_ne!(
        bad.code, 0,
        "a merge of a feature held for approval must fail verify"
    );
    let doc = bad.json();
    let divergence = &doc["data"]["verify"]["divergence"];
    assert_eq!(divergence["kind"], "merge", "{divergence}");
    assert_eq!(
        divergence["recomputed"]["reasons"][0],
        "waiting for a person's approval"
    );
}
