//! The feature counts the fold keeps up to date, so that a status summary or a health score
//! need not walk every feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Capabilities, Feature, FeatureStatus};

/// Features counted by status, and the open ones (queued or in progress) by what they require.
/// Kept up to date at every change of a feature's status or requirements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureTally {
    /// Indexed as [`FeatureStatus::ALL`].
    pub by_status: [usize; FeatureStatus::ALL.len()],
    pub open_by_requires: BTreeMap<Capabilities, usize>,
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
    }

    pub(super) fn remove(&mut self, f: &Feature) {
        self.by_status[f.status as usize] -= 1;
        if Self::is_open(f.status) {
            self.leave(&f.requires);
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

    /// A feature requiring `requires` went from `from` to `to`.
    pub(super) fn moved(
        &mut self,
        requires: &Capabilities,
        from: FeatureStatus,
        to: FeatureStatus,
    ) {
        self.by_status[from as usize] -= 1;
        self.by_status[to as usize] += 1;
        match (Self::is_open(from), Self::is_open(to)) {
            (true, false) => self.leave(requires),
            (false, true) => *self.open_by_requires.entry(requires.clone()).or_default() += 1,
            _ => {}
        }
    }
}
