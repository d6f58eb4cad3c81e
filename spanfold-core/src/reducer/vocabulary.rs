//! The closed sets of words the view uses — feature and worktree statuses — and the rules on the
//! words spans carry (their definitions live with the spans, in `crate::fact`): the moves the
//! agent lifecycle allows, and complexity against effort.

use serde::{Deserialize, Serialize};

use super::{AgentState, Complexity};

impl AgentState {
    /// The states an agent may report next. `idle → claiming` happens through an assignment and
    /// `error → idle` through a reset; both are listed so the message can say how.
    pub fn next_states(self) -> &'static [AgentState] {
        use AgentState::*;
        match self {
            Idle => &[Claiming, Error],
            Claiming => &[Working, Error],
            Working => &[Validating, Error],
            Validating => &[Submitting, Working, Error],
            Submitting => &[Finished, Error],
            // An agent holding more than one feature goes back to work on the next one.
            Finished => &[Idle, Working, Error],
            Error => &[],
        }
    }

    pub fn can_become(self, next: AgentState) -> bool {
        self.next_states().contains(&next)
    }

    /// Neither idle nor in error: "active" in the status summary.
    pub fn is_active(self) -> bool {
        !matches!(self, AgentState::Idle | AgentState::Error)
    }
}

impl Complexity {
    /// Story points to complexity: 1-3 low, 4-6 medium, 7 and up high.
    pub fn of_effort(effort: u32) -> Complexity {
        match effort {
            0..=3 => Complexity::Low,
            4..=6 => Complexity::Medium,
            _ => Complexity::High,
        }
    }

    pub fn rank(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStatus {
    Queued,
    Assigned,
    InProgress,
    Validating,
    Merging,
    Completed,
    Conflicted,
    Cancelled,
    /// Over its budget: no agent holds it, it is not placed again until its budget is raised.
    Held,
}

impl FeatureStatus {
    pub fn parse(s: &str) -> Option<FeatureStatus> {
        FeatureStatus::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub const ALL: [FeatureStatus; 9] = [
        FeatureStatus::Queued,
        FeatureStatus::Assigned,
        FeatureStatus::InProgress,
        FeatureStatus::Validating,
        FeatureStatus::Merging,
        FeatureStatus::Completed,
        FeatureStatus::Conflicted,
        FeatureStatus::Cancelled,
        FeatureStatus::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Queued => "queued",
            FeatureStatus::Assigned => "assigned",
            FeatureStatus::InProgress => "in_progress",
            FeatureStatus::Validating => "validating",
            FeatureStatus::Merging => "merging",
            FeatureStatus::Completed => "completed",
            FeatureStatus::Conflicted => "conflicted",
            FeatureStatus::Cancelled => "cancelled",
            FeatureStatus::Held => "held",
        }
    }

    /// Held by an agent and not finished.
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            FeatureStatus::Assigned
                | FeatureStatus::InProgress
                | FeatureStatus::Validating
                | FeatureStatus::Merging
                | FeatureStatus::Conflicted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorktreeStatus {
    /// Locked for an agent that holds its feature.
    Active,
    /// Its agent let go (reset); kept with its work until the feature is placed again.
    Abandoned,
    /// Its feature is done; the worktree waits for merge and cleanup.
    Completed,
}

impl WorktreeStatus {
    pub const ALL: [WorktreeStatus; 3] = [
        WorktreeStatus::Active,
        WorktreeStatus::Abandoned,
        WorktreeStatus::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorktreeStatus::Active => "active",
            WorktreeStatus::Abandoned => "abandoned",
            WorktreeStatus::Completed => "completed",
        }
    }
}
