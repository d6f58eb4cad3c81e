//! The closed sets of words spans carry that the view keeps too: agent states, priority and
//! complexity, each with its exact wire string. What they mean to the fold (the lifecycle's
//! moves, complexity against effort) is the reducer's, in `reducer/vocabulary.rs`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Idle,
    Claiming,
    Working,
    Validating,
    Submitting,
    Finished,
    Error,
}

impl AgentState {
    pub const ALL: [AgentState; 7] = [
        AgentState::Idle,
        AgentState::Claiming,
        AgentState::Working,
        AgentState::Validating,
        AgentState::Submitting,
        AgentState::Finished,
        AgentState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Claiming => "claiming",
            AgentState::Working => "working",
            AgentState::Validating => "validating",
            AgentState::Submitting => "submitting",
            AgentState::Finished => "finished",
            AgentState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    Low,
    Medium,
    High,
}

impl Complexity {
    pub const ALL: [Complexity; 3] = [Complexity::Low, Complexity::Medium, Complexity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Low => "low",
            Complexity::Medium => "medium",
            Complexity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Complexity> {
        Complexity::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
