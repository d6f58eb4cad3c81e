//! The core workflow, run as a user would: separate `spanfold` processes on fresh repositories.

use crate::common;

use common::{Sandbox, features, team};
use serde_json::Value;

fn by_key<'a>(items: &'a Value, key: &str, value: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|a| a.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no item with {key} = {value} in {items}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn three_agents_four_features_one_cycle_from_separate_processes() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    team(&sb);
    features(&sb);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(
        cycle["assignments"].as_array().map(Vec::len),
        Some(4),
        "{cycle}"
    );

    let status = sb.status();
    let agents = &status["agents"];
    for feature in status["features"].as_array().expect("features") {
        assert_eq!(feature["status"], "assigned", "{feature}");
        let agent = by_key(
            agents,
            "agent_id",
            feature["assigned_agent"].as_str().expect("agent"),
        );
        let caps = &agent["capabilities"];
        let req = &feature["details"]["requires"];
        for kind in ["languages", "frameworks", "expertise_areas"] {
            let have = strings(&caps[kind]);
            for need in strings(&req[kind]) {
                assert!(
                    have.contains(&need),
                    "{} got {} without {need}",
                    agent["agent_id"],
                    feature["name"]
                );
            }
        }
    }
    // Every agent holds at most what it may.
    for agent in agents.as_array().expect("agents") {
        let held = agent["assignments"].as_array().map_or(0, Vec::len) as u64;
        assert!(
            held <= agent["capabilities"]["max_concurrent_features"]
                .as_u64()
                .unwrap_or(0)
        );
    }

    // git agrees with the status: a locked worktree per feature, on its branch.
    let git = sb.git_worktrees();
    let worktrees = status["worktrees"].as_array().expect("worktrees");
    assert_eq!(git.len(), 4, "{git:?}");
    assert_eq!(worktrees.len(), 4);
    for (path, branch, lock) in &git {
        let wt = by_key(&status["worktrees"], "path", path);
        assert_eq!(wt["branch_name"], branch.as_str());
        assert_eq!(wt["status"], "active");
        assert_eq!(
            lock.as_deref(),
            wt["agent_id"].as_str(),
            "lock reason is the agent id"
        );
        let feature = by_key(
            &status["features"],
            "name",
            wt["feature_name"].as_str().unwrap_or(""),
        );
        assert_eq!(feature["assigned_agent"], wt["agent_id"]);
        assert_eq!(
            branch,
            &format!("spanfold/{}", wt["feature_name"].as_str().unwrap_or(""))
        );
        assert!(
            !std::path::Path::new(path).starts_with(&sb.repo),
            "worktree inside the checkout"
        );
        assert!(
            std::path::Path::new(path).join("README.md").exists(),
            "files checked out"
        );
    }
    assert_eq!(
        sb.git(&["status", "--porcelain"]),
        "",
        "main checkout stays clean"
    );

    let summary = &status["coordination_status"];
    assert_eq!(summary["total_agents"], 3);
    assert_eq!(summary["features_in_progress"], 4);
    assert_eq!(summary["features_in_queue"], 0);
    assert_eq!(summary["total_worktrees"], 4);

    // A second cycle changes nothing.
    let second = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(second["assignments"].as_array().map(Vec::len), Some(0));
    let again = sb.status();
    for key in ["agents", "features", "worktrees", "anomalies"] {
        assert_eq!(
            again[key], status[key],
            "{key} changed after a second cycle"
        );
    }
    assert_eq!(sb.git_worktrees(), git);
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_feature_nobody_can_take_waits_with_a_reason_until_someone_can() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    team(&sb);
    sb.ok(&[
        "agents",
        "add-feature",
        "fast-path",
        "--langs",
        "rust",
        "--priority",
        "high",
    ]);
    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status();
    let f = by_key(&status["features"], "name", "fast-path");
    assert_eq!(f["status"], "queued");
    assert_eq!(f["wait_reason"], "no registered agent has language rust");

    sb.ok(&["agents", "register-agent", "rusty", "--langs", "rust"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["feature_name"], "fast-path");
    assert_eq!(cycle["assignments"][0]["agent_id"], "rusty");
    let status = sb.status();
    let f = by_key(&status["features"], "name", "fast-path");
    assert_eq!(f["status"], "assigned");
    assert_eq!(f["wait_reason"], Value::Null);
}

#[test]
fn a_repository_on_master_works() {
    let sb = Sandbox::new("master");
    let init = sb.ok(&["agents", "init"]);
    assert_eq!(init["base_branch"], "master");
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(
        cycle["assignments"][0]["worktree_action"], "created",
        "{cycle}"
    );
    let git = sb.git_worktrees();
    assert_eq!(git.len(), 1);
    assert_eq!(git[0].1, "spanfold/f1");
    // The branch starts at master's tip.
    assert_eq!(
        sb.git(&["rev-parse", "spanfold/f1"]),
        sb.git(&["rev-parse", "master"])
    );
}

#[test]
fn bad_input_is_refused_clearly_and_appends_nothing() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let seq = |sb: &Sandbox| sb.status()["as_of"]["seq"].as_u64().expect("seq");
    let before = seq(&sb);
    let missing = sb.tmp.path().join("nope.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["agents", "register-agent", "../etc"],
            "invalid agent id \"../etc\"",
        ),
        (
            vec!["agents", "register-agent", "A B"],
            "invalid agent id \"A B\"",
        ),
        (
            vec!["agents", "register-agent", ""],
            "invalid agent id \"\"",
        ),
        (
            vec!["agents", "add-feature", "f", "--priority", "urgent"],
            "invalid value 'urgent'",
        ),
        (
            vec![
                "agents",
                "add-feature",
                "f",
                "--req-file",
                missing.to_str().unwrap_or(""),
            ],
            "cannot read --req-file",
        ),
        (
            vec!["agents", "add-feature", "../../x"],
            "invalid feature name",
        ),
        (
            vec!["agents", "progress", "a1", "--state", "sleeping"],
            "invalid value 'sleeping'",
        ),
        (
            vec!["agents", "reset", "ghost"],
            "agent ghost is not registered",
        ),
    ];
    for (args, expected) in cases {
        let error = sb.fails(&args);
        assert!(
            error.contains(expected),
            "{args:?}: {error:?} lacks {expected:?}"
        );
        assert_eq!(seq(&sb), before, "{args:?} appended an event");
    }
    // A req file that is not the documented shape says what shape it wants.
    let bad = sb.tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"requirements": "one string"}"#).expect("write");
    let error = sb.fails(&[
        "agents",
        "add-feature",
        "f",
        "--req-file",
        bad.to_str().unwrap_or(""),
    ]);
    assert!(error.contains("\"requirements\": [strings]"), "{error}");
    assert_eq!(seq(&sb), before);
}

#[test]
fn json_mode_prints_one_document_for_every_command_and_failure() {
    let sb = Sandbox::new("main");
    let not_yet = sb.run(&["--json", "agents", "agent-status"]);
    assert_ne!(not_yet.code, 0);
    assert!(
        not_yet.json()["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("agents init")
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["agents", "init"],
        vec!["agents", "register-agent", "a1", "--langs", "python"],
        vec!["agents", "add-feature", "f1", "--langs", "python"],
        vec!["agents", "coordination-cycle"],
        vec!["agents", "agent-status"],
        vec!["agents", "agent-status", "--agent", "a1", "--details"],
        vec!["agents", "agent-status", "--agent", "nobody"],
        vec!["agents", "worktree-status"],
        vec![
            "agents",
            "progress",
            "a1",
            "--state",
            "working",
            "--progress",
            "50",
        ],
        vec!["agents", "validate", "a1", "--result", "failed"],
        vec!["agents", "progress", "a1", "--state", "finished"],
        vec!["agents", "reset", "a1"],
        vec![
            "agents",
            "coordination-cycle",
            "--continuous",
            "--interval",
            "0",
            "--max-cycles",
            "2",
        ],
        vec!["spans"],
        vec!["rebuild"],
        vec!["agents", "frobnicate"],
        vec!["agents", "register-agent"],
        vec!["--help"],
    ];
    for args in commands {
        let mut full = vec!["--json"];
        full.extend_from_slice(&args);
        let run = sb.run(&full);
        let doc = run.json();
        for key in [
            "timestamp",
            "command",
            "success",
            "data",
            "errors",
            "warnings",
            "metadata",
        ] {
            assert!(doc.get(key).is_some(), "{args:?}: no {key} in {doc}");
        }
        assert_eq!(
            doc["success"] == true,
            run.code == 0,
            "{args:?}: exit {} vs {doc}",
            run.code
        );
    }
}

#[test]
fn an_illegal_transition_changes_nothing_and_is_an_anomaly() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    // A person's command is refused before anything is written: a typo is no eternal alarm.
    let before = sb.status()["as_of"]["seq"].clone();
    let error = sb.fails(&["agents", "progress", "a1", "--state", "submitting"]);
    assert!(
        error.contains("illegal transition idle → submitting"),
        "{error}"
    );
    let status = sb.status();
    assert_eq!(status["as_of"]["seq"], before, "nothing written");
    assert_eq!(status["anomalies"].as_array().map(Vec::len), Some(0));

    // The same report from an agent over OTLP is kept (it is what the agent said) and changes
    // nothing but the record of it.
    let served = sb.serve(&["--manual"]);
    let (code, body) = served.agent_span(
        "a1",
        "agent.work_progress",
        &[("agent.state", "submitting")],
    );
    assert_eq!(code, 200, "{body}");
    let status = sb.status();
    assert_eq!(status["agents"][0]["state"], "idle");
    let anomaly = &status["anomalies"][0];
    assert_eq!(anomaly["agent_id"], "a1");
    assert_eq!(anomaly["span"], "agent.work_progress");
    assert!(
        anomaly["reason"]
            .as_str()
            .unwrap_or("")
            .contains("idle → submitting")
    );
}

#[test]
fn status_after_rebuild_is_byte_identical() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    team(&sb);
    features(&sb);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&[
        "agents",
        "progress",
        "backend-1",
        "--state",
        "working",
        "--progress",
        "40",
    ]);
    sb.fails(&["agents", "progress", "frontend-1", "--state", "finished"]);
    let before = serde_json::to_string(&sb.status()).expect("json");
    let rebuilt = sb.ok(&["rebuild"]);
    assert_eq!(rebuilt["identical_to_before"], true);
    let after = serde_json::to_string(&sb.status()).expect("json");
    assert_eq!(before, after);
}

#[test]
fn the_log_is_found_from_inside_a_worktree_and_an_agent_can_report_from_there() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let wt = std::path::PathBuf::from(
        cycle["assignments"][0]["worktree_path"]
            .as_str()
            .unwrap_or(""),
    );
    let run = sb.run_in(
        &wt,
        &["--json", "agents", "progress", "a1", "--state", "working"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json()["data"]["state"], "working");
    let status = sb.status();
    assert_eq!(status["features"][0]["status"], "in_progress");
    // And the worktree itself is clean: the coordination directory never lands in a checkout.
    assert_eq!(sb.git_in(&wt, &["status", "--porcelain"]), "");
}

#[test]
fn a_failed_worktree_leaves_the_feature_queued_with_the_error() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    // Something that is not a worktree already sits where the worktree would go.
    let status = sb.status();
    let dir =
        std::path::Path::new(status["config"]["worktrees_dir"].as_str().unwrap_or("")).join("f1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("precious.txt"), "do not touch").expect("write");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["worktree_action"], "create_failed");
    let status = sb.status();
    assert_eq!(status["features"][0]["status"], "queued");
    assert!(
        status["features"][0]["wait_reason"]
            .as_str()
            .unwrap_or("")
            .contains("is not a worktree"),
        "{}",
        status["features"][0]
    );
    assert_eq!(status["agents"][0]["state"], "idle");
    assert_eq!(
        std::fs::read_to_string(dir.join("precious.txt"))
            .ok()
            .as_deref(),
        Some("do not touch")
    );
    // Once the obstacle is gone, the next cycle succeeds.
    std::fs::remove_dir_all(&dir).expect("rm");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["worktree_action"], "created");
}

#[test]
fn an_agent_reset_keeps_the_worktree_for_the_next_agent() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&["agents", "progress", "a1", "--state", "working"]);
    sb.ok(&["agents", "progress", "a1", "--state", "error"]);
    sb.ok(&["agents", "reset", "a1", "--reason", "crashed"]);
    let status = sb.status();
    assert_eq!(status["features"][0]["status"], "queued");
    assert_eq!(status["worktrees"][0]["status"], "abandoned");
    sb.ok(&["agents", "register-agent", "a2"]);
    sb.ok(&["agents", "progress", "a1", "--state", "error"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["agent_id"], "a2");
    assert_eq!(cycle["assignments"][0]["worktree_action"], "reused");
    let git = sb.git_worktrees();
    assert_eq!(git.len(), 1);
    assert_eq!(
        git[0].2.as_deref(),
        Some("a2"),
        "relocked for the new agent"
    );
}

#[test]
fn a_coordination_directory_inside_the_checkout_does_not_dirty_it() {
    let sb = Sandbox::new("main");
    // The seed's own example: `dsl agents init --repo . --coord-dir ./coordination`.
    let init = sb.run(&[
        "--json",
        "--coord-dir",
        "./coordination",
        "agents",
        "init",
        "--repo",
        ".",
    ]);
    assert_eq!(init.code, 0, "{}", init.stdout);
    assert!(
        init.json()["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains("info/exclude")
    );
    sb.ok(&[
        "--coord-dir",
        "./coordination",
        "agents",
        "register-agent",
        "a1",
    ]);
    sb.ok(&[
        "--coord-dir",
        "./coordination",
        "agents",
        "add-feature",
        "f1",
    ]);
    sb.ok(&[
        "--coord-dir",
        "./coordination",
        "agents",
        "coordination-cycle",
    ]);
    assert!(sb.repo.join("coordination").is_dir());
    assert_eq!(sb.git(&["status", "--porcelain"]), "");
}
