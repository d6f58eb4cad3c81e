//! The log: an append-only sled tree of batches. The only module that knows sled.
//!
//! Persistence contract (also in ARCHITECTURE.md):
//! - The unit of storage is a batch (one export or one command), keyed by the sequence number
//!   of its first span, big-endian so keys sort in log order. Per-span keys would cap ingest near
//!   100k spans/s on this hardware (sled 0.34, 2 cores; one record per batch went past 330k).
//! - A record is written once with compare-and-swap against "absent" and never rewritten.
//! - `append` returns only after `flush`: on Linux sled syncs its pages with
//!   `sync_file_range`, which survives a killed process but not necessarily a power cut.
//! - A span whose (trace id, span id) is among the last [`crate::dedup::DEFAULT_WINDOW`] spans
//!   of the log is dropped before the write, so retried exports are applied once. The window
//!   is fixed memory, read back from the log's end after a restart; a span repeated after more
//!   newer spans than that is stored again and folded like any other span.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::dedup::Window;
use crate::model::{Batch, Resource, ResourceSpans, Scope, UnixNanos};

/// First byte of every record value; a new layout gets a new number and a reader for the old.
/// 1: postcard of (receive time, resource spans). 2: the same, lz4-compressed.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
/// Most spans in one record.
const RECORD_SPANS: usize = 1024;
const LOG_TREE: &str = "log";
/// Derived: views at chosen seqs (key: seq, value: format, reducer version, lz4 of postcard).
const CHECKPOINT_TREE: &str = "checkpoints";
/// Derived: seq → (receive time, reducer version) of each checkpoint, small enough to walk when
/// a time must become a seq.
const CHECKPOINT_INDEX_TREE: &str = "checkpoint_index";
const CHECKPOINT_FORMAT: u8 = 1;
/// How long `open` waits for another process (a CLI call, a server) to release the log.
/// The key in sled's default tree that marks a log written by `replay --keep`.
const KEPT_REPLAY_KEY: &[u8] = b"kept_replay";
const LOCK_WAIT: Duration = Duration::from_secs(20);
/// After this long waiting for the lock, say who holds it.
const LOCK_NOTICE: Duration = Duration::from_secs(1);

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

/// Sled keeps snapshots (`snap.*`) of its page table, derived from its log and rebuilt from it
/// when none is there. When the storage fails a checksum because its newest snapshot does (and
/// only then: without a snapshot, sled would take a damaged log as ending at the damage), the
/// directory is copied aside as it was found (`log.damaged-N` next to it) and the snapshots
/// removed, once; returns the copy, or None when there is nothing (more) to try.
fn rebuild_snapshot(path: &Path, rebuilt: &mut Option<PathBuf>) -> Option<PathBuf> {
    if rebuilt.is_some() {
        return None;
    }
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap."))
        })
        .collect();
    snapshots.sort();
    if snapshot_is_sound(snapshots.last()?) {
        return None;
    }
    let parent = path.parent()?;
    let copy = (1..)
        .map(|n| parent.join(format!("log.damaged-{n}")))
        .find(|c| !c.exists())?;
    copy_dir(path, &copy).ok()?;
    for snapshot in &snapshots {
        std::fs::remove_file(snapshot).ok()?;
    }
    *rebuilt = Some(copy.clone());
    Some(copy)
}

/// A snapshot as sled writes it: the bytes, their length (8 bytes), their CRC-32 (4 bytes, little
/// endian).
fn snapshot_is_sound(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let Some(body_len) = bytes.len().checked_sub(12).filter(|&n| n > 0) else {
        return false;
    };
    let (body, tail) = bytes.split_at(body_len);
    let expected = u32::from_le_bytes([tail[8], tail[9], tail[10], tail[11]]);
    crc32fast::hash(body) == expected
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
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

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    /// The batch as stored (duplicates removed), or None when every span was a duplicate.
    pub batch: Option<Batch>,
    pub duplicates: usize,
}

pub struct Log {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    checkpoints: Checkpoints,
    next_seq: u64,
    last_time: UnixNanos,
    /// The ids of the last spans in the log, read from its end by the first append.
    window: Window,
    window_loaded: bool,
    /// The first write error: once set, every append is refused (see `append`).
    failed: Option<String>,
}

/// A copy of a log, made to read it where it cannot be opened in place; removed when dropped
/// (after the log opened on it, which the caller drops first).
pub struct ReadCopy {
    dir: PathBuf,
}

impl Drop for ReadCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Log {
    /// Opens the log to read it (`export`): in place, or, when its storage cannot write as it
    /// opens for want of space, a copy of it in the temp directory (said on stderr), so that a
    /// full disk does not keep the operator from a backup.
    pub fn open_to_read(dir: &Path) -> Result<(Log, Option<ReadCopy>), StoreError> {
        let in_place = if crate::fault::active(crate::fault::NO_SPACE_ON_OPEN) {
            Err(StoreError::Open {
                path: dir.join("log"),
                source: sled::Error::Io(std::io::Error::from_raw_os_error(28)),
            })
        } else {
            Log::open(dir, false)
        };
        let (path, source) = match in_place {
            Err(StoreError::Open { path, source })
                if remedy(&source.to_string()) == "Free disk space" =>
            {
                (path, source)
            }
            other => return other.map(|log| (log, None)),
        };
        let scratch = std::env::temp_dir().join(format!("spanfold-read-{}", std::process::id()));
        let copy = ReadCopy {
            dir: scratch.clone(),
        };
        if let Err(e) = copy_dir(&path, &scratch.join("log")) {
            return Err(StoreError::NoRoomToRead {
                path,
                source,
                scratch,
                copy: e,
            });
        }
        tracing::warn!(
            "the coordination log at {} cannot be opened in place ({source}); reading a copy in {}",
            path.display(),
            scratch.display()
        );
        Ok((Log::open(&scratch, false)?, Some(copy)))
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join("log").join("db").exists() || dir.join("log").join("conf").exists()
    }

    /// Opens the log in `dir`, creating it when `create` is set.
    pub fn open(dir: &Path, create: bool) -> Result<Log, StoreError> {
        let path = dir.join("log");
        if !create && !Log::exists(dir) {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let started = Instant::now();
        let mut noticed = false;
        // Where the directory was copied before its snapshot was removed, once that was tried.
        let mut rebuilt: Option<PathBuf> = None;
        let db = loop {
            let config = sled::Config::new()
                .path(&path)
                .cache_capacity(16 * 1024 * 1024)
                .mode(sled::Mode::HighThroughput);
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("lock") =>
                {
                    let waited = started.elapsed();
                    if waited > LOCK_WAIT || (waited > LOCK_NOTICE && !noticed) {
                        let holder = crate::holder::describe(&path.join("db"))
                            .unwrap_or_else(|| "another process".into());
                        if waited > LOCK_WAIT {
                            return Err(StoreError::Locked { path, holder });
                        }
                        tracing::warn!(
                            "waiting for the coordination log at {}: {holder} holds it",
                            path.display()
                        );
                        noticed = true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(sled::Error::Corruption { .. }) => {
                    match rebuild_snapshot(&path, &mut rebuilt) {
                        Some(copy) => {
                            tracing::warn!(
                                "the coordination log's snapshot (an index its storage derives from the log) was damaged; rebuilding it from the log (the directory as it was found is copied to {})",
                                copy.display()
                            );
                        }
                        None => {
                            return Err(StoreError::Damaged {
                                path,
                                copy: rebuilt.take(),
                            });
                        }
                    }
                }
                Err(source) => return Err(StoreError::Open { path, source }),
            }
        };
        let tree = db.open_tree(LOG_TREE).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let checkpoints = Checkpoints::open(&db, &path)?;
        let mut log = Log {
            path,
            db,
            tree,
            checkpoints,
            next_seq: 1,
            last_time: 0,
            window: Window::new(crate::dedup::DEFAULT_WINDOW),
            window_loaded: false,
            failed: None,
        };
        if let Some(last) = log.tree.last().map_err(|e| log.read_error(e))? {
            let batch = log.decode(&last.0, &last.1)?;
            log.next_seq = batch.first_seq + batch.span_count() as u64;
            log.last_time = batch.received_at;
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number the next appended span will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many of the most recent spans a new span is checked against (see [`Window`]).
    pub fn set_dedup_window(&mut self, spans: usize) {
        self.window = Window::new(spans);
        self.window_loaded = false;
    }

    /// Visits every batch in log order, checking that sequence numbers have no gaps.
    pub fn scan(&mut self, mut visit: impl FnMut(&Batch)) -> Result<(), StoreError> {
        let mut expected = 1;
        for item in self.tree.iter() {
            let (key, value) = item.map_err(|e| self.read_error(e))?;
            let batch = self.decode(&key, &value)?;
            if batch.first_seq != expected {
                return Err(self.corrupt(
                    &key,
                    format!(
                        "expected a batch starting at seq {expected}, found {}",
                        batch.first_seq
                    ),
                ));
            }
            expected = batch.first_seq + batch.span_count() as u64;
            visit(&batch);
        }
        Ok(())
    }

    /// Reads the de-duplication window back from the log now rather than on the first append
    /// (a server does it before serving, so that no export waits for it).
    pub fn prepare_appends(&mut self) -> Result<(), StoreError> {
        if !self.window_loaded {
            self.load_window()?;
        }
        Ok(())
    }

    /// Whether a span with these ids would be dropped as a duplicate by the next append.
    pub fn is_known(&mut self, key: &crate::model::SpanKey) -> Result<bool, StoreError> {
        if !self.window_loaded {
            self.load_window()?;
        }
        Ok(self.window.contains(key))
    }

    /// Fills the de-duplication window with the ids of the last spans in the log: reads only
    /// the log's end, so the cost does not grow with its length.
    fn load_window(&mut self) -> Result<(), StoreError> {
        self.window.clear();
        let capacity = self.window.capacity() as u64;
        let from = self.next_seq.saturating_sub(capacity).max(1);
        for batch in self.reader().batches_from(from) {
            for ev in batch?.events().filter(|ev| ev.seq >= from) {
                self.window.insert(ev.span.key());
            }
        }
        self.window_loaded = true;
        Ok(())
    }

    /// Appends what is new in `resource_spans` as one batch received at `now` (or later, so the
    /// log's time never goes backwards), and flushes before returning.
    pub fn append(
        &mut self,
        mut resource_spans: Vec<ResourceSpans>,
        now: UnixNanos,
    ) -> Result<Appended, StoreError> {
        if let Some(first) = &self.failed {
            return Err(StoreError::Failed {
                path: self.path.clone(),
                first: first.clone(),
            });
        }
        if !self.window_loaded {
            self.load_window()?;
        }
        let duplicates = self.window.retain_new(&mut resource_spans);
        if resource_spans.is_empty() {
            return Ok(Appended {
                batch: None,
                duplicates,
            });
        }
        let batch = Batch {
            first_seq: self.next_seq,
            received_at: now.max(self.last_time),
            resource_spans,
        };
        if let Err(e) = self.write(&batch) {
            // A failed write or flush: the spans may or may not be in the tree now (written, not
            // flushed), and sled keeps
            // an I/O error once it has had one. Appending on would answer a retry as a duplicate
            // of something never made durable: refuse everything until a restart reads back
            // what really is on disk.
            if let StoreError::Write { source, .. } = &e {
                self.failed = Some(source.to_string());
            }
            return Err(e);
        }
        self.next_seq += batch.span_count() as u64;
        self.last_time = batch.received_at;
        Ok(Appended {
            batch: Some(batch),
            duplicates,
        })
    }

    /// Writes a batch that already has its place (a replayed export) without flushing: its
    /// first seq must be the next one, and its receive time not earlier than the last.
    /// [`Log::flush`] makes the imported batches durable.
    pub fn import(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.first_seq != self.next_seq {
            return Err(StoreError::Conflict {
                path: self.path.clone(),
                seq: batch.first_seq,
            });
        }
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.tree.apply_batch(records(batch)).map_err(write)?;
        // The de-duplication window is read back from the log by the next append.
        self.window_loaded = false;
        self.next_seq += batch.span_count() as u64;
        self.last_time = self.last_time.max(batch.received_at);
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Why appends are refused, after a write failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        // Records stay small (a bounded number of spans, compressed): sled writes any value over
        // a quarter of its 512 KiB segment as a file of its own, and creating a file per append
        // cost more than everything else together.
        let first_key = batch.first_seq.to_be_bytes();
        if self
            .tree
            .contains_key(first_key)
            .map_err(|e| self.read_error(e))?
        {
            return Err(StoreError::Conflict {
                path: self.path.clone(),
                seq: batch.first_seq,
            });
        }
        self.tree.apply_batch(records(batch)).map_err(write)?;
        self.db.flush().map_err(write)?;
        Ok(())
    }

    /// Marks this log as a kept replay: it answers questions about the past, and nothing acts
    /// on it. Kept in sled's default tree, which nothing derived lives in.
    pub fn mark_kept_replay(&self, source: &str) -> Result<(), StoreError> {
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.db
            .insert(KEPT_REPLAY_KEY, source.as_bytes())
            .map_err(write)?;
        self.db.flush().map_err(write)?;
        Ok(())
    }

    /// Where a kept replay came from, when this log is one.
    pub fn kept_replay(&self) -> Option<String> {
        self.db
            .get(KEPT_REPLAY_KEY)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Drops every tree but the log itself: indexes and checkpoints are derived and disposable.
    pub fn drop_derived(&self) -> Result<Vec<String>, StoreError> {
        let mut dropped = Vec::new();
        for name in self.db.tree_names() {
            let name_str = String::from_utf8_lossy(&name).into_owned();
            // sled keeps its own default tree; it is not ours to drop.
            if name_str == LOG_TREE || name_str == "__sled__default" {
                continue;
            }
            self.db
                .drop_tree(&name)
                .map_err(|source| StoreError::Write {
                    path: self.path.clone(),
                    source,
                })?;
            dropped.push(name_str);
        }
        Ok(dropped)
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Batch, StoreError> {
        decode(&self.path, key, value)
    }

    fn corrupt(&self, key: &[u8], reason: String) -> StoreError {
        corrupt(&self.path, key, reason)
    }

    /// A handle for reading the log from other threads while this one appends.
    pub fn reader(&self) -> LogReader {
        LogReader {
            path: self.path.clone(),
            db: self.db.clone(),
            tree: self.tree.clone(),
            checkpoints: self.checkpoints.clone(),
        }
    }

    /// Stores `value` as the checkpoint after the event `seq` (received at `time`), tagged with
    /// `version`. Not flushed on its own: the next append's flush carries it, and sled recovers a
    /// prefix of its writes, so a checkpoint never survives without the events it covers.
    pub fn put_checkpoint<T: serde::Serialize>(
        &self,
        seq: u64,
        time: UnixNanos,
        version: u32,
        value: &T,
    ) -> Result<(), StoreError> {
        let plain = postcard::to_stdvec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
        let mut record = Vec::with_capacity(plain.len() / 4 + 16);
        record.push(CHECKPOINT_FORMAT);
        record.extend(version.to_be_bytes());
        record.extend(lz4_flex::compress_prepend_size(&plain));
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.checkpoints
            .views
            .insert(seq.to_be_bytes(), record)
            .map_err(write)?;
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&time.to_be_bytes());
        entry[8..].copy_from_slice(&version.to_be_bytes());
        self.checkpoints
            .index
            .insert(seq.to_be_bytes(), &entry)
            .map_err(write)?;
        Ok(())
    }

    /// Deletes every checkpoint not tagged with `version` (a reducer change makes them wrong),
    /// and any that claims events past the end of the log. Returns how many were dropped.
    pub fn discard_checkpoints(&self, version: u32) -> Result<usize, StoreError> {
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let mut dropped = 0;
        for item in self.checkpoints.index.iter() {
            let (key, value) = item.map_err(|e| read_error(&self.path, e))?;
            // A malformed entry is derived data gone bad: dropped like a stale one.
            let keep = self
                .checkpoints
                .entry(&key, &value)
                .is_ok_and(|e| e.version == version && e.seq < self.next_seq);
            if !keep {
                self.checkpoints.views.remove(&key).map_err(write)?;
                self.checkpoints.index.remove(&key).map_err(write)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    fn read_error(&self, source: sled::Error) -> StoreError {
        read_error(&self.path, source)
    }
}

/// Reads the log concurrently with the writer: sled trees are safe to share.
#[derive(Clone)]
pub struct LogReader {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    checkpoints: Checkpoints,
}

/// One checkpoint's index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The last event the checkpointed view holds.
    pub seq: u64,
    pub time: UnixNanos,
    pub version: u32,
}

#[derive(Clone)]
struct Checkpoints {
    path: PathBuf,
    views: sled::Tree,
    index: sled::Tree,
}

impl Checkpoints {
    fn open(db: &sled::Db, path: &Path) -> Result<Checkpoints, StoreError> {
        let open = |name| {
            db.open_tree(name).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            views: open(CHECKPOINT_TREE)?,
            index: open(CHECKPOINT_INDEX_TREE)?,
        })
    }

    fn entry(&self, key: &[u8], value: &[u8]) -> Result<CheckpointEntry, StoreError> {
        let bad = || {
            corrupt(
                &self.path,
                key,
                "a checkpoint index entry is malformed; run `spanfold rebuild` (checkpoints are derived and are made again)".into(),
            )
        };
        let seq = <[u8; 8]>::try_from(key).map_err(|_| bad())?;
        let time = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
        let version = value.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok());
        match (time, version) {
            (Some(t), Some(v)) => Ok(CheckpointEntry {
                seq: u64::from_be_bytes(seq),
                time: u64::from_be_bytes(t),
                version: u32::from_be_bytes(v),
            }),
            _ => Err(bad()),
        }
    }

    fn entries(&self) -> impl DoubleEndedIterator<Item = Result<CheckpointEntry, StoreError>> + '_ {
        self.index.iter().map(|item| {
            let (k, v) = item.map_err(|e| read_error(&self.path, e))?;
            self.entry(&k, &v)
        })
    }
}

impl LogReader {
    /// Index entries of the checkpoints, in seq order.
    pub fn checkpoint_entries(&self) -> Result<Vec<CheckpointEntry>, StoreError> {
        self.checkpoints.entries().collect()
    }

    /// The latest checkpoint at or before `seq` tagged with `version` that decodes and that
    /// `accept` takes (given its seq and value). Checkpoints are derived: one that is damaged is
    /// passed over for an earlier one (costing a longer fold, never a wrong answer).
    pub fn checkpoint_at_or_before<T: serde::de::DeserializeOwned>(
        &self,
        seq: u64,
        version: u32,
        accept: impl Fn(u64, &T) -> bool,
    ) -> Result<Option<(CheckpointEntry, T)>, StoreError> {
        let cps = &self.checkpoints;
        for item in cps.index.range(..=seq.to_be_bytes()).rev() {
            let (key, value) = item.map_err(|e| read_error(&self.path, e))?;
            let Ok(entry) = cps.entry(&key, &value) else {
                tracing::warn!("skipping a malformed checkpoint index entry");
                continue;
            };
            if entry.version != version {
                continue;
            }
            let Some(record) = cps.views.get(&key).map_err(|e| read_error(&self.path, e))? else {
                continue;
            };
            match decode_checkpoint::<T>(&self.path, &key, &record) {
                Ok(view) if accept(entry.seq, &view) => return Ok(Some((entry, view))),
                Ok(_) => tracing::warn!(
                    "skipping checkpoint at seq {}: it does not match",
                    entry.seq
                ),
                Err(e) => tracing::warn!("skipping checkpoint at seq {}: {e}", entry.seq),
            }
        }
        Ok(None)
    }

    /// The seq of the last event received at or before `time` (0 when none was): the latest
    /// checkpoint no later than `time`, then the records after it, reading only their receive
    /// times. Receive times never go backwards in the log, so the first later record ends the
    /// walk: the answer is the seq just before it.
    pub fn seq_at_time(&self, time: UnixNanos) -> Result<u64, StoreError> {
        let mut from = 0;
        // Malformed entries are passed over: they only shorten the walk.
        for entry in self.checkpoints.entries().flatten() {
            if entry.time > time {
                break;
            }
            from = entry.seq;
        }
        let start = self.record_holding(from + 1)?;
        for item in self.tree.range(start..) {
            let (key, value) = item.map_err(|e| read_error(&self.path, e))?;
            let (first_seq, received_at) = decode_time(&self.path, &key, &value)?;
            if received_at > time {
                return Ok(first_seq.saturating_sub(1).max(from));
            }
        }
        self.last_seq()
    }

    /// When the event `seq` (or the first after it) was received, reading only that; None past
    /// the end of the log.
    pub fn received_at(&self, seq: u64) -> Result<Option<UnixNanos>, StoreError> {
        let start = self.record_holding(seq)?;
        match self.tree.range(start..).next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|e| read_error(&self.path, e))?;
                Ok(Some(decode_time(&self.path, &key, &value)?.1))
            }
        }
    }

    /// The seq of the last event in the log (0 when it is empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        match self.tree.last().map_err(|e| read_error(&self.path, e))? {
            None => Ok(0),
            Some((key, value)) => {
                let batch = decode(&self.path, &key, &value)?;
                Ok(batch.first_seq + batch.span_count() as u64 - 1)
            }
        }
    }

    /// Batches holding spans from `seq` on, in log order (the first may start before `seq`).
    pub fn batches_from(
        &self,
        seq: u64,
    ) -> Box<dyn Iterator<Item = Result<Batch, StoreError>> + '_> {
        let start = match self.record_holding(seq) {
            Ok(start) => start,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(self.tree.range(start..).map(move |item| {
            let (key, value) = item.map_err(|e| read_error(&self.path, e))?;
            decode(&self.path, &key, &value)
        }))
    }

    /// The key of the record holding `seq`: the greatest key at or below it.
    fn record_holding(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
        match self.tree.range(..=seq.to_be_bytes()).next_back() {
            None => Ok(seq.to_be_bytes().to_vec()),
            Some(item) => {
                let (key, _) = item.map_err(|e| read_error(&self.path, e))?;
                Ok(key.to_vec())
            }
        }
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Borrowed views that serialise exactly like `ResourceSpans` and `ScopeSpans` (postcard writes
/// struct fields in order, with no names), so a record can hold part of a batch without copying.
#[derive(serde::Serialize)]
struct ResourceView<'a>(&'a Resource, &'a str, Vec<ScopeView<'a>>);

#[derive(serde::Serialize)]
struct ScopeView<'a>(&'a Scope, &'a str, &'a [crate::model::Span]);

/// Splits a batch into record-sized parts of at most `max` spans, each with its first seq.
fn chunks(batch: &Batch, max: usize) -> Vec<(u64, Vec<ResourceView<'_>>)> {
    let mut out: Vec<(u64, Vec<ResourceView<'_>>)> = Vec::new();
    let mut seq = batch.first_seq;
    let mut room = 0;
    for rs in &batch.resource_spans {
        let mut open_resource = false;
        for ss in &rs.scope_spans {
            let mut spans: &[crate::model::Span] = &ss.spans;
            while !spans.is_empty() {
                if room == 0 {
                    out.push((seq, Vec::new()));
                    room = max;
                    open_resource = false;
                }
                let take = spans.len().min(room);
                let chunk = &mut out.last_mut().expect("pushed above").1;
                if !open_resource {
                    chunk.push(ResourceView(&rs.resource, &rs.schema_url, Vec::new()));
                    open_resource = true;
                }
                chunk.last_mut().expect("pushed above").2.push(ScopeView(
                    &ss.scope,
                    &ss.schema_url,
                    &spans[..take],
                ));
                spans = &spans[take..];
                room -= take;
                seq += take as u64;
            }
        }
    }
    out
}

/// A record's first seq and receive time, without decoding its spans.
fn decode_time(path: &Path, key: &[u8], value: &[u8]) -> Result<(u64, UnixNanos), StoreError> {
    let first_seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(path, key, "the key is not an 8-byte sequence number".into()))?;
    let time = |plain: &[u8]| {
        postcard::take_from_bytes::<UnixNanos>(plain)
            .map(|(t, _)| t)
            .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))
    };
    match value.split_first() {
        Some((&FORMAT_V1, body)) => Ok((first_seq, time(body)?)),
        Some((&FORMAT_V2, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            Ok((first_seq, time(&plain)?))
        }
        _ => decode(path, key, value).map(|b| (b.first_seq, b.received_at)),
    }
}

/// A batch as the records that store it.
fn records(batch: &Batch) -> sled::Batch {
    let mut records = sled::Batch::default();
    for (first_seq, chunk) in chunks(batch, RECORD_SPANS) {
        records.insert(
            &first_seq.to_be_bytes(),
            encode_record(batch.received_at, &chunk),
        );
    }
    records
}

fn encode_record(received_at: UnixNanos, chunk: &[ResourceView<'_>]) -> Vec<u8> {
    let plain = postcard::to_stdvec(&(received_at, chunk))
        .expect("serialising in-memory spans cannot fail");
    let mut value = Vec::with_capacity(plain.len() / 4 + 16);
    value.push(FORMAT_V2);
    value.extend(lz4_flex::compress_prepend_size(&plain));
    value
}

fn decode(path: &Path, key: &[u8], value: &[u8]) -> Result<Batch, StoreError> {
    let first_seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(path, key, "the key is not an 8-byte sequence number".into()))?;
    match value.split_first() {
        Some((&FORMAT_V1, body)) => {
            let (received_at, resource_spans) = postcard::from_bytes(body)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            Ok(Batch {
                first_seq,
                received_at,
                resource_spans,
            })
        }
        Some((&FORMAT_V2, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            let (received_at, resource_spans) = postcard::from_bytes(&plain)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            Ok(Batch {
                first_seq,
                received_at,
                resource_spans,
            })
        }
        Some((other, _)) => Err(corrupt(
            path,
            key,
            format!(
                "record format {other} is newer than this spanfold understands; upgrade spanfold"
            ),
        )),
        None => Err(corrupt(path, key, "the record is empty".into())),
    }
}

fn decode_checkpoint<T: serde::de::DeserializeOwned>(
    path: &Path,
    key: &[u8],
    record: &[u8],
) -> Result<T, StoreError> {
    let bad = |why: String| {
        corrupt(
            path,
            key,
            format!(
                "checkpoint unreadable ({why}); run `spanfold rebuild` to make checkpoints again"
            ),
        )
    };
    match record.split_first() {
        Some((&CHECKPOINT_FORMAT, rest)) if rest.len() >= 4 => {
            let plain =
                lz4_flex::decompress_size_prepended(&rest[4..]).map_err(|e| bad(e.to_string()))?;
            postcard::from_bytes(&plain).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("unknown format".into())),
    }
}

fn corrupt(path: &Path, key: &[u8], reason: String) -> StoreError {
    let key = <[u8; 8]>::try_from(key)
        .map(|k| format!("seq {}", u64::from_be_bytes(k)))
        .unwrap_or_else(|_| format!("{key:?}"));
    StoreError::Corrupt {
        path: path.to_path_buf(),
        key,
        reason,
    }
}

fn read_error(path: &Path, source: sled::Error) -> StoreError {
    match source {
        sled::Error::Corruption { .. } => corrupt(path, b"", format!("{source}")),
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, ResourceSpans, Scope, Span};

    fn spans(ids: &[u8]) -> Vec<ResourceSpans> {
        vec![ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            ids.iter()
                .map(|&i| Span::new([i; 16], [i; 8], "x", 0))
                .collect(),
        )]
    }

    fn all(log: &mut Log) -> Vec<Batch> {
        let mut out = Vec::new();
        log.scan(|b| out.push(b.clone())).expect("scan");
        out
    }

    #[test]
    fn appends_number_spans_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        let a = log.append(spans(&[1, 2]), 100).expect("append");
        assert_eq!(a.batch.as_ref().map(|b| b.first_seq), Some(1));
        // The log's clock never goes backwards, whatever the caller's did.
        let b = log.append(spans(&[3]), 50).expect("append");
        assert_eq!(
            b.batch.as_ref().map(|b| (b.first_seq, b.received_at)),
            Some((3, 100))
        );
        drop(log);
        let mut log = Log::open(dir.path(), false).expect("reopen");
        assert_eq!(log.next_seq(), 4);
        let batches = all(&mut log);
        assert_eq!(batches.len(), 2);
        let seqs: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.events().map(|e| e.seq))
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_large_batch_is_stored_as_several_records_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        // Two resources, the second with two scopes: splits must keep the grouping.
        let span = |i: u32| {
            let mut id = [0u8; 8];
            id[..4].copy_from_slice(&i.to_be_bytes());
            Span::new([3; 16], id, "x", 0)
        };
        let rs = vec![
            ResourceSpans::single(
                Resource::default(),
                Scope::default(),
                (1..=1500).map(span).collect(),
            ),
            ResourceSpans {
                resource: Resource::default(),
                schema_url: "b".into(),
                scope_spans: vec![
                    crate::model::ScopeSpans {
                        scope: Scope {
                            name: "s1".into(),
                            ..Scope::default()
                        },
                        schema_url: String::new(),
                        spans: (1501..=2000).map(span).collect(),
                    },
                    crate::model::ScopeSpans {
                        scope: Scope {
                            name: "s2".into(),
                            ..Scope::default()
                        },
                        schema_url: String::new(),
                        spans: (2001..=2100).map(span).collect(),
                    },
                ],
            },
        ];
        log.append(rs, 1).expect("append");
        assert_eq!(
            log.tree.len(),
            3,
            "2100 spans in records of at most {RECORD_SPANS}"
        );
        drop(log);
        let mut log = Log::open(dir.path(), false).expect("reopen");
        assert_eq!(log.next_seq(), 2101);
        let batches = all(&mut log);
        let ids: Vec<u32> = batches
            .iter()
            .flat_map(|b| {
                b.events().map(|e| {
                    u32::from_be_bytes([
                        e.span.span_id[0],
                        e.span.span_id[1],
                        e.span.span_id[2],
                        e.span.span_id[3],
                    ])
                })
            })
            .collect();
        assert_eq!(ids, (1..=2100).collect::<Vec<_>>());
        let scopes: Vec<String> = batches
            .iter()
            .flat_map(|b| b.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter().map(|s| s.scope.name.clone()))
            .collect();
        // Each record repeats the resource and scope of the spans it holds.
        assert_eq!(scopes, ["", "", "s1", "s2", "s2"]);
    }

    #[test]
    fn a_span_already_in_the_log_is_not_appended_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        log.append(spans(&[1, 2]), 1).expect("append");
        drop(log);
        let mut log = Log::open(dir.path(), false).expect("reopen");
        let again = log.append(spans(&[2, 3, 3]), 2).expect("append");
        assert_eq!(again.duplicates, 2);
        let batch = again.batch.expect("one new span");
        assert_eq!(batch.span_count(), 1);
        assert_eq!(batch.first_seq, 3);
        let only_dups = log.append(spans(&[1]), 3).expect("append");
        assert!(only_dups.batch.is_none());
        assert_eq!(log.next_seq(), 4);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 40, ..Default::default() })]

        /// Retries mixed in anywhere, in any batches, even across a restart: the log holds each
        /// span once, in the order of its first arrival, with no gap in its sequence numbers.
        #[test]
        fn any_interleaving_of_duplicates_stores_each_span_once(
            sends in proptest::collection::vec((0u8..60, 1usize..6, proptest::bool::ANY), 1..80),
        ) {
            let dir = tempfile::tempdir().expect("tmp");
            let mut log = Log::open(dir.path(), true).expect("open");
            let mut first_seen = Vec::new();
            let mut pending = Vec::new();
            for (i, &(id, batch, restart)) in sends.iter().enumerate() {
                pending.push(id);
                if !first_seen.contains(&id) {
                    first_seen.push(id);
                }
                if pending.len() >= batch || i + 1 == sends.len() {
                    log.append(spans(&pending), i as u64).expect("append");
                    pending.clear();
                    if restart {
                        drop(log);
                        log = Log::open(dir.path(), false).expect("reopen");
                    }
                }
            }
            let stored: Vec<u8> = all(&mut log)
                .iter()
                .flat_map(|b| b.events().map(|ev| ev.span.span_id[0]).collect::<Vec<_>>())
                .collect();
            proptest::prop_assert_eq!(stored, first_seen.clone());
            proptest::prop_assert_eq!(log.next_seq(), first_seen.len() as u64 + 1);
        }
    }

    #[test]
    fn duplicates_are_caught_within_the_window_which_is_read_back_from_the_log_end() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        log.set_dedup_window(4);
        log.append(spans(&[1, 2, 3]), 1).expect("append");
        log.append(spans(&[4, 5, 6]), 2).expect("append");
        // The window holds 3..=6: a retry of 5 is caught, 1 and 2 have left it.
        let again = log.append(spans(&[5, 1]), 3).expect("append");
        assert_eq!(again.duplicates, 1);
        assert_eq!(again.batch.map(|b| b.span_count()), Some(1));
        drop(log);
        // After a restart the window is the last four spans of the log: 4, 5, 6 and 1.
        let mut log = Log::open(dir.path(), false).expect("reopen");
        log.set_dedup_window(4);
        let retried = log.append(spans(&[4, 6, 1, 3]), 4).expect("append");
        assert_eq!(retried.duplicates, 3);
        let batch = retried.batch.expect("3 left the window, so it is new");
        assert_eq!(batch.first_seq, 8);
        assert_eq!(batch.span_count(), 1);
        assert_eq!(log.next_seq(), 9);
    }

    #[test]
    fn lossless_round_trip_of_every_field() {
        use crate::model::{AnyValue, KeyValue, Link, SpanEvent, Status};
        let dir = tempfile::tempdir().expect("tmp");
        let mut span = Span::new([7; 16], [8; 8], "rich", 5);
        span.parent_span_id = vec![9; 8];
        span.trace_state = "k=v".into();
        span.flags = 257;
        span.kind = 3;
        span.end_time_unix_nano = 6;
        span.attributes = vec![
            KeyValue::new("b", AnyValue::Bool(true)),
            KeyValue::new("d", AnyValue::Double(1.5)),
            KeyValue::new("bytes", AnyValue::Bytes(vec![0, 255])),
            KeyValue::new(
                "kv",
                AnyValue::KvList(vec![KeyValue::new("i", AnyValue::Int(-1))]),
            ),
            KeyValue::new("arr", AnyValue::Array(vec![AnyValue::Empty])),
        ];
        span.events = vec![SpanEvent {
            time_unix_nano: 5,
            name: "e".into(),
            attributes: vec![],
            dropped_attributes_count: 1,
        }];
        span.links = vec![Link {
            trace_id: [1; 16],
            span_id: [2; 8],
            trace_state: String::new(),
            attributes: vec![],
            dropped_attributes_count: 0,
            flags: 1,
        }];
        span.status = Status {
            message: "bad".into(),
            code: 2,
        };
        let rs = vec![ResourceSpans {
            resource: Resource {
                attributes: vec![KeyValue::new("service.name", AnyValue::String("s".into()))],
                dropped_attributes_count: 2,
                entity_refs: vec![],
            },
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            scope_spans: vec![crate::model::ScopeSpans {
                scope: Scope {
                    name: "lib".into(),
                    version: "1".into(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                },
                schema_url: "x".into(),
                spans: vec![span],
            }],
        }];
        let mut log = Log::open(dir.path(), true).expect("open");
        log.append(rs.clone(), 9).expect("append");
        drop(log);
        let mut log = Log::open(dir.path(), false).expect("reopen");
        assert_eq!(all(&mut log)[0].resource_spans, rs);
    }

    #[test]
    fn a_missing_log_says_how_to_create_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = Log::open(dir.path(), false).err().expect("missing");
        assert!(err.to_string().contains("spanfold agents init"), "{err}");
    }

    #[test]
    fn a_damaged_record_is_a_clear_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        log.append(spans(&[1]), 1).expect("append");
        // Damage it through sled itself: a record whose body does not decode.
        log.tree
            .insert(2u64.to_be_bytes(), vec![FORMAT_V1, 0xff, 0xff])
            .expect("insert");
        log.db.flush().expect("flush");
        drop(log);
        // Opening reads the last record, so the damage is found before anything can be appended.
        let err = Log::open(dir.path(), false)
            .err()
            .expect("a damaged log must not open")
            .to_string();
        assert!(err.contains("damaged at record seq 2"), "{err}");
        assert!(err.contains("spanfold wrote nothing"), "{err}");
    }
}
