//! An operator after the fact: reopening, reprioritising, slash-separated names, a lease per
//! agent, acknowledging anomalies — each in text and JSON, through separate processes.

use crate::common;

use common::{Sandbox, assign, feature, submit};

#[test]
fn a_completed_or_cancelled_feature_can_be_reopened() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "f1");
    sb.commit_as_agent(&wt, "f1.txt", "one\n", "f1");
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "f1")["status"], "completed");

    let error = sb.fails(&["agents", "add-feature", "f1"]);
    assert!(error.contains("agents reopen f1"), "{error}");
    let text = sb.run(&[
        "agents",
        "reopen",
        "f1",
        "--reason",
        "the fix was incomplete",
    ]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("queued again"), "{}", text.stdout);
    let f = feature(&sb.status(), "f1").clone();
    assert_eq!(f["status"], "queued");
    assert!(
        f["wait_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the fix was incomplete"),
        "{f}"
    );
    // It is placed and worked on again, from the base that now holds the first round.
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["feature_name"], "f1", "{cycle}");
    let wt = std::path::PathBuf::from(
        cycle["assignments"][0]["worktree_path"]
            .as_str()
            .expect("wt"),
    );
    assert!(wt.join("f1.txt").exists());
    // A feature in progress cannot be reopened; the log shows nothing of the attempt.
    let before = sb.status()["as_of"]["seq"].clone();
    let error = sb.fails(&["agents", "reopen", "f1"]);
    assert!(
        error.contains("only a cancelled or completed feature"),
        "{error}"
    );
    assert_eq!(sb.status()["as_of"]["seq"], before);
}

#[test]
fn an_assigned_feature_may_change_its_priority() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&[
        "agents",
        "add-feature",
        "f1",
        "--desc",
        "kept as it is",
        "--langs",
        "python",
    ]);
    sb.ok(&["agents", "register-agent", "a1", "--langs", "python"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let changed = sb.ok(&["agents", "add-feature", "f1", "--priority", "critical"]);
    assert_eq!(changed["action"], "reprioritised");
    let status = sb.ok(&["agents", "agent-status", "--details"]);
    let f = feature(&status, "f1");
    assert_eq!(f["priority"], "critical");
    assert_eq!(f["status"], "assigned");
    assert_eq!(f["details"]["description"], "kept as it is");
    let text = sb.run(&["agents", "add-feature", "f1", "--priority", "low"]);
    assert!(
        text.stdout.contains("keeps everything else"),
        "{}",
        text.stdout
    );
}

#[test]
fn slash_separated_feature_names_get_a_flat_worktree_and_merge() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "feature/login");
    assert_eq!(
        wt.file_name().and_then(|n| n.to_str()),
        Some("feature+login")
    );
    assert_eq!(
        wt.parent(),
        sb.repo
            .parent()
            .map(|p| p.join("project.worktrees"))
            .as_deref()
    );
    let git = sb.git_worktrees();
    assert_eq!(git[0].1, "spanfold/feature/login");
    sb.commit_as_agent(&wt, "login.txt", "login\n", "login");
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert!(sb.repo.join("login.txt").exists());
    assert!(!wt.exists(), "removed after the merge");

    // A name git could not hold beside another, and a name with a slug to suggest.
    let error = sb.fails(&["agents", "add-feature", "feature"]);
    assert!(
        error.contains("cannot sit beside feature feature/login"),
        "{error}"
    );
    let error = sb.fails(&["agents", "add-feature", "Login Page"]);
    assert!(error.contains("try \"login-page\""), "{error}");
    let error = sb.fails(&["agents", "add-feature", "a//b"]);
    assert!(error.contains("each part between slashes"), "{error}");
}

#[cfg(feature = "test-hooks")]
#[test]
fn an_agent_may_have_its_own_lease() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "1"]);
    sb.ok(&["agents", "register-agent", "slow", "--lease", "3600"]);
    sb.ok(&["agents", "register-agent", "quick"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    sb.ok(&["agents", "add-feature", "f2"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status_doc();
    let lease_of = |id: &str| -> u64 {
        let a = common::agent_in(&status, id);
        let t = |at: &str| humantime::parse_rfc3339(at).expect("a time");
        let expires = a.lease_expires_at.as_deref().expect("a lease");
        t(expires)
            .duration_since(t(&a.last_activity))
            .expect("later")
            .as_secs()
    };
    assert_eq!(lease_of("slow"), 3600);
    assert_eq!(lease_of("quick"), 1);
    // Two seconds later for the coordinator: past quick's lease, long before slow's.
    let cycle = sb.ok_later(2, &["agents", "coordination-cycle"]);
    assert_eq!(
        cycle["leases_expired"],
        serde_json::json!(["quick"]),
        "{cycle}"
    );
}

#[test]
fn anomalies_can_be_acknowledged() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let served = sb.serve(&["--manual"]);
    for state in ["submitting", "finished"] {
        let (code, _) = served.agent_span("a1", "agent.work_progress", &[("agent.state", state)]);
        assert_eq!(code, 200);
    }
    let status = sb.status();
    assert_eq!(status["anomalies"].as_array().map(Vec::len), Some(2));
    let first = status["anomalies"][0]["seq"].as_u64().expect("seq");
    let text = sb.run(&["agents", "ack-anomaly", &first.to_string()]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("1 anomaly acknowledged"),
        "{}",
        text.stdout
    );
    let status = sb.status();
    assert_eq!(status["anomalies"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["counters"]["anomalies"], 2, "still counted");
    let error = sb.fails(&["agents", "ack-anomaly", &first.to_string()]);
    assert!(error.contains("no anomaly listed"), "{error}");
    sb.ok(&["agents", "ack-anomaly", "--all"]);
    let status = sb.status();
    assert_eq!(status["anomalies"], serde_json::json!([]));
    assert_eq!(status["counters"]["acknowledged"], 2);
    let text = sb.run(&["agents", "agent-status"]).stdout;
    assert!(!text.contains("Anomalies"), "{text}");
}
