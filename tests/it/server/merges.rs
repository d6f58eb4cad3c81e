//! A server that merges by itself: after a submission, and with a merge gate that holds.

use super::*;

/// Through a running server: register `agent`, queue `feature`, wait for the assignment, commit
/// `file` in the worktree as the agent, and submit it (working → validating → passed).
fn work_and_submit(sb: &Sandbox, agent: &str, feature: &str, file: &str) {
    sb.ok(&["agents", "register-agent", agent]);
    sb.ok(&["agents", "add-feature", feature]);
    let next = sb.ok(&["agents", "next", agent, "--wait", "--timeout", "20"]);
    let wt = std::path::PathBuf::from(next["worktree_path"].as_str().unwrap_or_default());
    std::fs::write(wt.join(file), "from the agent\n").expect("write");
    sb.git_in(&wt, &["add", file]);
    let author = ["-c", "user.name=A", "-c", "user.email=a@example.com"];
    sb.git_in(
        &wt,
        &[&author[..], &["commit", "-q", "-m", "agent work"]].concat(),
    );
    sb.ok(&["agents", "progress", agent, "--state", "working"]);
    sb.ok(&["agents", "progress", agent, "--state", "validating"]);
    sb.ok(&["agents", "validate", agent, "--result", "passed"]);
}

#[test]
fn the_server_merges_a_validated_feature_by_itself() {
    let sb = initialised();
    let _served = sb.serve(&["--interval", "0"]);
    work_and_submit(&sb, "a1", "served-feature", "served.txt");
    // No cycle asked for: the server reacts to the submission.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = sb.status();
        // Completed, and cleaned up (the worktree's removal is recorded right after the merge).
        if status["features"][0]["status"] == "completed"
            && status["worktrees"].as_array().is_some_and(Vec::is_empty)
        {
            assert_eq!(status["agents"][0]["state"], "idle");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not merged: {}",
            status["features"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sb.repo.join("served.txt").exists());
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
    assert!(sb.git_worktrees().is_empty());
}

#[test]
fn a_slow_merge_gate_runs_in_the_background_without_blocking_ingest() {
    let sb = Sandbox::new("main");
    // A gate that holds until the test lets it go: whatever ingest does meanwhile happens while
    // the gate runs, whatever the machine's speed.
    let release = sb.tmp.path().join("release-the-gate");
    let gate = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done",
        release.display()
    );
    sb.ok(&["agents", "init", "--validate-cmd", &gate]);
    let served = sb.serve(&["--interval", "0"]);
    work_and_submit(&sb, "a1", "slow", "slow.txt");
    let feature = |sb: &Sandbox| {
        let status = sb.status();
        status["features"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == "slow"))
            .cloned()
            .unwrap_or_default()
    };
    // The gate is holding; a span sent now is taken and acknowledged all the same.
    sb.ok(&["agents", "register-agent", "a2"]);
    let status = sb.status();
    let agents: Vec<&str> = status["agents"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["agent_id"].as_str()).collect())
        .unwrap_or_default();
    assert!(agents.contains(&"a2"), "{agents:?}");
    assert_ne!(
        feature(&sb)["status"],
        "completed",
        "the gate is still holding"
    );
    std::fs::write(&release, "").expect("the gate is let go");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let f = feature(&sb);
        if f["status"] == "completed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not merged: {f}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sb.repo.join("slow.txt").exists());
    // In the log: a2's registration before the merge it did not wait for.
    let (_, events) = served.get("/api/events?from=1", None);
    let events: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect();
    let seq_of = |name: &str, attr: &str, value: &str| {
        events
            .iter()
            .find(|e| e["name"] == name && e["attributes"][attr] == value)
            .and_then(|e| e["seq"].as_u64())
    };
    let registered = seq_of("agent.registration", "agent.id", "a2").expect("a2 registered");
    let merged = seq_of("coordination.feature_merge", "merge.result", "merged").expect("the merge");
    assert!(registered < merged, "{events:?}");
}
