//! The facts of `spans/agent.yaml`: what an agent reports (registration, progress, validation,
//! messages) and what an operator does to one (reset, its token).

use super::{AgentState, Closed, Complexity, Out, clamped, closed_set, list, required, seconds};
use crate::model::{Event, as_bool, as_double, as_int, as_str};
use crate::names;
use crate::vocab::attr;

/// The reason a span that must name its agent gives when it does not.
fn no_agent() -> String {
    "the span has no agent.id".to_string()
}

/// `agent.registration`: an agent and what it can do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Registration<'a> {
    pub agent_id: &'a str,
    /// The three capability lists as sent (the view keeps them lower-cased, as sets).
    pub languages: Vec<&'a str>,
    pub frameworks: Vec<&'a str>,
    pub expertise_areas: Vec<&'a str>,
    /// 1 to 1024 as read (1 when absent).
    pub max_concurrent_features: Option<u32>,
    /// An unknown word reads as no preference.
    pub preferred_complexity: Option<Complexity>,
    /// Its own lease, when it sent a positive one.
    pub lease_seconds: Option<u64>,
    /// What its LLM requests may cost a day, in dollars, when it sent a positive amount.
    pub budget_usd_per_day: Option<f64>,
    /// It works on another host: its features' branches go through the remote.
    pub remote: bool,
}

impl<'a> Registration<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let agent_id = required(ev, attr::AGENT_ID, no_agent)?;
        names::agent_id(agent_id).map_err(|e| e.to_string())?;
        Ok(Registration {
            agent_id,
            languages: list(ev, attr::AGENT_LANGUAGES),
            frameworks: list(ev, attr::AGENT_FRAMEWORKS),
            expertise_areas: list(ev, attr::AGENT_EXPERTISE_AREAS),
            max_concurrent_features: clamped(ev.attr(attr::AGENT_MAX_CONCURRENT_FEATURES), 1, 1024),
            preferred_complexity: ev
                .str_attr(attr::AGENT_PREFERRED_COMPLEXITY)
                .and_then(Complexity::parse),
            lease_seconds: seconds(ev, attr::AGENT_LEASE_SECONDS),
            budget_usd_per_day: ev
                .double_attr(attr::AGENT_BUDGET_USD_PER_DAY)
                .filter(|u| u.is_finite() && *u > 0.0),
            remote: ev.attr(attr::AGENT_REMOTE).and_then(as_bool) == Some(true),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.list(attr::AGENT_LANGUAGES, &self.languages);
        out.list(attr::AGENT_FRAMEWORKS, &self.frameworks);
        out.list(attr::AGENT_EXPERTISE_AREAS, &self.expertise_areas);
        out.int(
            attr::AGENT_MAX_CONCURRENT_FEATURES,
            self.max_concurrent_features.map(i64::from),
        );
        out.opt_str(
            attr::AGENT_PREFERRED_COMPLEXITY,
            self.preferred_complexity.map(Complexity::as_str),
        );
        out.uint(attr::AGENT_LEASE_SECONDS, self.lease_seconds);
        out.double(attr::AGENT_BUDGET_USD_PER_DAY, self.budget_usd_per_day);
        if self.remote {
            out.bool(attr::AGENT_REMOTE, true);
        }
    }
}

/// `agent.work_progress`: the state an agent reports, and how far along it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkProgress<'a> {
    pub agent_id: &'a str,
    pub state: AgentState,
    pub feature_name: Option<&'a str>,
    /// The numbers as sent: the rule checks their ranges (a percentage 0 to 100, counts 0 or
    /// more) only after the lifecycle's checks, whose reasons come first.
    pub percentage: Option<f64>,
    pub files_modified: Option<i64>,
    pub lines_added: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl<'a> WorkProgress<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        // Progress reports are most of the traffic: read their attributes in one pass.
        let [state, feature, percentage, files, lines, duration] = ev.attrs([
            attr::AGENT_STATE,
            attr::FEATURE_NAME,
            attr::WORK_PROGRESS_PERCENTAGE,
            attr::WORK_FILES_MODIFIED,
            attr::WORK_LINES_ADDED,
            attr::WORK_DURATION_MS,
        ]);
        let state = state
            .and_then(as_str)
            .and_then(AgentState::parse)
            .ok_or_else(|| "agent.state is missing or not a lifecycle state".to_string())?;
        Ok(WorkProgress {
            agent_id: required(ev, attr::AGENT_ID, no_agent)?,
            state,
            feature_name: feature.and_then(as_str),
            percentage: percentage.and_then(as_double),
            files_modified: files.and_then(as_int),
            lines_added: lines.and_then(as_int),
            duration_ms: duration.and_then(as_int),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::AGENT_STATE, self.state.as_str());
        out.opt_str(attr::FEATURE_NAME, self.feature_name);
        out.double(attr::WORK_PROGRESS_PERCENTAGE, self.percentage);
        out.int(attr::WORK_FILES_MODIFIED, self.files_modified);
        out.int(attr::WORK_LINES_ADDED, self.lines_added);
        out.int(attr::WORK_DURATION_MS, self.duration_ms);
    }
}

closed_set! {
    /// `validation.result`.
    ValidationResult {
        Passed = "passed",
        Failed = "failed",
    }
}

/// `agent.validation`: the result of validating an agent's work.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation<'a> {
    pub agent_id: &'a str,
    pub result: ValidationResult,
    pub feature_name: Option<&'a str>,
    pub issues_found: Option<i64>,
    /// `validation.type`: tests, lint, review.
    pub kind: Option<&'a str>,
}

impl<'a> Validation<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let result = ev
            .str_attr(attr::VALIDATION_RESULT)
            .and_then(ValidationResult::parse)
            .ok_or_else(|| "validation.result must be passed or failed".to_string())?;
        Ok(Validation {
            agent_id: required(ev, attr::AGENT_ID, no_agent)?,
            result,
            feature_name: ev.str_attr(attr::FEATURE_NAME),
            issues_found: ev.int_attr(attr::VALIDATION_ISSUES_FOUND),
            kind: ev.str_attr(attr::VALIDATION_TYPE),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::VALIDATION_RESULT, self.result.as_str());
        out.opt_str(attr::FEATURE_NAME, self.feature_name);
        out.int(attr::VALIDATION_ISSUES_FOUND, self.issues_found);
        out.opt_str(attr::VALIDATION_TYPE, self.kind);
    }
}

/// `agent.reset`: an operator brings an agent back to idle.
#[derive(Debug, Clone, PartialEq)]
pub struct Reset<'a> {
    pub agent_id: &'a str,
    pub reason: Option<&'a str>,
}

impl<'a> Reset<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        Ok(Reset {
            agent_id: required(ev, attr::AGENT_ID, no_agent)?,
            reason: ev.str_attr(attr::RESET_REASON),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.opt_str(attr::RESET_REASON, self.reason);
    }
}

/// `agent.communication`: a message from an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Communication<'a> {
    pub agent_id: &'a str,
    pub target: Option<&'a str>,
    pub message: Option<&'a str>,
}

impl<'a> Communication<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        Ok(Communication {
            agent_id: required(ev, attr::AGENT_ID, no_agent)?,
            target: ev.str_attr(attr::COMMUNICATION_TARGET),
            message: ev.str_attr(attr::COMMUNICATION_MESSAGE),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.opt_str(attr::COMMUNICATION_TARGET, self.target);
        out.opt_str(attr::COMMUNICATION_MESSAGE, self.message);
    }
}

/// `agent.token_issued`: the SHA-256 of the token an agent was issued.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIssued<'a> {
    pub agent_id: &'a str,
    /// 64 hex digits, in the case they were sent.
    pub token_sha256: &'a str,
}

impl<'a> TokenIssued<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let agent_id = required(ev, attr::AGENT_ID, || {
            "agent.token_issued needs agent.id".to_string()
        })?;
        names::agent_id(agent_id).map_err(|e| e.to_string())?;
        let token_sha256 = ev
            .str_attr(attr::AGENT_TOKEN_SHA256)
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                "agent.token_issued needs agent.token_sha256: 64 hex digits".to_string()
            })?;
        Ok(TokenIssued {
            agent_id,
            token_sha256,
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::AGENT_TOKEN_SHA256, self.token_sha256);
    }
}

closed_set! {
    /// `process.event`: what happened to an agent's process under `agents run`.
    ProcessEvent {
        Started = "started",
        Running = "running",
        Exited = "exited",
    }
}

/// `agent.process`: the launcher started, still runs, or saw the end of an agent's process.
#[derive(Debug, Clone, PartialEq)]
pub struct Process<'a> {
    pub agent_id: &'a str,
    pub event: ProcessEvent,
    pub feature_name: Option<&'a str>,
    pub command: Option<&'a str>,
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    pub signal: Option<&'a str>,
    pub duration_ms: Option<i64>,
    pub outcome: Option<&'a str>,
}

impl<'a> Process<'a> {
    pub(super) fn read(ev: &Event<'a>) -> Result<Self, String> {
        let event = ev
            .str_attr(attr::PROCESS_EVENT)
            .and_then(ProcessEvent::parse)
            .ok_or_else(|| "process.event must be started, running or exited".to_string())?;
        Ok(Process {
            agent_id: required(ev, attr::AGENT_ID, no_agent)?,
            event,
            feature_name: ev.str_attr(attr::FEATURE_NAME),
            command: ev.str_attr(attr::PROCESS_COMMAND),
            pid: ev.int_attr(attr::PROCESS_PID),
            exit_code: ev.int_attr(attr::PROCESS_EXIT_CODE),
            signal: ev.str_attr(attr::PROCESS_SIGNAL),
            duration_ms: ev.int_attr(attr::PROCESS_DURATION_MS),
            outcome: ev.str_attr(attr::PROCESS_OUTCOME),
        })
    }

    pub(super) fn write(&self, out: &mut Out) {
        out.str(attr::AGENT_ID, self.agent_id);
        out.str(attr::PROCESS_EVENT, self.event.as_str());
        out.opt_str(attr::FEATURE_NAME, self.feature_name);
        out.opt_str(attr::PROCESS_COMMAND, self.command);
        out.int(attr::PROCESS_PID, self.pid);
        out.int(attr::PROCESS_EXIT_CODE, self.exit_code);
        out.opt_str(attr::PROCESS_SIGNAL, self.signal);
        out.int(attr::PROCESS_DURATION_MS, self.duration_ms);
        out.opt_str(attr::PROCESS_OUTCOME, self.outcome);
    }
}
