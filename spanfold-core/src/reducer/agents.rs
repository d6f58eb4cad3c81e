//! What agents report — registration, progress, validation, messages — and the lifecycle rules
//! those reports must follow; an operator's reset and the token an agent is issued.

use super::{Agent, AgentError, AgentState, AsOf, Capabilities, FeatureStatus, Progress, View};
use crate::fact::{
    Communication, Registration, Reset, TokenIssued, Validation, ValidationResult, WorkProgress,
};
use crate::vocab::attr;

impl View {
    /// The registered agent a span names, with its activity refreshed.
    pub(super) fn agent_of(&mut self, id: &str, at: AsOf) -> Result<&mut Agent, String> {
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| format!("agent {id} is not registered; register it first"))?;
        agent.last_activity = at.time;
        Ok(agent)
    }

    pub(super) fn register(&mut self, r: Registration<'_>, at: AsOf) -> Result<(), String> {
        let id = r.agent_id;
        let capabilities =
            Capabilities::from_lists(&r.languages, &r.frameworks, &r.expertise_areas);
        let agent = self.agents.entry(id.to_owned()).or_insert_with(|| Agent {
            id: id.to_owned(),
            capabilities: Capabilities::default(),
            max_concurrent_features: 1,
            preferred_complexity: None,
            state: AgentState::Idle,
            assignments: Vec::new(),
            registered_seq: at.seq,
            last_activity: at.time,
            progress: Progress::default(),
            error: None,
            lease_seconds: None,
            anomalies: 0,
            last_message: None,
            paused_for_budget: false,
            remote: false,
        });
        agent.capabilities = capabilities;
        agent.max_concurrent_features = r.max_concurrent_features.unwrap_or(1);
        agent.preferred_complexity = r.preferred_complexity;
        agent.lease_seconds = r.lease_seconds;
        // Registering again says where the agent works from now on; features it holds keep
        // where their branches are.
        agent.remote = r.remote;
        agent.last_activity = at.time;
        self.set_day_budget(id, r.budget_usd_per_day, at);
        Ok(())
    }

    pub(super) fn message(&mut self, m: Communication<'_>, at: AsOf) -> Result<(), String> {
        let agent = self.agent_of(m.agent_id, at)?;
        if let Some(text) = m.message {
            agent.last_message = Some((at.time, text.to_owned()));
        }
        Ok(())
    }

    /// The feature a report is about: the one it names (which the agent must hold), the agent's
    /// only one, or its only one with work to do (not waiting for its merge). A report that
    /// moves a feature (`needs`) must be unambiguous: otherwise the agent would move while no
    /// feature does, and wait for a merge that never comes.
    fn reported_feature(
        &self,
        id: &str,
        named: Option<&str>,
        needs: bool,
    ) -> Result<Option<String>, String> {
        let Some(agent) = self.agents.get(id) else {
            return Err(format!("agent {id} is not registered; register it first"));
        };
        match named {
            Some(name) if agent.assignments.iter().any(|a| a == name) => {
                return Ok(Some(name.to_owned()));
            }
            Some(name) => {
                return Err(format!(
                    "agent {} does not hold feature {name} (it holds: {})",
                    agent.id,
                    list_or_none(&agent.assignments)
                ));
            }
            None if agent.assignments.len() == 1 => return Ok(agent.assignments.first().cloned()),
            None => {}
        }
        let open: Vec<String> = agent
            .assignments
            .iter()
            .filter(|n| {
                self.features
                    .get(*n)
                    .is_some_and(|f| f.status != FeatureStatus::Merging)
            })
            .cloned()
            .collect();
        match open.len() {
            1 => Ok(open.into_iter().next()),
            _ if !needs => Ok(None),
            0 if agent.assignments.is_empty() => Ok(None),
            0 => Err(format!(
                "agent {} has no feature with work to do: {} wait for their merge",
                agent.id,
                list_or_none(&agent.assignments)
            )),
            n => Err(format!(
                "agent {} holds {n} features with work to do ({}): say which one this report is about (--feature NAME, or the span attribute feature.name)",
                agent.id,
                list_or_none(&open)
            )),
        }
    }

    pub(super) fn progress(&mut self, p: WorkProgress<'_>, at: AsOf) -> Result<(), String> {
        let next = p.state;
        if next == AgentState::Idle
            && let Some(agent) = self.agents.get_mut(p.agent_id)
            && agent.state == AgentState::Claiming
        {
            // An idle report sent before the agent could see its assignment crossed the
            // decision on the wire: it is not a refusal. It does not renew the lease (nor the
            // activity the lease runs from): an agent that only ever reports idle never saw its
            // work.
            let _ = agent;
            return Ok(());
        }
        let id = self.agent_of(p.agent_id, at)?.id.clone();
        let needs = matches!(next, AgentState::Validating | AgentState::Submitting);
        let feature = self.reported_feature(&id, p.feature_name, needs)?;
        let agent = self.agent_of(p.agent_id, at)?;
        let current = agent.state;
        if current == AgentState::Error && next != current {
            return Err(in_error(agent));
        }
        if next != current && !current.can_become(next) {
            return Err(illegal(current, next));
        }
        if next == AgentState::Idle && !agent.assignments.is_empty() {
            return Err(format!(
                "agent {} still holds {}; report finished for each, or reset the agent",
                agent.id,
                list_or_none(&agent.assignments)
            ));
        }
        let progress = Progress {
            percentage: p.percentage,
            files_modified: p.files_modified,
            lines_added: p.lines_added,
            duration_ms: p.duration_ms,
        };
        if let Some(p) = progress.percentage.filter(|p| !(0.0..=100.0).contains(p)) {
            return Err(format!(
                "work.progress_percentage is {p}; a percentage is a number from 0 to 100"
            ));
        }
        if let Some((key, n)) = [
            (attr::WORK_FILES_MODIFIED, progress.files_modified),
            (attr::WORK_LINES_ADDED, progress.lines_added),
            (attr::WORK_DURATION_MS, progress.duration_ms),
        ]
        .into_iter()
        .find_map(|(k, n)| n.filter(|n| *n < 0).map(|n| (k, n)))
        {
            return Err(format!("{key} is {n}; a count is 0 or more"));
        }
        // Only once nothing can refuse the report: an illegal input changes nothing.
        if next == AgentState::Error && current != next {
            agent.error = Some(AgentError {
                since: at.time,
                silent_seconds: None,
            });
        }
        agent.state = next;
        agent.progress = progress;
        if let Some(name) = feature {
            // A feature is completed by its merge, not by its agent's word: `finished` from an
            // agent changes only the agent.
            let status = match next {
                AgentState::Working => Some(FeatureStatus::InProgress),
                AgentState::Validating => Some(FeatureStatus::Validating),
                AgentState::Submitting => Some(FeatureStatus::Merging),
                _ => None,
            };
            if let Some(status) = status {
                self.set_feature_status(&name, status);
            }
        }
        Ok(())
    }

    pub(super) fn validation(&mut self, v: Validation<'_>, at: AsOf) -> Result<(), String> {
        let id = self.agent_of(v.agent_id, at)?.id.clone();
        let feature = self.reported_feature(&id, v.feature_name, true)?;
        let agent = self.agent_of(v.agent_id, at)?;
        if !matches!(agent.state, AgentState::Working | AgentState::Validating) {
            return Err(format!(
                "agent {} is {}; validation is reported while working or validating",
                agent.id,
                agent.state.as_str()
            ));
        }
        let (state, status) = match v.result {
            ValidationResult::Passed => (AgentState::Submitting, FeatureStatus::Merging),
            ValidationResult::Failed => (AgentState::Working, FeatureStatus::InProgress),
        };
        agent.state = state;
        if let Some(name) = feature {
            self.set_feature_status(&name, status);
        }
        Ok(())
    }

    pub(super) fn reset(&mut self, r: Reset<'_>, at: AsOf) -> Result<(), String> {
        let agent = self.agent_of(r.agent_id, at)?;
        agent.state = AgentState::Idle;
        agent.progress = Progress::default();
        agent.error = None;
        let released = std::mem::take(&mut agent.assignments);
        let id = agent.id.clone();
        // The reason (a launcher's: the command failed, the set-up failed) is what the
        // feature's waiting says, so that whoever takes it next sees why it came back.
        let why = match r.reason {
            Some(reason) => format!("agent {id} was reset: {reason}; waiting to be placed again"),
            None => format!("agent {id} was reset; waiting to be placed again"),
        };
        for name in released {
            self.requeue(&name, why.clone(), at.time);
        }
        Ok(())
    }

    pub(super) fn token_issued(&mut self, t: TokenIssued<'_>) -> Result<(), String> {
        self.credentials
            .insert(t.agent_id.to_owned(), t.token_sha256.to_ascii_lowercase());
        Ok(())
    }
}

/// What an agent in error is told when it reports again: why, and how it comes back.
fn in_error(agent: &Agent) -> String {
    let why = match agent.error.as_ref().and_then(|e| e.silent_seconds) {
        Some(silent) => format!(
            "its lease expired after {silent}s of silence and its features went back to the queue"
        ),
        None => "it reported error".to_string(),
    };
    format!(
        "agent {} is in error ({why}); it comes back only through `spanfold agents reset {}`",
        agent.id, agent.id
    )
}

fn illegal(from: AgentState, to: AgentState) -> String {
    let allowed: Vec<&str> = from.next_states().iter().map(|s| s.as_str()).collect();
    let hint = match from {
        AgentState::Error => "an agent in error comes back only through `agents reset`".to_string(),
        AgentState::Idle => {
            "an idle agent becomes claiming when the coordinator assigns it a feature".to_string()
        }
        _ => format!("{} may become {}", from.as_str(), allowed.join(" or ")),
    };
    format!(
        "illegal transition {} → {}: {hint}",
        from.as_str(),
        to.as_str()
    )
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
