//! The merge queue's batches (`spanfold.mergeBatch`): several features tested together on
//! their merged result, a failing batch bisected until the feature that breaks is found, and a
//! process killed while a batch is tested.

use crate::common::{Sandbox, assign, submit};

/// The gate: no file of the tree says BAD.
const GATE: &str = "! cat *.txt 2>/dev/null | grep -q BAD";

fn status_of(sb: &Sandbox, name: &str) -> serde_json::Value {
    let status = sb.status();
    status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no feature {name}: {status}"))
}

/// Every commit main's first-parent history went through passes the gate.
fn main_never_failed(sb: &Sandbox) {
    for commit in sb.git(&["rev-list", "--first-parent", "main"]).lines() {
        let files = sb.git(&["ls-tree", "--name-only", commit]);
        for file in files.lines().filter(|f| f.ends_with(".txt")) {
            let text = sb.git(&["show", &format!("{commit}:{file}")]);
            assert!(
                !text.contains("BAD"),
                "main was at {commit}, whose {file} fails the gate"
            );
        }
    }
}

#[test]
fn a_batch_with_one_bad_feature_merges_the_others_and_returns_the_bad_one() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--validate-cmd", GATE]);
    sb.git(&["config", "spanfold.mergeBatch", "4"]);
    for (i, text) in ["one", "two", "BAD three", "four"].iter().enumerate() {
        let n = i + 1;
        let wt = assign(&sb, &format!("a{n}"), &format!("f{n}"));
        sb.commit_as_agent(
            &wt,
            &format!("f{n}.txt"),
            &format!("{text}\n"),
            &format!("work {n}"),
        );
    }
    for n in 1..=4 {
        submit(&sb, &format!("a{n}"));
    }
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let results: Vec<String> = cycle["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    format!(
                        "{} {}",
                        m["feature_name"].as_str().unwrap_or(""),
                        m["result"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The batch of four fails; the first half passes and lands; the second half fails; alone,
    // f3 fails and f4 lands.
    assert_eq!(
        results,
        [
            "f1 deferred",
            "f2 deferred",
            "f3 deferred",
            "f4 deferred",
            "f1 merged",
            "f2 merged",
            "f3 deferred",
            "f4 deferred",
            "f3 gate_failed",
            "f4 merged",
        ],
        "{cycle}"
    );
    for f in ["f1", "f2", "f4"] {
        assert_eq!(status_of(&sb, f)["status"], "completed", "{f}");
    }
    let bad = status_of(&sb, "f3");
    assert_eq!(bad["status"], "in_progress", "back to its agent: {bad}");
    assert!(
        bad["merge_note"]
            .as_str()
            .is_some_and(|n| n.contains("tested on spanfold/f3 merged with main")),
        "{bad}"
    );
    main_never_failed(&sb);
    // The queue remembers how each left it, newest first.
    let done: Vec<(String, String)> = sb.status()["merge_queue_done"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| {
                    (
                        e["feature"].as_str().unwrap_or("").to_owned(),
                        e["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let done: Vec<(&str, &str)> = done.iter().map(|(f, s)| (f.as_str(), s.as_str())).collect();
    assert_eq!(
        done,
        [
            ("f4", "merged"),
            ("f3", "failed"),
            ("f2", "merged"),
            ("f1", "merged")
        ]
    );
    let text = sb.run(&["agents", "agent-status"]).stdout;
    assert!(
        text.contains("Left the merge queue lately: f4 (merged), f3 (failed)"),
        "{text}"
    );
    let history = sb.ok(&["history", "--feature", "f2"]).to_string();
    assert!(
        history.contains("tested a batch of 4: f1, f2, f3, f4"),
        "{history}"
    );
    let gates = sb.repo.with_extension("worktrees").join(".spanfold-gates");
    assert!(!gates.exists() || std::fs::read_dir(&gates).map(|d| d.count()).unwrap_or(0) == 0);
}

#[test]
fn a_process_killed_while_a_batch_is_tested_merges_every_feature_once_on_restart() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--validate-cmd", "sleep 30"]);
    sb.git(&["config", "spanfold.mergeBatch", "2"]);
    // Both assigned before either is submitted: a cycle that assigns also merges.
    let worktrees: Vec<_> = (1..=2)
        .map(|n| assign(&sb, &format!("a{n}"), &format!("f{n}")))
        .collect();
    for (n, wt) in (1..=2).zip(&worktrees) {
        sb.commit_as_agent(wt, &format!("f{n}.txt"), "work\n", &format!("work {n}"));
        submit(&sb, &format!("a{n}"));
    }
    // The batch's checkout: both features merged onto main.
    let gates = crate::common::kill_a_cycle_in_its_gate(&sb, "batch", &["f1.txt", "f2.txt"]);
    assert_eq!(status_of(&sb, "f1")["status"], "merging");
    assert_eq!(
        sb.git(&["log", "--format=%s", "-1", "main"]).trim(),
        "initial"
    );

    sb.git(&["config", "spanfold.validateCmd", "true"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let merged: Vec<&str> = cycle["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["result"] == "merged")
                .filter_map(|m| m["feature_name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(merged, ["f1", "f2"], "{cycle}");
    assert!(
        !gates.exists() || std::fs::read_dir(&gates).map(|d| d.count()).unwrap_or(0) == 0,
        "no gate worktree remains"
    );
    let listed = sb.git(&["worktree", "list", "--porcelain"]);
    assert!(!listed.contains(".spanfold-gates"), "{listed}");
    let again = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(
        again["merges"],
        serde_json::json!([]),
        "nothing merges twice"
    );
    let log = sb.git(&["log", "--format=%s", "main"]);
    for n in 1..=2 {
        let work = format!("work {n}");
        assert_eq!(log.lines().filter(|l| *l == work).count(), 1, "{log}");
    }
}
