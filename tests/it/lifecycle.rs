//! A feature from queue to merged: the agent commits in its worktree, validates, submits; the
//! coordinator merges (fast-forward or merge commit), removes the worktree and the branch, and
//! keeps the user's main checkout consistent. Conflicts go back to the agent.

use crate::common;

use spanfold::reducer::AgentState;

use std::path::PathBuf;

use common::{Sandbox, assign, feature, submit};

#[test]
fn a_submitted_feature_is_merged_and_everything_is_cleaned_up() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "hello");
    sb.commit_as_agent(&wt, "hello.txt", "hello\n", "add hello");
    submit(&sb, "a1");
    let status = sb.status();
    assert_eq!(feature(&status, "hello")["status"], "merging");

    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let merge = &cycle["merges"][0];
    assert_eq!(merge["result"], "merged", "{cycle}");
    assert_eq!(merge["kind"], "fast_forward");
    assert_eq!(merge["worktree"], "removed");

    // The base branch has the work, the main checkout shows it and is clean.
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "add hello"
    );
    assert_eq!(
        std::fs::read_to_string(sb.repo.join("hello.txt"))
            .ok()
            .as_deref(),
        Some("hello\n")
    );
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
    // No worktree, no branch left behind.
    assert!(sb.git_worktrees().is_empty(), "{:?}", sb.git_worktrees());
    assert!(!wt.exists());
    assert_eq!(sb.git(&["branch", "--list", "spanfold/*"]).trim(), "");
    sb.git(&["fsck", "--no-progress"]);

    let status = sb.status();
    let f = feature(&status, "hello");
    assert_eq!(f["status"], "completed");
    assert_eq!(f["merge_commit"], sb.git(&["rev-parse", "main"]).trim());
    assert_eq!(status["agents"][0]["state"], "idle");
    assert!(status["worktrees"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(status["coordination_status"]["features_completed"], 1);
    assert!(
        status["anomalies"].as_array().is_some_and(Vec::is_empty),
        "{}",
        status["anomalies"]
    );
}

#[test]
fn a_conflict_goes_back_to_its_agent_and_merges_once_resolved() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt1 = assign(&sb, "a1", "greeting-en");
    let wt2 = assign(&sb, "a2", "greeting-fr");
    sb.commit_as_agent(&wt1, "README.md", "# project\nhello\n", "english greeting");
    sb.commit_as_agent(&wt2, "README.md", "# project\nbonjour\n", "french greeting");
    submit(&sb, "a1");
    submit(&sb, "a2");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let results: Vec<(&str, &str)> = cycle["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| {
                    (
                        x["feature_name"].as_str().unwrap_or(""),
                        x["result"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        results,
        [("greeting-en", "merged"), ("greeting-fr", "conflicted")]
    );
    let status = sb.status();
    let fr = feature(&status, "greeting-fr");
    assert_eq!(fr["status"], "conflicted");
    assert_eq!(fr["conflicts"][0], "README.md");
    // Nothing half-merged: main has only the English line, and is clean.
    assert_eq!(
        std::fs::read_to_string(sb.repo.join("README.md"))
            .ok()
            .as_deref(),
        Some("# project\nhello\n")
    );
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
    let status = sb.status_doc();
    assert_eq!(common::agent_in(&status, "a2").state, AgentState::Working);
    // `next` tells a2 it has work again.
    let next = sb.ok(&["agents", "next", "a2"]);
    assert_eq!(next["feature_name"], "greeting-fr");

    // The agent resolves: merges main into its branch, keeps both lines, commits.
    let merged = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Agent",
            "-c",
            "user.email=agent@example.com",
            "merge",
            "-q",
            "main",
        ])
        .current_dir(&wt2)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("git merge runs");
    assert!(!merged.success(), "the agent sees the conflict too");
    sb.commit_as_agent(
        &wt2,
        "README.md",
        "# project\nhello\nbonjour\n",
        "both greetings",
    );
    sb.ok(&["agents", "progress", "a2", "--state", "validating"]);
    sb.ok(&["agents", "validate", "a2", "--result", "passed"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert_eq!(
        std::fs::read_to_string(sb.repo.join("README.md"))
            .ok()
            .as_deref(),
        Some("# project\nhello\nbonjour\n")
    );
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
    assert!(sb.git_worktrees().is_empty());
    sb.git(&["fsck", "--no-progress"]);
    let status = sb.status();
    assert_eq!(status["coordination_status"]["features_completed"], 2);
}

#[test]
fn independent_work_is_joined_with_a_merge_commit() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt1 = assign(&sb, "a1", "one");
    let wt2 = assign(&sb, "a2", "two");
    sb.commit_as_agent(&wt1, "one.txt", "1\n", "one");
    sb.commit_as_agent(&wt2, "two.txt", "2\n", "two");
    submit(&sb, "a1");
    submit(&sb, "a2");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let kinds: Vec<&str> = cycle["merges"]
        .as_array()
        .map(|m| m.iter().map(|x| x["kind"].as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["fast_forward", "merge_commit"]);
    // No git identity on this machine, yet the merge commit has an author.
    let author = sb.git(&["log", "-1", "--format=%an <%ae>|%P", "main"]);
    assert!(
        author.starts_with("spanfold <spanfold@localhost>|"),
        "{author}"
    );
    assert_eq!(
        author
            .trim()
            .split('|')
            .nth(1)
            .map(|p| p.split(' ').count()),
        Some(2)
    );
    assert!(sb.repo.join("one.txt").exists() && sb.repo.join("two.txt").exists());
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_dirty_main_checkout_defers_the_merge_with_a_reason() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1");
    submit(&sb, "a1");
    std::fs::write(sb.repo.join("README.md"), "# local edit, not committed\n").expect("write");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "deferred", "{cycle}");
    let status = sb.status();
    let f = feature(&status, "f1");
    assert_eq!(f["status"], "merging");
    assert!(
        f["wait_reason"]
            .as_str()
            .unwrap_or("")
            .contains("uncommitted changes"),
        "{f}"
    );
    // The user's edit is untouched, main did not move.
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "initial"
    );
    assert!(
        std::fs::read_to_string(sb.repo.join("README.md"))
            .unwrap_or_default()
            .contains("local edit")
    );
    // Retrying with the same reason adds nothing to the log.
    let seq = status["as_of"]["seq"].clone();
    let again = sb.ok(&["agents", "coordination-cycle"]);
    assert!(again["merges"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(
        sb.status()["counters"]["events"].as_u64(),
        seq.as_u64().map(|s| s + 2),
        "only the cycle and health spans"
    );
    // Once the edit is gone the merge goes through.
    sb.git(&["checkout", "--", "README.md"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged");
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_silent_agent_loses_its_feature_to_another_and_the_work_is_kept() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "1"]);
    let wt = assign(&sb, "sleepy", "f1");
    sb.commit_as_agent(&wt, "draft.txt", "half done\n", "draft");
    std::fs::write(wt.join("notes.txt"), "uncommitted thoughts\n").expect("write");
    sb.ok(&["agents", "register-agent", "eager"]);
    // Three seconds later for the coordinator: past sleepy's one-second lease.
    let cycle = sb.ok_later(3, &["agents", "coordination-cycle"]);
    assert_eq!(cycle["leases_expired"][0], "sleepy", "{cycle}");
    // Freed in the same cycle, the feature goes to the other agent, in the same worktree.
    assert_eq!(cycle["assignments"][0]["agent_id"], "eager");
    assert_eq!(cycle["assignments"][0]["worktree_action"], "reused");
    assert!(wt.join("notes.txt").exists(), "work is never destroyed");
    assert!(wt.join("draft.txt").exists());
    let git = sb.git_worktrees();
    assert_eq!(
        git[0].2.as_deref(),
        Some("eager"),
        "locked for the new agent"
    );
    let status = sb.status_doc();
    assert_eq!(common::agent_in(&status, "sleepy").state, AgentState::Error);
    // A late report from the silent agent changes nothing; a reset brings it back.
    sb.fails(&["agents", "progress", "sleepy", "--state", "working"]);
    sb.ok(&["agents", "reset", "sleepy"]);
    let status = sb.status_doc();
    assert_eq!(common::agent_in(&status, "sleepy").state, AgentState::Idle);
}

#[cfg(feature = "test-hooks")]
#[test]
fn the_same_silence_folds_to_the_same_requeue_every_time() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "1"]);
    assign(&sb, "sleepy", "f1");
    sb.ok_later(3, &["agents", "coordination-cycle"]);
    let first = serde_json::to_string(&sb.status()).expect("json");
    let events = sb.status()["counters"]["events"].clone();
    // Rebuilding folds the recorded decision again: same requeue, at the same point.
    for _ in 0..3 {
        let rebuilt = sb.ok(&["rebuild"]);
        assert_eq!(rebuilt["identical_to_before"], true);
        assert_eq!(serde_json::to_string(&sb.status()).expect("json"), first);
    }
    let status = sb.status();
    assert_eq!(status["counters"]["events"], events);
    let f = feature(&status, "f1");
    assert_eq!(f["status"], "queued");
    assert!(
        f["wait_reason"]
            .as_str()
            .unwrap_or("")
            .contains("went silent"),
        "{f}"
    );
    let lease_at = status["anomalies"].as_array().map(Vec::len);
    assert_eq!(lease_at, Some(0));
}

#[test]
fn a_cancelled_feature_frees_its_agent_and_keeps_its_worktree() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "doomed");
    sb.commit_as_agent(&wt, "wip.txt", "wip\n", "wip");
    let out = sb.ok(&[
        "agents",
        "cancel-feature",
        "doomed",
        "--reason",
        "no longer needed",
    ]);
    assert_eq!(out["released_from"], "a1");
    let status = sb.status();
    let f = feature(&status, "doomed");
    assert_eq!(f["status"], "cancelled");
    assert_eq!(status["agents"][0]["state"], "idle");
    assert_eq!(status["worktrees"][0]["status"], "abandoned");
    // The next cycle unlocks it in git; the work stays.
    sb.ok(&["agents", "coordination-cycle"]);
    let git = sb.git_worktrees();
    assert_eq!(git.len(), 1);
    assert_eq!(git[0].2, None, "unlocked: {git:?}");
    assert!(wt.join("wip.txt").exists());
    // Refused with a reason, and nothing appended, for what cannot be cancelled.
    let seq = sb.status()["as_of"]["seq"].clone();
    assert!(
        sb.fails(&["agents", "cancel-feature", "doomed"])
            .contains("already cancelled")
    );
    assert!(
        sb.fails(&["agents", "cancel-feature", "ghost"])
            .contains("does not exist")
    );
    assert_eq!(sb.status()["as_of"]["seq"], seq);
}

#[test]
fn gc_never_loses_uncommitted_or_unmerged_work_without_force() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let dirty = assign(&sb, "a1", "dirty");
    let committed = assign(&sb, "a2", "committed");
    std::fs::write(dirty.join("unsaved.txt"), "not committed\n").expect("write");
    sb.commit_as_agent(
        &committed,
        "saved.txt",
        "committed, never merged\n",
        "saved",
    );
    sb.ok(&["agents", "cancel-feature", "dirty"]);
    sb.ok(&["agents", "cancel-feature", "committed"]);

    // Too recent for --older-than: nothing happens.
    let report = sb.ok(&["gc", "--older-than", "1h"]);
    assert!(
        report["removed"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    assert_eq!(sb.git_worktrees().len(), 2);

    let report = sb.ok(&["gc"]);
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .map(|r| r.iter().filter_map(|e| e["feature"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(removed, ["committed"]);
    let kept = &report["kept"][0];
    assert_eq!(kept["feature"], "dirty");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap_or("")
            .contains("unsaved.txt"),
        "{kept}"
    );
    assert!(
        dirty.join("unsaved.txt").exists(),
        "uncommitted work is still there"
    );
    assert!(!committed.exists());
    // The unmerged commits live on in their branch.
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "spanfold/committed"])
            .trim(),
        "saved"
    );

    let report = sb.ok(&["gc", "--force"]);
    assert_eq!(report["removed"][0]["feature"], "dirty");
    assert!(sb.git_worktrees().is_empty());
    // A branch goes only when main contains it: `dirty` had no commits of its own, `committed`
    // has one that main lacks.
    assert_eq!(sb.git(&["branch", "--list", "spanfold/dirty"]).trim(), "");
    assert!(
        sb.git(&["branch", "--list", "spanfold/committed"])
            .contains("spanfold/committed")
    );
    let status = sb.status();
    assert!(status["worktrees"].as_array().is_some_and(Vec::is_empty));
    assert!(
        status["anomalies"].as_array().is_some_and(Vec::is_empty),
        "{}",
        status["anomalies"]
    );
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_crash_between_assignment_and_worktree_is_completed_on_restart() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let crashing = sb.serve_with_env(
        &["--interval", "0"],
        &[("SPANFOLD_FAULT", "after-assignment-decision")],
    );
    // The feature wakes the policy; the server records the assignment and dies before acting.
    sb.ok(&["agents", "add-feature", "f1"]);
    let status = crashing.wait_exit(20);
    assert!(!status.success(), "the fault killed it: {status}");
    assert!(
        sb.git_worktrees().is_empty(),
        "no worktree was made before the crash"
    );

    let served = sb.serve(&["--manual"]);
    let git = sb.git_worktrees();
    assert_eq!(git.len(), 1, "exactly one worktree after recovery: {git:?}");
    assert_eq!(git[0].1, "spanfold/f1");
    assert_eq!(git[0].2.as_deref(), Some("a1"));
    let status = sb.status();
    assert_eq!(status["worktrees"][0]["status"], "active");
    assert!(
        status["worktrees"][0]["note"]
            .as_str()
            .unwrap_or("")
            .contains("crash"),
        "the log explains: {}",
        status["worktrees"][0]
    );
    // The log tells the story in order: decision, then (after the restart) its outcome.
    let (_, events) = served.get("/api/events?from=1", None);
    let names: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let decided = names
        .iter()
        .position(|n| n == "agent.feature_assignment")
        .expect("decision");
    let built = names
        .iter()
        .position(|n| n == "worktree.lifecycle")
        .expect("outcome");
    assert!(decided < built, "{names:?}");
    // A second restart finds nothing more to do.
    let (code, _) = served.stop();
    assert!(code.success());
    let again = sb.serve(&["--manual"]);
    assert_eq!(sb.git_worktrees().len(), 1);
    drop(again);
}

#[test]
fn a_worktree_removed_by_hand_is_recorded_and_recreated_from_its_branch() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "kept.txt", "on the branch\n", "committed work");
    std::fs::remove_dir_all(&wt).expect("rm -rf by hand");
    let _served = sb.serve(&["--manual"]);
    let status = sb.status();
    let w = &status["worktrees"][0];
    assert_eq!(w["status"], "active");
    assert!(
        w["note"].as_str().unwrap_or("").contains("removed by hand"),
        "{w}"
    );
    assert_eq!(
        feature(&status, "f1")["assigned_agent"],
        "a1",
        "recovered for the same agent"
    );
    // Recreated from the branch: the committed work is back.
    assert!(wt.join("kept.txt").exists());
    assert_eq!(sb.git_worktrees().len(), 1);
}

#[test]
fn the_merge_gate_sends_failing_work_back_with_its_output() {
    let sb = Sandbox::new("main");
    sb.ok(&[
        "agents",
        "init",
        "--validate-cmd",
        "echo checking for ok.txt; test -f ok.txt",
    ]);
    assert_eq!(
        sb.git(&["config", "spanfold.validateCmd"]).trim(),
        "echo checking for ok.txt; test -f ok.txt"
    );
    let wt = assign(&sb, "a1", "gated");
    sb.commit_as_agent(&wt, "work.txt", "work\n", "work without ok.txt");
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "gate_failed", "{cycle}");
    let status = sb.status();
    let f = feature(&status, "gated");
    assert_eq!(f["status"], "in_progress");
    let note = f["merge_note"].as_str().unwrap_or("");
    assert!(
        note.contains("checking for ok.txt"),
        "the tail of the output: {note}"
    );
    assert_eq!(status["agents"][0]["state"], "working");
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "initial",
        "nothing merged"
    );

    sb.commit_as_agent(&wt, "ok.txt", "ok\n", "add ok.txt");
    sb.ok(&["agents", "progress", "a1", "--state", "validating"]);
    sb.ok(&["agents", "validate", "a1", "--result", "passed"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert!(sb.repo.join("ok.txt").exists());
}

#[test]
fn worktree_status_lists_abandoned_and_orphaned_worktrees_and_keep_branches_keeps_them() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--keep-branches"]);
    let wt = assign(&sb, "a1", "kept");
    sb.commit_as_agent(&wt, "k.txt", "k\n", "k");
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert!(
        sb.git(&["branch", "--list", "spanfold/kept"])
            .contains("spanfold/kept"),
        "kept after merge"
    );

    let other = assign(&sb, "a1", "dropped");
    sb.ok(&["agents", "cancel-feature", "dropped"]);
    let by_hand = sb.tmp.path().join("by-hand");
    sb.git(&[
        "worktree",
        "add",
        "-q",
        by_hand.to_str().unwrap_or(""),
        "-b",
        "mine",
    ]);
    let ws = sb.ok(&["agents", "worktree-status"]);
    assert_eq!(ws["abandoned"][0], other.to_str().unwrap_or(""));
    let orphaned: Vec<&str> = ws["orphaned"]
        .as_array()
        .map(|o| o.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        orphaned,
        [std::fs::canonicalize(&by_hand)
            .expect("exists")
            .to_str()
            .unwrap_or("")]
    );
    // gc leaves what it does not own alone.
    sb.ok(&["gc"]);
    assert!(by_hand.exists());
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_merge_cut_off_by_a_crash_is_completed_on_the_next_cycle() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1 work");
    submit(&sb, "a1");
    // Dies after moving main, before updating the main checkout.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"));
    cmd.args(["agents", "coordination-cycle"])
        .current_dir(&sb.repo)
        .env("SPANFOLD_FAULT", "after-merge-ref");
    common::bare_env(&mut cmd, sb.tmp.path());
    let crashed = cmd.output().expect("runs");
    assert!(!crashed.status.success());
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s", "main"]).trim(),
        "f1 work",
        "main moved"
    );
    assert_ne!(
        sb.git(&["status", "--porcelain"]),
        "",
        "the checkout was left behind"
    );

    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert_eq!(cycle["merges"][0]["kind"], "already_merged");
    assert_eq!(
        sb.git(&["status", "--porcelain"]),
        "",
        "the checkout caught up"
    );
    assert!(sb.repo.join("f1.txt").exists());
    assert!(sb.git_worktrees().is_empty());
    let status = sb.status();
    assert_eq!(feature(&status, "f1")["status"], "completed");
}

#[test]
fn span_data_never_reaches_a_shell() {
    let sb = Sandbox::new("main");
    let trap = sb.tmp.path().join("trap");
    std::fs::create_dir(&trap).expect("mkdir");
    let gate_log = sb.tmp.path().join("gate.log");
    // The only command spanfold runs through a shell is this one, from git config.
    sb.ok(&[
        "agents",
        "init",
        "--validate-cmd",
        &format!("echo gate-ran >> {}", gate_log.display()),
    ]);
    // Everything an agent or a planner can say, full of shell syntax.
    let t = trap.display();
    let hostile = [
        format!("$(touch {t}/dollar)"),
        format!("`touch {t}/backtick`"),
        format!("; touch {t}/semicolon"),
        format!("| touch {t}/pipe"),
        format!("&& touch {t}/and"),
    ];
    let req = sb.tmp.path().join("req.json");
    std::fs::write(
        &req,
        serde_json::json!({"requirements": hostile, "acceptance_criteria": hostile}).to_string(),
    )
    .expect("write");
    sb.ok(&[
        "agents",
        "add-feature",
        "f1",
        "--desc",
        &hostile.join(" "),
        "--req-file",
        &req.to_string_lossy(),
        "--expertise",
        &hostile[0],
    ]);
    sb.ok(&["agents", "register-agent", "a1", "--expertise", &hostile[0]]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let wt = PathBuf::from(
        cycle["assignments"][0]["worktree_path"]
            .as_str()
            .unwrap_or(""),
    );
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", &hostile.join("\n"));
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert_eq!(
        std::fs::read_to_string(&gate_log).unwrap_or_default(),
        "gate-ran\n",
        "the configured gate ran, once"
    );
    let touched: Vec<_> = std::fs::read_dir(&trap)
        .expect("readable")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(
        touched.is_empty(),
        "span data ran as a command: {touched:?}"
    );
}
