//! Git effects through gix: discovering the repository, making feature branches and locked
//! linked worktrees. The only module that knows gix.
//!
//! Every repository is opened with a fallback committer identity, because gix writes reflogs for
//! the refs it creates and a fresh machine has no `user.name` or `user.email`.
//!
//! This file holds what every job shares (errors, opening, the git command line, refs and
//! configuration); `worktree` makes, locks and removes worktrees, `merge` merges a feature into
//! the base branch, `checkout` brings the main checkout along after the branch moved, `status`
//! says what a checkout holds uncommitted, `radar` forecasts conflicts by merging in memory,
//! `gate` runs the operator's commands (merge gate, set-up), `copy` copies `spanfold.copyFiles`
//! into a new worktree, `remote` puts remote agents' branches on the configured remote.

mod batch;
mod checkout;
mod copy;
mod gate;
mod merge;
mod radar;
mod remote;
mod status;
mod worktree;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use batch::{BatchTrial, Step, trial_batch};
pub use copy::{READY_MARKER, copy_matching, copy_patterns};
pub use gate::{
    GateCheckout, GateResult, drop_gate_worktree, drop_gate_worktrees, run_command, run_gate,
    run_gate_on,
};
pub use merge::{
    MergeKind, MergeOutcome, Trial, complete_checkout, forget_move, land, last_move, merge_blocker,
    merge_feature, not_in_branch, submission_problem, trial_merge,
};
pub use radar::{Forecast, ForecastKind, PairForecast, Radar};
pub use remote::{
    BaseSync, Pushed, REMOTE_KEY, Remote, Synced, clone_or_update, fetch_ahead, fetch_branch,
    land_through_remote, merge_through_remote, named_remote, publish_base, push_branch, push_work,
    refresh_branches, remote_feature_branches, remove_remote_branch, required, sync_base,
};
pub use status::uncommitted;

/// A commit's id, as the radar compares tips.
pub type CommitId = gix::ObjectId;
pub use worktree::{
    Removal, WorktreeOutcome, ensure_worktree, orphaned_worktrees, registered_worktrees,
    release_branch, remove_worktree, unlock_worktree,
};

#[derive(Debug, Error)]
pub enum GitError {
    #[error("{path} is not inside a git repository{message}")]
    NotARepository { path: PathBuf, message: String },
    #[error("{path} is a bare repository; spanfold needs a working tree to start worktrees from")]
    Bare { path: PathBuf },
    #[error(
        "branch {branch} has no commits yet; commit something on it before features can start from it"
    )]
    NoCommits { branch: String },
    #[error(
        "{path} exists and is not a worktree of this repository; move it aside or choose another --worktrees-dir"
    )]
    PathTaken { path: PathBuf },
    #[error("{action}: {message}")]
    Gix { action: String, message: String },
    /// A worktree's set-up (the operator's `spanfold.copyFiles`) could not be done.
    #[error("{message}")]
    Setup { message: String },
    /// The remote for remote agents is not configured, or did not answer as asked.
    #[error("{message}")]
    Remote { message: String },
}

fn gix_err(action: impl Into<String>) -> impl FnOnce(gix::Error) -> GitError {
    let action = action.into();
    move |e| GitError::Gix {
        action,
        message: e.to_string(),
    }
}

/// What `discover` finds about the repository around a directory.
#[derive(Debug, Clone)]
pub struct RepoInfo {
    /// The main working tree, even when discovered from a linked worktree.
    pub workdir: PathBuf,
    /// The git directory shared by all worktrees (`.git` of the main checkout).
    pub common_dir: PathBuf,
    /// The branch checked out in the main working tree, if HEAD is on a branch.
    pub current_branch: Option<String>,
}

fn open_options() -> gix::open::Options {
    gix::open::Options::default().config_overrides([
        "gitoxide.committer.nameFallback=spanfold",
        "gitoxide.committer.emailFallback=spanfold@localhost",
        "gitoxide.author.nameFallback=spanfold",
        "gitoxide.author.emailFallback=spanfold@localhost",
    ])
}

fn open(repo: &Path) -> Result<gix::Repository, GitError> {
    gix::open_opts(repo, open_options()).map_err(|e| not_a_repository(repo, &e))
}

/// The library's cause in brackets only when it adds to "not inside a git repository".
fn not_a_repository(path: &Path, e: &dyn std::fmt::Display) -> GitError {
    let text = e.to_string();
    let message = if text.contains("Could not find a git repository") {
        String::new()
    } else {
        format!(" ({text})")
    };
    GitError::NotARepository {
        path: path.to_path_buf(),
        message,
    }
}

/// The git directory of the checkout at `dir`: a linked worktree's own (under the common
/// directory's `worktrees/`), where what concerns that worktree alone can be kept.
pub fn private_git_dir(dir: &Path) -> Result<PathBuf, GitError> {
    Ok(open(dir)?.git_dir().to_path_buf())
}

/// Finds the repository that contains `dir`, from its main checkout or any linked worktree.
pub fn discover(dir: &Path) -> Result<RepoInfo, GitError> {
    let repo = gix::discover(dir).map_err(|e| not_a_repository(dir, &e))?;
    let main = repo
        .main_repo()
        .map_err(gix_err("opening the main repository"))?;
    let workdir = main
        .workdir()
        .ok_or_else(|| GitError::Bare {
            path: main.git_dir().to_path_buf(),
        })?
        .to_path_buf();
    let current_branch = main
        .head_name()
        .map_err(gix_err("reading HEAD"))?
        .map(|name| name.shorten().to_string());
    Ok(RepoInfo {
        workdir: absolute(&workdir),
        common_dir: absolute(main.common_dir()),
        current_branch,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Refuses what git refuses as a branch name, with git's own reason.
pub fn check_branch_name(name: &str) -> Result<(), GitError> {
    gix::validate::reference::name(format!("refs/heads/{name}").as_str().into())
        .map(|_| ())
        .map_err(|e| GitError::Gix {
            action: format!("checking branch name {name:?}"),
            message: e.to_string(),
        })
}

/// Adds `pattern` to the repository's local exclude file (`.git/info/exclude`), once.
pub fn exclude_locally(common_dir: &Path, pattern: &str) -> Result<(), GitError> {
    let file = common_dir.join("info").join("exclude");
    let io = |e: std::io::Error| GitError::Gix {
        action: format!("adding {pattern} to {}", file.display()),
        message: e.to_string(),
    };
    let existing = std::fs::read_to_string(&file).unwrap_or_default();
    if existing.lines().any(|l| l.trim() == pattern) {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(pattern);
    text.push('\n');
    std::fs::write(&file, text).map_err(io)
}

/// Runs `git` with fixed arguments (ids and paths spanfold made, never span data) in `dir`.
pub fn git_cli(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|e| GitError::Gix {
            action: format!("running git {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(GitError::Gix {
            action: format!("git {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first `n` items joined, and how many more there are.
pub fn bounded_list(items: &[String], n: usize) -> String {
    let mut text = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        text.push_str(&format!(" and {} more", items.len() - n));
    }
    text
}

/// When the main checkout's index last changed: a cheap sign that its tracked changes may have
/// been committed or stashed.
pub fn index_modified(repo_dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(repo_dir.join(".git").join("index"))
        .and_then(|m| m.modified())
        .ok()
}

/// A repository configuration value (`git config --get`), if set.
pub fn config_value(repo_dir: &Path, key: &str) -> Result<Option<String>, GitError> {
    let repo = open(repo_dir)?;
    Ok(repo
        .config_snapshot()
        .string(key)
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty()))
}

/// The configuration key naming this repository in its agents' telemetry.
pub const REPO_NAME_KEY: &str = "spanfold.repo";

/// The name agents' telemetry gives this repository (the resource attribute `spanfold.repo`,
/// which a Collector routes by): `git config spanfold.repo`, else its directory's name, with
/// anything but letters, digits and `-_./` made `-` (`routing::repository_name`).
pub fn repository_name(repo_dir: &Path) -> Result<String, GitError> {
    if let Some(name) = config_value(repo_dir, REPO_NAME_KEY)? {
        return Ok(crate::routing::repository_name(&name));
    }
    let top = std::fs::canonicalize(repo_dir).unwrap_or_else(|_| repo_dir.to_path_buf());
    Ok(crate::routing::repository_name(
        &top.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ))
}

/// Sets a value in the repository's own configuration (`.git/config`).
pub fn set_config(repo_dir: &Path, key: &str, value: &str) -> Result<(), GitError> {
    git_cli(repo_dir, &["config", "--local", key, value]).map(|_| ())
}

/// The commit a branch points at, as hex.
pub fn branch_tip(repo_dir: &Path, branch: &str) -> Result<String, GitError> {
    let repo = open(repo_dir)?;
    let id = repo
        .find_reference(format!("refs/heads/{branch}").as_str())
        .map_err(gix_err(format!("looking up {branch}")))?
        .peel_to_id()
        .map_err(gix_err(format!("resolving {branch}")))?
        .detach();
    Ok(id.to_string())
}

/// The commit a full ref name points at.
fn ref_tip(repo: &gix::Repository, name: &str) -> Result<gix::ObjectId, GitError> {
    let mut r = repo
        .find_reference(name)
        .map_err(gix_err(format!("looking up {name}")))?;
    Ok(r.peel_to_id()
        .map_err(gix_err(format!("resolving {name}")))?
        .detach())
}

/// Runs `git` in `dir` for a test, as on a fresh machine (no global or system configuration, an
/// identity given on the command line); its output, trimmed.
#[cfg(test)]
fn test_git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
