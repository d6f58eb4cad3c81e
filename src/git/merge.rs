//! Merging a feature branch into the base branch: in the object database first, then the ref,
//! then the main checkout, so that nothing is half-done; and what must hold before a merge.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::refs::transaction::PreviousValue;

use super::checkout::{self, Update};
use super::status::{Scope, changed_in};
use super::{GitError, bounded_list, branch_tip, git_cli, gix_err, open, ref_tip, uncommitted};

/// How a feature branch reached the base branch: the word its merge span records.
pub use crate::fact::MergeKind;

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
    /// The merge could not be carried out: reading or writing the repository failed, for the
    /// stated reason. (`merge_feature` returns its error; the coordinator records it as this.)
    Failed {
        reason: String,
    },
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
    let merge = Merge::start(repo_dir, base, branch)?;
    if let Some(dir) = &merge.checkout
        && let Some(reason) = tracked_changes(&merge.repo, dir)?
    {
        return Ok(MergeOutcome::Deferred { reason });
    }
    match merge.combine(message)? {
        Combined::Moves { kind, to } => merge.move_base(kind, to),
        Combined::Stays(outcome) => Ok(outcome),
    }
}

/// A feature merged with the base tip in the object database only, for the merge gate to test
/// before any ref moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trial {
    /// `commit` is what the base branch would move to from `base` (the branch's own tip for a
    /// fast-forward, else a merge commit written but not yet referenced).
    Ready {
        base: String,
        commit: String,
        kind: MergeKind,
    },
    /// No commit to test: conflicts, or already merged.
    Stays(MergeOutcome),
}

/// Merges `branch` with the tip of `base` in the object database, moving nothing.
pub fn trial_merge(
    repo_dir: &Path,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<Trial, GitError> {
    let merge = Merge::start(repo_dir, base, branch)?;
    Ok(match merge.combine(message)? {
        Combined::Moves { kind, to } => Trial::Ready {
            base: merge.ours.to_string(),
            commit: to.to_string(),
            kind,
        },
        Combined::Stays(outcome) => Trial::Stays(outcome),
    })
}

/// Moves `base` to `commit`, the merged result the gate passed, only if `base` is still at
/// `from` (else deferred: the queue tests the new tip); the main checkout follows as in
/// [`merge_feature`].
pub fn land(
    repo_dir: &Path,
    base: &str,
    branch: &str,
    (from, commit, kind): (&str, &str, MergeKind),
) -> Result<MergeOutcome, GitError> {
    let merge = Merge::start(repo_dir, base, branch)?;
    let id = |hex: &str| {
        ObjectId::from_hex(hex.as_bytes()).map_err(|e| GitError::Gix {
            action: format!("reading the tested commit {hex:?}"),
            message: e.to_string(),
        })
    };
    let (from, commit) = (id(from)?, id(commit)?);
    if merge.ours != from {
        return Ok(MergeOutcome::Deferred {
            reason: format!(
                "{base} moved to {} while the merged result was tested on {}; it is tested again on the new tip",
                short(merge.ours),
                short(from)
            ),
        });
    }
    if let Some(dir) = &merge.checkout
        && let Some(reason) = tracked_changes(&merge.repo, dir)?
    {
        return Ok(MergeOutcome::Deferred { reason });
    }
    merge.move_base(kind, commit)
}

/// For each of `commits` (object ids), whether `branch` does not contain it; an id that is
/// not one, or not in the repository, counts as not contained.
pub fn not_in_branch(
    repo_dir: &Path,
    branch: &str,
    commits: &[&str],
) -> Result<Vec<bool>, GitError> {
    let repo = open(repo_dir)?;
    let tip = ref_tip(&repo, &format!("refs/heads/{branch}"))?;
    Ok(commits
        .iter()
        .map(|c| {
            let Ok(id) = ObjectId::from_hex(c.as_bytes()) else {
                return true;
            };
            !repo
                .merge_base(id, tip)
                .is_ok_and(|mb| mb.is_some_and(|mb| mb.detach() == id))
        })
        .collect())
}

fn short(id: ObjectId) -> String {
    id.to_string().chars().take(10).collect()
}

/// One merge of `branch` into `base`, as `merge_feature` carries it out.
struct Merge<'a> {
    repo: gix::Repository,
    base: &'a str,
    /// `base` as a full ref name.
    base_full: String,
    branch: &'a str,
    /// The tip of `base`.
    ours: ObjectId,
    /// The tip of `branch`.
    theirs: ObjectId,
    /// The main checkout, when `base` is checked out there: it must follow `base`.
    checkout: Option<PathBuf>,
}

/// Where `base` goes to take in the branch, or why it stays.
enum Combined {
    Moves { kind: MergeKind, to: ObjectId },
    Stays(MergeOutcome),
}

impl<'a> Merge<'a> {
    fn start(repo_dir: &Path, base: &'a str, branch: &'a str) -> Result<Merge<'a>, GitError> {
        let repo = open(repo_dir)?;
        let base_full = format!("refs/heads/{base}");
        let ours = ref_tip(&repo, &base_full)?;
        let theirs = ref_tip(&repo, &format!("refs/heads/{branch}"))?;
        let checkout = checkout_on(&repo, &base_full)?;
        Ok(Merge {
            repo,
            base,
            base_full,
            branch,
            ours,
            theirs,
            checkout,
        })
    }

    /// Fast-forward, merge commit, or nothing to do (already merged, or conflicts).
    fn combine(&self, message: &str) -> Result<Combined, GitError> {
        let merge_base = self
            .repo
            .merge_base(self.ours, self.theirs)
            .map_err(gix_err("finding the merge base"))?
            .map(|id| id.detach());
        if merge_base == Some(self.theirs) {
            Ok(Combined::Stays(MergeOutcome::Merged {
                kind: MergeKind::AlreadyMerged,
                commit: self.ours.to_string(),
            }))
        } else if merge_base == Some(self.ours) {
            Ok(Combined::Moves {
                kind: MergeKind::FastForward,
                to: self.theirs,
            })
        } else {
            self.merge_commit(message)
        }
    }

    /// Merges the two trees and writes the merge commit, unless they conflict.
    fn merge_commit(&self, message: &str) -> Result<Combined, GitError> {
        let names = (self.base, self.branch);
        match commit_merge(&self.repo, (self.ours, self.theirs), names, message)? {
            Err(paths) => Ok(Combined::Stays(MergeOutcome::Conflicted { paths })),
            Ok(commit) => {
                crate::fault::point(crate::fault::MERGE_COMMIT_WRITTEN);
                Ok(Combined::Moves {
                    kind: MergeKind::MergeCommit,
                    to: commit,
                })
            }
        }
    }

    /// Moves `base` to `new` and brings the main checkout along; when the checkout cannot
    /// follow, `base` goes back and the merge is deferred.
    fn move_base(&self, kind: MergeKind, new: ObjectId) -> Result<MergeOutcome, GitError> {
        let (ours, branch) = (self.ours, self.branch);
        let why = format!("{MOVE_PREFIX}{branch}: {}", kind.as_str());
        // Announced while the checkout may lag the ref; best effort: without it only the
        // completion after a crash is lost.
        let moving = self.repo.git_dir().join(MOVING_FILE);
        if self.checkout.is_some() {
            let _ = std::fs::write(&moving, format!("{ours} {new} {}\n", self.base));
        }
        let outcome = self.move_and_follow(kind, new, &why);
        // Failed midway (an undo that failed too), the checkout may lag: kept for recovery.
        if outcome.is_ok() {
            let _ = std::fs::remove_file(&moving);
        }
        outcome
    }

    /// [`Merge::move_base`]'s work: the ref moved, then the checkout after it (or the move
    /// undone when the checkout cannot follow).
    fn move_and_follow(
        &self,
        kind: MergeKind,
        new: ObjectId,
        why: &str,
    ) -> Result<MergeOutcome, GitError> {
        let ours = self.ours;
        self.set_base(ours, new, why)?;
        crate::fault::point(crate::fault::AFTER_MERGE_REF);
        if let Some(dir) = &self.checkout
            && let Err(e) = self.follow(dir, ours, new)
        {
            self.set_base(
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
        Ok(MergeOutcome::Merged {
            kind,
            commit: new.to_string(),
        })
    }

    /// Brings the main checkout at `dir` from `old`'s tree to `new`'s, refusing to overwrite
    /// local work: in-process in the plain case, else by git's two-tree `read-tree`.
    fn follow(&self, dir: &Path, old: ObjectId, new: ObjectId) -> Result<(), GitError> {
        match checkout::update(&self.repo, dir, old, new)? {
            Update::Done => Ok(()),
            Update::NotPlain(why) => {
                tracing::debug!("the main checkout follows the merge through git: {why}");
                let (old, new) = (old.to_string(), new.to_string());
                git_cli(dir, &["read-tree", "-m", "-u", &old, &new]).map(|_| ())
            }
        }
    }

    /// Moves `base` from `from` to `to`, only if it is still at `from`.
    fn set_base(&self, from: ObjectId, to: ObjectId, why: &str) -> Result<(), GitError> {
        self.repo
            .reference(
                self.base_full.as_str(),
                to,
                PreviousValue::MustExistAndMatch(gix::refs::Target::Object(from)),
                why,
            )
            .map(|_| ())
            .map_err(gix_err(format!("moving {}", self.base)))
    }
}

/// Merges `theirs` into `ours` in the object database (`names` label the two sides in conflict
/// markers) and writes the merge commit with `message`; or, when they conflict, the paths that
/// do, sorted.
pub(super) fn commit_merge(
    repo: &gix::Repository,
    (ours, theirs): (ObjectId, ObjectId),
    (ours_name, theirs_name): (&str, &str),
    message: &str,
) -> Result<Result<ObjectId, Vec<String>>, GitError> {
    let options = repo
        .tree_merge_options()
        .map_err(gix_err("reading merge options"))?;
    let labels = gix::merge::blob::builtin_driver::text::Labels {
        ancestor: None,
        current: Some(ours_name.into()),
        other: Some(theirs_name.into()),
    };
    let mut outcome = repo
        .merge_commits(ours, theirs, labels, options.into())
        .map_err(gix_err(format!("merging {theirs_name} into {ours_name}")))?;
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
        return Ok(Err(paths));
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
    Ok(Ok(commit))
}

/// The main checkout's directory when `base_full` is checked out there: the checkout a move of
/// that branch must bring along.
fn checkout_on(repo: &gix::Repository, base_full: &str) -> Result<Option<PathBuf>, GitError> {
    let on_base = repo
        .head_name()
        .map_err(gix_err("reading HEAD"))?
        .is_some_and(|n| n.as_bstr() == base_full);
    Ok(repo.workdir().filter(|_| on_base).map(Path::to_path_buf))
}

/// Why the main checkout at `dir` blocks a merge, if it does: uncommitted changes to tracked
/// files.
fn tracked_changes(repo: &gix::Repository, dir: &Path) -> Result<Option<String>, GitError> {
    let dirty = changed_in(repo, Scope::Tracked)?;
    Ok((!dirty.is_empty()).then(|| {
        format!(
            "the main checkout {} has uncommitted changes to tracked files; commit or stash them and the merge proceeds",
            dir.display()
        )
    }))
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
    let ours = ref_tip(&repo, &format!("refs/heads/{base}"))?;
    let theirs = ref_tip(&repo, &format!("refs/heads/{branch}"))?;
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

/// Why merging into `base` would be unsafe right now, if it would: `base` is checked out in the
/// main checkout and that has uncommitted changes to tracked files.
pub fn merge_blocker(repo_dir: &Path, base: &str) -> Result<Option<String>, GitError> {
    let repo = open(repo_dir)?;
    match checkout_on(&repo, &format!("refs/heads/{base}"))? {
        Some(dir) => tracked_changes(&repo, &dir),
        None => Ok(None),
    }
}

/// How the reflog line of spanfold's every move of the base branch begins, so that a person
/// reading the reflog sees which moves were spanfold's.
const MOVE_PREFIX: &str = "spanfold: merge ";

/// The file (in the main checkout's own git directory) a move of the base branch is announced
/// in, as `FROM TO BASE`, from before the ref moves until the checkout has followed: a crash in
/// between leaves it for recovery.
const MOVING_FILE: &str = "spanfold-moving";

/// Where a move of `base` that a crash cut off moved it from, while `base` is still where that
/// move put it — a merge, or the base brought in step with a remote's, which the log has no
/// record of — for [`complete_checkout`]; [`forget_move`] once that is done. An announcement of
/// a move never made (the crash came first) is dropped.
pub fn last_move(repo_dir: &Path, base: &str) -> Result<Option<String>, GitError> {
    let repo = open(repo_dir)?;
    let file = repo.git_dir().join(MOVING_FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(None);
    };
    let mut words = text.split_whitespace();
    let (from, to, of) = (words.next(), words.next(), words.next());
    let id = |hex: Option<&str>| hex.and_then(|h| ObjectId::from_hex(h.as_bytes()).ok());
    let (Some(from), Some(to)) = (id(from), id(to)) else {
        let _ = std::fs::remove_file(&file);
        return Ok(None);
    };
    if of != Some(base) {
        return Ok(None);
    }
    if ref_tip(&repo, &format!("refs/heads/{base}"))? != to {
        let _ = std::fs::remove_file(&file);
        return Ok(None);
    }
    Ok(Some(from.to_string()))
}

/// Drops the announcement of a move of the base once recovery has dealt with it.
pub fn forget_move(repo_dir: &Path) -> Result<(), GitError> {
    let file = open(repo_dir)?.git_dir().join(MOVING_FILE);
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(GitError::Setup {
            message: format!("removing {}: {e}", file.display()),
        }),
        _ => Ok(()),
    }
}

/// After a crash between moving `base` (from `from`) and updating the main checkout: if the
/// checkout is on `base` and still exactly at `from` (index and files), bring it to the new tip.
/// Returns whether it did.
pub fn complete_checkout(repo_dir: &Path, base: &str, from: &str) -> Result<bool, GitError> {
    let repo = open(repo_dir)?;
    let Some(dir) = checkout_on(&repo, &format!("refs/heads/{base}"))? else {
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
        let git = |args: &[&str]| crate::git::test_git(dir.path(), args);
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "initial"]);
        dir
    }

    #[test]
    fn only_an_announced_move_of_this_base_still_at_its_tip_is_completed() {
        let dir = repo_with_a_commit();
        let git = |args: &[&str]| crate::git::test_git(dir.path(), args);
        let first = git(&["rev-parse", "HEAD"]).trim().to_owned();
        git(&["commit", "-q", "--allow-empty", "-m", "second"]);
        let second = git(&["rev-parse", "HEAD"]).trim().to_owned();
        assert_eq!(
            last_move(dir.path(), "main").expect("read"),
            None,
            "none announced"
        );
        let file = dir.path().join(".git").join(MOVING_FILE);
        std::fs::write(&file, format!("{first} {second} main\n")).expect("announce");
        assert_eq!(
            last_move(dir.path(), "other").expect("read"),
            None,
            "another base's"
        );
        assert_eq!(
            last_move(dir.path(), "main").expect("read"),
            Some(first.clone())
        );
        assert!(file.exists(), "kept until recovery has dealt with it");
        forget_move(dir.path()).expect("forgotten");
        assert_eq!(last_move(dir.path(), "main").expect("read"), None);
        // A move announced and never made (the crash came before the ref moved).
        std::fs::write(&file, format!("{second} {first} main\n")).expect("announce");
        assert_eq!(last_move(dir.path(), "main").expect("read"), None);
        assert!(!file.exists());
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
