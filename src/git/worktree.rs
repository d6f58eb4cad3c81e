//! Linked worktrees: making one (and its branch) for a feature, locking, unlocking, listing and
//! removing them, never losing uncommitted work or unmerged commits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::refs::transaction::PreviousValue;

use super::{GitError, absolute, check_branch_name, git_cli, gix_err, open, uncommitted};

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
    ensure_branch(&repo, base, branch, &full)?;
    let reused = relock_registered(&repo, path, lock_reason)?;
    if reused {
        reattach(&repo, path, branch, base)?;
    } else {
        add_locked_worktree(&repo, &full, branch, path, lock_reason)?;
    }
    Ok(WorktreeOutcome {
        path: absolute(path),
        branch: branch.to_owned(),
        reused,
    })
}

/// Creates `branch` (full name `full`) at the tip of `base`, unless it exists.
pub(super) fn ensure_branch(
    repo: &gix::Repository,
    base: &str,
    branch: &str,
    full: &str,
) -> Result<(), GitError> {
    let existing_branch = repo
        .try_find_reference(full)
        .map_err(gix_err(format!("looking up branch {branch}")))?;
    if existing_branch.is_some() {
        return Ok(());
    }
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
        full,
        tip,
        PreviousValue::MustNotExist,
        format!("branch: created by spanfold from {base}"),
    )
    .map_err(gix_err(format!("creating branch {branch}")))?;
    crate::fault::point(crate::fault::WORKTREE_BRANCH_CREATED);
    Ok(())
}

/// Locks the worktree registered at `path` again, if there is one; whether there was. A
/// registration whose directory is gone is dropped instead, so that the worktree can be made anew.
fn relock_registered(
    repo: &gix::Repository,
    path: &Path,
    lock_reason: &str,
) -> Result<bool, GitError> {
    // A path that does not exist can only be registered as written (resolving a path needs
    // it to exist): each registration is then compared as it is, without resolving every one.
    let exists = path.exists();
    let target = absolute(path);
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base_dir = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        let same = if exists {
            absolute(&base_dir) == target
        } else {
            base_dir == path
        };
        if !same {
            continue;
        }
        if !exists {
            // Registered but deleted by hand: drop the stale registration, then make it anew.
            proxy
                .set_lock(None)
                .map_err(gix_err(format!("unlocking {}", path.display())))?;
            prune(repo)?;
            return Ok(false);
        }
        proxy
            .set_lock(Some(lock_reason.into()))
            .map_err(gix_err(format!("locking worktree {}", path.display())))?;
        return Ok(true);
    }
    Ok(false)
}

/// Checks out `full` (the branch `branch`) in a new linked worktree at `path`, locked with
/// `lock_reason`. `path` must be free: absent, or an empty directory.
fn add_locked_worktree(
    repo: &gix::Repository,
    full: &str,
    branch: &str,
    path: &Path,
    lock_reason: &str,
) -> Result<(), GitError> {
    make_room(path)?;
    let name: gix::refs::FullName =
        full.try_into()
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
    crate::fault::point(crate::fault::WORKTREE_ADDED);
    let worktree = added.worktree().ok_or_else(|| GitError::Gix {
        action: format!("opening worktree {}", path.display()),
        message: "it has no working tree".into(),
    })?;
    worktree
        .set_lock(Some(lock_reason.into()))
        .map_err(gix_err(format!("locking worktree {}", path.display())))
}

/// Refuses a `path` that holds anything, and makes its parent directory.
fn make_room(path: &Path) -> Result<(), GitError> {
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
    Ok(())
}

/// What happened to a merged feature's worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Kept, because removing it would lose the stated work.
    Kept {
        reason: String,
    },
}

/// Unlocks and removes a linked worktree — only if it holds no uncommitted work, unless `force`
/// — prunes stale admin entries, and deletes `branch` if (and only if) `base` contains it, so
/// unmerged commits are never lost.
pub fn remove_worktree(
    repo_dir: &Path,
    path: &Path,
    branch: &str,
    base: &str,
    force: bool,
) -> Result<Removal, GitError> {
    let repo = open(repo_dir)?;
    let keep_branches = keep_branches(&repo);
    if path.exists() {
        let changes = uncommitted(path)?;
        if !changes.is_empty() && !force {
            return Ok(Removal::Kept {
                reason: format!(
                    "it has uncommitted changes ({}); commit or discard them, or `spanfold gc --force`",
                    changes
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if let Some(head) = detached_work(&repo, path, &[branch, base])?
            && !force
        {
            return Ok(Removal::Kept {
                reason: format!(
                    "it has commits on a detached HEAD ({head}) that neither {branch} nor {base} has; put them on a branch, or `spanfold gc --force`"
                ),
            });
        }
        // Unless forced, gix checks once more as it removes (changes, and populated submodules,
        // which the check above does not look into).
        let how = if force {
            gix::worktree::remove::Force::OverrideLock
        } else {
            unlock_in(&repo, path)?;
            gix::worktree::remove::Force::Never
        };
        repo.remove_worktree(path, how, gix::progress::Discard)
            .map_err(gix_err(format!("removing worktree {}", path.display())))?;
    }
    prune(&repo)?;
    let full = format!("refs/heads/{branch}");
    if let Some(mut r) = repo
        .try_find_reference(full.as_str())
        .map_err(gix_err(format!("looking up {branch}")))?
    {
        let tip = r
            .peel_to_id()
            .map_err(gix_err(format!("resolving {branch}")))?
            .detach();
        let base_tip = repo
            .find_reference(format!("refs/heads/{base}").as_str())
            .map_err(gix_err(format!("looking up {base}")))?
            .peel_to_id()
            .map_err(gix_err(format!("resolving {base}")))?
            .detach();
        let merged = repo
            .merge_base(base_tip, tip)
            .map_err(gix_err("finding the merge base"))?
            .is_some_and(|mb| mb.detach() == tip);
        if merged && !keep_branches {
            r.delete()
                .map_err(gix_err(format!("deleting branch {branch}")))?;
        }
    }
    Ok(Removal::Removed)
}

/// `spanfold.keepBranches`: merged feature branches are kept, here and on the remote.
pub(super) fn keep_branches(repo: &gix::Repository) -> bool {
    (repo.config_snapshot().string("spanfold.keepBranches"))
        .is_some_and(|v| matches!(v.to_string().trim(), "true" | "yes" | "on" | "1"))
}

/// Drops the registrations of linked worktrees whose directories are gone and that are not
/// locked: what `git worktree prune` does, without a git process.
fn prune(repo: &gix::Repository) -> Result<(), GitError> {
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        if proxy.is_prunable() {
            let dir = proxy.git_dir();
            std::fs::remove_dir_all(dir).map_err(|e| GitError::Gix {
                action: format!("pruning the registration {}", dir.display()),
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Unlocks a linked worktree (its agent lost the feature); its files stay as they are.
pub fn unlock_worktree(repo_dir: &Path, path: &Path) -> Result<(), GitError> {
    unlock_in(&open(repo_dir)?, path)
}

fn unlock_in(repo: &gix::Repository, path: &Path) -> Result<(), GitError> {
    let proxies = repo.worktrees().map_err(gix_err("listing worktrees"))?;
    let mut bases = Vec::with_capacity(proxies.len());
    for proxy in proxies {
        bases.push((
            proxy.base().map_err(gix_err("reading a worktree's path"))?,
            proxy,
        ));
    }
    // Registered as spanfold made it, most likely; canonical paths (one per worktree) only when
    // not, as when the directory sits behind a symlink.
    let exact = bases.iter().any(|(base, _)| base == path);
    let target = absolute(path);
    for (base, proxy) in &bases {
        let same = if exact {
            base == path
        } else {
            absolute(base) == target
        };
        if same {
            proxy
                .set_lock(None)
                .map_err(gix_err(format!("unlocking {}", path.display())))?;
        }
    }
    Ok(())
}

/// Which of `paths` are linked worktrees git has registered and that exist: compared as
/// written first, and canonically only for the rest (the configured directory may sit behind a
/// symlink), so a cycle does not resolve every worktree's path.
pub fn registered_worktrees(repo_dir: &Path, paths: &[&str]) -> Result<BTreeSet<String>, GitError> {
    let repo = open(repo_dir)?;
    let mut bases = BTreeSet::new();
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        bases.insert(proxy.base().map_err(gix_err("reading a worktree's path"))?);
    }
    let mut canonical: Option<BTreeSet<PathBuf>> = None;
    let mut out = BTreeSet::new();
    for p in paths {
        let path = Path::new(p);
        let found = if bases.contains(path) {
            path.exists()
        } else {
            let known =
                canonical.get_or_insert_with(|| bases.iter().map(|b| absolute(b)).collect());
            std::fs::canonicalize(path).is_ok_and(|real| known.contains(&real))
        };
        if found {
            out.insert((*p).to_owned());
        }
    }
    Ok(out)
}

/// Lets go of `branch` in the linked worktree at `place`, if that worktree has it checked out:
/// its HEAD is detached at the same commit, so its files and any uncommitted work stay as they
/// are, and the branch can be moved (fetched from a remote agent's pushes) without git refusing
/// to touch a branch checked out elsewhere. Returns whether it did.
pub fn release_branch(repo_dir: &Path, place: &Path, branch: &str) -> Result<bool, GitError> {
    check_branch_name(branch)?;
    let Some(place_str) = place.to_str() else {
        return Ok(false);
    };
    if !registered_worktrees(repo_dir, &[place_str])?.contains(place_str) {
        return Ok(false);
    }
    let head = open(place)?
        .head_name()
        .map_err(gix_err("reading a worktree's HEAD"))?;
    if head.is_none_or(|name| name.as_bstr() != format!("refs/heads/{branch}").as_str()) {
        return Ok(false);
    }
    // HEAD alone, at the same commit: no checkout runs (no hooks, no index check).
    let tip = super::branch_tip(repo_dir, branch)?;
    let why = format!("spanfold: {branch} went to a remote agent");
    git_cli(
        place,
        &["update-ref", "--no-deref", "-m", &why, "HEAD", &tip],
    )?;
    Ok(true)
}

/// The detached HEAD of the worktree at `path` (abbreviated) when none of `branches` contains
/// it: commits that would be lost with the worktree.
fn detached_work(
    repo: &gix::Repository,
    path: &Path,
    branches: &[&str],
) -> Result<Option<String>, GitError> {
    let here = open(path)?;
    if here
        .head_name()
        .map_err(gix_err("reading a worktree's HEAD"))?
        .is_some()
    {
        return Ok(None);
    }
    let Ok(head) = here.head_id().map(|id| id.detach()) else {
        return Ok(None);
    };
    for branch in branches {
        let Ok(tip) = super::ref_tip(repo, &format!("refs/heads/{branch}")) else {
            continue;
        };
        let contains = head == tip
            || repo
                .merge_base(head, tip)
                .is_ok_and(|mb| mb.is_some_and(|mb| mb.detach() == head));
        if contains {
            return Ok(None);
        }
    }
    Ok(Some(head.to_hex_with_len(10).to_string()))
}

/// A reused worktree whose HEAD [`release_branch`] detached (its feature went to a remote
/// agent, and is back here) gets `branch` again, moved to the branch's tip if the branch went
/// on from where it was detached, its uncommitted work carried along. Commits made on the
/// detached HEAD that the branch lacks are not left behind silently: the worktree is refused,
/// with what to do.
fn reattach(repo: &gix::Repository, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
    let here = open(path)?;
    if here
        .head_name()
        .map_err(gix_err("reading a worktree's HEAD"))?
        .is_some()
    {
        return Ok(());
    }
    if let Some(head) = detached_work(repo, path, &[branch, base])? {
        return Err(GitError::Setup {
            message: format!(
                "the worktree {:?} has commits on a detached HEAD ({head}) that {branch} lacks; keep them on the branch (git -C {:?} merge {branch}, then git -C {:?} branch -f {branch} HEAD) or drop them, then run the cycle again",
                path.display().to_string(),
                path.display().to_string(),
                path.display().to_string()
            ),
        });
    }
    // `switch`, not `checkout`: it refuses in the middle of a rebase or a merge someone began.
    git_cli(path, &["switch", "--quiet", branch]).map(|_| ())
}

/// Absolute paths of the repository's linked worktrees, as git has them registered.
fn worktree_paths(repo_dir: &Path) -> Result<Vec<String>, GitError> {
    let repo = open(repo_dir)?;
    let mut out = Vec::new();
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        out.push(absolute(&base).to_string_lossy().into_owned());
    }
    Ok(out)
}

/// Linked worktrees git has that are none of `known` (paths from the log): made by hand or by
/// another tool. Only listed, never touched; git knows only the present, so this is asked of
/// the repository as it is now.
pub fn orphaned_worktrees(repo_dir: &Path, known: &[&str]) -> Result<Vec<String>, GitError> {
    let known: Vec<String> = known
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    Ok(worktree_paths(repo_dir)?
        .into_iter()
        .filter(|p| !known.contains(p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_git as git;

    #[test]
    fn commits_on_a_released_worktrees_detached_head_are_neither_reattached_over_nor_removed() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let place = tmp.path().join("trees").join("f");
        let branch = "spanfold/f";
        ensure_worktree(&repo, "main", branch, &place, "a1").expect("made");
        assert!(release_branch(&repo, &place, branch).expect("released"));
        git(
            &place,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "on the detached HEAD",
            ],
        );

        let refused = ensure_worktree(&repo, "main", branch, &place, "a2").expect_err("refused");
        assert!(
            refused.to_string().contains("commits on a detached HEAD"),
            "{refused}"
        );
        match remove_worktree(&repo, &place, branch, "main", false).expect("answered") {
            Removal::Kept { reason } => assert!(reason.contains("detached HEAD"), "{reason}"),
            other => panic!("removed: {other:?}"),
        }
        assert!(place.exists());
    }

    #[test]
    fn a_worktree_is_registered_by_its_path_as_written_or_through_a_symlink_and_only_while_it_exists()
     {
        let tmp = tempfile::tempdir().expect("temp dir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        std::os::unix::fs::symlink(&real, tmp.path().join("via")).expect("symlink");
        for name in ["a", "b", "gone"] {
            let path = real.join(name);
            git(
                &repo,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    name,
                    path.to_str().expect("utf-8"),
                ],
            );
        }
        std::fs::remove_dir_all(real.join("gone")).expect("rm");
        let (a, b_via, gone, never) = (
            real.join("a").to_string_lossy().into_owned(),
            tmp.path().join("via/b").to_string_lossy().into_owned(),
            real.join("gone").to_string_lossy().into_owned(),
            real.join("never").to_string_lossy().into_owned(),
        );
        let found = registered_worktrees(&repo, &[&a, &b_via, &gone, &never]).expect("lists");
        assert_eq!(found, BTreeSet::from([a, b_via]));
    }
}
