//! Agents on other hosts: a remote agent's feature branch goes to a real remote (a bare
//! repository served by `git daemon` on loopback) instead of a local worktree, and the agent,
//! in a clone of its own, gets it with the commands `agents next` gives.

use std::path::Path;

use crate::common::daemon::{GitDaemon, bare_copy};
use crate::common::{Sandbox, feature};

/// A sandbox whose `origin` is a bare copy served by a git daemon, named for remote agents.
fn with_remote() -> (Sandbox, GitDaemon, std::path::PathBuf) {
    let sb = Sandbox::new("main");
    let root = sb.tmp.path().join("served");
    let bare = bare_copy(&root, "project.git", &sb.repo, "main", &sb.home);
    let daemon = GitDaemon::serve(&root, &sb.home);
    sb.git(&["remote", "add", "origin", &daemon.url("project.git")]);
    sb.git(&["config", "spanfold.remote", "origin"]);
    sb.ok(&["agents", "init"]);
    (sb, daemon, bare)
}

/// The commit `branch` points at in the repository at `dir` (bare or not); None if absent.
fn tip(sb: &Sandbox, dir: &Path, branch: &str) -> Option<String> {
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
    let other = sb.tmp.path().join("other");
    sb.git(&[
        "clone",
        "-q",
        &daemon.url("project.git"),
        &other.to_string_lossy(),
    ]);
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
