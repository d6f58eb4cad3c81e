//! A feature handed between an agent here and an agent on another host (the first one's lease
//! lost, or it was reset): the work done so far goes with it either way.

use crate::common::{Sandbox, feature};
use crate::remote::{remote_agent_works, submit_remote, tip, with_remote};

/// Makes `from` let go of its feature (reset) and only `to` able to take it again.
fn hand_over(sb: &Sandbox, from: &str, to: &str, to_remote: bool) {
    sb.ok(&["agents", "reset", from, "--reason", "handed over"]);
    sb.ok(&["agents", "register-agent", from, "--langs", "rust"]);
    let mut args = vec!["agents", "register-agent", to, "--langs", "python"];
    if to_remote {
        args.push("--remote");
    }
    sb.ok(&args);
    sb.ok(&["agents", "coordination-cycle"]);
}

/// `login` assigned to the remote agent `cloud-1`, which pushed `pushed.py` to its branch.
fn pushed_by_a_remote_agent(sb: &Sandbox, daemon: &crate::common::daemon::GitDaemon) {
    let cloud = ["agents", "register-agent", "cloud-1", "--langs", "python"];
    sb.ok(&[&cloud[..], &["--remote"]].concat());
    sb.ok(&["agents", "add-feature", "login", "--langs", "python"]);
    sb.ok(&["agents", "coordination-cycle"]);
    remote_agent_works(sb, daemon, "login", "pushed.py");
}

/// `login` assigned to `local-1` here, which committed `first.py` in its worktree; the
/// worktree's path.
fn committed_here(sb: &Sandbox) -> std::path::PathBuf {
    sb.ok(&["agents", "register-agent", "local-1", "--langs", "python"]);
    sb.ok(&["agents", "add-feature", "login", "--langs", "python"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let place = feature(&sb.status(), "login")["worktree_path"].clone();
    let worktree = std::path::PathBuf::from(place.as_str().expect("a local worktree"));
    sb.commit_as_agent(&worktree, "first.py", "first\n", "the first part");
    worktree
}

/// Local first, then remote: the branch goes to the remote with the local agent's commits,
/// and the remote agent's work merges although the first worktree is still checked out here.
#[test]
fn a_feature_from_an_agent_here_to_a_remote_one_merges_with_both_agents_work() {
    let (sb, daemon, bare) = with_remote();
    let worktree = committed_here(&sb);

    hand_over(&sb, "local-1", "cloud-1", true);
    remote_agent_works(&sb, &daemon, "login", "second.py");
    submit_remote(&sb, "cloud-1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
    let main = tip(&sb, &bare, "main").expect("remote main");
    let files = sb.git_in(&bare, &["ls-tree", "--name-only", &main]);
    for file in ["first.py", "second.py"] {
        assert!(files.lines().any(|l| l == file), "{file}: {files}");
    }
    assert!(!worktree.exists(), "the first worktree went with the merge");
}

/// Remote first, then here: the worktree starts from what the remote agent pushed, not from
/// the branch as it was when it was first put on the remote.
#[test]
fn a_feature_from_a_remote_agent_to_one_here_starts_from_the_pushed_work() {
    let (sb, daemon, _bare) = with_remote();
    pushed_by_a_remote_agent(&sb, &daemon);

    hand_over(&sb, "cloud-1", "local-1", false);
    let status = sb.status();
    let login = feature(&status, "login");
    assert_eq!(login["assigned_agent"], "local-1", "{login}");
    let worktree = std::path::PathBuf::from(login["worktree_path"].as_str().expect("a worktree"));
    assert!(
        worktree.join("pushed.py").exists(),
        "the remote agent's pushed work is in the worktree"
    );
}

/// Here, then remote, then here again: the worktree left here is taken up again on the
/// branch, with what the remote agent pushed, and what is committed there merges.
#[test]
fn a_feature_back_here_after_a_remote_agent_goes_on_from_its_work() {
    let (sb, daemon, bare) = with_remote();
    let worktree = committed_here(&sb);
    hand_over(&sb, "local-1", "cloud-1", true);
    remote_agent_works(&sb, &daemon, "login", "second.py");

    hand_over(&sb, "cloud-1", "local-1", false);
    let head = sb.git_in(&worktree, &["symbolic-ref", "--short", "HEAD"]);
    assert_eq!(head.trim(), "spanfold/login", "on the branch again");
    assert!(
        worktree.join("second.py").exists(),
        "with the remote agent's work"
    );
    sb.commit_as_agent(&worktree, "third.py", "third\n", "the third part");
    sb.ok(&["agents", "progress", "local-1", "--state", "working"]);
    submit_remote(&sb, "local-1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(feature(&sb.status(), "login")["status"], "completed");
    let main = tip(&sb, &bare, "main").expect("remote main");
    let files = sb.git_in(&bare, &["ls-tree", "--name-only", &main]);
    for file in ["first.py", "second.py", "third.py"] {
        assert!(files.lines().any(|l| l == file), "{file}: {files}");
    }
}

/// Remote, then here, then remote again: what was committed here goes to the remote, so the
/// next remote agent starts from it.
#[test]
fn a_feature_back_on_the_remote_takes_the_work_done_here() {
    let (sb, daemon, _bare) = with_remote();
    pushed_by_a_remote_agent(&sb, &daemon);
    hand_over(&sb, "cloud-1", "local-1", false);
    let place = feature(&sb.status(), "login")["worktree_path"].clone();
    let worktree = std::path::PathBuf::from(place.as_str().expect("a local worktree"));
    sb.commit_as_agent(&worktree, "here.py", "here\n", "the part done here");

    hand_over(&sb, "local-1", "cloud-2", true);
    let status = sb.status();
    let login = feature(&status, "login");
    assert_eq!(login["assigned_agent"], "cloud-2", "{login}");
    let theirs = sb.tmp.path().join("cloud-2");
    sb.git(&[
        "clone",
        "-q",
        "--branch",
        "spanfold/login",
        &daemon.url("project.git"),
        &theirs.to_string_lossy(),
    ]);
    for file in ["pushed.py", "here.py"] {
        assert!(
            theirs.join(file).exists(),
            "{file} is on the remote's branch"
        );
    }
}

/// Remote, then here, then remote again, with commits on both sides meanwhile: nothing is
/// overwritten; the feature waits, saying the two diverged and how to join them.
#[test]
fn a_branch_that_diverged_here_and_on_the_remote_is_refused_saying_how_to_join_it() {
    let (sb, daemon, bare) = with_remote();
    pushed_by_a_remote_agent(&sb, &daemon);
    hand_over(&sb, "cloud-1", "local-1", false);
    let place = feature(&sb.status(), "login")["worktree_path"].clone();
    let worktree = std::path::PathBuf::from(place.as_str().expect("a local worktree"));
    sb.commit_as_agent(&worktree, "here.py", "here\n", "the part done here");
    // The first remote agent pushes once more after it let go.
    let theirs = sb.tmp.path().join("clone-login");
    sb.commit_as_agent(&theirs, "late.py", "late\n", "a late push");
    sb.git_in(&theirs, &["push", "-q", "origin", "spanfold/login"]);
    let late = tip(&sb, &theirs, "spanfold/login");

    hand_over(&sb, "local-1", "cloud-2", true);
    assert_eq!(
        tip(&sb, &bare, "spanfold/login"),
        late,
        "the remote's branch stands"
    );
    let status = sb.status();
    let login = feature(&status, "login");
    assert_ne!(login["assigned_agent"], "cloud-2", "{login}");
    assert!(login.to_string().contains("have diverged"), "{login}");
}
