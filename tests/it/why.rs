//! The "why" is visible without JSON: what a person (or a script feeding a coding agent) reads
//! in text matches what the JSON says, for tasks, reasons, progress, leases and health.

use crate::common;

use common::{Sandbox, assign, feature, submit};
use serde_json::Value;

/// A feature with a description, requirements and acceptance criteria.
fn described(sb: &Sandbox, name: &str) {
    let req = sb.tmp.path().join(format!("{name}.json"));
    std::fs::write(
        &req,
        r#"{"requirements": ["JWT tokens", "rate limits"], "acceptance_criteria": ["login returns 200", "bad password returns 401"]}"#,
    )
    .expect("write");
    sb.ok(&[
        "agents",
        "add-feature",
        name,
        "--desc",
        "Users log in with a password.",
        "--req-file",
        req.to_str().expect("utf-8"),
        "--langs",
        "python",
    ]);
}

#[test]
fn next_hands_the_agent_its_task_and_why_it_came_back() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    described(&sb, "login");
    sb.ok(&["agents", "register-agent", "a1", "--langs", "python"]);
    sb.ok(&["agents", "coordination-cycle"]);

    let task = sb.ok(&["agents", "next", "a1"]);
    assert_eq!(task["feature_name"], "login");
    assert_eq!(task["description"], "Users log in with a password.");
    assert_eq!(task["requirements"][1], "rate limits");
    assert_eq!(task["acceptance_criteria"][0], "login returns 200");
    assert_eq!(task["requires"][0], "language python");
    assert_eq!(task["came_back"], Value::Null);
    let wt = task["worktree_path"].as_str().expect("worktree").to_owned();

    // The first line stays what scripts parse: feature, worktree, branch.
    let line = sb.run(&["agents", "next", "a1"]);
    assert_eq!(
        line.stdout.lines().next(),
        Some(format!("login\t{wt}\tspanfold/login").as_str())
    );
    let prompt = sb.run(&["agents", "next", "a1", "--prompt"]).stdout;
    for part in [
        "You are agent a1",
        "feature \"login\"",
        &wt,
        "Users log in with a password.",
        "- JWT tokens",
        "- bad password returns 401",
        "spanfold agents validate a1 --result passed --feature login",
    ] {
        assert!(prompt.contains(part), "{part} in:\n{prompt}");
    }
    assert_eq!(
        task["prompt"],
        prompt.trim_end_matches('\n').to_owned() + "\n"
    );

    // Nothing committed: it comes back, and next says why, in JSON, text and prompt.
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    let back = sb.ok(&["agents", "next", "a1"]);
    let why = back["came_back"].as_str().expect("a reason");
    assert!(why.contains("no commit"), "{why}");
    let line = sb.run(&["agents", "next", "a1"]).stdout;
    assert!(line.contains(&format!("came back: {why}")), "{line}");
    let prompt = sb.run(&["agents", "next", "a1", "--prompt"]).stdout;
    assert!(prompt.contains("This feature came back to you"), "{prompt}");
}

#[test]
fn a_conflict_tells_the_agent_the_paths_and_to_merge_the_base_first() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a2"]);
    let wt1 = assign(&sb, "a1", "one");
    sb.ok(&["agents", "add-feature", "two"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let wt2 = std::path::PathBuf::from(
        feature(&sb.status(), "two")["worktree_path"]
            .as_str()
            .expect("worktree"),
    );
    sb.commit_as_agent(&wt1, "README.md", "# one\n", "one");
    sb.commit_as_agent(&wt2, "README.md", "# two\n", "two");
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    submit(&sb, "a2");
    let cycle = sb.run(&["agents", "coordination-cycle"]);
    assert!(
        cycle.stdout.contains("conflicts in README.md"),
        "{}",
        cycle.stdout
    );

    let task = sb.ok(&["agents", "next", "a2"]);
    assert_eq!(task["conflicts"][0], "README.md");
    let why = task["came_back"].as_str().expect("why");
    assert!(
        why.contains("README.md") && why.contains("git merge main"),
        "{why}"
    );
    let status = sb.run(&["agents", "agent-status"]).stdout;
    assert!(status.contains("conflicts in README.md"), "{status}");
}

/// A failed merge gate: its output is in the feature's history and in a replay's steps, in
/// text and JSON, and in the API's answer about the agent.
#[test]
fn a_gates_output_is_in_history_replay_steps_and_the_agents_api() {
    let sb = Sandbox::new("main");
    sb.ok(&[
        "agents",
        "init",
        "--validate-cmd",
        "echo missing ok.txt; exit 3",
    ]);
    let wt = assign(&sb, "a1", "gated");
    sb.commit_as_agent(&wt, "work.txt", "work\n", "work");
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);

    let history = sb.ok(&["history", "--feature", "gated"]);
    let failed = history["entries"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|x| x["details"].to_string().contains("merge gate_failed"))
        })
        .unwrap_or_else(|| panic!("no gate failure in {history}"));
    assert!(
        failed["details"].to_string().contains("missing ok.txt"),
        "{failed}"
    );
    let text = sb.run(&["history", "--feature", "gated"]).stdout;
    assert!(text.contains("- merge gate_failed"), "{text}");
    assert!(text.contains("missing ok.txt"), "{text}");

    let export = sb.tmp.path().join("log.jsonl");
    sb.ok(&["export", "--output", export.to_str().expect("utf-8")]);
    let steps = sb
        .run(&["replay", export.to_str().expect("utf-8"), "--step"])
        .stdout;
    assert!(steps.contains("missing ok.txt"), "{steps}");

    let served = sb.serve(&["--manual"]);
    let (code, body) = served.get("/api/agents/a1", None);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["data"]["features"][0]["name"], "gated");
    assert!(
        doc["data"]["features"][0]["merge_note"]
            .as_str()
            .unwrap_or_default()
            .contains("missing ok.txt"),
        "{body}"
    );
}

/// Reported progress, messages and anomalies per agent are in status (JSON and text), history
/// and `agents messages`; the table lists active features first, one line per held feature,
/// with the lease left; --status filters the features.
#[test]
fn progress_messages_and_the_status_table() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1", "--max-concurrent", "2"]);
    for f in ["one", "two", "queued-go"] {
        let mut args = vec!["agents", "add-feature", f];
        if f == "queued-go" {
            args.extend(["--langs", "go"]);
        }
        sb.ok(&args);
    }
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&[
        "agents",
        "progress",
        "a1",
        "--state",
        "working",
        "--feature",
        "one",
        "--progress",
        "40",
        "--files",
        "3",
        "--lines-added",
        "120",
    ]);
    let served = sb.serve(&["--manual"]);
    let (code, _) = served.agent_span(
        "a1",
        "agent.communication",
        &[
            ("communication.target", "coordinator"),
            ("communication.message", "need a schema review"),
        ],
    );
    assert_eq!(code, 200);
    let (code, _) = served.agent_span(
        "a1",
        "agent.work_progress",
        &[("agent.state", "submitting")],
    );
    assert_eq!(code, 200);

    let status = sb.status();
    let a1 = &status["agents"][0];
    assert_eq!(a1["progress_percentage"], 40.0);
    assert_eq!(a1["files_modified"], 3);
    assert_eq!(a1["lines_added"], 120);
    assert_eq!(a1["last_message"]["text"], "need a schema review");
    assert_eq!(a1["anomalies"], 1);
    assert!(
        status["health_notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains("no capable agent")
    );

    let text = sb.run(&["agents", "agent-status"]).stdout;
    for part in [
        "40% 3 files +120",
        "one (in_progress)",
        "two (assigned)",
        "LEASE LEFT",
        "need a schema review",
        "health: 1 of 3 open features",
    ] {
        assert!(text.contains(part), "{part} in:\n{text}");
    }
    // One line per held feature; active features listed before the queue.
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("(assigned)") || l.contains("(in_progress)"))
            .count(),
        2
    );
    let table = &text[text.find("FEATURE   ").expect("features table")..];
    assert!(table.find("one").expect("one") < table.find("queued-go").expect("queued"));

    let only = sb.ok(&["agents", "agent-status", "--status", "queued"]);
    let names: Vec<&str> = only["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["queued-go"]);
    assert_eq!(
        only["coordination_status"]["features_in_progress"], 2,
        "the summary counts all"
    );
    let bad = sb.fails(&["agents", "agent-status", "--status", "doing"]);
    assert!(bad.contains("unknown feature status \"doing\""), "{bad}");

    let history = sb.run(&["history", "--agent", "a1"]).stdout;
    assert!(
        history.contains("progress: 40%, 3 files, +120 lines"),
        "{history}"
    );
    assert!(
        history.contains("message: need a schema review"),
        "{history}"
    );
    let messages = sb.ok(&["agents", "messages", "a1"]);
    assert_eq!(messages["messages"][0]["message"], "need a schema review");
    assert_eq!(messages["messages"][0]["to"], "coordinator");
    let text = sb.run(&["agents", "messages", "a1"]).stdout;
    assert!(
        text.contains("to coordinator: need a schema review"),
        "{text}"
    );
}

/// Health is 1 with every agent idle and nothing to do, and says what pulls it down.
#[test]
fn health_says_what_pulls_it_down() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let idle = sb.status();
    assert_eq!(idle["coordination_status"]["coordination_health"], 1.0);
    assert_eq!(idle["health_notes"], serde_json::json!([]));
    sb.ok(&["agents", "add-feature", "rusty", "--langs", "rust"]);
    let st = sb.status();
    assert_eq!(st["coordination_status"]["coordination_health"], 0.5);
    let note = st["health_notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("1 of 1 open feature has no capable agent"),
        "{note}"
    );
    let text = sb.run(&["agents", "agent-status"]).stdout;
    assert!(
        text.contains("health: 1 of 1 open feature has no capable agent"),
        "{text}"
    );
}

/// `--at` outside the log says so instead of answering with its nearest end.
#[test]
fn at_outside_the_log_says_so() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let last = sb.status()["as_of"]["seq"].as_u64().expect("seq");
    let after = sb.fails(&["agents", "agent-status", "--at", &(last + 5).to_string()]);
    assert!(
        after.contains(&format!("after the last event of the log (seq {last})")),
        "{after}"
    );
    let before = sb.fails(&["agents", "agent-status", "--at", "2001-01-01T00:00:00Z"]);
    assert!(before.contains("before the first event"), "{before}");
    let future = sb.fails(&["agents", "agent-status", "--at", "2200-01-01T00:00:00Z"]);
    assert!(future.contains("in the future"), "{future}");
    // A time after the last event is the latest status, with a note.
    let run = sb.run(&["--json", "agents", "agent-status", "--at", "-0s"]);
    let doc = run.json();
    assert_eq!(doc["success"], true, "{}", run.stdout);
    assert_eq!(doc["data"]["as_of"]["seq"], last);
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("after the last event"),
        "{doc}"
    );
    // Through a server too.
    let _served = sb.serve(&["--manual"]);
    let error = sb.fails(&["agents", "agent-status", "--at", &(last + 50).to_string()]);
    assert!(error.contains("after the last event"), "{error}");
}

/// Help speaks to users: `progress --help` lists the transitions, and `spans` works from an
/// installed copy of the binary, away from the source tree and outside any repository.
#[test]
fn help_and_spans_from_an_installed_binary() {
    let sb = Sandbox::new("main");
    let help = sb.run(&["agents", "progress", "--help"]).stdout;
    assert!(help.contains("Legal transitions"), "{help}");
    assert!(help.contains("working     -> validating, error"), "{help}");
    let installed = sb.tmp.path().join("bin");
    std::fs::create_dir_all(&installed).expect("dir");
    let copy = installed.join("spanfold");
    std::fs::copy(env!("CARGO_BIN_EXE_spanfold"), &copy).expect("copy");
    let out = std::process::Command::new(&copy)
        .args(["--json", "spans"])
        .current_dir(sb.tmp.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        doc["data"]["spans"]
            .as_array()
            .is_some_and(|s| s.len() > 10),
        "{doc}"
    );
}

/// The server tells its operator what it does: assignments, merges, work sent back, refused
/// spans (rate-limited, naming the agent and the rule, and counted per agent in status).
#[test]
fn the_server_says_what_it_does() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    wait_until(&sb, |st| feature(st, "f1")["status"] == "assigned");
    // Nothing committed yet: it comes back.
    submit(&sb, "a1");
    wait_until(&sb, |st| feature(st, "f1")["merge_note"].is_string());
    let wt = std::path::PathBuf::from(
        feature(&sb.status(), "f1")["worktree_path"]
            .as_str()
            .expect("worktree"),
    );
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1");
    sb.ok(&["agents", "progress", "a1", "--state", "validating"]);
    sb.ok(&["agents", "validate", "a1", "--result", "passed"]);
    wait_until(&sb, |st| feature(st, "f1")["status"] == "completed");
    // Three refused spans from one agent: one line now, the rest counted.
    for _ in 0..3 {
        let (code, body) = served.agent_span(
            "a1",
            "coordination.cycle",
            &[("coordination.cycle_number", "1")],
        );
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("rejected"), "{body}");
    }
    let status = sb.status();
    assert_eq!(status["agents"][0]["rejected_spans"], 3);
    let (_, stderr) = served.stop();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("spanfold: "))
        .collect();
    let find = |part: &str| {
        lines
            .iter()
            .position(|l| l.contains(part))
            .unwrap_or_else(|| panic!("no line with {part:?} in:\n{stderr}"))
    };
    let assigned = find("assigned f1 to a1");
    let back = find("f1 went back to a1: branch spanfold/f1 has no commit");
    let merged = find("merged f1 by a1 (fast_forward at");
    assert!(assigned < back && back < merged, "in order:\n{stderr}");
    let refused: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("refused span coordination.cycle from agent a1"))
        .collect();
    assert_eq!(refused.len(), 1, "rate-limited:\n{stderr}");
    assert!(
        refused[0].contains("only spanfold writes it"),
        "{}",
        refused[0]
    );
}

/// Polls the status until `what` holds; fails the test with the last status otherwise.
fn wait_until(sb: &Sandbox, what: impl Fn(&Value) -> bool) {
    for _ in 0..300 {
        let st = sb.status();
        if what(&st) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never got there: {}", sb.status());
}

/// With no timer, a cycle still comes when a blocker clears: a merge that freed its agent lets
/// the next feature go to it, and a merge deferred by a dirty main checkout goes once the user
/// stashes.
#[test]
fn a_cycle_wakes_when_a_blocker_clears() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let _served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1", "--priority", "high"]);
    sb.ok(&["agents", "add-feature", "f2"]);
    wait_until(&sb, |st| feature(st, "f1")["status"] == "assigned");
    let f2 = feature(&sb.status(), "f2").clone();
    assert!(
        f2["wait_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("to be free"),
        "{f2}"
    );

    let wt = std::path::PathBuf::from(
        feature(&sb.status(), "f1")["worktree_path"]
            .as_str()
            .expect("worktree"),
    );
    sb.commit_as_agent(&wt, "f1.txt", "f1\n", "f1");
    // The main checkout has uncommitted changes to a tracked file: the merge waits.
    std::fs::write(sb.repo.join("README.md"), "# project\nlocal edit\n").expect("write");
    submit(&sb, "a1");
    wait_until(&sb, |st| {
        feature(st, "f1")["merge_note"]
            .as_str()
            .is_some_and(|n| n.contains("uncommitted changes to tracked files"))
    });
    sb.git(&["stash", "-q"]);
    // No span is sent from here on: only the server's own wake-ups can finish the story.
    wait_until(&sb, |st| feature(st, "f1")["status"] == "completed");
    wait_until(&sb, |st| feature(st, "f2")["status"] == "assigned");
}

/// Without a server (or with --manual), the reason a placeable feature waits does not promise
/// a cycle that nobody runs.
#[test]
fn a_queued_features_reason_names_the_cycle_to_run() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let why = feature(&sb.status(), "f1")["wait_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("spanfold agents coordination-cycle"), "{why}");
    assert!(why.contains("unless --manual"), "{why}");
}
