//! What can go wrong with the log, and what to do about it, in words a person can act on.

use std::path::PathBuf;

use thiserror::Error;

use super::LOCK_WAIT;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "no coordination log at {0}; run `spanfold agents init` in the repository first, or pass --coord-dir"
    )]
    Missing(PathBuf),
    #[error(
        "the coordination log at {path} stayed locked by {holder} for {LOCK_WAIT:?}; if a `spanfold serve` holds it, the CLI talks to it (issue the command again once it is reachable), otherwise wait for that process or stop it"
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "cannot open the coordination log at {path}: {source}; {}",
        open_remedy(&source.to_string())
    )]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the coordination log at {path} is damaged: its storage failed a checksum. spanfold wrote nothing to it{}; move the directory aside and restore a backup",
        copy.as_ref().map(|c| format!(" (a copy as it was found is at {})", c.display())).unwrap_or_default()
    )]
    Damaged {
        path: PathBuf,
        copy: Option<PathBuf>,
    },
    #[error(
        "the coordination log at {path} is damaged at record {key}: {reason}. spanfold wrote nothing to it (when it opened the log, its storage may have cut off what followed a damaged point); move the directory aside and restore a backup (or `spanfold export` what is readable)"
    )]
    Corrupt {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error(
        "cannot open the coordination log at {path}: {source}; free disk space (the storage writes a little whenever the log is opened). A copy to read could not be made in {scratch} either ({copy}): set TMPDIR to a filesystem with room"
    )]
    NoRoomToRead {
        path: PathBuf,
        source: sled::Error,
        scratch: PathBuf,
        copy: std::io::Error,
    },
    #[error("a checkpoint could not be encoded: {0}")]
    Encode(String),
    #[error("writing to the coordination log at {path} failed: {source}")]
    Write { path: PathBuf, source: sled::Error },
    #[error(
        "record {seq} of the coordination log at {path} already exists; another writer is appending to the same log"
    )]
    Conflict { path: PathBuf, seq: u64 },
    #[error(
        "the coordination log at {path} could not be written ({first}); nothing more is accepted until spanfold restarts, so that no span is acknowledged without being stored. {}, then restart",
        remedy(first)
    )]
    Failed { path: PathBuf, first: String },
}

/// What to do when the log does not open: its storage writes as it opens (even to read), so a
/// full disk stops every command, `export` included.
fn open_remedy(error: &str) -> String {
    match remedy(error) {
        "Fix the cause named above" => {
            "check that the directory exists and that you may write to it".to_owned()
        }
        what => format!(
            "{} (the storage writes a little whenever the log is opened, even to read or export it)",
            what.to_lowercase()
        ),
    }
}

/// What to do about a failed write, from what the system said: a full disk is not the only
/// way a write fails.
pub fn remedy(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("too many open files") || e.contains("os error 24") {
        "The process ran out of file descriptors (too many connections or files); raise `ulimit -n`"
    } else if e.contains("no space") || e.contains("quota") || e.contains("file too large") {
        "Free disk space"
    } else if e.contains("permission denied") || e.contains("read-only") {
        "Make the coordination directory writable"
    } else {
        "Fix the cause named above"
    }
}
