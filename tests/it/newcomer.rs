//! What a new user hit in a day with spanfold, each as it happened: separate `spanfold`
//! processes on real repositories. Every test here failed on the code before its fix.

use crate::common;

use common::{Sandbox, assign, feature, submit};

fn feature_names(status: &serde_json::Value) -> Vec<String> {
    status["features"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A server killed with SIGKILL leaves its advert; when another repository's server later
/// listens on the same ports, commands here must not go to it.
#[test]
fn a_stale_advert_never_sends_commands_to_another_repositorys_server() {
    let a = Sandbox::new("main");
    a.ok(&["agents", "init"]);
    let b = Sandbox::new("main");
    b.ok(&["agents", "init"]);

    let served_a = a.serve(&["--manual"]);
    let (grpc, http) = (served_a.grpc.clone(), served_a.http.clone());
    served_a.kill();
    assert!(
        a.repo.join(".git/spanfold/server.json").exists(),
        "a killed server leaves its advert"
    );
    let http_addr = http.trim_start_matches("http://");
    let served_b = b.serve(&["--manual", "--grpc", &grpc, "--http", http_addr]);
    assert_eq!(served_b.http, http, "B listens where A did");

    let run = a.run(&["agents", "add-feature", "only-in-a"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("another coordination directory's server answers there"),
        "warns: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no colour codes into a pipe: {:?}",
        run.stderr
    );

    let (code, body) = served_b.get("/api/status", None);
    assert_eq!(code, 200);
    assert!(!body.contains("only-in-a"), "landed in B's log: {body}");
    // A's board, read by A's CLI (from A's log), has it; B's board does not leak into A.
    let b_run = b.run(&["--json", "agents", "add-feature", "only-in-b"]);
    assert_eq!(b_run.code, 0, "{}", b_run.stdout);
    let names = feature_names(&a.status());
    assert_eq!(names, vec!["only-in-a".to_owned()]);
}

/// Work left uncommitted in the worktree is not "merged": the feature goes back to its agent
/// with the paths, and nothing is marked completed until the work is on the base branch.
#[test]
fn uncommitted_work_goes_back_to_its_agent_instead_of_being_marked_completed() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "login");
    std::fs::write(wt.join("login.py"), "def login(): pass\n").expect("write");
    std::fs::write(wt.join("README.md"), "# project\nchanged\n").expect("write");
    // Ignored files are not work: they do not block the merge.
    std::fs::write(wt.join(".gitignore"), "*.log\n").expect("write");
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "returned", "{cycle}");
    let status = sb.status();
    let f = feature(&status, "login");
    assert_eq!(f["status"], "in_progress", "{f}");
    let note = f["merge_note"].as_str().unwrap_or_default();
    for part in [
        "uncommitted changes",
        "login.py",
        "README.md",
        "commit them",
    ] {
        assert!(note.contains(part), "{part} in {note}");
    }
    assert_eq!(status["agents"][0]["state"], "working");
    assert!(wt.exists(), "the worktree stays with its agent");
    assert!(!sb.repo.join("login.py").exists(), "nothing merged");

    // Committed (and an ignored log file beside it): now it merges.
    std::fs::write(wt.join("debug.log"), "noise\n").expect("write");
    sb.commit_all_as_agent(&wt, "login");
    sb.ok(&["agents", "progress", "a1", "--state", "validating"]);
    sb.ok(&["agents", "validate", "a1", "--result", "passed"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "merged", "{cycle}");
    assert!(sb.repo.join("login.py").exists());
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
}

/// A branch with nothing committed beyond the base has nothing to merge.
#[test]
fn a_branch_without_commits_goes_back_to_its_agent() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "empty");
    submit(&sb, "a1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["result"], "returned", "{cycle}");
    let status = sb.status();
    let f = feature(&status, "empty");
    assert_eq!(f["status"], "in_progress");
    assert!(
        f["merge_note"]
            .as_str()
            .unwrap_or_default()
            .contains("no commit"),
        "{f}"
    );
    assert!(wt.exists());
    // The text a person reads says it too.
    let text = sb.run(&["agents", "coordination-cycle"]);
    assert_eq!(text.code, 0);
    let again = sb.run(&["agents", "agent-status"]);
    assert!(again.stdout.contains("no commit"), "{}", again.stdout);
}

/// An agent holding two features that reports without naming one is refused, with the
/// features to choose from, and nothing is written; naming one moves exactly that one.
#[test]
fn an_ambiguous_report_by_an_agent_holding_two_features_is_refused_and_not_written() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1", "--max-concurrent", "2"]);
    sb.ok(&["agents", "add-feature", "one"]);
    sb.ok(&["agents", "add-feature", "two"]);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&["agents", "progress", "a1", "--state", "working"]);
    let before = sb.status()["as_of"]["seq"].clone();

    for args in [
        &["agents", "validate", "a1", "--result", "passed"][..],
        &["agents", "progress", "a1", "--state", "validating"][..],
    ] {
        let error = sb.fails(args);
        for part in ["2 features", "one, two", "--feature"] {
            assert!(error.contains(part), "{part} in {error}");
        }
        let text = sb.run(args);
        assert_ne!(text.code, 0);
        assert!(text.stderr.contains("one, two"), "{}", text.stderr);
    }
    let status = sb.status();
    assert_eq!(status["as_of"]["seq"], before, "nothing written");
    assert_eq!(status["agents"][0]["state"], "working");
    assert_eq!(status["anomalies"].as_array().map(Vec::len), Some(0));

    sb.ok(&[
        "agents",
        "progress",
        "a1",
        "--state",
        "validating",
        "--feature",
        "one",
    ]);
    sb.ok(&[
        "agents",
        "validate",
        "a1",
        "--result",
        "passed",
        "--feature",
        "one",
    ]);
    let status = sb.status();
    assert_eq!(feature(&status, "one")["status"], "merging");
    assert_eq!(feature(&status, "two")["status"], "assigned", "untouched");
}

/// The same refusal through a running server: the CLI's spans are checked on the server's
/// writer before they are appended.
#[test]
fn a_server_refuses_an_ambiguous_report_from_the_cli_too() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "a1", "--max-concurrent", "2"]);
    sb.ok(&["agents", "add-feature", "one"]);
    sb.ok(&["agents", "add-feature", "two"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let before = sb.status()["as_of"]["seq"].clone();
    let error = sb.fails(&["agents", "validate", "a1", "--result", "passed"]);
    assert!(error.contains("one, two"), "{error}");
    let error = sb.fails(&["agents", "progress", "ghost", "--state", "working"]);
    assert!(error.contains("ghost is not registered"), "{error}");
    let status = sb.status();
    assert_eq!(status["as_of"]["seq"], before, "nothing written");
    assert_eq!(status["anomalies"].as_array().map(Vec::len), Some(0));
    drop(served);
}

/// Without a server, a cycle running the merge gate lets go of the log: another agent's report
/// is recorded while the gate runs, not after the merge.
#[test]
fn a_running_merge_gate_does_not_block_other_agents_reports() {
    let sb = Sandbox::new("main");
    let started = sb.tmp.path().join("gate-started");
    let release = sb.tmp.path().join("gate-may-finish");
    let gate = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.1; done",
        started.display(),
        release.display()
    );
    sb.ok(&["agents", "init", "--validate-cmd", &gate]);
    sb.ok(&["agents", "register-agent", "other"]);
    let wt = assign(&sb, "a1", "gated");
    sb.commit_as_agent(&wt, "work.txt", "work\n", "work");
    submit(&sb, "a1");

    let mut cycle = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"));
    cycle
        .args(["--json", "agents", "coordination-cycle"])
        .current_dir(&sb.repo)
        .stdout(std::process::Stdio::piped());
    common::bare_env(&mut cycle, &sb.tmp.path().join("home"));
    let running = cycle.spawn().expect("cycle starts");
    while !started.exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The gate is running, and waits for us: this report can only succeed if the cycle let go.
    let report = sb.run(&["--json", "agents", "progress", "other", "--state", "idle"]);
    std::fs::write(&release, "").expect("release the gate");
    let out = running.wait_with_output().expect("cycle ends");
    assert_eq!(report.code, 0, "{}{}", report.stdout, report.stderr);
    let cycle: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(cycle["data"]["merges"][0]["result"], "merged", "{cycle}");
    assert_eq!(feature(&sb.status(), "gated")["status"], "completed");
}

/// A log held by another process: the command says which process holds it.
#[cfg(feature = "test-hooks")]
#[test]
fn a_busy_log_names_the_process_that_holds_it() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let mark = sb.tmp.path().join("paused");
    let mut cycle = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"));
    cycle
        .args(["agents", "coordination-cycle"])
        .current_dir(&sb.repo)
        .env("SPANFOLD_FAULT", "pause:after-assignment-decision")
        .env("SPANFOLD_FAULT_MARK", &mark)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    common::bare_env(&mut cycle, &sb.tmp.path().join("home"));
    let mut holder = cycle.spawn().expect("cycle starts");
    while !mark.exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = sb.run(&["agents", "agent-status"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ne!(run.code, 0);
    let pid = holder.id().to_string();
    assert!(
        run.stderr.contains(&format!(
            "process {pid} (spanfold agents coordination-cycle)"
        )),
        "{}",
        run.stderr
    );
}

/// A log kept by `replay --keep` answers questions about the past and never acts: no cycle,
/// no report, no gc, no server on it, so no worktree or branch comes back for old work.
#[test]
fn a_kept_replay_is_read_only() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "old-work");
    let assigned_at = sb.status()["as_of"]["seq"].as_u64().expect("seq");
    sb.commit_as_agent(&wt, "old.txt", "old\n", "old work");
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "old-work")["status"], "completed");
    let branches = sb.git(&["branch", "--list"]);

    // The story up to the assignment, replayed and kept.
    let export = sb.tmp.path().join("story.jsonl");
    let kept = sb.tmp.path().join("kept");
    sb.ok(&[
        "export",
        "--to",
        &assigned_at.to_string(),
        "--output",
        export.to_str().expect("utf-8"),
    ]);
    sb.ok(&[
        "replay",
        export.to_str().expect("utf-8"),
        "--keep",
        kept.to_str().expect("utf-8"),
    ]);
    let dir = kept.to_str().expect("utf-8");

    for args in [
        &["agents", "coordination-cycle"][..],
        &["agents", "progress", "a1", "--state", "working"][..],
        &["gc"][..],
    ] {
        let mut full = vec!["--coord-dir", dir];
        full.extend_from_slice(args);
        let error = sb.fails(&full);
        assert!(error.contains("read-only"), "{args:?}: {error}");
    }
    let serve = sb.run(&[
        "--coord-dir",
        dir,
        "serve",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert_ne!(serve.code, 0);
    assert!(serve.stderr.contains("read-only"), "{}", serve.stderr);

    // Reading works, and shows the past.
    let past = sb.ok(&["--coord-dir", dir, "agents", "agent-status"]);
    assert_eq!(feature(&past, "old-work")["status"], "assigned");
    sb.ok(&["--coord-dir", dir, "history", "--feature", "old-work"]);
    // Nothing came back in the repository.
    assert_eq!(sb.git(&["branch", "--list"]), branches);
    assert!(!wt.exists(), "the merged feature's worktree stays gone");
}

/// An agent's shell left in a worktree that its merge removed: the next command says what
/// happened and what to do.
#[test]
fn a_removed_worktree_as_current_directory_is_explained() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "done-soon");
    sb.commit_as_agent(&wt, "x.txt", "x\n", "x");
    submit(&sb, "a1");
    // A shell in the worktree, waiting while the merge removes it.
    let script =
        "cd \"$1\" && while [ -e \"$1\" ]; do sleep 0.05; done; exec \"$2\" agents agent-status";
    let mut shell = std::process::Command::new("bash");
    shell
        .args(["-c", script, "bash"])
        .arg(&wt)
        .arg(env!("CARGO_BIN_EXE_spanfold"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    common::bare_env(&mut shell, &sb.tmp.path().join("home"));
    let waiting = shell.spawn().expect("shell starts");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["merges"][0]["worktree"], "removed", "{cycle}");
    let out = waiting.wait_with_output().expect("shell ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no longer exists") && stderr.contains("removed after its feature merged"),
        "{stderr}"
    );
    assert!(
        stderr.contains(wt.to_str().expect("utf-8")),
        "names the directory: {stderr}"
    );
}

/// `next --wait` for an agent in error answers at once: no work comes before a reset.
#[test]
fn next_for_an_agent_in_error_answers_at_once_with_the_reason() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "1"]);
    assign(&sb, "sleepy", "f1");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["leases_expired"][0], "sleepy", "{cycle}");

    // Before the fix this waited out the timeout and then said only that no work came.
    let error = sb.fails(&["agents", "next", "sleepy", "--wait", "--timeout", "30"]);
    for part in [
        "in error",
        "lease expired",
        "silence",
        "spanfold agents reset sleepy",
    ] {
        assert!(error.contains(part), "{part} in {error}");
    }
    // Status says it too, in JSON and in text; a report from the agent is told the same.
    let status = sb.status();
    let why = status["agents"][0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("lease expired"), "{status}");
    let text = sb.run(&["agents", "agent-status"]);
    assert!(
        text.stdout.contains("sleepy is in error"),
        "{}",
        text.stdout
    );
    let report = sb.fails(&["agents", "progress", "sleepy", "--state", "working"]);
    assert!(report.contains("lease expired"), "{report}");
    assert!(report.contains("spanfold agents reset sleepy"), "{report}");
    sb.ok(&["agents", "reset", "sleepy"]);
    assert!(sb.status()["agents"][0].get("error").is_none());
}

/// Outside a repository: the error suggests what every command accepts, said once.
#[test]
fn outside_a_repository_the_error_suggests_coord_dir_once() {
    let sb = Sandbox::new("main");
    let outside = sb.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).expect("dir");
    let run = sb.run_in(&outside, &["agents", "agent-status"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--coord-dir"), "{}", run.stderr);
    assert!(!run.stderr.contains("pass --repo"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("not inside a git repository").count(),
        1,
        "said once: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Could not find a git repository"),
        "{}",
        run.stderr
    );
}

/// `agents init` again changes what may change (recorded, and said) and refuses what cannot.
#[test]
fn init_again_changes_the_lease_and_merge_gate_and_refuses_fixed_settings() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "60"]);
    let again = sb.ok(&["agents", "init", "--lease", "900", "--validate-cmd", "true"]);
    assert_eq!(again["created"], false);
    assert_eq!(again["lease_seconds"], 900);
    let changed = again["changed"].to_string();
    assert!(changed.contains("lease 60s → 900s"), "{changed}");
    assert!(changed.contains("merge gate none → `true`"), "{changed}");
    let text = sb.run(&["agents", "init", "--lease", "120"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("changed: lease 900s → 120s"),
        "{}",
        text.stdout
    );
    let same = sb.ok(&["agents", "init"]);
    assert_eq!(same["changed"], serde_json::json!([]));
    assert_eq!(same["lease_seconds"], 120, "a bare init keeps the lease");

    // The change is in the log: a lease verdict counts on it.
    let status = sb.status();
    assert_eq!(status["config"]["lease_seconds"], 120);
    let (_, events) = {
        let served = sb.serve(&["--manual"]);
        served.get("/api/events?from=1", None)
    };
    assert_eq!(
        events.matches("coordination.configure").count(),
        2,
        "{events}"
    );

    let error = sb.fails(&["agents", "init", "--base", "develop"]);
    assert!(
        error.contains("cannot change") && error.contains("--base is main"),
        "{error}"
    );
    assert_eq!(sb.status()["config"]["base_branch"], "main");
}

/// A diff backwards in time is refused with what to do.
#[test]
fn a_reversed_diff_is_refused() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let error = sb.fails(&["diff", "--from", "3", "--to", "1"]);
    assert!(
        error.contains("after --to") && error.contains("swap"),
        "{error}"
    );
    let forward = sb.ok(&["diff", "--from", "1", "--to", "3"]);
    assert_eq!(forward["events"], 2);
}

/// Errors say their cause once; counts agree with their nouns.
#[test]
fn a_missing_replay_file_says_its_cause_once() {
    let sb = Sandbox::new("main");
    let run = sb.run(&["replay", "missing.jsonl"]);
    assert_ne!(run.code, 0);
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        run.stderr
    );
    let doc = sb.fails(&["replay", "missing.jsonl"]);
    assert_eq!(doc.matches("No such file or directory").count(), 1, "{doc}");
}

/// A second server for the same repository answers at once that one runs.
#[test]
fn a_second_server_says_at_once_that_one_runs() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual"]);
    let second = sb.run(&["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    assert_ne!(second.code, 0);
    let pid = std::fs::read_to_string(sb.repo.join(".git/spanfold/server.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["pid"].as_u64())
        .expect("advert");
    assert!(second.stderr.contains("already runs"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains(&served.http), "{}", second.stderr);
    // An address in use is said before anything else, without waiting for the log.
    let other = Sandbox::new("main");
    other.ok(&["agents", "init"]);
    let grpc = served.grpc.clone();
    let taken = other.run(&["serve", "--grpc", &grpc, "--http", "127.0.0.1:0"]);
    assert_ne!(taken.code, 0);
    assert!(
        taken.stderr.contains(&format!("cannot listen on {grpc}")),
        "{}",
        taken.stderr
    );
}

/// The lease on the board is the last activity plus the lease, and an assignment renews both.
#[test]
fn lease_expires_at_is_last_activity_plus_the_lease() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init", "--lease", "600"]);
    assign(&sb, "a1", "f1");
    let status = sb.status();
    let agent = &status["agents"][0];
    let parse = |v: &serde_json::Value| {
        humantime::parse_rfc3339(v.as_str().expect("a time")).expect("rfc 3339")
    };
    let last = parse(&agent["last_activity"]);
    let expires = parse(&agent["lease_expires_at"]);
    assert_eq!(expires.duration_since(last).expect("later").as_secs(), 600);
    // The assignment is the last event about a1: its time is the last activity.
    let (_, events) = sb.serve(&["--manual"]).get("/api/events?from=1", None);
    let assigned = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["name"] == "agent.feature_assignment")
        .expect("the assignment");
    assert_eq!(parse(&assigned["time"]), last);
}

/// `cancel-feature` unlocks the worktree it promises to, without waiting for a cycle.
#[test]
fn a_cancelled_features_worktree_is_unlocked_at_once() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "doomed");
    assert_eq!(sb.git_worktrees()[0].2.as_deref(), Some("a1"));
    let text = sb.run(&["agents", "cancel-feature", "doomed"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(!text.stdout.contains("next cycle"), "{}", text.stdout);
    assert_eq!(sb.git_worktrees()[0].2, None, "unlocked");
    assert!(wt.exists(), "kept with its work");
}

/// A server's goodbye counts its exports in words that agree with the number.
#[test]
fn a_server_that_took_one_export_says_one_export() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual"]);
    let (code, _) = served.agent_span("a1", "tool.call", &[]);
    assert_eq!(code, 200);
    let (status, stdout, _) = served.stop_output();
    assert!(status.success());
    assert!(stdout.contains("after 1 export."), "{stdout}");
}

/// With a server, `cancel-feature` wakes a cycle that unlocks the worktree, as it says.
#[test]
fn a_cancel_through_a_server_unlocks_the_worktree_without_waiting_for_a_timer() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let wt = assign(&sb, "a1", "doomed");
    let _served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "cancel-feature", "doomed"]);
    let mut unlocked = false;
    for _ in 0..200 {
        if sb.git_worktrees().first().is_some_and(|w| w.2.is_none()) {
            unlocked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(unlocked, "still locked: {:?}", sb.git_worktrees());
    assert!(wt.exists(), "kept with its work");
}

/// An assignment is recorded before its worktree is made (decide, record, then act): `next`
/// hands out a task only once its worktree exists, never a path that is not there yet.
#[cfg(feature = "test-hooks")]
#[test]
fn next_never_hands_out_a_worktree_that_is_not_made_yet() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let mark = sb.tmp.path().join("paused");
    let mark_text = mark.to_str().expect("utf-8").to_owned();
    let served = sb.serve_with_env(
        &["--interval", "0"],
        &[
            ("SPANFOLD_FAULT", "pause:after-assignment-decision"),
            ("SPANFOLD_FAULT_MARK", &mark_text),
        ],
    );
    sb.ok(&["agents", "register-agent", "worker"]);
    sb.ok(&["agents", "add-feature", "task-1"]);
    while !mark.exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The server holds still between the recorded assignment and the worktree.
    assert_eq!(feature(&sb.status(), "task-1")["status"], "assigned");
    let error = sb.fails(&["agents", "next", "worker"]);
    assert!(error.contains("is being created"), "{error}");
    served.kill();
}
