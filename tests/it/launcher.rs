//! `spanfold agents run`: a real server, a real repository with no git identity, and an agent
//! command the launcher starts in the feature's worktree — a script that works, commits and
//! sends Claude Code's telemetry through the OpenTelemetry Python SDK (configured only by the
//! launcher's environment), a command that fails, a command stopped when its feature is
//! cancelled.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Sandbox};

const FAKE_AGENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/fake_agent.py");

/// An initialised repository whose server cycles on its own, with `agent` registered and
/// `feature` queued.
fn ready(agent: &str, feature: &str) -> (Sandbox, common::Served) {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", agent]);
    sb.ok(&[
        "agents",
        "add-feature",
        feature,
        "--desc",
        "Say hello in WORK.md",
    ]);
    (sb, served)
}

/// Polls the status (bounded) until `done` says yes; the last status either way.
fn until(sb: &Sandbox, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sb.status();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `agents run AGENT --once` in the background on the script agent, which works for two
/// minutes unless stopped (with `env` besides).
fn launch_long_agent(sb: &Sandbox, agent: &str, env: &[(&str, &str)]) -> std::process::Child {
    let python = common::python();
    sb.command(&[
        "agents",
        "run",
        agent,
        "--once",
        "--grace",
        "2",
        "--profile",
        "claude",
        "--",
        python.to_str().expect("utf-8"),
        FAKE_AGENT,
        "{prompt_file}",
    ])
    .env("FAKE_AGENT_SLEEP", "120")
    .envs(env.iter().copied())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("the launcher starts")
}

fn feature_status(status: &Value, name: &str) -> String {
    status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .map(|f| f["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn agent<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent_id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {status}"))
}

#[test]
fn a_script_agent_goes_from_assignment_to_merge_with_its_telemetry_and_no_glue() {
    let python = common::python();
    let (sb, _served) = ready("claude-1", "hello");
    let python = python.to_str().expect("utf-8");
    let run = sb.run(&[
        "--json",
        "agents",
        "run",
        "claude-1",
        "--once",
        "--profile",
        "claude",
        "--",
        python,
        FAKE_AGENT,
        "{prompt_file}",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("json");
    let first = &report["data"]["runs"][0];
    assert_eq!(first["feature_name"], "hello");
    assert_eq!(first["exit_code"], 0);
    assert_eq!(first["submitted"], true, "{first}");

    let status = until(&sb, "the merge", |s| {
        feature_status(s, "hello") == "completed"
    });
    let t = &agent(&status, "claude-1")["telemetry"];
    assert_eq!(
        t["source"], "claude",
        "its events read through Claude Code's profile: {t}"
    );
    assert_eq!(
        (&t["tool_calls"], &t["llm_requests"]),
        (&1.into(), &1.into()),
        "{t}"
    );
    let process = &t["process"];
    assert_eq!(process["state"], "exited");
    assert_eq!(process["exit_code"], 0);
    assert!(
        process["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("submitted")),
        "{process}"
    );
    // It worked in the feature's worktree, with the prompt; its commit (made with the identity
    // the launcher gave it: this machine has none) is on the base branch now.
    let log = sb.ok(&["agents", "logs", "claude-1"]);
    let text = log["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("fake agent for claude-1 on hello in") && text.contains("hello"),
        "{text}"
    );
    let work = std::fs::read_to_string(sb.repo.join("WORK.md")).expect("merged into main");
    assert!(work.contains("hello"), "{work}");
    let author = sb.git(&["log", "-1", "--format=%an <%ae>", "main"]);
    assert_eq!(author.trim(), "claude-1 <claude-1@spanfold.invalid>");
}

#[test]
fn a_command_that_fails_sends_the_feature_back_with_its_output() {
    let (sb, _served) = ready("a1", "broken");
    let run = sb.run(&[
        "agents",
        "run",
        "a1",
        "--once",
        "--",
        "bash",
        "-c",
        "echo the build is broken >&2; exit 3",
    ]);
    assert_ne!(run.code, 0, "--once fails when the work was not submitted");
    assert!(run.stderr.contains("exited with code 3"), "{}", run.stderr);
    let status = sb.status();
    let process = &agent(&status, "a1")["telemetry"]["process"];
    assert_eq!(process["exit_code"], 3);
    let outcome = process["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.contains("goes back to the queue") && outcome.contains("the build is broken"),
        "the reason and the output's tail: {outcome}"
    );
    assert_eq!(agent(&status, "a1")["state"], "idle");
    assert!(
        agent(&status, "a1")["assignments"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    );
}

#[test]
fn an_agent_whose_feature_is_cancelled_is_stopped() {
    let (sb, _served) = ready("a1", "long");
    let launcher = launch_long_agent(&sb, "a1", &[]);
    until(&sb, "the agent's start", |s| {
        agent(s, "a1")["telemetry"]["process"]["state"] == "started"
    });
    sb.ok(&["agents", "cancel-feature", "long"]);
    let out = launcher.wait_with_output().expect("the launcher ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no longer holds long"), "{stderr}");
    let status = sb.status();
    let process = &agent(&status, "a1")["telemetry"]["process"];
    assert_eq!(process["state"], "exited");
    assert_eq!(
        process["signal"], "SIGTERM",
        "stopped by the launcher: {process}"
    );
    assert_eq!(feature_status(&status, "long"), "cancelled");
}

#[test]
fn the_agent_gets_its_own_token_for_its_telemetry() {
    const OPERATOR: &str = "op-s3cret";
    let python = common::python();
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let _served = sb.serve(&["--interval", "0", "--token", OPERATOR]);
    let as_operator = |args: &[&str]| {
        let run = sb.run(&[&["--json", "--token", OPERATOR], args].concat());
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        serde_json::from_str::<Value>(&run.stdout).expect("json")["data"].clone()
    };
    as_operator(&["agents", "register-agent", "claude-1"]);
    as_operator(&["agents", "add-feature", "hello", "--desc", "Say hello"]);
    let token = as_operator(&["agents", "token", "claude-1"])["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let run = sb.run_env(
        &[
            "--token",
            OPERATOR,
            "agents",
            "run",
            "claude-1",
            "--once",
            "--agent-token",
            &token,
            "--profile",
            "claude",
            "--",
            python.to_str().expect("utf-8"),
            FAKE_AGENT,
            "{prompt_file}",
        ],
        &[("FAKE_AGENT_EXPECT_TOKEN", &token)],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // The agent checked its OTLP headers carry its own token (not the operator's), and its
    // telemetry was taken with it.
    let status = as_operator(&["agents", "agent-status"]);
    let t = &agent(&status, "claude-1")["telemetry"];
    assert_eq!(t["source"], "claude", "{t}");
    assert_eq!(t["llm_requests"], 1, "{t}");
    assert_eq!(status["telemetry"]["log_records"], 3);
}

#[test]
fn an_agent_that_loses_its_lease_is_stopped() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    // Timed cycles, as a lease runs out with nobody sending anything.
    let _served = sb.serve(&["--interval", "0.5"]);
    // A lease of one second, shorter than the launcher's heartbeat: the coordinator takes the
    // feature back while the command still runs, and the launcher stops it.
    sb.ok(&["agents", "register-agent", "a1", "--lease", "1"]);
    sb.ok(&["agents", "add-feature", "slow", "--desc", "Takes a while"]);
    let run = sb.run(&[
        "agents", "run", "a1", "--once", "--grace", "1", "--", "sleep", "60",
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("lost its work"), "{}", run.stderr);
    let status = sb.status();
    let process = &agent(&status, "a1")["telemetry"]["process"];
    assert_eq!(process["signal"], "SIGTERM", "{process}");
    assert_eq!(agent(&status, "a1")["state"], "error");
    assert_eq!(
        feature_status(&status, "slow"),
        "queued",
        "back for another agent"
    );
}

/// Runs `script` (bash, given the prompt file as `$1`) as agent a1 with `--once`; returns the
/// launcher's JSON report.
fn run_script_once(sb: &Sandbox, script: &str) -> Value {
    let run = sb.run(&[
        "--json",
        "agents",
        "run",
        "a1",
        "--once",
        "--timeout",
        "60",
        "--",
        "bash",
        "-c",
        script,
        "agent",
        "{prompt_file}",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    serde_json::from_str::<Value>(&run.stdout).expect("json")["data"].clone()
}

/// The prompt files of a1's runs, in order.
fn prompts(sb: &Sandbox) -> Vec<String> {
    let dir = sb.repo.join(".git/spanfold/runs/a1");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".prompt.md"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a prompt"))
        .collect()
}

#[test]
fn a_feature_whose_gate_fails_is_run_again_with_the_gates_output() {
    let (sb, _served) = ready("a1", "gated");
    sb.git(&[
        "config",
        "spanfold.validateCmd",
        "test -f FIXED || { echo FIXED is missing; exit 1; }",
    ]);
    // The agent does the work; told it came back, it adds what the gate asks for.
    let report = run_script_once(
        &sb,
        r#"if grep -q "came back" "$1"; then echo ok > FIXED; else echo hello > WORK.md; fi
           git add -A && git commit -qm work"#,
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    assert!(runs.iter().all(|r| r["submitted"] == true), "{report}");
    assert_eq!(report["outcome"], "gated is merged");
    let prompts = prompts(&sb);
    assert!(!prompts[0].contains("came back"), "{}", prompts[0]);
    assert!(
        prompts[1].contains("came back") && prompts[1].contains("FIXED is missing"),
        "the second run is told why, with the gate's output: {}",
        prompts[1]
    );
    assert_eq!(feature_status(&sb.status(), "gated"), "completed");
    assert!(sb.repo.join("FIXED").exists() && sb.repo.join("WORK.md").exists());
}

#[test]
fn a_feature_that_conflicts_is_run_again_with_the_conflicting_paths() {
    let (sb, _served) = ready("a1", "clash");
    // First run: someone commits WORK.md on main while the agent writes its own; the merge
    // conflicts. Second run: told which paths, the agent merges main and keeps its version.
    let report = run_script_once(
        &sb,
        r#"if grep -q "conflicted in WORK.md" "$1"; then
             git merge -q main -X ours -m "merge main"
           else
             main=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir)")
             echo theirs > "$main/WORK.md"
             git -C "$main" add WORK.md && git -C "$main" commit -qm theirs
             echo ours > WORK.md && git add WORK.md && git commit -qm ours
           fi"#,
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    assert_eq!(report["outcome"], "clash is merged");
    let prompts = prompts(&sb);
    assert!(
        prompts[1].contains("conflicted in WORK.md"),
        "{}",
        prompts[1]
    );
    let work = std::fs::read_to_string(sb.repo.join("WORK.md")).expect("merged");
    assert_eq!(work.trim(), "ours");
}

#[test]
fn a_new_worktree_gets_its_files_its_set_up_and_its_ports_once_before_its_agent_starts() {
    let (sb, _served) = ready("a1", "ready");
    std::fs::write(sb.repo.join(".env"), "SECRET=1\n").expect("write .env");
    // What the set-up makes is ignored, as `node_modules` would be; the copied .env is not,
    // and is still not taken for the agent's uncommitted work.
    std::fs::write(sb.repo.join(".git/info/exclude"), "SETUP.txt\n").expect("exclude");
    sb.git(&["config", "spanfold.copyFiles", ".env"]);
    sb.git(&[
        "config",
        "spanfold.setupCmd",
        "echo \"set up on port $SPANFOLD_PORT\" >> SETUP.txt",
    ]);
    // `agents next` makes the worktree ready and says the port; the launcher finds it ready.
    let next = sb.ok(&["agents", "next", "a1", "--wait", "--timeout", "60"]);
    assert_eq!(next["port"], 20000, "{next}");
    assert_eq!(next["ready"], "1 file(s) copied in, set-up command passed");
    run_script_once(
        &sb,
        r#"cat .env SETUP.txt > WORK.md && echo "agent on port $SPANFOLD_PORT" >> WORK.md
           git add WORK.md && git commit -qm work"#,
    );
    let work = std::fs::read_to_string(sb.repo.join("WORK.md")).expect("merged");
    assert_eq!(
        work, "SECRET=1\nset up on port 20000\nagent on port 20000\n",
        "copied, set up once, the same port for both"
    );
}

#[test]
fn a_set_up_that_fails_sends_the_feature_back_with_its_output_and_starts_no_agent() {
    let (sb, _served) = ready("a1", "unready");
    sb.git(&[
        "config",
        "spanfold.setupCmd",
        "echo npm could not resolve left-pad; exit 7",
    ]);
    let run = sb.run(&[
        "agents",
        "run",
        "a1",
        "--once",
        "--timeout",
        "60",
        "--",
        "touch",
        "STARTED",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("npm could not resolve left-pad")
            && run.stderr.contains("spanfold.setupCmd"),
        "what failed and what to fix: {}",
        run.stderr
    );
    let status = sb.status();
    assert_eq!(feature_status(&status, "unready"), "queued");
    let a1 = agent(&status, "a1");
    assert!(
        a1["telemetry"]["process"].is_null(),
        "no agent was started: {a1}"
    );
    let waiting = status["features"][0]["wait_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        waiting.contains("could not be made ready")
            && waiting.contains("npm could not resolve left-pad"),
        "why it waits says what failed: {status}"
    );
}

#[test]
fn a_feature_over_its_budget_stops_its_agent_is_held_and_continues_once_raised() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "claude-1"]);
    sb.ok(&[
        "agents",
        "add-feature",
        "spendy",
        "--desc",
        "Costly",
        "--budget-usd",
        "0.01",
    ]);
    // The agent reports its first LLM request ($0.0123, over the $0.01 budget), then works on.
    let launcher = launch_long_agent(&sb, "claude-1", &[("FAKE_AGENT_SPEND_FIRST", "1")]);
    let out = launcher.wait_with_output().expect("the launcher ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no longer holds spendy"), "{stderr}");
    let status = sb.status();
    let f = status["features"][0].clone();
    assert_eq!(
        (&f["status"], &f["budget"]["state"]),
        (&"held".into(), &"exceeded".into()),
        "{f}"
    );
    let why = f["wait_reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("budget exceeded: $0.0123 of $0.0100; raise it with"),
        "{why}"
    );
    let process = &agent(&status, "claude-1")["telemetry"]["process"];
    assert_eq!(
        process["signal"], "SIGTERM",
        "stopped by the launcher: {process}"
    );
    // Held: a cycle does not place it again; raised: it is queued and placed.
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature_status(&sb.status(), "spendy"), "held");
    let raised = sb.ok(&["agents", "set-budget", "spendy", "--usd", "1"]);
    assert_eq!(raised["status"], "queued", "{raised}");
    until(&sb, "its placement", |s| {
        feature_status(s, "spendy") == "assigned"
    });

    // The log alone re-checks the verdict; a verdict edited by hand is caught.
    drop(served);
    verify_catches_an_edited_verdict(&sb, "coordination.budget", "budget");
}

#[test]
fn an_agent_over_its_daily_budget_is_stopped_and_its_feature_waits_for_another() {
    let sb = Sandbox::new("main");
    // A default feature budget far above the spending: only the agent's day runs out.
    let init = sb.ok(&["agents", "init", "--feature-budget-usd", "5"]);
    assert_eq!(init["feature_budget"]["usd"], 5.0, "{init}");
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&[
        "agents",
        "register-agent",
        "claude-1",
        "--budget-usd",
        "0.01",
    ]);
    sb.ok(&["agents", "add-feature", "spendy", "--desc", "Costly"]);
    assert_eq!(sb.status()["features"][0]["budget"]["usd"], 5.0);
    let launcher = launch_long_agent(&sb, "claude-1", &[("FAKE_AGENT_SPEND_FIRST", "1")]);
    let out = launcher.wait_with_output().expect("the launcher ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("agent claude-1 spent its daily budget ($0.0123 of $0.0100)"),
        "{stderr}"
    );
    let status = sb.status();
    let f = status["features"][0].clone();
    assert_eq!(
        (&f["status"], &f["budget"]["state"]),
        (&"queued".into(), &"ok".into()),
        "{f}"
    );
    assert!(f["worktree_path"].is_string(), "its worktree is kept: {f}");
    let budget = &agent(&status, "claude-1")["budget"];
    assert_eq!(
        (&budget["state"], &budget["spent_usd"]),
        (&"exceeded".into(), &0.0123.into())
    );
    // No work for it today: a cycle leaves the feature queued; a higher budget brings it back.
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature_status(&sb.status(), "spendy"), "queued");
    sb.ok(&["agents", "register-agent", "claude-1", "--budget-usd", "1"]);
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature_status(&sb.status(), "spendy"), "assigned");

    // The log alone re-checks the verdict; one edited by hand is caught.
    drop(served);
    verify_catches_an_edited_verdict(&sb, "coordination.agent_budget", "agent_budget");
}

/// Exports the log, checks that `replay --verify` passes, then edits the verdict on the lines of
/// span `name` (what was spent: 0.0123 → 0.0099) and checks that verify names a divergence of
/// `kind`.
fn verify_catches_an_edited_verdict(sb: &Sandbox, name: &str, kind: &str) {
    let path = sb.tmp.path().join(format!("{kind}.jsonl"));
    let p = path.to_str().expect("utf-8");
    sb.ok(&["export", "-o", p]);
    let ok = sb.run(&["replay", p, "--verify"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let text = std::fs::read_to_string(&path).expect("export");
    let edited: Vec<String> = text
        .lines()
        .map(|l| match l.contains(name) {
            true => l.replace("0.0123", "0.0099"),
            false => l.to_owned(),
        })
        .collect();
    assert_ne!(
        edited.join("\n"),
        text.trim_end(),
        "the verdict was found and edited"
    );
    std::fs::write(&path, edited.join("\n") + "\n").expect("write");
    let bad = sb.run(&["--json", "replay", p, "--verify"]);
    assert_ne!(bad.code, 0, "an edited verdict must fail verify");
    assert_eq!(bad.json()["data"]["verify"]["divergence"]["kind"], kind);
}
