//! Test-only fault injection, compiled only with the cargo feature `test-hooks` (the test
//! command enables it; release builds and `cargo install` do not, so no environment variable can
//! make an installed spanfold abort): named points between a decision and its effect, where the
//! crash tests make the process die (`SPANFOLD_FAULT=<point>`: abort, as a SIGKILL would) or hold still
//! until they kill it themselves (`SPANFOLD_FAULT=pause:<point>`: the point's name is written to
//! the file `SPANFOLD_FAULT_MARK`, then the thread sleeps), or where something else happens
//! meanwhile (`SPANFOLD_FAULT=run:<point>`: the shell command `SPANFOLD_FAULT_RUN` runs there,
//! once per process, and the process goes on — another client's push in the middle of a
//! merge, say). Unset, a point costs one lookup.
//! One switch is not a crash but a condition hard to make for real: a full disk when the log is
//! opened ([`NO_SPACE_ON_OPEN`]).

/// After the assignment spans are in the log, before any worktree is made.
pub const AFTER_ASSIGNMENT_DECISION: &str = "after-assignment-decision";
/// Inside worktree creation: the branch exists, the worktree does not.
pub const WORKTREE_BRANCH_CREATED: &str = "worktree-branch-created";
/// Inside worktree creation: checked out, not yet locked.
pub const WORKTREE_ADDED: &str = "worktree-added";
/// A merge queue batch passed its gate: every member's merge start is recorded, the base has
/// not moved.
pub const BATCH_STARTED: &str = "batch-started";
/// Inside a merge: the merge commit is written, the base branch has not moved.
pub const MERGE_COMMIT_WRITTEN: &str = "merge-commit-written";
/// Inside a merge: the base branch moved, the main checkout has not followed.
pub const AFTER_MERGE_REF: &str = "after-merge-ref";
/// With a remote named: the merge is computed and about to go to the remote's base.
pub const BEFORE_REMOTE_PUSH: &str = "before-remote-push";
/// With a remote named: the merge is on the remote's base, the base here has not moved.
pub const AFTER_REMOTE_PUSH: &str = "after-remote-push";

/// Not a crash: the log's storage reports a full disk when it is opened (`export`'s fallback).
pub const NO_SPACE_ON_OPEN: &str = "no-space-on-open";

/// Whether the test-only switch names this fault.
#[cfg(feature = "test-hooks")]
pub fn active(name: &str) -> bool {
    std::env::var("SPANFOLD_FAULT").is_ok_and(|spec| spec == name)
}

/// Without the feature no fault is ever active.
#[cfg(not(feature = "test-hooks"))]
pub fn active(_name: &str) -> bool {
    false
}

/// Without the feature a crash point is nothing at all.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(feature = "test-hooks")]
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("SPANFOLD_FAULT") else {
        return;
    };
    if spec == name {
        std::process::abort();
    }
    if spec.strip_prefix("run:") == Some(name) {
        static RAN: std::sync::Once = std::sync::Once::new();
        RAN.call_once(|| {
            if let Ok(cmd) = std::env::var("SPANFOLD_FAULT_RUN") {
                let _ = std::process::Command::new("sh").args(["-c", &cmd]).status();
            }
        });
        return;
    }
    if spec.strip_prefix("pause:") == Some(name) {
        if let Ok(mark) = std::env::var("SPANFOLD_FAULT_MARK") {
            let _ = std::fs::write(mark, name);
        }
        // Bounded, so a test that forgets to kill leaves no process behind for long.
        std::thread::sleep(std::time::Duration::from_secs(120));
        std::process::abort();
    }
}
