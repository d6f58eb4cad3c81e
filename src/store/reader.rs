//! Reading the log beside its writer: batches from a seq, times, checkpoints.

use super::record::{decode_checkpoint, decode_time};
use super::*;

/// Reads the log concurrently with the writer: sled trees are safe to share.
#[derive(Clone)]
pub struct LogReader {
    pub(super) path: PathBuf,
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    pub(super) checkpoints: Checkpoints,
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
pub(super) struct Checkpoints {
    pub(super) path: PathBuf,
    pub(super) views: sled::Tree,
    pub(super) index: sled::Tree,
}

impl Checkpoints {
    pub(super) fn open(db: &sled::Db, path: &Path) -> Result<Checkpoints, StoreError> {
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

    pub(super) fn entry(&self, key: &[u8], value: &[u8]) -> Result<CheckpointEntry, StoreError> {
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

    pub(super) fn entries(
        &self,
    ) -> impl DoubleEndedIterator<Item = Result<CheckpointEntry, StoreError>> + '_ {
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
                Ok(batch.first_seq + batch.event_count() as u64 - 1)
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
    pub(super) fn record_holding(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
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
