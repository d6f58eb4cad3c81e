//! A new worktree made ready before its agent starts, once: the files git does not carry
//! copied in from the main checkout (`spanfold.copyFiles`), then the operator's set-up command
//! (`spanfold.setupCmd`, e.g. `npm ci`) run there with the worktree's port block in
//! `SPANFOLD_PORT`. Done when the agent gets its task (`agents next`, `agents run`); a marker in
//! the worktree's own git directory says it was, and goes with the worktree. A set-up that
//! fails leaves no marker: the feature goes back with the command's output, and the next
//! agent in that worktree tries again.

use std::path::Path;
use std::time::Duration;

use crate::git::{self, GitError};

/// Where a port block starts when `spanfold.portBase` is not set.
pub const DEFAULT_PORT_BASE: u16 = 20_000;
/// Ports per worktree when `spanfold.portBlock` is not set.
pub const DEFAULT_PORT_BLOCK: u16 = 10;
/// How long a set-up command may run when `spanfold.setupTimeout` is not set.
const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// The first port of the block of port slot `slot` (the fold hands out slots): from
/// `spanfold.portBase` and `spanfold.portBlock` of the repository at `repo`.
pub fn port(repo: &Path, slot: u32) -> Result<u16, GitError> {
    let read = |key: &str, default: u16| -> Result<u16, GitError> {
        match git::config_value(repo, key)? {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| GitError::Setup {
                message: format!("git config {key} is {v:?}: give a port number (1-65535)"),
            }),
        }
    };
    let (base, block) = (
        read("spanfold.portBase", DEFAULT_PORT_BASE)?,
        read("spanfold.portBlock", DEFAULT_PORT_BLOCK)?,
    );
    let first = u64::from(base) + u64::from(slot) * u64::from(block.max(1));
    let last = first + u64::from(block.max(1)) - 1;
    match u16::try_from(last) {
        Ok(_) => Ok(first as u16),
        Err(_) => Err(GitError::Setup {
            message: format!(
                "port slot {slot} would end past port 65535 (spanfold.portBase {base}, spanfold.portBlock {block}); lower spanfold.portBase or spanfold.portBlock"
            ),
        }),
    }
}

/// What making the worktree ready came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// It was made ready before.
    Already,
    /// Made ready now: the files copied, and whether a set-up command ran.
    Now { copied: Vec<String>, setup: bool },
}

impl Prepared {
    pub fn describe(&self) -> String {
        match self {
            Prepared::Already => "ready from before".into(),
            Prepared::Now { copied, setup } => format!(
                "{} file(s) copied in{}",
                copied.len(),
                if *setup {
                    ", set-up command passed"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Makes the worktree at `worktree` of the repository whose main checkout is `main` ready,
/// unless it is already; `env` is given to the set-up command. Err: what went wrong, with the
/// command's output's tail — the reason the feature goes back.
pub fn prepare(main: &Path, worktree: &Path, env: &[(String, String)]) -> Result<Prepared, String> {
    let marker = git::private_git_dir(worktree)
        .map_err(|e| e.to_string())?
        .join(git::READY_MARKER);
    if marker.exists() {
        return Ok(Prepared::Already);
    }
    let config = |key: &str| git::config_value(main, key).map_err(|e| e.to_string());
    let copied = match config("spanfold.copyFiles")? {
        Some(list) => git::copy_matching(main, worktree, &git::copy_patterns(&list))
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let setup = config("spanfold.setupCmd")?;
    if let Some(cmd) = &setup {
        let timeout = config("spanfold.setupTimeout")?
            .and_then(|t| t.trim().parse().ok())
            .map_or(DEFAULT_SETUP_TIMEOUT, Duration::from_secs);
        let ran = git::run_command("set-up command", cmd, worktree, env, timeout);
        if !ran.passed {
            return Err(ran.summary);
        }
    }
    std::fs::write(&marker, copied.join("\n"))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(Prepared::Now {
        copied,
        setup: setup.is_some(),
    })
}
