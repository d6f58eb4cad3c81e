//! The operator's commands run in a feature's worktree — the merge gate, the set-up command —
//! with a deadline, their output's tail kept for the agent.

use std::path::Path;

/// What a merge gate said.
#[derive(Debug, Clone)]
pub struct GateResult {
    pub passed: bool,
    /// For a failure: the command, how it ended, and the tail of its output.
    pub summary: String,
}

/// Runs the operator's merge gate `cmd` with `sh -c` in `dir`, killed after `timeout`.
pub fn run_gate(cmd: &str, dir: &Path, timeout: std::time::Duration) -> GateResult {
    run_command("merge gate", cmd, dir, &[], timeout)
}

/// Runs the operator's `cmd` (named `what` in the summary) with `sh -c` in `dir`, with `env`
/// added, killed after `timeout`.
pub fn run_command(
    what: &str,
    cmd: &str,
    dir: &Path,
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> GateResult {
    use std::io::Read;
    let started = std::time::Instant::now();
    let spawned = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1; {cmd}"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return GateResult {
                passed: false,
                summary: format!("the {what} `{cmd}` could not start: {e}"),
            };
        }
    };
    // Output is read on its own thread so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out);
        }
        out
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let output = reader.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&output);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(30)..].join("\n");
    if tail.len() > 4000 {
        let cut = tail.len() - 4000;
        let cut = (cut..tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(0);
        tail = tail[cut..].to_owned();
    }
    match status {
        Some(s) if s.success() => GateResult {
            passed: true,
            summary: String::new(),
        },
        Some(s) => GateResult {
            passed: false,
            summary: format!(
                "the {what} `{cmd}` failed ({s}) after {:.1}s; last lines of its output:\n{tail}",
                started.elapsed().as_secs_f64()
            ),
        },
        None => GateResult {
            passed: false,
            summary: format!(
                "the {what} `{cmd}` did not finish within {}s and was stopped; last lines of its output:\n{tail}",
                timeout.as_secs()
            ),
        },
    }
}

/// Where a merge gate on a merged result runs: a commit of the base branch's future, checked
/// out (detached) in a worktree of its own.
pub struct GateCheckout<'a> {
    pub repo_dir: &'a Path,
    /// The temporary worktree's directory (made here, removed here whatever happens).
    pub dir: &'a Path,
    /// The commit to test, an object id.
    pub commit: &'a str,
    /// Files to copy in from the main checkout first (`spanfold.copyFiles` patterns).
    pub copy: &'a [&'a str],
}

/// Runs the merge gate `cmd` on `at.commit` in the temporary worktree `at.dir`, which is
/// removed afterwards, passed or not.
pub fn run_gate_on(at: &GateCheckout<'_>, cmd: &str, timeout: std::time::Duration) -> GateResult {
    drop_gate_worktree(at.repo_dir, at.dir);
    let Some(dir) = at.dir.to_str() else {
        return GateResult {
            passed: false,
            summary: format!("the gate directory {} is not UTF-8", at.dir.display()),
        };
    };
    let added = super::git_cli(
        at.repo_dir,
        &["worktree", "add", "--detach", "--quiet", dir, at.commit],
    );
    let result = match added {
        Err(e) => GateResult {
            passed: false,
            summary: format!("the merged result could not be checked out for the merge gate: {e}"),
        },
        Ok(_) => {
            // A file that cannot be copied is the gate's to miss, and its output says so.
            let _ = super::copy_matching(at.repo_dir, at.dir, at.copy);
            run_gate(cmd, at.dir, timeout)
        }
    };
    drop_gate_worktree(at.repo_dir, at.dir);
    result
}

/// Removes a temporary gate worktree at `dir` and its registration, if there is one.
pub fn drop_gate_worktree(repo_dir: &Path, dir: &Path) {
    if dir.exists() {
        if let Some(d) = dir.to_str() {
            let _ = super::git_cli(repo_dir, &["worktree", "remove", "--force", d]);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes the temporary gate worktrees `stale` (in `gates_dir`, left by processes that died
/// while their gates ran) and git's records of them; `gates_dir` itself once empty.
pub fn drop_gate_worktrees(repo_dir: &Path, gates_dir: &Path, stale: &[std::path::PathBuf]) {
    for dir in stale {
        drop_gate_worktree(repo_dir, dir);
    }
    if !stale.is_empty() {
        let _ = super::git_cli(repo_dir, &["worktree", "prune"]);
    }
    // Gone once empty, so that a round of merges with no gate running costs one stat.
    let _ = std::fs::remove_dir(gates_dir);
}
