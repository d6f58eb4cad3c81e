//! Helpers for tests that run the built binary the way a user would: in a fresh `git init`
//! repository in a temp dir, with no git identity and no global git configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

pub struct Sandbox {
    pub tmp: TempDir,
    pub repo: PathBuf,
    home: PathBuf,
}

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

    /// Runs spanfold in the repository.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.repo, args)
    }

    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spanfold"));
        cmd.args(args).current_dir(dir);
        bare_env(&mut cmd, &self.home);
        let out = cmd.output().expect("spanfold runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with --json, asserts success, returns `data`.
    pub fn ok(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let run = self.run(&full);
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

    pub fn status(&self) -> Value {
        self.ok(&["agents", "agent-status", "--details"])
    }

    /// `git worktree list --porcelain` as (path, branch, lock reason) for linked worktrees.
    pub fn git_worktrees(&self) -> Vec<(String, String, Option<String>)> {
        let text = self.git(&["worktree", "list", "--porcelain"]);
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
