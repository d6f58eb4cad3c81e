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
