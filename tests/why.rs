//! The "why" is visible without JSON: what a person (or a script feeding a coding agent) reads
//! in text matches what the JSON says, for tasks, reasons, progress, leases and health.

mod common;

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
