//! Helpers for tests that run the built binary the way a user would: in a fresh `git init`
//! repository in a temp dir, with no git identity and no global git configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

pub mod wire;

pub struct Sandbox {
    pub tmp: TempDir,
    pub repo: PathBuf,
    pub home: PathBuf,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as exactly one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A command with the environment of a newcomer's machine: no identity, no global config.
pub fn bare_env(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("SPANFOLD_COORD_DIR")
        .env_remove("EMAIL");
    for var in [
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_DIR",
        "GIT_WORK_TREE",
    ] {
        cmd.env_remove(var);
    }
}

impl Sandbox {
    /// A repository with one commit on `branch`.
    pub fn new(branch: &str) -> Sandbox {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let repo = tmp.path().join("project");
        std::fs::create_dir_all(&repo).expect("repo dir");
        let sb = Sandbox { tmp, repo, home };
        sb.git(&["init", "-q", "-b", branch]);
        std::fs::write(sb.repo.join("README.md"), "# project\n").expect("write");
        sb.git(&["add", "README.md"]);
        // Only the test's own setup commit names an author; spanfold runs without one.
        sb.git(&[
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "-q",
            "-m",
            "initial",
        ]);
        sb
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir);
        bare_env(&mut cmd, &self.home);
        let out = cmd.output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A commit in an agent's worktree, by the agent (the test names an author for it).
    pub fn commit_as_agent(&self, worktree: &Path, file: &str, text: &str, message: &str) {
        std::fs::write(worktree.join(file), text).expect("write");
        self.git_in(worktree, &["add", file]);
        self.commit_staged(worktree, message);
    }

    /// Everything in an agent's worktree committed, by the agent, as `git add -A` would.
    pub fn commit_all_as_agent(&self, worktree: &Path, message: &str) {
        self.git_in(worktree, &["add", "-A"]);
        self.commit_staged(worktree, message);
    }

    fn commit_staged(&self, worktree: &Path, message: &str) {
        self.git_in(
            worktree,
            &[
                "-c",
                "user.name=Agent",
                "-c",
                "user.email=agent@example.com",
                "commit",
                "-q",
                "-m",
                message,
            ],
        );
    }

    /// Runs spanfold in the repository.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.repo, args)
    }

    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_with(dir, args, &[])
    }

    /// `spanfold ARGS` in the repository with the sandbox's bare environment, not started: for
    /// a command a test runs beside others (a launcher, a follower).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spanfold"));
        cmd.args(args).current_dir(&self.repo);
        bare_env(&mut cmd, &self.home);
        cmd
    }

    /// [`Sandbox::run`] with these variables added to the bare environment.
    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        self.run_with(&self.repo, args, envs)
    }

    fn run_with(&self, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spanfold"));
        cmd.args(args).current_dir(dir);
        bare_env(&mut cmd, &self.home);
        cmd.envs(envs.iter().copied());
        let out = cmd.output().expect("spanfold runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with --json, asserts success, returns `data`.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.ok_with(args, &[])
    }

    /// [`Sandbox::ok`] with the coordinator's clock `secs` ahead of the system's (the test hook
    /// `SPANFOLD_CLOCK_AHEAD_SECS`): a lease runs out without the test sleeping through it.
    #[cfg(feature = "test-hooks")]
    pub fn ok_later(&self, secs: u64, args: &[&str]) -> Value {
        self.ok_with(args, &[("SPANFOLD_CLOCK_AHEAD_SECS", &secs.to_string())])
    }

    fn ok_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let run = self.run_with(&self.repo, &full, envs);
        let doc = run.json();
        assert_eq!(run.code, 0, "{args:?} failed: {}", run.stdout);
        assert_eq!(doc["success"], true, "{args:?}: {}", run.stdout);
        doc["data"].clone()
    }

    /// Runs with --json, asserts failure with one JSON document, returns the first error.
    pub fn fails(&self, args: &[&str]) -> String {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let run = self.run(&full);
        let doc = run.json();
        assert_ne!(run.code, 0, "{args:?} should fail: {}", run.stdout);
        assert_eq!(doc["success"], false, "{args:?}: {}", run.stdout);
        doc["errors"][0].as_str().unwrap_or_default().to_owned()
    }

    /// The status document, parsed into the type spanfold writes it from: tests read fields,
    /// not paths into untyped JSON.
    pub fn status_doc(&self) -> spanfold::status::Status {
        serde_json::from_value(self.status()).expect("a status document")
    }

    pub fn status(&self) -> Value {
        self.ok(&["agents", "agent-status", "--details"])
    }

    /// `git worktree list --porcelain` as (path, branch, lock reason) for linked worktrees.
    /// A worktree being created beside the call (a server's cycle) can make git fail to
    /// read it for a moment ("failed to read .git/worktrees/F/commondir"): asked again.
    pub fn git_worktrees(&self) -> Vec<(String, String, Option<String>)> {
        let mut tries = 0;
        let text = loop {
            let mut cmd = Command::new("git");
            cmd.args(["worktree", "list", "--porcelain"])
                .current_dir(&self.repo);
            bare_env(&mut cmd, &self.home);
            let out = cmd.output().expect("git runs");
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout).into_owned();
            }
            tries += 1;
            assert!(
                tries < 50,
                "git worktree list failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut out = Vec::new();
        for block in text.split("\n\n").skip(1) {
            let mut path = String::new();
            let mut branch = String::new();
            let mut lock = None;
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = p.to_owned();
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = b.to_owned();
                } else if let Some(r) = line.strip_prefix("locked") {
                    lock = Some(r.trim().to_owned());
                }
            }
            if !path.is_empty() {
                out.push((path, branch, lock));
            }
        }
        out
    }
}

/// A `spanfold serve` child process on loopback port 0, stopped (SIGTERM) when dropped.
pub struct Served {
    child: Option<std::process::Child>,
    pub http: String,
    pub grpc: String,
    pub coord_dir: PathBuf,
}

impl Sandbox {
    /// Starts the server for this repository and waits until it advertises its addresses.
    pub fn serve(&self, extra: &[&str]) -> Served {
        self.serve_with_env(extra, &[])
    }

    pub fn serve_with_env(&self, extra: &[&str], envs: &[(&str, &str)]) -> Served {
        self.serve_in(
            &self.repo.join(".git").join("spanfold"),
            &self.repo.clone(),
            extra,
            envs,
        )
    }

    /// A server for another repository's log (the demo's).
    pub fn serve_for(&self, coord_dir: &Path, repo: &Path) -> Served {
        self.serve_in(coord_dir, repo, &["--manual"], &[])
    }

    /// The server started by bash after `prelude` (resource limits, signal dispositions).
    pub fn serve_after(&self, prelude: &str, extra: &[&str]) -> Served {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &format!("{prelude}; exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_spanfold"));
        self.start(
            cmd,
            &self.repo.join(".git").join("spanfold"),
            &self.repo.clone(),
            extra,
            &[],
        )
    }

    fn serve_in(
        &self,
        coord_dir: &Path,
        repo: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Served {
        let cmd = Command::new(env!("CARGO_BIN_EXE_spanfold"));
        self.start(cmd, coord_dir, repo, extra, envs)
    }

    fn start(
        &self,
        mut cmd: Command,
        coord_dir: &Path,
        repo: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Served {
        let coord_dir = coord_dir.to_path_buf();
        let advert = coord_dir.join("server.json");
        let _ = std::fs::remove_file(&advert);
        cmd.arg("serve");
        // Port 0 unless the test names the addresses.
        if !extra.contains(&"--grpc") {
            cmd.args(["--grpc", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--http") {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .current_dir(repo)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        bare_env(&mut cmd, &self.home);
        cmd.envs(envs.iter().copied());
        let mut child = cmd.spawn().expect("spanfold serve starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&advert)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                return Served {
                    child: Some(child),
                    http: v["http"].as_str().unwrap_or_default().to_owned(),
                    grpc: v["grpc"].as_str().unwrap_or_default().to_owned(),
                    coord_dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let out = child.wait_with_output().expect("output");
                panic!(
                    "spanfold serve exited with {status}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spanfold serve did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Served {
    /// SIGTERM, then the exit status and stderr.
    pub fn stop(self) -> (std::process::ExitStatus, String) {
        let (status, _, stderr) = self.stop_output();
        (status, stderr)
    }

    /// SIGTERM, then the exit status, stdout and stderr.
    pub fn stop_output(mut self) -> (std::process::ExitStatus, String, String) {
        let child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().expect("server exits");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// SIGKILL: no grace period, no flush, no goodbye.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the server to exit on its own (a crash), up to `secs`.
    pub fn wait_exit(mut self, secs: u64) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// GET an API path; returns (status code, body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        curl(&self.http, "GET", path, token, None, &[])
    }

    /// A metric's value from /metrics.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics", None);
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .find_map(|v| v.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// One span as an agent's SDK sends it (OTLP/JSON over HTTP, the agent named on the
    /// resource), with string attributes; returns (status code, body).
    pub fn agent_span(&self, agent: &str, name: &str, attrs: &[(&str, &str)]) -> (u16, String) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + u64::from(std::process::id()) * 1_000_000;
        let attributes: Vec<Value> = attrs
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": {"stringValue": v}}))
            .collect();
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "agent.id", "value": {"stringValue": agent}}]},
            "scopeSpans": [{"spans": [{
                "traceId": format!("{n:032x}"),
                "spanId": format!("{n:016x}"),
                "name": name,
                "kind": 1,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000000000001",
                "attributes": attributes,
            }]}],
        }]});
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), body.to_string()).expect("write");
        curl(
            &self.http,
            "POST",
            "/v1/traces",
            None,
            Some(file.path()),
            &["Content-Type: application/json"],
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A request with curl: a real client nobody here wrote. Returns (status, body).
pub fn curl(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Path>,
    headers: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(file) = body {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    cmd.arg(format!("{base}{path}"));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The Python interpreter of the test venv with the OpenTelemetry SDK, created on first use.
pub fn python() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/ensure-venv.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("venv script runs");
    assert!(
        out.status.success(),
        "could not install the OpenTelemetry Python SDK: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Three agents: backend (python/fastapi), frontend (typescript/react), fullstack (both, two at
/// a time, prefers high complexity).
pub fn team(sb: &Sandbox) {
    sb.ok(&[
        "agents",
        "register-agent",
        "backend-1",
        "--langs",
        "python",
        "--frameworks",
        "fastapi",
        "--expertise",
        "backend",
    ]);
    sb.ok(&[
        "agents",
        "register-agent",
        "frontend-1",
        "--langs",
        "typescript",
        "--frameworks",
        "react",
        "--expertise",
        "frontend",
    ]);
    sb.ok(&[
        "agents",
        "register-agent",
        "fullstack-1",
        "--langs",
        "python,typescript",
        "--frameworks",
        "fastapi,react",
        "--expertise",
        "fullstack",
        "--max-concurrent",
        "2",
        "--complexity",
        "high",
    ]);
}

/// Four features with requirements, one with a --req-file.
pub fn features(sb: &Sandbox) {
    let req = sb.tmp.path().join("auth-req.json");
    std::fs::write(
        &req,
        r#"{"requirements": ["JWT token generation", "Password hashing"],
            "acceptance_criteria": ["Users can login and receive JWT token"]}"#,
    )
    .expect("write req file");
    sb.ok(&[
        "agents",
        "add-feature",
        "user-auth",
        "--desc",
        "JWT auth",
        "--priority",
        "high",
        "--effort",
        "5",
        "--langs",
        "python",
        "--frameworks",
        "fastapi",
        "--req-file",
        req.to_str().expect("utf-8 path"),
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "dashboard-ui",
        "--priority",
        "medium",
        "--effort",
        "8",
        "--langs",
        "typescript",
        "--frameworks",
        "react",
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "profile-page",
        "--priority",
        "low",
        "--effort",
        "8",
        "--langs",
        "python,typescript",
        "--expertise",
        "fullstack",
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "search-api",
        "--priority",
        "critical",
        "--effort",
        "3",
        "--langs",
        "python",
    ]);
}

pub mod daemon;

pub mod journal;

pub mod otlp;

/// Adds `feature`, registers `agent`, runs a cycle; the feature's worktree.
pub fn assign(sb: &Sandbox, agent: &str, feature: &str) -> PathBuf {
    sb.ok(&["agents", "add-feature", feature]);
    sb.ok(&["agents", "register-agent", agent]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let placed = cycle["assignments"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["feature_name"] == feature))
        .unwrap_or_else(|| panic!("{feature} not placed: {cycle}"));
    assert_eq!(placed["agent_id"], agent);
    PathBuf::from(placed["worktree_path"].as_str().unwrap_or_default())
}

/// The agent's reports from working to submitted.
pub fn submit(sb: &Sandbox, agent: &str) {
    sb.ok(&["agents", "progress", agent, "--state", "working"]);
    sb.ok(&["agents", "progress", agent, "--state", "validating"]);
    sb.ok(&["agents", "validate", agent, "--result", "passed"]);
}

/// An agent of a status document, by id.
pub fn agent_in<'a>(
    status: &'a spanfold::status::Status,
    id: &str,
) -> &'a spanfold::status::AgentJson {
    status
        .agents
        .iter()
        .find(|a| a.agent_id == id)
        .unwrap_or_else(|| panic!("no agent {id} in the status"))
}

/// A feature of a status document, by name.
pub fn feature_in<'a>(
    status: &'a spanfold::status::Status,
    name: &str,
) -> &'a spanfold::status::FeatureJson {
    status
        .features
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no feature {name} in the status"))
}

/// A feature of a status document, by name.
pub fn feature<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no feature {name}"))
}

/// Starts a coordination cycle, waits until its gate checkout (`PID-NAME` under the gates
/// directory) holds every one of `files` (the merged result being tested), and kills the
/// process there with SIGKILL. Returns the gates directory.
pub fn kill_a_cycle_in_its_gate(sb: &Sandbox, name: &str, files: &[&str]) -> PathBuf {
    let mut cycle = sb
        .command(&["agents", "coordination-cycle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a cycle starts");
    // Named by the process that runs it: another process's cycle leaves a live gate be.
    let gates = sb.repo.with_extension("worktrees").join(".spanfold-gates");
    let gate = gates.join(format!("{}-{name}", cycle.id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let checked_out = || files.iter().all(|f| gate.join(f).exists());
    while !checked_out() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        checked_out(),
        "the gate's checkout of the merged result: {files:?}"
    );
    cycle.kill().expect("SIGKILL");
    let _ = cycle.wait();
    gates
}

/// An agent's command (for `bash -c`) that sends Gemini CLI's events over gRPC to the endpoint
/// the launcher gave Gemini CLI, then Codex's over the standard OTLP/HTTP variables (one LLM
/// request and one tool call each, Codex's failed), then commits `file`.
pub fn telemetry_then_commit(file: &str) -> String {
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/agent_events.py");
    format!(
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=\"$GEMINI_TELEMETRY_OTLP_ENDPOINT\" {py} {events} gemini \
         && {py} {events} codex \
         && echo hi > {file} && git add {file} && git -c user.name=A -c user.email=a@example.com commit -qm {file}",
        py = python().display()
    )
}
