//! The kept timeline index (`timeline::Index`) between runs of a server: derived like
//! checkpoints, stored in its own tree as one value, the latest, under the seq of the last event
//! it holds. Tagged with the reducer version; anything unreadable, of another version or past
//! the end of the log is ignored, and the index is folded again. Written from a reader's handle
//! (the server's timeline keeper has no other), not flushed on its own: the next append's flush
//! carries it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::{decode_checkpoint, encode_checkpoint, read_error};
use super::{LogReader, StoreError};

pub(super) const TIMELINE_INDEX_TREE: &str = "timeline_index";

impl LogReader {
    /// Stores `value` as the index after the event `seq`, tagged with `version`, and drops the
    /// one before.
    pub fn put_timeline_index<T: Serialize>(
        &self,
        seq: u64,
        version: u32,
        value: &T,
    ) -> Result<(), StoreError> {
        let record = encode_checkpoint(version, value)?;
        let write = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let tree = self.timeline_tree()?;
        tree.insert(seq.to_be_bytes(), record).map_err(write)?;
        for item in tree.range(..seq.to_be_bytes()) {
            let (key, _) = item.map_err(|e| read_error(&self.path, e))?;
            tree.remove(key).map_err(write)?;
        }
        Ok(())
    }

    /// The latest index stored, with the seq it was written at, if it is of `version` and
    /// within the log; None otherwise (including when it cannot be read: it is derived).
    pub fn timeline_index<T: DeserializeOwned>(
        &self,
        version: u32,
    ) -> Result<Option<(u64, T)>, StoreError> {
        let tree = self.timeline_tree()?;
        let Some((key, record)) = tree.last().map_err(|e| read_error(&self.path, e))? else {
            return Ok(None);
        };
        let seq = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
        let tagged = record
            .get(1..5)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes);
        let Ok(seq) = seq else {
            tracing::warn!("ignoring a malformed timeline index key");
            return Ok(None);
        };
        if tagged != Some(version) || seq > self.last_seq()? {
            return Ok(None);
        }
        match decode_checkpoint::<T>(&self.path, &key, &record) {
            Ok(index) => Ok(Some((seq, index))),
            Err(e) => {
                tracing::warn!("ignoring the timeline index: {e}");
                Ok(None)
            }
        }
    }

    fn timeline_tree(&self) -> Result<sled::Tree, StoreError> {
        self.db
            .open_tree(TIMELINE_INDEX_TREE)
            .map_err(|source| StoreError::Open {
                path: self.path.clone(),
                source,
            })
    }
}
