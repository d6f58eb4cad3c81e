//! The whole log's timeline index (`timeline::Index`), kept by a server beside its writer so that
//! the dashboard's first question (the timeline of the whole log) is drawn from it instead of by
//! folding every event.
//!
//! It is kept on a thread of its own, at the lowest scheduling priority, with a view of its own,
//! and it reads the log only while the writer waits for work: the writer is the ingest path's
//! narrowest stage, and the keeper shares nothing with it but a flag. Kept on the writer's
//! thread the index cost a tenth of the ingest rate; handed each appended batch through a queue
//! its cost could not be told from the machine's noise, so it shares nothing that could cost.
//! Under a load that never lets the writer wait, the index falls behind and the API folds
//! instead. Stored now and then (the latest only) and read back at the next start
//! with the view at its seq.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::model::Batch;
use crate::reducer::{AsOf, REDUCER_VERSION, View};
use crate::store::{LogReader, StoreError};
use crate::timeline::{Index, Timeline};
use crate::timetravel;

/// Bytes of the stored index per event folded since it was last stored, at most: a large index
/// (a long log with many lane changes) is stored less often. Not storing costs a longer fold at
/// the next start.
const BYTES_PER_EVENT: usize = 16;
/// Fewest events between two stores.
const MIN_EVENTS: u64 = 65_536;
/// How often the thread looks whether the writer waits and the log grew.
const POLL: Duration = Duration::from_millis(20);

/// The index and the view after the same event.
#[derive(Debug, Default)]
pub struct Kept {
    view: View,
    index: Index,
}

impl Kept {
    /// The last event kept.
    pub fn as_of(&self) -> AsOf {
        self.view.as_of
    }

    /// The whole log's timeline up to the last event kept, if the index can draw it.
    pub fn timeline(&self, resolution: usize) -> Option<Timeline> {
        self.index.timeline(&self.view, resolution)
    }

    fn fold(&mut self, batch: &Batch, from: u64) {
        self.index.apply_batch(&mut self.view, batch, from);
    }
}

pub struct Keeper {
    reader: LogReader,
    kept: Arc<RwLock<Kept>>,
    /// The seq it was last stored at (or read back from; 0: none).
    stored: u64,
}

impl Keeper {
    /// The index stored for `reader`'s log and the view at its seq; or, when none is usable,
    /// nothing kept yet (the first catch-up folds the log from its start).
    pub fn open(reader: LogReader) -> Keeper {
        let stored = match reader.timeline_index::<Index>(REDUCER_VERSION) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("the timeline index is folded again: {e}");
                None
            }
        };
        let kept = stored.and_then(|(seq, index)| {
            let view = timetravel::view_at(&reader, seq).ok()?;
            (view.as_of == index.as_of()).then_some((seq, Kept { view, index }))
        });
        let (stored, kept) = kept.unwrap_or_default();
        Keeper {
            reader,
            kept: Arc::new(RwLock::new(kept)),
            stored,
        }
    }

    /// What is kept, for the API to draw from.
    pub fn shared(&self) -> Arc<RwLock<Kept>> {
        Arc::clone(&self.kept)
    }

    /// The seq the index was last stored at, or read back from (0: neither).
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// Folds what the log holds beyond what is kept, a record at a time, while `go_on` says
    /// so (checked before each record) or to the end of the log.
    pub fn catch_up(&mut self, go_on: &dyn Fn() -> bool) -> Result<(), StoreError> {
        let from = self.kept.read().as_of().seq + 1;
        for batch in self.reader.batches_from(from) {
            if !go_on() {
                break;
            }
            let batch = batch?;
            let next = self.kept.read().as_of().seq + 1;
            self.kept.write().fold(&batch, next);
        }
        Ok(())
    }

    /// Stores the index when enough events were folded since it was last stored to pay for its
    /// size, or whenever it moved if `now`. Derived: a failure is logged and costs only a longer
    /// fold at the next start.
    pub fn store(&mut self, now: bool) {
        let kept = self.kept.read();
        let seq = kept.as_of().seq;
        let since = seq.saturating_sub(self.stored);
        let events = usize::try_from(since).unwrap_or(usize::MAX);
        let due =
            since >= MIN_EVENTS && events.saturating_mul(BYTES_PER_EVENT) >= kept.index.weight();
        if since == 0 || !(now || due) {
            return;
        }
        match self
            .reader
            .put_timeline_index(seq, REDUCER_VERSION, &kept.index)
        {
            Ok(()) => self.stored = seq,
            Err(e) => tracing::warn!("timeline index at seq {seq} not stored: {e}"),
        }
    }

    /// Keeps the index of `reader`'s log on a thread of its own (which reads back the stored
    /// one first), reading the log while `writer_waits`, until `stop` is set; then stores it.
    /// Returns what is kept, for the API, and the thread.
    pub fn spawn(
        reader: LogReader,
        writer_waits: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(Arc<RwLock<Kept>>, std::thread::JoinHandle<()>)> {
        let shared = Arc::new(RwLock::new(Kept::default()));
        let kept = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("spanfold-timeline".into())
            .spawn(move || {
                lowest_priority();
                let mut keeper = Keeper::open(reader);
                std::mem::swap(&mut *kept.write(), &mut *keeper.kept.write());
                keeper.kept = kept;
                if let Err(e) = keeper.run(&writer_waits, &stop) {
                    tracing::warn!("the timeline index stopped: {e}");
                }
                keeper.store(true);
            })?;
        Ok((shared, thread))
    }

    fn run(&mut self, writer_waits: &AtomicBool, stop: &AtomicBool) -> Result<(), StoreError> {
        let go_on = || writer_waits.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed);
        while !stop.load(Ordering::Relaxed) {
            if go_on() {
                self.catch_up(&go_on)?;
                self.store(false);
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

/// Runs the calling thread only when a CPU would otherwise be idle: the index is derived work
/// and must not take time from ingest.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets the calling thread's (0) policy from a valid parameter; lowering needs
        // no privilege, and a refusal only leaves the thread at its usual priority.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if refused {
            tracing::debug!("the timeline index thread keeps its usual priority");
        }
    }
}
