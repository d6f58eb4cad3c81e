//! Merge gates: the operator's command, run in a submitted feature's worktree on its own thread
//! before the merge; the cycle that merges picks up its result.

use std::path::PathBuf;
use std::time::Duration;

use crate::fact::MergeResult;
use crate::git;
use crate::plan::MergeCandidate;
use crate::reducer::Config;

use super::execute::Workspace;
use super::merge::merge_span;
use super::{CoordError, Coordinator};

/// A merge gate running on its own thread.
pub struct RunningGate {
    handle: std::thread::JoinHandle<git::GateResult>,
    /// The branch's tip the gate runs on: a result for another tip is stale.
    tip: String,
}

impl RunningGate {
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Merge gates running, by feature.
pub type Gates = std::collections::BTreeMap<String, RunningGate>;

/// The merge gate the repository's configuration names (never a span).
pub(super) struct GateCommand {
    cmd: String,
    timeout: Duration,
}

impl GateCommand {
    /// `spanfold.validateCmd`, with `spanfold.validateTimeout` in seconds (30 minutes unless
    /// set); None without a command.
    pub(super) fn read(workspace: &dyn Workspace) -> Result<Option<GateCommand>, CoordError> {
        let cmd = workspace.config_value("spanfold.validateCmd")?;
        let timeout = workspace
            .config_value("spanfold.validateTimeout")?
            .and_then(|t| t.trim().parse().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        Ok(cmd.map(|cmd| GateCommand { cmd, timeout }))
    }
}

/// What the merge gate says about a candidate, for now.
pub(super) enum GateVerdict {
    Passed,
    /// Still running in the background: a later cycle picks up its result.
    Running,
    /// Failed, with the command, how it ended and the tail of its output.
    Failed(String),
}

impl Coordinator {
    /// The merge gates running, taken out so that the log can be let go while they run (the
    /// CLI); [`Coordinator::restore_gates`] hands them to the coordinator opened afterwards.
    pub fn take_gates(&mut self) -> Gates {
        std::mem::take(&mut self.gates)
    }

    pub fn restore_gates(&mut self, gates: Gates) {
        self.gates.extend(gates);
    }

    /// Runs merge gates in the background; later cycles pick up their results.
    pub fn background_gates(&mut self) {
        self.background_gates = true;
    }

    /// Whether a merge gate runs or has a result no cycle has picked up yet: the server then
    /// checks back soon. (A gate may end before the server first looks: "still running" alone
    /// left its result waiting for the next span.)
    pub fn gates_pending(&self) -> bool {
        !self.gates.is_empty()
    }

    /// Whether the merge gate of `feature` is still running.
    pub(super) fn gate_busy(&self, feature: &str) -> bool {
        self.gates
            .get(feature)
            .is_some_and(|g| !g.handle.is_finished())
    }

    /// Runs the merge gate of `c` in its worktree (unless it runs already on the branch's
    /// current tip) and says what it found. Without background gates, waits for it.
    pub(super) fn gate(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        c: &MergeCandidate,
        gate: &GateCommand,
        worktree: &str,
    ) -> Result<GateVerdict, CoordError> {
        // A gate that ran on an older tip (the agent committed again meanwhile) tested
        // something else: it runs again on what would be merged.
        let tip = workspace.branch_tip(&c.branch)?;
        if self.gates.get(&c.feature).is_some_and(|g| g.tip != tip) {
            self.gates.remove(&c.feature);
        }
        if !self.gates.contains_key(&c.feature) {
            self.start_gate(config, c, gate, PathBuf::from(worktree), tip)?;
        }
        let finished = self
            .gates
            .get(&c.feature)
            .is_some_and(|g| g.handle.is_finished());
        if !finished && self.background_gates {
            return Ok(GateVerdict::Running);
        }
        let result = match self.gates.remove(&c.feature).map(|g| g.handle.join()) {
            Some(Ok(r)) => r,
            _ => git::GateResult {
                passed: false,
                summary: "the merge gate stopped unexpectedly".into(),
            },
        };
        Ok(match result.passed {
            true => GateVerdict::Passed,
            false => GateVerdict::Failed(result.summary),
        })
    }

    /// Records that the gate starts, then starts it on its own thread.
    fn start_gate(
        &mut self,
        config: &Config,
        c: &MergeCandidate,
        gate: &GateCommand,
        dir: PathBuf,
        tip: String,
    ) -> Result<(), CoordError> {
        let started = git::MergeOutcome::Deferred {
            reason: format!("running the merge gate `{}`", gate.cmd),
        };
        let s = merge_span(
            &mut self.ids,
            self.clock.now(),
            config,
            c,
            MergeResult::GateStarted,
            &started,
        );
        self.record(vec![s])?;
        let (cmd, timeout) = (gate.cmd.clone(), gate.timeout);
        let handle = std::thread::spawn(move || git::run_gate(&cmd, &dir, timeout));
        self.gates
            .insert(c.feature.clone(), RunningGate { handle, tip });
        Ok(())
    }
}
