//! The feature counts the fold keeps up to date, so that a status summary or a health score
//! need not walk every feature.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Capabilities, Feature, FeatureStatus, Priority};

/// Features counted by status, the open ones (queued or in progress) by what they require, and
/// the queue itself per requirement set, in placement order. Kept up to date at every change of
/// a feature's status, requirements, priority or place in the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureTally {
    /// Indexed as [`FeatureStatus::ALL`].
    pub by_status: [usize; FeatureStatus::ALL.len()],
    pub open_by_requires: BTreeMap<Capabilities, usize>,
    /// The queued features of each requirement set, first to be placed first: a cycle visits
    /// only the sets some free agent can take, and in each only the features it places.
    pub queue: BTreeMap<Capabilities, BTreeSet<QueueKey>>,
}

/// A queued feature's place: higher priority first, then the earlier request, then the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueueKey {
    pub priority: Reverse<Priority>,
    pub queued_seq: u64,
    pub name: String,
}

impl QueueKey {
    pub fn of(f: &Feature) -> QueueKey {
        QueueKey {
            priority: Reverse(f.priority),
            queued_seq: f.queued_seq,
            name: f.name.clone(),
        }
    }
}

impl FeatureTally {
    fn is_open(status: FeatureStatus) -> bool {
        status == FeatureStatus::Queued || status.is_in_progress()
    }

    /// Counts from scratch (tests compare it with the kept counts).
    pub fn of<'a>(features: impl IntoIterator<Item = &'a Feature>) -> FeatureTally {
        let mut tally = FeatureTally::default();
        for f in features {
            tally.add(f);
        }
        tally
    }

    pub(super) fn add(&mut self, f: &Feature) {
        self.by_status[f.status as usize] += 1;
        if Self::is_open(f.status) {
            *self.open_by_requires.entry(f.requires.clone()).or_default() += 1;
        }
        if f.status == FeatureStatus::Queued {
            self.enqueue(f);
        }
    }

    pub(super) fn remove(&mut self, f: &Feature) {
        self.by_status[f.status as usize] -= 1;
        if Self::is_open(f.status) {
            self.leave(&f.requires);
        }
        if f.status == FeatureStatus::Queued {
            self.dequeue(f);
        }
    }

    fn enqueue(&mut self, f: &Feature) {
        self.queue
            .entry(f.requires.clone())
            .or_default()
            .insert(QueueKey::of(f));
    }

    fn dequeue(&mut self, f: &Feature) {
        if let Some(set) = self.queue.get_mut(&f.requires) {
            set.remove(&QueueKey::of(f));
            if set.is_empty() {
                self.queue.remove(&f.requires);
            }
        }
    }

    fn leave(&mut self, requires: &Capabilities) {
        if let Some(n) = self.open_by_requires.get_mut(requires) {
            *n -= 1;
            if *n == 0 {
                self.open_by_requires.remove(requires);
            }
        }
    }

    /// Feature `f` went from status `from` to `to` (its status field may say either).
    pub(super) fn moved(&mut self, f: &Feature, from: FeatureStatus, to: FeatureStatus) {
        let requires = &f.requires;
        self.by_status[from as usize] -= 1;
        self.by_status[to as usize] += 1;
        match (Self::is_open(from), Self::is_open(to)) {
            (true, false) => self.leave(requires),
            (false, true) => *self.open_by_requires.entry(requires.clone()).or_default() += 1,
            _ => {}
        }
        match (from == FeatureStatus::Queued, to == FeatureStatus::Queued) {
            (true, false) => self.dequeue(f),
            (false, true) => self.enqueue(f),
            _ => {}
        }
    }
}
