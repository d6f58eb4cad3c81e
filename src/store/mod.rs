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

use crate::dedup::Window;
use crate::model::{
    Batch, LogRecord, Metric, Resource, ResourceLogs, ResourceMetrics, ResourceSpans, Scope, Span,
    UnixNanos,
};

/// First byte of every record value; a new layout gets a new number and a reader for the old.
/// 1: postcard of (receive time, resource spans). 2: the same, lz4-compressed. 3: lz4 of the
/// postcard of (receive time, signal): resource logs or resource metrics, tagged.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const FORMAT_V3: u8 = 3;
/// Most events (spans, log records or metrics) in one record.
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

mod error;
mod reader;
mod record;
mod repair;
#[cfg(test)]
mod tests;
mod timeline_index;

pub use error::{StoreError, remedy};
use reader::Checkpoints;
pub use reader::{CheckpointEntry, LogReader};
use record::{corrupt, decode, encode_checkpoint, read_error, records};
use repair::{copy_dir, rebuild_snapshot};

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
            log.next_seq = batch.first_seq + batch.event_count() as u64;
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
            expected = batch.first_seq + batch.event_count() as u64;
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
            for key in Window::keys_of(&batch?, from) {
                self.window.insert(key);
            }
        }
        self.window_loaded = true;
        Ok(())
    }

    /// Appends what is new in `resource_spans` as one batch received at `now` (or later, so the
    /// log's time never goes backwards), and flushes before returning.
    pub fn append(
        &mut self,
        resource_spans: Vec<ResourceSpans>,
        now: UnixNanos,
    ) -> Result<Appended, StoreError> {
        self.append_events(Batch::of_spans(0, 0, resource_spans), now)
    }

    /// [`Log::append`] for an export of any signal: what is new among the batch's spans, log
    /// records and metrics gets its place (the batch's own seq and time are ignored).
    pub fn append_events(
        &mut self,
        mut batch: Batch,
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
        let duplicates = self.window.retain_new_events(&mut batch);
        if batch.event_count() == 0 {
            return Ok(Appended {
                batch: None,
                duplicates,
            });
        }
        batch.first_seq = self.next_seq;
        batch.received_at = now.max(self.last_time);
        if let Err(e) = self.write(&batch) {
            // A failed write or flush: the events may or may not be in the tree now (written,
            // not flushed), and sled keeps an I/O error once it has had one. Appending on would
            // answer a retry as a duplicate of something never made durable: refuse everything
            // until a restart reads back what really is on disk.
            if let StoreError::Write { source, .. } = &e {
                self.failed = Some(source.to_string());
            }
            return Err(e);
        }
        self.next_seq += batch.event_count() as u64;
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
        self.next_seq += batch.event_count() as u64;
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
        let record = encode_checkpoint(version, value)?;
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
