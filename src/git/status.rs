//! What a checkout holds that is not committed, read in-process with gix's status (what `git
//! status --porcelain` shows, without a git process: a merge asks this of the main checkout and of
//! the feature's worktree, and a process costs more than the answer).

use std::collections::BTreeSet;
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
pub(super) fn changed_paths(dir: &Path, scope: Scope) -> Result<Vec<String>, GitError> {
    let repo = open(dir)?;
    changed_in(&repo, scope)
}

pub(super) fn changed_in(repo: &gix::Repository, scope: Scope) -> Result<Vec<String>, GitError> {
    let untracked = match scope {
        Scope::Tracked => UntrackedFiles::None,
        Scope::All => UntrackedFiles::Files,
    };
    let iter = repo
        .status(gix::progress::Discard)
        .map_err(gix_err("reading the checkout's status"))?
        .untracked_files(untracked)
        .index_worktree_options_mut(|o| {
            // The whole checkout, whatever directory the command runs in.
            if let Some(walk) = o.dirwalk_options.as_mut() {
                walk.set_empty_patterns_match_prefix(false);
            }
        })
        .into_iter(Vec::<gix::bstr::BString>::new())
        .map_err(gix_err("reading the checkout's status"))?;
    let mut paths = BTreeSet::new();
    for item in iter {
        let item = item.map_err(gix_err("reading the checkout's status"))?;
        let counts = match &item {
            Item::TreeIndex(_) => true,
            // `None`: a stat refresh git would do silently, or a walk entry that is not untracked.
            Item::IndexWorktree(change) => change.summary().is_some(),
        };
        if counts {
            paths.insert(item.location().to_string());
        }
    }
    Ok(paths.into_iter().collect())
}

/// Uncommitted changes in a checkout (tracked and untracked), as paths.
pub fn uncommitted(dir: &Path) -> Result<Vec<String>, GitError> {
    // Files spanfold copied in (`spanfold.copyFiles`) are not the agent's, while untracked.
    let copied = copy::copied_into(dir);
    let mut paths = changed_paths(dir, Scope::All)?;
    paths.retain(|p| !copied.iter().any(|c| c == p));
    Ok(paths)
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
}
