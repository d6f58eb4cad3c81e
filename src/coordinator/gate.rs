//! Merge gates: the operator's command, run on its own thread before a merge on exactly what the
//! base branch would become — the feature merged with the base tip in the object database,
//! checked out in a temporary worktree (removed afterwards, and by the next cycle after a crash)
//! — so that the base only ever moves to a commit that passed. The cycle that merges picks up
//! the result; a base that moved meanwhile is tested again.

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
    /// The gate's result on the merged result and, when that failed, whether the branch alone
    /// passes.
    pub(super) handle: std::thread::JoinHandle<(git::GateResult, Option<bool>)>,
    /// The branch's and the base's tips the gate runs on: a result for others is stale.
    pub(super) tips: String,
    /// What it tests: the merged result the base branch moves to if it passes.
    pub(super) tested: Tested,
    /// The features it tests: one, or a merge queue's batch in queue order.
    pub(super) members: Vec<String>,
    /// A batch's merges, one step per member.
    pub(super) batch: Option<git::BatchTrial>,
}

/// A merged result under test: the base's tip it was made from, the commit, how it merges.
#[derive(Debug, Clone)]
pub(super) struct Tested {
    pub base: String,
    pub commit: String,
    pub kind: git::MergeKind,
}

impl RunningGate {
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Whether it tests any of `features`: a gate of features no longer submitted has no one
    /// to report to.
    pub fn tests_any(&self, features: &[String]) -> bool {
        self.members.iter().any(|m| features.contains(m))
    }
}

/// Merge gates running, by feature (a batch's under [`super::batch::BATCH`]), and where the
/// bisection of a failed batch stands: what a CLI hands from the coordinator it let go to the
/// one it opens next.
#[derive(Default)]
pub struct Gates {
    running: std::collections::BTreeMap<String, RunningGate>,
    /// How many features the next batch may take while a failed batch is bisected
    /// (`spanfold.mergeBatch` when None).
    pub(super) batch_limit: Option<usize>,
}

impl Gates {
    pub fn new() -> Gates {
        Gates::default()
    }
}

impl std::ops::Deref for Gates {
    type Target = std::collections::BTreeMap<String, RunningGate>;
    fn deref(&self) -> &Self::Target {
        &self.running
    }
}

impl std::ops::DerefMut for Gates {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.running
    }
}

/// The merge gate the repository's configuration names (never a span).
pub(super) struct GateCommand {
    pub(super) cmd: String,
    pub(super) timeout: Duration,
    /// `spanfold.copyFiles`: what a worktree gets from the main checkout, the gate's too.
    pub(super) copy: String,
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
        let copy = workspace
            .config_value("spanfold.copyFiles")?
            .unwrap_or_default();
        Ok(cmd.map(|cmd| GateCommand { cmd, timeout, copy }))
    }
}

/// What the merge gate says about a candidate, for now.
pub(super) enum GateVerdict {
    /// The merged result passed: the base branch may move to it.
    Passed(Tested),
    /// Nothing to test: the branch conflicts with the base, or the base already holds it.
    Stays(git::MergeOutcome),
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
        self.gates.batch_limit = gates.batch_limit.or(self.gates.batch_limit);
        self.gates.running.extend(gates.running);
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
            .values()
            .any(|g| !g.handle.is_finished() && g.members.iter().any(|m| m == feature))
    }

    /// Runs the merge gate of `c` on its merge with the base tip (unless it runs already on
    /// the current tips of both) and says what it found. Without background gates, waits.
    pub(super) fn gate(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        c: &MergeCandidate,
        gate: &GateCommand,
    ) -> Result<GateVerdict, CoordError> {
        // A gate that ran on older tips (the agent committed again, or another feature merged)
        // tested something else: it runs again on what would be merged now.
        let tips = format!(
            "{} {}",
            workspace.branch_tip(&c.branch)?,
            workspace.branch_tip(&config.base_branch)?
        );
        if self.gates.get(&c.feature).is_some_and(|g| g.tips != tips) {
            self.gates.remove(&c.feature);
        }
        if !self.gates.contains_key(&c.feature) {
            let tested = match workspace.trial_merge(&c.branch, &c.message())? {
                git::Trial::Stays(outcome) => return Ok(GateVerdict::Stays(outcome)),
                git::Trial::Ready { base, commit, kind } => Tested { base, commit, kind },
            };
            self.start_gate(config, c, gate, tested, tips)?;
        }
        let finished = self
            .gates
            .get(&c.feature)
            .is_some_and(|g| g.handle.is_finished());
        if !finished && self.background_gates {
            return Ok(GateVerdict::Running);
        }
        let Some(running) = self.gates.remove(&c.feature) else {
            return Ok(GateVerdict::Running);
        };
        let (result, alone) = running.handle.join().unwrap_or_else(|_| {
            let failed = git::GateResult {
                passed: false,
                summary: "the merge gate stopped unexpectedly".into(),
            };
            (failed, None)
        });
        if result.passed {
            return Ok(GateVerdict::Passed(running.tested));
        }
        let mut on = format!(
            "tested on {} merged with {} at {}",
            c.branch,
            config.base_branch,
            short(&running.tested.base)
        );
        if alone == Some(true) {
            on.push_str(&self.breaks_together(config, workspace, c)?);
        }
        Ok(GateVerdict::Failed(format!("{} ({on})", result.summary)))
    }

    /// For a branch that passes its gate alone but not merged: the features merged into the
    /// base since it branched, which it breaks together with (the latest 20 looked at).
    fn breaks_together(
        &self,
        config: &Config,
        workspace: &dyn Workspace,
        c: &MergeCandidate,
    ) -> Result<String, CoordError> {
        let merged: Vec<(String, String)> = {
            let view = self.view.read();
            let mut done: Vec<_> = view
                .features
                .values()
                .filter_map(|f| Some((f.merged_at?, f.name.clone(), f.merged_commit.clone()?)))
                .collect();
            done.sort();
            done.into_iter()
                .rev()
                .take(20)
                .map(|(_, n, c)| (n, c))
                .collect()
        };
        let commits: Vec<&str> = merged.iter().map(|(_, c)| c.as_str()).collect();
        let outside = workspace.not_in_branch(&c.branch, &commits)?;
        let mut since: Vec<&str> = merged
            .iter()
            .zip(outside)
            .filter(|(_, out)| *out)
            .map(|((name, _), _)| name.as_str())
            .collect();
        since.sort();
        Ok(match since.is_empty() {
            true => format!("; {} passes the gate alone", c.branch),
            false => format!(
                "; {} passes the gate alone: it breaks together with what merged into {} since it branched: {}; merge {} into the branch and fix it there",
                c.branch,
                config.base_branch,
                since.join(", "),
                config.base_branch
            ),
        })
    }

    /// Records that the gate starts, then starts it on its own thread, in a temporary worktree
    /// of the merged result.
    fn start_gate(
        &mut self,
        config: &Config,
        c: &MergeCandidate,
        gate: &GateCommand,
        tested: Tested,
        tips: String,
    ) -> Result<(), CoordError> {
        let started = git::MergeOutcome::Deferred {
            reason: format!(
                "running the merge gate `{}` on {} merged with {} at {}",
                gate.cmd,
                c.branch,
                config.base_branch,
                short(&tested.base)
            ),
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
        let repo = PathBuf::from(&config.repo);
        // Named by this process too: another process's cycle leaves a live gate's checkout be.
        let name = crate::names::worktree_dir_name(&c.feature);
        let dir = gates_dir(config).join(format!("{}-{name}", std::process::id()));
        let (commit, copy) = (tested.commit.clone(), gate.copy.clone());
        // The branch's own tip: tested alone only when the merged result fails.
        let alone = tips.split(' ').next().unwrap_or_default().to_owned();
        let handle = std::thread::spawn(move || {
            let copy: Vec<&str> = git::copy_patterns(&copy);
            let mut at = git::GateCheckout {
                repo_dir: &repo,
                dir: &dir,
                commit: &commit,
                copy: &copy,
            };
            let merged = git::run_gate_on(&at, &cmd, timeout);
            if merged.passed || alone == commit {
                return (merged, None);
            }
            at.commit = &alone;
            let alone = git::run_gate_on(&at, &cmd, timeout).passed;
            (merged, Some(alone))
        });
        self.gates.insert(
            c.feature.clone(),
            RunningGate {
                handle,
                tips,
                tested,
                members: vec![c.feature.clone()],
                batch: None,
            },
        );
        Ok(())
    }

    /// Removes temporary gate worktrees no running gate owns: what a process that died while
    /// a gate ran left behind (its id starts the directory's name).
    pub(super) fn drop_stale_gate_worktrees(&self, config: &Config) {
        let dir = gates_dir(config);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let own = std::process::id();
        let stale: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let owner = p
                    .file_name()
                    .and_then(|n| n.to_str()?.split_once('-')?.0.parse::<u32>().ok());
                match owner {
                    Some(pid) if pid == own => self.gates.is_empty(),
                    Some(pid) => !crate::launcher::is_running(pid),
                    None => true,
                }
            })
            .collect();
        git::drop_gate_worktrees(std::path::Path::new(&config.repo), &dir, &stale);
    }
}

/// Where merge gates check out the merged results they test: beside the agents' worktrees, in
/// a directory no feature's worktree can be named (feature names never start with a dot).
pub(super) fn gates_dir(config: &Config) -> PathBuf {
    PathBuf::from(&config.worktrees_dir).join(".spanfold-gates")
}

/// A commit as a note names it: its first ten hex digits.
pub(super) fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}
