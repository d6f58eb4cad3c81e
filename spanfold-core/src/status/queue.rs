//! The merge queue as status shows it: the features waiting for their merge, in the order
//! they merge, and the latest to leave it.

use serde::{Deserialize, Serialize};

use crate::reducer::{Priority, View};

/// A submitted feature in the merge queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntryJson {
    /// 1 for the next to merge.
    pub position: usize,
    pub feature: String,
    pub agent: Option<String>,
    pub priority: Priority,
    /// `testing` while its merge gate runs on the merged result, `awaiting_approval` while a
    /// person's approval is wanted (`spanfold.requireApproval`), else `waiting`.
    pub state: String,
    /// Why it waits, when it had to (the main checkout's own changes, a moved base, …).
    pub reason: Option<String>,
}

/// A feature that left the merge queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDoneJson {
    pub feature: String,
    pub agent: String,
    /// `merged`, or `failed`: sent back to its agent.
    pub state: String,
    /// The commit it merged at, or why it was sent back.
    pub note: Option<String>,
    /// When, RFC 3339.
    pub at: String,
}

/// The features waiting for their merge, in the order they merge.
pub fn entries(view: &View) -> Vec<QueueEntryJson> {
    crate::plan::merge_queue(view)
        .into_iter()
        .enumerate()
        .map(|(i, f)| QueueEntryJson {
            position: i + 1,
            feature: f.name.clone(),
            agent: f.assigned_agent.clone(),
            priority: f.priority,
            state: if f.gate_running {
                "testing"
            } else if f.awaiting_approval {
                "awaiting_approval"
            } else {
                "waiting"
            }
            .to_owned(),
            reason: f.merge_note.clone(),
        })
        .collect()
}

/// The latest features to leave the merge queue, newest first.
pub fn done(view: &View) -> Vec<QueueDoneJson> {
    view.queue_done
        .iter()
        .rev()
        .map(|d| QueueDoneJson {
            feature: d.feature.clone(),
            agent: d.agent.clone(),
            state: if d.merged { "merged" } else { "failed" }.to_owned(),
            note: d.note.clone(),
            at: super::rfc3339(d.at.time),
        })
        .collect()
}
