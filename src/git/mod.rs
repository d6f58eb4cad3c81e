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
        crate::fault::point(crate::fault::WORKTREE_BRANCH_CREATED);
    }

    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base_dir = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        if absolute(&base_dir) == absolute(path) {
            if !path.exists() {
                // Registered but deleted by hand: drop the stale registration, then make it anew.
                proxy
                    .set_lock(None)
                    .map_err(gix_err(format!("unlocking {}", path.display())))?;
                if let Some(dir) = repo.workdir() {
                    git_cli(dir, &["worktree", "prune"])?;
                }
                break;
            }
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
    crate::fault::point(crate::fault::WORKTREE_ADDED);
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

/// How a feature branch reached the base branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    FastForward,
    MergeCommit,
    /// The base branch already contained every commit of the feature.
    AlreadyMerged,
}

impl MergeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeKind::FastForward => "fast_forward",
            MergeKind::MergeCommit => "merge_commit",
            MergeKind::AlreadyMerged => "already_merged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    Merged {
        kind: MergeKind,
        commit: String,
    },
    /// Nothing changed: these paths conflict.
    Conflicted {
        paths: Vec<String>,
    },
    /// Nothing changed: merging now would be unsafe, for the stated reason.
    Deferred {
        reason: String,
    },
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

/// Merges `branch` into `base` in the object database (fast-forward when possible, otherwise a
/// merge commit), moves `base`, and brings the main checkout along when `base` is checked out
/// there. Nothing is half-done: on a conflict, or when the main checkout has uncommitted changes
/// to tracked files, no ref and no file changes.
pub fn merge_feature(
    repo_dir: &Path,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<MergeOutcome, GitError> {
    let repo = open(repo_dir)?;
    let base_full = format!("refs/heads/{base}");
    let tip = |name: &str| -> Result<gix::ObjectId, GitError> {
        let mut r = repo
            .find_reference(name)
            .map_err(gix_err(format!("looking up {name}")))?;
        Ok(r.peel_to_id()
            .map_err(gix_err(format!("resolving {name}")))?
            .detach())
    };
    let ours = tip(&base_full)?;
    let theirs = tip(&format!("refs/heads/{branch}"))?;

    let main_on_base = repo
        .head_name()
        .map_err(gix_err("reading HEAD"))?
        .is_some_and(|n| n.as_bstr() == base_full.as_str());
    let workdir = repo.workdir().map(Path::to_path_buf);
    if main_on_base && let Some(dir) = &workdir {
        let dirty = git_cli(dir, &["status", "--porcelain", "--untracked-files=no"])?;
        if !dirty.trim().is_empty() {
            return Ok(MergeOutcome::Deferred {
                reason: format!(
                    "the main checkout {} has uncommitted changes to tracked files; commit or stash them and the merge proceeds",
                    dir.display()
                ),
            });
        }
    }

    let merge_base = repo
        .merge_base(ours, theirs)
        .map_err(gix_err("finding the merge base"))?
        .map(|id| id.detach());
    let (kind, new) = if merge_base == Some(theirs) {
        return Ok(MergeOutcome::Merged {
            kind: MergeKind::AlreadyMerged,
            commit: ours.to_string(),
        });
    } else if merge_base == Some(ours) {
        (MergeKind::FastForward, theirs)
    } else {
        let options = repo
            .tree_merge_options()
            .map_err(gix_err("reading merge options"))?;
        let labels = gix::merge::blob::builtin_driver::text::Labels {
            ancestor: None,
            current: Some(base.into()),
            other: Some(branch.into()),
        };
        let mut outcome = repo
            .merge_commits(ours, theirs, labels, options.into())
            .map_err(gix_err(format!("merging {branch} into {base}")))?;
        let how = gix::merge::tree::TreatAsUnresolved::git();
        if outcome.tree_merge.has_unresolved_conflicts(how) {
            let mut paths: Vec<String> = outcome
                .tree_merge
                .conflicts
                .iter()
                .filter(|c| c.is_unresolved(how))
                .map(|c| c.ours.location().to_string())
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(MergeOutcome::Conflicted { paths });
        }
        let tree = outcome
            .tree_merge
            .tree
            .write()
            .map_err(gix_err("writing the merged tree"))?
            .detach();
        let commit = repo
            .new_commit(message, tree, [ours, theirs])
            .map_err(gix_err("writing the merge commit"))?
            .id;
        crate::fault::point(crate::fault::MERGE_COMMIT_WRITTEN);
        (MergeKind::MergeCommit, commit)
    };

    let set = |from: gix::ObjectId, to: gix::ObjectId, why: &str| {
        repo.reference(
            base_full.as_str(),
            to,
            PreviousValue::MustExistAndMatch(gix::refs::Target::Object(from)),
            why,
        )
        .map(|_| ())
        .map_err(gix_err(format!("moving {base}")))
    };
    set(ours, new, &format!("merge {branch}: {}", kind.as_str()))?;
    crate::fault::point(crate::fault::AFTER_MERGE_REF);
    if main_on_base && let Some(dir) = &workdir {
        // gix cannot update an existing checkout; git's two-tree read-tree is the fast-forward
        // of index and files from the old tip to the new one, refusing to overwrite local work.
        let (old, newer) = (ours.to_string(), new.to_string());
        if let Err(e) = git_cli(dir, &["read-tree", "-m", "-u", &old, &newer]) {
            set(
                new,
                ours,
                "spanfold: undo merge, the checkout could not follow",
            )?;
            return Ok(MergeOutcome::Deferred {
                reason: format!(
                    "the main checkout could not be updated ({e}); the merge was undone and will be retried"
                ),
            });
        }
    }
    Ok(MergeOutcome::Merged {
        kind,
        commit: new.to_string(),
    })
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
    let keep_branches = config_value(repo_dir, "spanfold.keepBranches")?
        .is_some_and(|v| matches!(v.trim(), "true" | "yes" | "on" | "1"));
    let repo = open(repo_dir)?;
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
        unlock_worktree(repo_dir, path)?;
        let how = if force {
            gix::worktree::remove::Force::OverrideLock
        } else {
            gix::worktree::remove::Force::Never
        };
        repo.remove_worktree(path, how, gix::progress::Discard)
            .map_err(gix_err(format!("removing worktree {}", path.display())))?;
    }
    if let Some(dir) = repo.workdir() {
        git_cli(dir, &["worktree", "prune"])?;
    }
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

/// Uncommitted changes in a checkout (tracked and untracked), as paths.
pub fn uncommitted(dir: &Path) -> Result<Vec<String>, GitError> {
    Ok(git_cli(dir, &["status", "--porcelain"])?
        .lines()
        .map(|l| l.get(3..).unwrap_or(l).to_owned())
        .collect())
}

/// Why a submitted feature cannot be merged as it stands, for its agent to fix: uncommitted
/// changes in its worktree (tracked, or untracked and not ignored), or a branch with no commit
/// that `base` does not already contain.
pub fn submission_problem(
    repo_dir: &Path,
    worktree: Option<&Path>,
    base: &str,
    branch: &str,
) -> Result<Option<String>, GitError> {
    if let Some(dir) = worktree.filter(|d| d.exists()) {
        let changes = uncommitted(dir)?;
        if !changes.is_empty() {
            return Ok(Some(format!(
                "the worktree {} has uncommitted changes ({}); commit them (git add -A && git commit), then validate again",
                dir.display(),
                bounded_list(&changes, 10)
            )));
        }
    }
    let repo = open(repo_dir)?;
    let tip = |name: &str| -> Result<gix::ObjectId, GitError> {
        Ok(repo
            .find_reference(name)
            .map_err(gix_err(format!("looking up {name}")))?
            .peel_to_id()
            .map_err(gix_err(format!("resolving {name}")))?
            .detach())
    };
    let ours = tip(&format!("refs/heads/{base}"))?;
    let theirs = tip(&format!("refs/heads/{branch}"))?;
    let contained = repo
        .merge_base(ours, theirs)
        .map_err(gix_err("finding the merge base"))?
        .is_some_and(|mb| mb.detach() == theirs);
    Ok(contained.then(|| {
        format!(
            "branch {branch} has no commit that {base} does not already contain: nothing to merge; commit the work in the worktree, then validate again (if {base} already has this work, cancel the feature)"
        )
    }))
}

/// The first `n` items joined, and how many more there are.
pub fn bounded_list(items: &[String], n: usize) -> String {
    let mut text = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        text.push_str(&format!(" and {} more", items.len() - n));
    }
    text
}

/// Why merging into `base` would be unsafe right now, if it would: `base` is checked out in the
/// main checkout and that has uncommitted changes to tracked files.
pub fn merge_blocker(repo_dir: &Path, base: &str) -> Result<Option<String>, GitError> {
    let repo = open(repo_dir)?;
    let on_base = repo
        .head_name()
        .map_err(gix_err("reading HEAD"))?
        .is_some_and(|n| n.as_bstr() == format!("refs/heads/{base}").as_str());
    let Some(dir) = repo.workdir().filter(|_| on_base) else {
        return Ok(None);
    };
    let dirty = git_cli(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    Ok((!dirty.trim().is_empty()).then(|| {
        format!(
            "the main checkout {} has uncommitted changes to tracked files; commit or stash them and the merge proceeds",
            dir.display()
        )
    }))
}

/// When the main checkout's index last changed: a cheap sign that its tracked changes may have
/// been committed or stashed.
pub fn index_modified(repo_dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(repo_dir.join(".git").join("index"))
        .and_then(|m| m.modified())
        .ok()
}

/// Unlocks a linked worktree (its agent lost the feature); its files stay as they are.
pub fn unlock_worktree(repo_dir: &Path, path: &Path) -> Result<(), GitError> {
    let repo = open(repo_dir)?;
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base_dir = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        if absolute(&base_dir) == absolute(path) {
            proxy
                .set_lock(None)
                .map_err(gix_err(format!("unlocking {}", path.display())))?;
        }
    }
    Ok(())
}

/// Absolute paths of the repository's linked worktrees, as git has them registered.
pub fn worktree_paths(repo_dir: &Path) -> Result<Vec<String>, GitError> {
    let repo = open(repo_dir)?;
    let mut out = Vec::new();
    for proxy in repo.worktrees().map_err(gix_err("listing worktrees"))? {
        let base = proxy.base().map_err(gix_err("reading a worktree's path"))?;
        out.push(absolute(&base).to_string_lossy().into_owned());
    }
    Ok(out)
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

/// Sets a value in the repository's own configuration (`.git/config`).
pub fn set_config(repo_dir: &Path, key: &str, value: &str) -> Result<(), GitError> {
    git_cli(repo_dir, &["config", "--local", key, value]).map(|_| ())
}

/// What a merge gate said.
#[derive(Debug, Clone)]
pub struct GateResult {
    pub passed: bool,
    /// For a failure: the command, how it ended, and the tail of its output.
    pub summary: String,
}

/// Runs the operator's merge gate `cmd` with `sh -c` in `dir`, killed after `timeout`.
pub fn run_gate(cmd: &str, dir: &Path, timeout: std::time::Duration) -> GateResult {
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
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return GateResult {
                passed: false,
                summary: format!("the merge gate `{cmd}` could not start: {e}"),
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
                "the merge gate `{cmd}` failed ({s}) after {:.1}s; last lines of its output:\n{tail}",
                started.elapsed().as_secs_f64()
            ),
        },
        None => GateResult {
            passed: false,
            summary: format!(
                "the merge gate `{cmd}` did not finish within {}s and was stopped; last lines of its output:\n{tail}",
                timeout.as_secs()
            ),
        },
    }
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

/// After a crash between moving `base` (from `from`) and updating the main checkout: if the
/// checkout is on `base` and still exactly at `from` (index and files), bring it to the new tip.
/// Returns whether it did.
pub fn complete_checkout(repo_dir: &Path, base: &str, from: &str) -> Result<bool, GitError> {
    let repo = open(repo_dir)?;
    let on_base = repo
        .head_name()
        .map_err(gix_err("reading HEAD"))?
        .is_some_and(|n| n.as_bstr() == format!("refs/heads/{base}").as_str());
    let Some(dir) = repo.workdir().filter(|_| on_base).map(Path::to_path_buf) else {
        return Ok(false);
    };
    // `from` was read back from the log: only an object id may reach git's command line.
    let from = gix::ObjectId::from_hex(from.as_bytes())
        .map_err(|e| GitError::Gix {
            action: format!("reading the pre-merge commit {from:?} from the log"),
            message: e.to_string(),
        })?
        .to_string();
    let from = from.as_str();
    let tip = branch_tip(repo_dir, base)?;
    if tip == from {
        return Ok(false);
    }
    // Index equal to the old tip's tree, and files equal to the index: the checkout is exactly
    // where the interrupted merge left it, so no one's work is in the way.
    let at_from = git_cli(&dir, &["diff-index", "--cached", "--quiet", from]).is_ok()
        && git_cli(&dir, &["diff-files", "--quiet"]).is_ok();
    if !at_from {
        return Ok(false);
    }
    git_cli(&dir, &["read-tree", "-m", "-u", from, &tip])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_a_commit() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .expect("git runs");
            assert!(out.status.success(), "{args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        git(&[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "initial",
        ]);
        dir
    }

    #[test]
    fn a_commit_read_back_from_the_log_must_be_an_object_id() {
        let dir = repo_with_a_commit();
        let out = dir.path().join("written-by-git");
        for from in [
            format!("--output={}", out.display()),
            "HEAD".to_owned(),
            "main~1".to_owned(),
            String::new(),
        ] {
            let err = complete_checkout(dir.path(), "main", &from).expect_err(&from);
            assert!(err.to_string().contains("pre-merge commit"), "{err}");
        }
        assert!(!out.exists(), "nothing reached git as an option");
        let tip = branch_tip(dir.path(), "main").expect("tip");
        assert_eq!(
            complete_checkout(dir.path(), "main", &tip).ok(),
            Some(false)
        );
    }
}
