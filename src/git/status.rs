//! What a checkout holds that is not committed, read in-process with gix's status (what `git
//! status --porcelain` shows, without a git process: a merge asks this of the main checkout and of
//! the feature's worktree, and a process costs more than the answer).

use std::collections::BTreeMap;
use std::path::Path;

use gix::status::{Item, UntrackedFiles};

use super::{GitError, copy, gix_err, open};

/// Which changes count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Staged and unstaged changes to tracked files (`git status --untracked-files=no`).
    Tracked,
    /// Those and untracked files that are not ignored, each file listed.
    All,
}

/// The paths of the checkout at `dir` that differ from its `HEAD`, sorted; each once.
#[cfg(test)]
fn changed_paths(dir: &Path, scope: Scope) -> Result<Vec<String>, GitError> {
    let repo = open(dir)?;
    changed_in(&repo, scope)
}

pub(super) fn changed_in(repo: &gix::Repository, scope: Scope) -> Result<Vec<String>, GitError> {
    Ok(changes_in(repo, scope)?.into_keys().collect())
}

/// Each changed path, and whether it is untracked (rather than a change to a tracked file).
fn changes_in(repo: &gix::Repository, scope: Scope) -> Result<BTreeMap<String, bool>, GitError> {
    let failed = || gix_err("reading the checkout's status");
    let mut status = repo.status(gix::progress::Discard).map_err(failed())?;
    if scope == Scope::All {
        // `status.showUntrackedFiles=no` would leave the walk out, and untracked work unseen:
        // the walk is asked for whatever the configuration says, over the whole checkout.
        let walk = (repo.dirwalk_options().map_err(failed())?).empty_patterns_match_prefix(false);
        status = status
            .index_worktree_options_mut(|o| o.dirwalk_options = Some(walk))
            .untracked_files(UntrackedFiles::Files);
    } else {
        status = status.untracked_files(UntrackedFiles::None);
    }
    let iter = status
        .into_iter(Vec::<gix::bstr::BString>::new())
        .map_err(failed())?;
    let mut paths = BTreeMap::new();
    for item in iter {
        let item = item.map_err(failed())?;
        let untracked = match &item {
            Item::TreeIndex(_) => Some(false),
            // `None`: a stat refresh git would do silently, or a walk entry that is not untracked.
            Item::IndexWorktree(change) => change
                .summary()
                .map(|s| s == gix::status::index_worktree::iter::Summary::Added),
        };
        if let Some(untracked) = untracked {
            let both = paths
                .entry(item.location().to_string())
                .or_insert(untracked);
            *both &= untracked;
        }
    }
    Ok(paths)
}

/// Uncommitted changes in a checkout (tracked and untracked), as paths.
pub fn uncommitted(dir: &Path) -> Result<Vec<String>, GitError> {
    // Files spanfold copied in (`spanfold.copyFiles`) are not the agent's while untracked; once
    // the agent tracks one, its changes are.
    let copied = copy::copied_into(dir);
    let repo = open(dir)?;
    Ok(changes_in(&repo, Scope::All)?
        .into_iter()
        .filter(|(path, untracked)| !(*untracked && copied.iter().any(|c| c == path)))
        .map(|(path, _)| path)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_git as git;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("a.txt"), "a\n").expect("write");
        std::fs::write(dir.path().join("src/b.txt"), "b\n").expect("write");
        std::fs::write(dir.path().join(".gitignore"), "*.log\n").expect("write");
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "init"]);
        dir
    }

    #[test]
    fn a_clean_checkout_has_nothing_and_a_touched_file_is_still_clean() {
        let dir = repo();
        assert!(uncommitted(dir.path()).expect("status").is_empty());
        // Same content, new times: git refreshes the stat and says nothing; so must we.
        std::fs::write(dir.path().join("a.txt"), "a\n").expect("rewrite");
        assert!(uncommitted(dir.path()).expect("status").is_empty());
        std::fs::write(dir.path().join("x.log"), "ignored").expect("write");
        assert!(uncommitted(dir.path()).expect("status").is_empty());
    }

    #[test]
    fn every_kind_of_change_is_listed_once_in_path_order() {
        let dir = repo();
        std::fs::write(dir.path().join("src/b.txt"), "changed\n").expect("write");
        std::fs::write(dir.path().join("staged.txt"), "new\n").expect("write");
        git(dir.path(), &["add", "staged.txt"]);
        std::fs::create_dir(dir.path().join("new")).expect("mkdir");
        std::fs::write(dir.path().join("new/untracked.txt"), "u\n").expect("write");
        std::fs::remove_file(dir.path().join("a.txt")).expect("rm");
        let all = uncommitted(dir.path()).expect("status");
        assert_eq!(
            all,
            ["a.txt", "new/untracked.txt", "src/b.txt", "staged.txt"]
        );
        let tracked = changed_paths(dir.path(), Scope::Tracked).expect("status");
        assert_eq!(tracked, ["a.txt", "src/b.txt", "staged.txt"]);
    }

    #[test]
    fn untracked_work_is_seen_even_where_status_is_told_to_hide_it() {
        let dir = repo();
        git(dir.path(), &["config", "status.showUntrackedFiles", "no"]);
        std::fs::write(dir.path().join("new.rs"), "fn main() {}\n").expect("write");
        assert_eq!(uncommitted(dir.path()).expect("status"), ["new.rs"]);
    }

    #[test]
    fn a_copied_file_is_not_the_agents_until_the_agent_tracks_it() {
        let dir = repo();
        let d = dir.path();
        std::fs::write(d.join(".env"), "TOKEN=1\n").expect("write");
        std::fs::write(d.join(".git").join(copy::READY_MARKER), ".env\n").expect("marker");
        assert!(uncommitted(d).expect("status").is_empty());
        git(d, &["add", ".env"]);
        git(d, &["commit", "-q", "-m", "track it"]);
        std::fs::write(d.join(".env"), "TOKEN=2\n").expect("edit");
        assert_eq!(uncommitted(d).expect("status"), [".env"]);
    }
}
