//! Branches on a git remote, for agents that work on other hosts (a cloud sandbox, a
//! container, a second workstation): a feature's branch is put on the remote for its agent
//! instead of being checked out here. The remote is the one the operator names with
//! `git config spanfold.remote`. Talking to it runs the git command line (gix does not push)
//! with fixed arguments — that remote's name and refs spanfold made, never span data — without
//! a terminal to prompt on, killed after a minute.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{GitError, check_branch_name, open, worktree::ensure_branch};

/// The repository configuration key naming the remote that remote agents' branches go to.
pub const REMOTE_KEY: &str = "spanfold.remote";

/// How long one exchange with the remote may take before it is given up.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(60);

/// The remote that remote agents' branches go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Its name in the repository's configuration (`origin`).
    pub name: String,
    /// Its URL, as configured: what a remote agent clones.
    pub url: String,
}

/// A feature's branch put on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub url: String,
    /// The remote had the branch already (an earlier agent's work), and it was left as it is.
    pub reused: bool,
}

fn remote_error(message: String) -> GitError {
    GitError::Remote { message }
}

/// The remote named by `spanfold.remote`, with its URL.
pub fn configured_remote(repo_dir: &Path) -> Result<Remote, GitError> {
    let repo = open(repo_dir)?;
    let config = repo.config_snapshot();
    let name = config
        .string(REMOTE_KEY)
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            remote_error(format!(
                "no remote is named for remote agents: set one with `git config {REMOTE_KEY} origin` (a remote of this repository)"
            ))
        })?;
    // It reaches git's command line: an option or odd bytes are refused, never passed.
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if name.starts_with('-') || !plain {
        return Err(remote_error(format!(
            "{REMOTE_KEY} is {name:?}, which is not a remote's name: name one of `git remote`'s"
        )));
    }
    let url = config
        .string(format!("remote.{name}.url").as_str())
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            remote_error(format!(
                "{REMOTE_KEY} names {name}, which has no URL: add it with `git remote add {name} URL`"
            ))
        })?;
    Ok(Remote { name, url })
}

/// Puts `branch` on the configured remote for a remote agent. When the remote has it already
/// (an earlier agent's work) it is left as it is; otherwise the local branch, made from the tip
/// of `base` when new, is pushed.
pub fn push_branch(repo_dir: &Path, base: &str, branch: &str) -> Result<Pushed, GitError> {
    check_branch_name(branch)?;
    let remote = configured_remote(repo_dir)?;
    let full = format!("refs/heads/{branch}");
    if remote_has(repo_dir, &remote, &full)? {
        return Ok(Pushed {
            url: remote.url,
            reused: true,
        });
    }
    ensure_branch(&open(repo_dir)?, base, branch, &full)?;
    let refspec = format!("{full}:{full}");
    remote_git(repo_dir, &["push", "--quiet", &remote.name, &refspec])?;
    Ok(Pushed {
        url: remote.url,
        reused: false,
    })
}

/// Whether the remote has the ref `full`.
fn remote_has(repo_dir: &Path, remote: &Remote, full: &str) -> Result<bool, GitError> {
    let listed = remote_git(repo_dir, &["ls-remote", "--refs", &remote.name, full])?;
    Ok(listed
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(full)))
}

/// Runs `git args` in `repo_dir` against a remote: no prompt for credentials (there is nobody
/// to answer), killed after [`NETWORK_TIMEOUT`]. Its standard output, or why it failed.
fn remote_git(repo_dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let what = format!("git {}", args.join(" "));
    let failed = |message: String| remote_error(format!("{what}: {message}"));
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo_dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    // Read on their own threads, so that a chatty git cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > NETWORK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "no answer from the remote within {} s",
                    NETWORK_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    match status {
        Ok(s) if s.success() => Ok(out),
        Ok(_) => Err(failed(err.trim().to_owned())),
        Err(why) => Err(failed(why)),
    }
}
