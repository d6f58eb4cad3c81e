//! What the coordinator's operations can fail with.

use thiserror::Error;

use crate::git;
use crate::registry::Violation;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum CoordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error("{0}")]
    Rejected(Violation),
    #[error("the log has no coordination.init; run `spanfold agents init` first")]
    NotInitialised,
    #[error(
        "{dir} holds a replay kept by `spanfold replay --keep` (of {from}): it is read-only. Reading commands (agent-status, history, diff, export, --at) work on it; acting ones (cycles, reports, gc, serve) are refused, so that an old story never creates worktrees or branches in the repository it names. Run acting commands without --coord-dir, on the live log"
    )]
    KeptReplay { dir: String, from: String },
    /// A person's command the fold could not apply; nothing was written.
    #[error("{0}; nothing was recorded")]
    Refused(String),
}
