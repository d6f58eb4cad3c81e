//! The whole log's timeline index (`timeline::Index`), kept by a serving coordinator as it folds:
//! the dashboard's first question is then answered from it instead of by folding the log. It is
//! stored beside the checkpoints, spaced so that writing it costs a bounded number of bytes per
//! event folded, and read back at the next start with the checkpoint it was written with.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::model::Batch;
use crate::reducer::{REDUCER_VERSION, View};
use crate::store::{Log, LogReader, StoreError};
use crate::timeline::Index;
use crate::timetravel;

/// Bytes of the stored index per event folded since it was last stored, at most: a large index
/// (a long log with many lane changes) is stored less often. Storing costs the writer (encoding
/// and compressing it all); not storing costs a longer fold at the next start.
const BYTES_PER_EVENT: usize = 16;
/// Fewest checkpoints between two stores, whatever the size: at full ingest a checkpoint falls
/// every few milliseconds, and storing the index with each cost a tenth of the ingest rate.
const MIN_CHECKPOINTS: u64 = 16;

pub(super) struct KeptTimeline {
    pub(super) index: Arc<RwLock<Index>>,
    /// The seq it was last stored at.
    pub(super) stored: u64,
}

impl KeptTimeline {
    /// Where the fold of `log` starts for a coordinator that keeps the index: the stored index
    /// and the checkpoint it was stored with, or (none stored, or its checkpoint gone) the start
    /// of the log, folded once to build it. Returns the first seq to fold, the view before it
    /// and the index.
    pub(super) fn start(
        log: &Log,
        reader: &LogReader,
    ) -> Result<(u64, View, KeptTimeline), StoreError> {
        let stored = log.timeline_index::<Index>(REDUCER_VERSION)?;
        let at = |seq: u64| {
            reader
                .checkpoint_at_or_before::<View>(seq, REDUCER_VERSION, timetravel::fits)
                .ok()
                .flatten()
                .filter(|(entry, _)| entry.seq == seq)
        };
        let found = stored.and_then(|(seq, index)| at(seq).map(|(_, view)| (seq, view, index)));
        let (seq, view, index) = found.unwrap_or_else(|| {
            if reader.last_seq().is_ok_and(|last| last > 0) {
                tracing::info!(
                    "building the timeline index: the log is folded once from its start"
                );
            }
            (0, View::default(), Index::default())
        });
        let kept = KeptTimeline {
            index: Arc::new(RwLock::new(index)),
            stored: seq,
        };
        Ok((seq + 1, view, kept))
    }

    /// Folds the events of `batch` from `from` on into `view` and the index. The view is locked
    /// first, as readers that want both lock them.
    pub(super) fn fold(&self, view: &RwLock<View>, batch: &Batch, from: u64) {
        let mut view = view.write();
        self.index.write().apply_batch(&mut view, batch, from);
    }

    /// Stores the index with the checkpoint just written at `seq` (checkpoints being spaced
    /// `every` events), when enough events were folded since it was last stored to pay for its
    /// size. Derived: a failure costs a longer fold at the next start, and is logged.
    pub(super) fn checkpointed(&mut self, log: &Log, seq: u64, every: u64) {
        let index = self.index.read();
        let since = seq.saturating_sub(self.stored);
        let events = usize::try_from(since).unwrap_or(usize::MAX);
        let due = if every < timetravel::CHECKPOINT_EVERY {
            // Lowered (tests): with every checkpoint.
            true
        } else {
            since >= MIN_CHECKPOINTS * every
                && events.saturating_mul(BYTES_PER_EVENT) >= index.weight()
        };
        if index.as_of().seq != seq || !due {
            return;
        }
        match log.put_timeline_index(seq, REDUCER_VERSION, &*index) {
            Ok(()) => self.stored = seq,
            Err(e) => tracing::warn!("timeline index at seq {seq} not stored: {e}"),
        }
    }

    /// Folds the whole log again (after a failed append), index and view alike.
    pub(super) fn refold(&self, log: &mut Log) -> Result<View, StoreError> {
        let (mut view, mut index) = (View::default(), Index::default());
        log.scan(|batch| index.apply_batch(&mut view, batch, 0))?;
        *self.index.write() = index;
        Ok(view)
    }
}
