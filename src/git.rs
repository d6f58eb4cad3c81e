//! Git effects through gix: discovering the repository, making feature branches and locked
//! linked worktrees. The only module that knows gix.
//!
//! Every repository is opened with a fallback committer identity, because gix writes reflogs for
//! the refs it creates and a fresh machine has no `user.name` or `user.email`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::refs::transaction::PreviousValue;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitError {
    #[error(
        "{path} is not inside a git repository ({message}); run this in a repository or pass --repo"
    )]
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
    gix::open_opts(repo, open_options()).map_err(|e| GitError::NotARepository {
        path: repo.to_path_buf(),
        message: e.to_string(),
    })
}

/// Finds the repository that contains `dir`, from its main checkout or any linked worktree.
pub fn discover(dir: &Path) -> Result<RepoInfo, GitError> {
    let repo = gix::discover(dir).map_err(|e| GitError::NotARepository {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
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

/// What `ensure_worktree` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeOutcome {
    pub path: PathBuf,
    pub branch: String,
    /// The worktree existed already (its feature was placed before) and was locked again.
    pub reused: bool,
}

/// Makes sure `branch` exists (created from the tip of `base`) and is checked out in a linked
/// worktree at `path`, locked with `lock_reason`. An existing branch and worktree are reused, so
/// work already done for a feature is never thrown away.
pub fn ensure_worktree(
    repo_dir: &Path,
    base: &str,
    branch: &str,
    path: &Path,
    lock_reason: &str,
) -> Result<WorktreeOutcome, GitError> {
    let repo = open(repo_dir)?;
    let full = format!("refs/heads/{branch}");
    let existing_branch = repo
        .try_find_reference(full.as_str())
        .map_err(gix_err(format!("looking up branch {branch}")))?;
    if existing_branch.is_none() {
        let mut base_ref = repo
            .try_find_reference(format!("refs/heads/{base}").as_str())
            .map_err(gix_err(format!("looking up branch {base}")))?
            .ok_or_else(|| GitError::NoCommits {
                branch: base.to_owned(),
            })?;
        let tip = base_ref
            .peel_to_id()
            .map_err(gix_err(format!("resolving branch {base}")))?
            .detach();
        repo.reference(
            full.as_str(),
            tip,
            PreviousValue::MustNotExist,
            format!("branch: created by spanfold from {base}"),
        )
        .map_err(gix_err(format!("creating branch {branch}")))?;
    }

    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base_dir = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        if absolute(&base_dir) == absolute(path) {
            proxy
                .set_lock(Some(lock_reason.into()))
                .map_err(gix_err(format!("locking worktree {}", path.display())))?;
            return Ok(WorktreeOutcome {
                path: absolute(path),
                branch: branch.to_owned(),
                reused: true,
            });
        }
    }
    if path.exists()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(GitError::PathTaken {
            path: path.to_path_buf(),
        });
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GitError::Gix {
            action: format!("creating {}", parent.display()),
            message: e.to_string(),
        })?;
    }
    let name: gix::refs::FullName =
        full.as_str()
            .try_into()
            .map_err(|e: gix::validate::reference::name::Error| GitError::Gix {
                action: format!("naming branch {branch}"),
                message: e.to_string(),
            })?;
    let interrupt = AtomicBool::new(false);
    let (added, _checkout) = repo
        .add_worktree(
            path,
            gix::worktree::add::Head::Attached(name),
            gix::progress::Discard,
            &interrupt,
        )
        .map_err(gix_err(format!("adding worktree {}", path.display())))?;
    let worktree = added.worktree().ok_or_else(|| GitError::Gix {
        action: format!("opening worktree {}", path.display()),
        message: "it has no working tree".into(),
    })?;
    worktree
        .set_lock(Some(lock_reason.into()))
        .map_err(gix_err(format!("locking worktree {}", path.display())))?;
    Ok(WorktreeOutcome {
        path: absolute(path),
        branch: branch.to_owned(),
        reused: false,
    })
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
