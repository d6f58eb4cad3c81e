//! Agents on other hosts: a remote agent's feature branch goes to a real remote (a bare
//! repository served by `git daemon` on loopback) instead of a local worktree, and the agent,
//! in a clone of its own, gets it with the commands `agents next` gives.

use std::path::Path;

use crate::common::daemon::{GitDaemon, bare_copy};
use crate::common::{Sandbox, feature};

/// A sandbox whose `origin` is a bare copy served by a git daemon, named for remote agents.
pub(crate) fn with_remote() -> (Sandbox, GitDaemon, std::path::PathBuf) {
    let sb = Sandbox::new("main");
    let root = sb.tmp.path().join("served");
    let bare = bare_copy(&root, "project.git", &sb.repo, "main", &sb.home);
    let daemon = GitDaemon::serve(&root, &sb.home);
    sb.git(&["remote", "add", "origin", &daemon.url("project.git")]);
    sb.git(&["config", "spanfold.remote", "origin"]);
    sb.ok(&["agents", "init"]);
    (sb, daemon, bare)
}

/// Another clone of the remote, not spanfold's nor an agent's: someone else at work.
fn someone_elses_clone(sb: &Sandbox, daemon: &GitDaemon) -> std::path::PathBuf {
    let other = sb.tmp.path().join("other");
    let url = daemon.url("project.git");
    sb.git(&["clone", "-q", &url, &other.to_string_lossy()]);
    other
}

/// The commit `branch` points at in the repository at `dir` (bare or not); None if absent.
pub(crate) fn tip(sb: &Sandbox, dir: &Path, branch: &str) -> Option<String> {
    let full = format!("refs/heads/{branch}");
    let listed = sb.git_in(dir, &["for-each-ref", "--format=%(objectname)", &full]);
    Some(listed.trim().to_owned()).filter(|t| !t.is_empty())
}

#[test]
fn a_remote_agents_branch_is_pushed_and_its_agent_clones_and_pushes_to_it() {
    let (sb, daemon, bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["agent_id"], "cloud-1", "{cycle}");

    // On the remote, from the base branch's tip; nothing checked out here.
    let main = tip(&sb, &sb.repo, "main").expect("main");
    assert_eq!(tip(&sb, &bare, "spanfold/login").as_deref(), Some(&*main));
    let status = sb.status();
    let login = feature(&status, "login");
    assert_eq!(login["remote_url"], daemon.url("project.git"), "{login}");
    assert!(login["worktree_path"].is_null(), "{login}");
    let worktrees = sb.git_worktrees();
    assert!(worktrees.is_empty(), "no linked worktree: {worktrees:?}");
    assert!(
        !sb.repo
            .parent()
            .expect("parent")
            .join("project.worktrees/login")
            .exists()
    );

    // The agent's task says where and how; its commands work from another directory.
    let task = sb.ok(&["agents", "next", "cloud-1"]);
    assert_eq!(task["remote_url"], daemon.url("project.git"), "{task}");
    assert_eq!(task["branch_name"], "spanfold/login");
    let commands: Vec<&str> = task["start_commands"]
        .as_array()
        .expect("start commands")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(commands.len(), 3, "{task}");
    let elsewhere = sb.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let sh = |dir: &Path, line: &str| {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", line]).current_dir(dir);
        crate::common::bare_env(&mut cmd, &sb.home);
        let out = cmd.output().expect("sh runs");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&elsewhere, commands[0]);
    let clone = elsewhere.join("login");
    sb.commit_as_agent(&clone, "login.py", "print('hi')\n", "login");
    sh(&clone, commands[2]);
    let pushed = tip(&sb, &clone, "spanfold/login").expect("clone's branch");
    assert_eq!(tip(&sb, &bare, "spanfold/login"), Some(pushed));
    assert_ne!(tip(&sb, &bare, "spanfold/login").as_deref(), Some(&*main));
}

#[test]
fn a_branch_the_remote_has_already_is_left_as_it_is() {
    let (sb, daemon, bare) = with_remote();
    // An earlier agent's work on the remote, unknown here.
    let other = someone_elses_clone(&sb, &daemon);
    sb.git_in(&other, &["switch", "-q", "-c", "spanfold/login"]);
    sb.commit_as_agent(&other, "a.txt", "earlier\n", "earlier work");
    sb.git_in(&other, &["push", "-q", "origin", "spanfold/login"]);
    let earlier = tip(&sb, &bare, "spanfold/login").expect("pushed");

    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(tip(&sb, &bare, "spanfold/login"), Some(earlier));
    assert_eq!(feature(&sb.status(), "login")["status"], "assigned");
}

#[test]
fn without_a_remote_named_the_feature_waits_and_says_how_to_name_one() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status();
    let login = feature(&status, "login");
    assert_eq!(login["status"], "queued", "{login}");
    let why = login["wait_reason"].as_str().unwrap_or_default();
    assert!(why.contains("git config spanfold.remote"), "{why}");
    // A local agent is not held up by it.
    sb.ok(&["agents", "register-agent", "local-1"]);
    sb.ok(&["agents", "add-feature", "search"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let placed: Vec<&str> = cycle["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert!(placed.contains(&"local-1"), "{cycle}");
}

/// A remote agent's whole round: it clones its branch elsewhere, commits, pushes, reports;
/// spanfold fetches the branch, gates the merged tree, pushes the base to the remote and
/// deletes the branch there. Returns the agent's clone.
pub(crate) fn remote_agent_works(
    sb: &Sandbox,
    daemon: &GitDaemon,
    feature: &str,
    file: &str,
) -> std::path::PathBuf {
    let clone = sb.tmp.path().join(format!("clone-{feature}"));
    let branch = format!("spanfold/{feature}");
    sb.git(&[
        "clone",
        "-q",
        "--branch",
        &branch,
        &daemon.url("project.git"),
        &clone.to_string_lossy(),
    ]);
    sb.commit_as_agent(&clone, file, &format!("{feature}\n"), feature);
    sb.git_in(&clone, &["push", "-q", "origin", &branch]);
    clone
}

/// The results a cycle's merges recorded, in order.
fn results(cycle: &serde_json::Value) -> Vec<String> {
    cycle["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|r| r["result"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn submit_remote(sb: &Sandbox, agent: &str) {
    sb.ok(&["agents", "progress", agent, "--state", "working"]);
    sb.ok(&["agents", "progress", agent, "--state", "validating"]);
    sb.ok(&["agents", "validate", agent, "--result", "passed"]);
}

#[test]
fn a_remote_agents_work_is_fetched_gated_on_the_merged_tree_merged_and_pushed() {
    let (sb, daemon, bare) = with_remote();
    // The gate passes only on the merged tree: the base's later file and the agent's both.
    sb.ok(&[
        "agents",
        "init",
        "--validate-cmd",
        "test -f base.txt && test -f login.py",
    ]);
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.commit_as_agent(&sb.repo, "base.txt", "base\n", "the base moves on");
    let pushed = {
        remote_agent_works(&sb, &daemon, "login", "login.py");
        tip(&sb, &bare, "spanfold/login").expect("the agent's push")
    };
    submit_remote(&sb, "cloud-1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert!(results(&cycle).contains(&"merged".to_owned()), "{cycle}");

    let main = tip(&sb, &sb.repo, "main").expect("main");
    assert_eq!(
        tip(&sb, &bare, "main").as_deref(),
        Some(&*main),
        "the base is on the remote"
    );
    let contains = sb.git(&["merge-base", "--is-ancestor", &pushed, &main]);
    assert!(contains.is_empty());
    assert!(
        sb.repo.join("login.py").exists(),
        "the main checkout followed"
    );
    assert_eq!(
        tip(&sb, &bare, "spanfold/login"),
        None,
        "deleted on the remote"
    );
    assert_eq!(tip(&sb, &sb.repo, "spanfold/login"), None, "and here");
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
}

/// Someone pushes to the remote's base in the middle of a merge (after the round fetched it,
/// before the merge is pushed): the push of the merge is refused by its lease, theirs stands,
/// and the next round takes the new tip and merges on it.
#[cfg(feature = "test-hooks")]
#[test]
fn a_base_someone_else_moved_on_the_remote_is_never_overwritten() {
    let (sb, daemon, bare) = with_remote();
    let other = someone_elses_clone(&sb, &daemon);
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "login.py");
    submit_remote(&sb, "cloud-1");

    let their_push = format!(
        "cd '{}' && git -c user.name=O -c user.email=o@example.com commit -q --allow-empty -m elsewhere && git push -q origin main",
        other.display()
    );
    let run = sb.run_env(
        &["--json", "agents", "coordination-cycle"],
        &[
            ("SPANFOLD_FAULT", "run:before-remote-push"),
            ("SPANFOLD_FAULT_RUN", &their_push),
        ],
    );
    let first = run.json()["data"].clone();
    assert_eq!(run.code, 0, "{}", run.stdout);
    let refused = first["merges"]
        .as_array()
        .and_then(|m| m.iter().find(|r| r["result"] == "deferred"))
        .unwrap_or_else(|| panic!("no deferred merge: {first}"));
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not overwritten"), "{reason}");
    assert!(!results(&first).contains(&"merged".to_owned()), "{first}");
    let elsewhere = tip(&sb, &other, "main").expect("their main");
    assert_eq!(
        tip(&sb, &bare, "main"),
        Some(elsewhere.clone()),
        "theirs stands"
    );

    let second = sb.ok(&["agents", "coordination-cycle"]);
    assert!(results(&second).contains(&"merged".to_owned()), "{second}");
    let main = tip(&sb, &bare, "main").expect("remote main");
    assert_eq!(tip(&sb, &sb.repo, "main").as_deref(), Some(&*main));
    sb.git(&["merge-base", "--is-ancestor", &elsewhere, &main]);
    assert!(sb.repo.join("login.py").exists());
}

#[test]
fn a_conflict_goes_back_to_the_remote_agent_and_its_fix_merges() {
    let (sb, daemon, bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let clone = remote_agent_works(&sb, &daemon, "login", "README.md");
    // Meanwhile the base changes the same file here, and is pushed with the next merge round.
    sb.commit_as_agent(&sb.repo, "README.md", "# the project\n", "retitle");
    submit_remote(&sb, "cloud-1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert!(
        results(&cycle).contains(&"conflicted".to_owned()),
        "{cycle}"
    );
    let task = sb.ok(&["agents", "next", "cloud-1"]);
    assert!(
        task["came_back"]
            .as_str()
            .unwrap_or_default()
            .contains("README.md"),
        "{task}"
    );
    assert_eq!(
        tip(&sb, &bare, "main"),
        tip(&sb, &sb.repo, "main"),
        "the remote has the base the agent must merge"
    );

    // The agent merges the base from the remote, resolves, pushes, reports again.
    sb.git_in(&clone, &["fetch", "-q", "origin", "main"]);
    let mut merge = std::process::Command::new("git");
    merge
        .args([
            "-c",
            "user.name=Agent",
            "-c",
            "user.email=agent@example.com",
        ])
        .args(["merge", "FETCH_HEAD"])
        .current_dir(&clone);
    crate::common::bare_env(&mut merge, &sb.home);
    let merged = merge.output().expect("git runs");
    let said = String::from_utf8_lossy(&merged.stdout);
    assert!(said.contains("CONFLICT"), "it conflicts there too: {said}");
    std::fs::write(clone.join("README.md"), "# the project\nlogin\n").expect("resolve");
    sb.commit_all_as_agent(&clone, "merge main");
    sb.git_in(&clone, &["push", "-q", "origin", "spanfold/login"]);
    submit_remote(&sb, "cloud-1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert!(results(&cycle).contains(&"merged".to_owned()), "{cycle}");
    assert_eq!(tip(&sb, &bare, "main"), tip(&sb, &sb.repo, "main"));
    let readme = std::fs::read_to_string(sb.repo.join("README.md")).expect("readme");
    assert_eq!(readme, "# the project\nlogin\n");
}

/// SIGKILL after the merge is on the remote's base and before the base here moved: on restart
/// the base here takes the remote's, the merge is recorded once, and nothing is pushed twice.
#[cfg(feature = "test-hooks")]
#[test]
fn a_kill_between_the_remote_push_and_the_base_here_recovers_with_one_push() {
    use std::time::{Duration, Instant};
    let (sb, daemon, bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "login.py");
    // The base moves on too, so the merge is a merge commit of its own.
    sb.commit_as_agent(&sb.repo, "base.txt", "base\n", "base work");

    let mark = sb.tmp.path().join("reached");
    let mark_str = mark.to_string_lossy().into_owned();
    let served = sb.serve_with_env(
        &["--interval", "0"],
        &[
            ("SPANFOLD_FAULT", "pause:after-remote-push"),
            ("SPANFOLD_FAULT_MARK", mark_str.as_str()),
        ],
    );
    submit_remote(&sb, "cloud-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mark.exists() {
        assert!(
            Instant::now() < deadline,
            "the merge never reached the remote"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    served.kill();
    let remote_main = tip(&sb, &bare, "main").expect("remote main");
    assert_ne!(
        tip(&sb, &sb.repo, "main"),
        Some(remote_main.clone()),
        "not here yet"
    );

    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
    assert_eq!(tip(&sb, &sb.repo, "main"), Some(remote_main.clone()));
    assert_eq!(
        tip(&sb, &bare, "main"),
        Some(remote_main),
        "pushed once, not again"
    );
    let merges = sb.git_in(&bare, &["log", "--merges", "--format=%H", "main"]);
    assert_eq!(merges.lines().count(), 1, "{merges}");
    assert!(
        sb.repo.join("login.py").exists(),
        "the main checkout followed"
    );
}

/// SIGKILL while the base here is brought in step with the remote's (someone pushed to it),
/// after the ref moved and before the main checkout followed: on restart the checkout is
/// brought up to date — the move is known by the reflog line spanfold wrote, the log has no
/// record of it — and the merge goes on.
#[cfg(feature = "test-hooks")]
#[test]
fn a_kill_while_the_base_catches_up_with_the_remotes_leaves_no_checkout_behind() {
    use std::time::{Duration, Instant};
    let (sb, daemon, _bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "login.py");
    let other = someone_elses_clone(&sb, &daemon);
    sb.commit_as_agent(&other, "theirs.txt", "theirs\n", "their work");
    sb.git_in(&other, &["push", "-q", "origin", "main"]);

    let mark = sb.tmp.path().join("reached");
    let mark_str = mark.to_string_lossy().into_owned();
    let served = sb.serve_with_env(
        &["--interval", "0"],
        &[
            ("SPANFOLD_FAULT", "pause:after-merge-ref"),
            ("SPANFOLD_FAULT_MARK", mark_str.as_str()),
        ],
    );
    submit_remote(&sb, "cloud-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the base never moved");
        std::thread::sleep(Duration::from_millis(50));
    }
    served.kill();
    assert!(
        !sb.repo.join("theirs.txt").exists(),
        "the checkout was left behind the moved base"
    );

    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
    assert!(sb.repo.join("theirs.txt").exists() && sb.repo.join("login.py").exists());
    let changes = sb.git(&["status", "--porcelain", "--untracked-files=no"]);
    assert!(changes.trim().is_empty(), "{changes}");
}

/// The conflict radar sees a remote agent's work as soon as it is pushed, before it is
/// submitted: the branch is fetched where it moved on the remote.
#[test]
fn the_radar_sees_a_remote_agents_pushed_work_before_it_is_submitted() {
    let (sb, daemon, _bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "README.md");
    sb.commit_as_agent(&sb.repo, "README.md", "# the project\n", "retitle");
    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status();
    let risks = feature(&status, "login")["conflict_risk"].clone();
    let with_base = risks
        .as_array()
        .and_then(|r| r.iter().find(|r| r["with"].is_null()))
        .unwrap_or_else(|| panic!("no forecast against the base: {risks}"));
    assert_eq!(with_base["kind"], "conflict", "{risks}");
    assert_eq!(with_base["paths"][0], "README.md");
}

/// `gc` lists the remote's feature branches no feature still to be merged owns, and deletes
/// none of them.
#[test]
fn gc_lists_remote_branches_no_feature_owns() {
    let (sb, daemon, bare) = with_remote();
    sb.git(&["config", "spanfold.keepBranches", "true"]);
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "add-feature", "search"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "login.py");
    submit_remote(&sb, "cloud-1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert!(results(&cycle).contains(&"merged".to_owned()), "{cycle}");
    // Someone else's branch in spanfold's namespace, pushed by hand.
    let other = someone_elses_clone(&sb, &daemon);
    sb.git_in(
        &other,
        &["push", "-q", "origin", "HEAD:refs/heads/spanfold/stray"],
    );

    let report = sb.ok(&["gc"]);
    let listed: Vec<&str> = report["remote_branches"]
        .as_array()
        .unwrap_or_else(|| panic!("no remote branches listed: {report}"))
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    // search is now cloud-1's (assigned, owned); login merged with its branch kept; stray.
    assert_eq!(listed, vec!["spanfold/login", "spanfold/stray"], "{report}");
    assert!(
        tip(&sb, &bare, "spanfold/stray").is_some(),
        "listed, not deleted"
    );
    let text = sb.run(&["gc"]);
    assert!(text.stdout.contains("spanfold/stray"), "{}", text.stdout);
}

/// `agents run` on another host (a directory outside the repository, talking to the server by
/// its address only): it clones the branch from the remote, runs the agent's command there,
/// pushes the commits and reports; the server fetches, merges and pushes the base.
#[test]
fn agents_run_on_another_host_carries_a_feature_to_the_remotes_base() {
    let (sb, _daemon, bare) = with_remote();
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    let host = sb.tmp.path().join("host");
    std::fs::create_dir_all(&host).expect("host dir");
    let work = "echo hi > login.py && git add login.py && git -c user.name=A -c user.email=a@example.com commit -qm login";
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"));
    cmd.current_dir(&host)
        .args([
            "--json",
            "--endpoint",
            &served.http,
            "agents",
            "run",
            "cloud-1",
        ])
        .args(["--once", "--timeout", "60", "--workdir", "clones", "--"])
        .args(["bash", "-c", work]);
    crate::common::bare_env(&mut cmd, &sb.home);
    let out = cmd.output().expect("spanfold runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        host.join("clones/login/login.py").exists(),
        "cloned under --workdir"
    );
    let main = tip(&sb, &bare, "main").expect("remote main");
    let has = sb.git_in(&bare, &["ls-tree", "--name-only", &main]);
    assert!(has.lines().any(|l| l == "login.py"), "{has}");
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
    drop(served);
}

/// A submitted branch gone from the remote holds up its own merge only, saying why; the other
/// remote agent's work merges in the same round.
#[test]
fn a_branch_gone_from_the_remote_holds_up_only_its_own_merge() {
    let (sb, daemon, bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "register-agent", "cloud-2", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "add-feature", "search"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(&sb, &daemon, "login", "login.py");
    remote_agent_works(&sb, &daemon, "search", "search.py");
    submit_remote(&sb, "cloud-1");
    submit_remote(&sb, "cloud-2");
    sb.git_in(&bare, &["branch", "-q", "-D", "spanfold/search"]);

    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let of = |name: &str| {
        cycle["merges"]
            .as_array()
            .and_then(|m| m.iter().find(|r| r["feature_name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("nothing about {name}: {cycle}"))
    };
    assert_eq!(of("login")["result"], "merged", "{cycle}");
    let search = of("search");
    assert_eq!(search["result"], "deferred", "{cycle}");
    let reason = search["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("could not be fetched"), "{reason}");
    let status = sb.status();
    assert_eq!(feature(&status, "search")["status"], "merging");
}

/// A remote agent that reports its work done without pushing it is told to push, not to commit
/// in a worktree it does not have.
#[test]
fn a_remote_agent_that_did_not_push_is_told_to_push() {
    let (sb, _daemon, _bare) = with_remote();
    sb.ok(&["agents", "register-agent", "cloud-1", "--remote"]);
    sb.ok(&["agents", "add-feature", "login"]);
    sb.ok(&["agents", "coordination-cycle"]);
    submit_remote(&sb, "cloud-1");
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let returned = cycle["merges"]
        .as_array()
        .and_then(|m| m.iter().find(|r| r["result"] == "returned"))
        .unwrap_or_else(|| panic!("not returned: {cycle}"));
    let reason = returned["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("push"), "{reason}");
    assert!(!reason.contains("worktree"), "{reason}");
    let task = sb.ok(&["agents", "next", "cloud-1", "--prompt"]);
    let prompt = task["prompt"].as_str().unwrap_or_default();
    assert!(!prompt.contains("in the worktree"), "{prompt}");
}

/// Telemetry over the network: `agents run` on another host, given only the server's `https://`
/// address, its certificate and the agent's own token, hands the agent both OTLP ports over
/// TLS with that token (the gRPC one asked of the server); the agent's records over gRPC (as
/// Gemini CLI sends) and over HTTP arrive as its own, and its work merges through the remote.
#[test]
fn a_remote_agent_exports_over_tls_with_its_own_token_and_its_work_merges() {
    use crate::tls::OPERATOR;
    let (sb, _daemon, bare) = with_remote();
    let (cert, key) = crate::tls::certificate(&sb);
    let served = crate::tls::serve_tls_with(&sb, &cert, &key, "--interval 0");
    let op = |args: &[&str]| sb.ok(&[&["--token", OPERATOR], args].concat());
    op(&["agents", "register-agent", "cloud-1", "--remote"]);
    op(&["agents", "add-feature", "login"]);
    let token = sb.ok(&["--token", OPERATOR, "agents", "token", "cloud-1"])["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let work = crate::common::telemetry_then_commit("login.py");
    let host = sb.tmp.path().join("host");
    std::fs::create_dir_all(&host).expect("host dir");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"));
    cmd.current_dir(&host)
        .args(["--endpoint", &served.http, "--token", &token])
        .args(["--ca-cert", cert.to_str().expect("path")])
        .args(["agents", "run", "cloud-1", "--profile", "gemini", "--once"])
        .args(["--timeout", "60", "--workdir", "clones", "--", "bash", "-c"])
        .arg(&work)
        // requests lets these override the exporter's certificate (machines often set them).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    crate::common::bare_env(&mut cmd, &sb.home);
    let out = cmd.output().expect("spanfold runs");
    let log = std::fs::read_dir(host.join(".spanfold"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect::<String>();
    assert!(
        out.status.success(),
        "{}\n{}\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let main = tip(&sb, &bare, "main").expect("remote main");
    let has = sb.git_in(&bare, &["ls-tree", "--name-only", &main]);
    assert!(has.lines().any(|l| l == "login.py"), "{has}");
    let status = sb.ok(&["--token", OPERATOR, "agents", "agent-status"]);
    assert_eq!(feature(&status, "login")["status"], "completed");
    let agent = status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent_id"] == "cloud-1"))
        .expect("cloud-1");
    let telemetry = &agent["telemetry"];
    // One LLM request and one tool call from each: Gemini CLI's over gRPC, Codex's over HTTP
    // (its one failed).
    assert_eq!(telemetry["llm_requests"], 2, "{telemetry}");
    assert_eq!(
        (&telemetry["tool_calls"], &telemetry["tool_failures"]),
        (&2.into(), &1.into()),
        "{telemetry}"
    );
    drop(served);
}
