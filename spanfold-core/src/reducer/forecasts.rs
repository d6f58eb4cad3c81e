//! The conflict radar's forecasts as the view keeps them: for each pair of an active feature
//! and the base branch or another active feature, the latest forecast that is not clear. A clear
//! forecast removes the pair; a feature that leaves the active states (merged, cancelled, held)
//! takes its pairs with it, so the view holds only risks that are current.

use serde::{Deserialize, Serialize};

use super::{AsOf, View};
use crate::fact::{ConflictForecast, ForecastKind};

/// A forecast that is not clear, between `feature` and `other` (the base branch when `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    pub feature: String,
    pub other: Option<String>,
    /// A textual conflict; otherwise an overlap (the same files, merging cleanly).
    pub conflict: bool,
    pub paths: Vec<String>,
    pub hunks: Vec<String>,
    pub commit: String,
    pub other_commit: String,
    /// Where the forecast was recorded.
    pub at: AsOf,
}

impl Risk {
    pub fn kind(&self) -> ForecastKind {
        if self.conflict {
            ForecastKind::Conflict
        } else {
            ForecastKind::Overlap
        }
    }

    /// Whether this risk is between `name` and something else; the other side, if so (`None`
    /// for the base branch).
    pub fn seen_from<'r>(&'r self, name: &str) -> Option<Option<&'r str>> {
        if self.feature == name {
            Some(self.other.as_deref())
        } else if self.other.as_deref() == Some(name) {
            Some(Some(self.feature.as_str()))
        } else {
            None
        }
    }
}

impl View {
    /// `coordination.conflict_forecast`.
    pub(in crate::reducer) fn forecast(
        &mut self,
        f: ConflictForecast<'_>,
        at: AsOf,
    ) -> Result<(), String> {
        for name in std::iter::once(f.feature_name).chain(f.other_feature) {
            if !self.features.contains_key(name) {
                return Err(format!(
                    "a conflict forecast on feature {name}, which was never requested"
                ));
            }
        }
        if f.other_feature == Some(f.feature_name) {
            return Err(format!(
                "a conflict forecast of feature {} with itself",
                f.feature_name
            ));
        }
        let same_pair =
            |r: &Risk| r.feature == f.feature_name && r.other.as_deref() == f.other_feature;
        self.risks.retain(|r| !same_pair(r));
        if f.kind != ForecastKind::Clear {
            self.risks.push(Risk {
                feature: f.feature_name.to_owned(),
                other: f.other_feature.map(str::to_owned),
                conflict: f.kind == ForecastKind::Conflict,
                paths: f.paths.iter().map(|p| (*p).to_owned()).collect(),
                hunks: f.hunks.iter().map(|h| (*h).to_owned()).collect(),
                commit: f.commit.to_owned(),
                other_commit: f.other_commit.to_owned(),
                at,
            });
        }
        Ok(())
    }

    /// `name` is no longer worked on: its forecasts no longer say anything.
    pub(in crate::reducer) fn forget_risks(&mut self, name: &str) {
        if !self.risks.is_empty() {
            self.risks.retain(|r| r.seen_from(name).is_none());
        }
    }

    /// The current risks of `name`, in the order they were recorded.
    pub fn risks_of<'v>(&'v self, name: &'v str) -> impl Iterator<Item = &'v Risk> + 'v {
        self.risks
            .iter()
            .filter(move |r| r.seen_from(name).is_some())
    }
}
