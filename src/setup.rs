//! Setting a repository up for coordination: its base branch, where worktrees go, and keeping a
//! coordination directory inside the checkout out of `git status`. The rules `agents init`
//! applies, here rather than in the command line so that any front end applies the same ones.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::git::{self, GitError, RepoInfo};

#[derive(Debug, Error)]
pub enum SetupError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("HEAD in {0} is detached; pass --base BRANCH")]
    Detached(PathBuf),
    #[error("resolving --worktrees-dir: {0}")]
    Resolve(std::io::Error),
    #[error(
        "--worktrees-dir {dir} is inside the main checkout {checkout}; worktrees there would show up in its `git status`. Choose a directory outside it"
    )]
    WorktreesInside { dir: PathBuf, checkout: PathBuf },
}

/// `requested` (`--base`), checked, or the branch checked out now.
pub fn base_branch(requested: Option<&str>, info: &RepoInfo) -> Result<String, SetupError> {
    match requested {
        Some(b) => {
            git::check_branch_name(b)?;
            Ok(b.to_owned())
        }
        None => info
            .current_branch
            .clone()
            .ok_or_else(|| SetupError::Detached(info.workdir.clone())),
    }
}

/// `requested` (`--worktrees-dir`), or REPO.worktrees beside the repository; never inside the
/// main checkout.
pub fn worktrees_dir(requested: Option<&Path>, info: &RepoInfo) -> Result<PathBuf, SetupError> {
    let dir = match requested {
        Some(d) => std::path::absolute(d).map_err(SetupError::Resolve)?,
        None => {
            let name = info
                .workdir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "repo".into());
            info.workdir
                .parent()
                .unwrap_or(&info.workdir)
                .join(format!("{name}.worktrees"))
        }
    };
    if dir.starts_with(&info.workdir) {
        return Err(SetupError::WorktreesInside {
            dir,
            checkout: info.workdir.clone(),
        });
    }
    Ok(dir)
}

/// A coordination directory inside the checkout (the seed's `--coord-dir ./coordination`)
/// must not show up in `git status`: it is excluded locally, as git's own files are. Returns
/// the pattern added, if one was.
pub fn exclude_coord_dir(coord_dir: &Path, info: &RepoInfo) -> Result<Option<String>, SetupError> {
    let coord_abs = std::fs::canonicalize(coord_dir).unwrap_or(coord_dir.to_path_buf());
    if let Ok(inside) = coord_abs.strip_prefix(&info.workdir)
        && !coord_abs.starts_with(&info.common_dir)
    {
        let pattern = format!("/{}/", inside.display());
        git::exclude_locally(&info.common_dir, &pattern)?;
        return Ok(Some(pattern));
    }
    Ok(None)
}
