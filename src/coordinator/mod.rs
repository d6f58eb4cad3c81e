//! The coordinator: the shell around the pure core. It opens the log, keeps the view folded,
//! validates and appends spans, runs the policy, records its decisions, then acts on them and
//! records the outcomes — in that order, so a crash never leaves an effect without its decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

use thiserror::Error;

use crate::emit::{self, IdGen};
use crate::git;
use crate::model::{Event, ResourceSpans, Span, UnixNanos};
use crate::names;
use crate::policy::{self, PolicyConfig};
use crate::reducer::{AgentState, Config, FeatureStatus, REDUCER_VERSION, View, WorktreeStatus};
use crate::registry::{Origin, Registry, Violation};
use crate::status;
use crate::store::{Log, StoreError};
use crate::timetravel;

#[derive(Debug, Error)]
pub enum CoordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error("{0}")]
    Rejected(Violation),
    #[error("the log has no coordination.init; run `spanfold agents init` first")]
    NotInitialised,
    #[error(
        "{dir} holds a replay kept by `spanfold replay --keep` (of {from}): it is read-only. Reading commands (agent-status, history, diff, export, --at) work on it; acting ones (cycles, reports, gc, serve) are refused, so that an old story never creates worktrees or branches in the repository it names. Run acting commands without --coord-dir, on the live log"
    )]
    KeptReplay { dir: String, from: String },
    /// A person's command the fold could not apply; nothing was written.
    #[error("{0}; nothing was recorded")]
    Refused(String),
}

/// What a submission of client spans did.
#[derive(Debug, Default)]
pub struct Submitted {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Violation>,
}

/// One assignment as carried out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Placed {
    pub agent_id: String,
    pub feature_name: String,
    pub match_score: f64,
    pub reasons: Vec<String>,
    pub worktree_path: String,
    pub branch_name: String,
    /// created, reused or create_failed
    pub worktree_action: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CycleReport {
    pub cycle_number: u64,
    pub assignments: Vec<Placed>,
    pub features_waiting: usize,
    pub merges: Vec<MergeReport>,
    /// Agents that lost their features to an expired lease in this cycle.
    pub leases_expired: Vec<String>,
    /// What recovery found and did before the cycle (drift, effects a crash cut off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<String>,
}

/// What `gc` did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub removed: Vec<GcEntry>,
    /// Not removed, with why: the uncommitted work that would be lost.
    pub kept: Vec<GcEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GcEntry {
    pub path: String,
    pub feature: String,
    pub reason: Option<String>,
}

/// A submitted feature waiting for its merge.
struct MergeCandidate {
    feature: String,
    agent: String,
    branch: String,
    worktree: Option<String>,
    /// The reason recorded when it last had to wait.
    note: Option<String>,
    /// A merge was started and has no outcome (a crash): the base may already contain it.
    interrupted: bool,
}

/// One merge attempt as carried out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MergeReport {
    pub feature_name: String,
    pub agent_id: String,
    /// merged, conflicted, deferred or failed
    pub result: String,
    pub commit: Option<String>,
    pub kind: Option<String>,
    pub conflicts: Vec<String>,
    pub reason: Option<String>,
    /// removed or kept, after a merge
    pub worktree: Option<String>,
}

impl MergeReport {
    fn new(feature: &str, agent: &str, result: &str, outcome: &git::MergeOutcome) -> MergeReport {
        let mut r = MergeReport {
            feature_name: feature.to_owned(),
            agent_id: agent.to_owned(),
            result: result.to_owned(),
            commit: None,
            kind: None,
            conflicts: Vec::new(),
            reason: None,
            worktree: None,
        };
        match outcome {
            git::MergeOutcome::Merged { kind, commit } => {
                r.kind = Some(kind.as_str().to_owned());
                r.commit = Some(commit.clone());
            }
            git::MergeOutcome::Conflicted { paths } => r.conflicts = paths.clone(),
            git::MergeOutcome::Deferred { reason } => r.reason = Some(reason.clone()),
        }
        r
    }
}

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

pub struct Coordinator {
    dir: PathBuf,
    log: Log,
    /// Shared with readers (the HTTP API) in server mode; written only here.
    view: Arc<RwLock<View>>,
    registry: &'static Registry,
    policy: PolicyConfig,
    ids: IdGen,
    /// The coordinator's own spans since the last `take_recorded`, when kept (server mode
    /// forwards them upstream).
    recorded: Option<Vec<ResourceSpans>>,
    /// Merge gates running, by feature.
    gates: Gates,
    /// Wait for a merge gate within the cycle (the CLI, whose process ends with the command) or
    /// let it run in the background and pick up its result in a later cycle (the server).
    background_gates: bool,
    /// Seq of the latest checkpoint written (or found), for spacing the next one.
    last_checkpoint: u64,
    /// Fewest events between checkpoints ([`timetravel::CHECKPOINT_EVERY`]; tests lower it).
    checkpoint_every: u64,
}

/// A worktree path read back from the log, if it is one this coordinator could have made: only
/// such a path is ever created, locked or removed, whatever a log from elsewhere says.
fn ours(config: &Config, path: &str) -> bool {
    names::is_worktree_path(Path::new(&config.worktrees_dir), Path::new(path))
}

impl Coordinator {
    /// Opens the log in `dir` and folds it.
    pub fn open(dir: &Path) -> Result<Coordinator, CoordError> {
        Self::open_with(dir, false)
    }

    /// Like `open`, creating an empty log when there is none.
    pub fn create(dir: &Path) -> Result<Coordinator, CoordError> {
        Self::open_with(dir, true)
    }

    fn open_with(dir: &Path, create: bool) -> Result<Coordinator, CoordError> {
        let log = Log::open(dir, create)?;
        // Checkpoints of another reducer version would fold into a different view: discard them;
        // the fold below writes new ones as it goes.
        let discarded = log.discard_checkpoints(REDUCER_VERSION)?;
        if discarded > 0 {
            tracing::info!("discarded {discarded} checkpoints of another reducer version");
        }
        let reader = log.reader();
        let (from, view) = match reader.checkpoint_at_or_before::<View>(
            u64::MAX,
            REDUCER_VERSION,
            timetravel::fits,
        ) {
            Ok(Some((entry, view))) => (entry.seq + 1, view),
            Ok(None) => (1, View::default()),
            Err(e) => {
                // Derived data only: an unreadable checkpoint costs a full fold, never an answer.
                tracing::warn!("{e}; folding the whole log instead");
                (1, View::default())
            }
        };
        let mut coord = Coordinator {
            dir: dir.to_path_buf(),
            last_checkpoint: from - 1,
            checkpoint_every: timetravel::CHECKPOINT_EVERY,
            log,
            view: Arc::new(RwLock::new(view)),
            registry: Registry::builtin(),
            policy: PolicyConfig::default(),
            ids: IdGen::default(),
            recorded: None,
            gates: Gates::new(),
            background_gates: false,
        };
        for batch in reader.batches_from(from) {
            let batch = batch?;
            {
                let mut view = coord.view.write();
                for ev in batch.events().filter(|ev| ev.seq >= from) {
                    view.apply(&ev);
                }
            }
            coord.maybe_checkpoint();
        }
        Ok(coord)
    }

    /// Refuses to act on a kept replay.
    fn writable(&self) -> Result<(), CoordError> {
        match self.log.kept_replay() {
            None => Ok(()),
            Some(from) => Err(CoordError::KeptReplay {
                dir: self.dir.display().to_string(),
                from,
            }),
        }
    }

    /// Spaces checkpoints at least `events` apart (from the next one on).
    pub fn set_checkpoint_every(&mut self, events: u64) {
        self.checkpoint_every = events.max(1);
    }

    /// Writes a checkpoint of the view when one is due. Checkpoints are derived: failing to
    /// write one is logged and costs only speed.
    fn maybe_checkpoint(&mut self) {
        let view = self.view.read();
        if !timetravel::checkpoint_due(&view, self.last_checkpoint, self.checkpoint_every) {
            return;
        }
        let seq = view.as_of.seq;
        match self
            .log
            .put_checkpoint(seq, view.as_of.time, REDUCER_VERSION, &*view)
        {
            Ok(()) => self.last_checkpoint = seq,
            Err(e) => tracing::warn!("checkpoint at seq {seq} not written: {e}"),
        }
    }

    /// Folds the whole log again into the shared view.
    fn refold(&mut self) {
        let mut view = View::default();
        if self
            .log
            .scan(|batch| {
                for ev in batch.events() {
                    view.apply(&ev);
                }
            })
            .is_ok()
        {
            *self.view.write() = view;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn view(&self) -> RwLockReadGuard<'_, View> {
        self.view.read()
    }

    /// The view, for readers on other threads.
    pub fn shared_view(&self) -> Arc<RwLock<View>> {
        Arc::clone(&self.view)
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Gets the log ready to take appends (its de-duplication window read back) before the
    /// first one arrives.
    pub fn prepare_appends(&mut self) -> Result<(), CoordError> {
        Ok(self.log.prepare_appends()?)
    }

    /// The merge gates running, taken out so that the log can be let go while they run (the
    /// CLI); [`Coordinator::restore_gates`] hands them to the coordinator opened afterwards.
    pub fn take_gates(&mut self) -> Gates {
        std::mem::take(&mut self.gates)
    }

    pub fn restore_gates(&mut self, gates: Gates) {
        self.gates.extend(gates);
    }

    /// Merges what is ready (gates that finished included), and nothing else: the rest of a
    /// cycle the CLI ran before it waited for its gates. What changed meanwhile is re-checked:
    /// a feature no longer submitted is not merged, a branch that moved is gated again.
    pub fn merge_ready(&mut self) -> Result<Vec<MergeReport>, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let reports = self.merge_submitted(&config)?;
        // Gates of features that are no longer waiting for their merge have nothing to say.
        let merging: Vec<String> = self.submitted().into_iter().map(|c| c.feature).collect();
        self.gates
            .retain(|feature, g| merging.contains(feature) || !g.handle.is_finished());
        Ok(reports)
    }

    /// Whether a submitted feature waits for its merge.
    pub fn merges_waiting(&self) -> bool {
        self.view.read().tally.by_status[FeatureStatus::Merging as usize] > 0
    }

    /// When the main checkout's index last changed (None without a repository or index).
    pub fn index_modified(&self) -> Option<std::time::SystemTime> {
        let config = self.config().ok()?;
        git::index_modified(Path::new(&config.repo))
    }

    /// Runs merge gates in the background; later cycles pick up their results.
    pub fn background_gates(&mut self) {
        self.background_gates = true;
    }

    /// Whether a merge gate is still running (the server then checks back soon).
    pub fn gates_running(&self) -> bool {
        self.gates.values().any(|g| !g.handle.is_finished())
    }

    /// Keeps copies of the spans the coordinator records, for `take_recorded`.
    pub fn keep_recorded(&mut self) {
        self.recorded.get_or_insert_with(Vec::new);
    }

    pub fn take_recorded(&mut self) -> Vec<ResourceSpans> {
        self.recorded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn ids(&mut self) -> &mut IdGen {
        &mut self.ids
    }

    pub fn config(&self) -> Result<Config, CoordError> {
        self.view
            .read()
            .config
            .clone()
            .ok_or(CoordError::NotInitialised)
    }

    /// Validates spans from `origin`, appends the valid ones as one batch and folds them in.
    /// Invalid spans are left out and reported; the rest of the request is kept.
    pub fn submit(
        &mut self,
        resource_spans: Vec<ResourceSpans>,
        origin: Origin,
    ) -> Result<Submitted, CoordError> {
        let mut out = self.submit_group(vec![(resource_spans, origin)])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Group commit: each request is validated on its own, then all that is valid is appended
    /// as one batch with one flush, and folded in. One answer per request, in order.
    pub fn submit_group(
        &mut self,
        requests: Vec<(Vec<ResourceSpans>, Origin)>,
    ) -> Result<Vec<Submitted>, CoordError> {
        let validated = requests
            .into_iter()
            .map(|(mut rs, origin)| {
                let rejected = self.registry.retain_valid(&mut rs, origin);
                (rs, rejected)
            })
            .collect();
        self.append_validated(validated)
    }

    /// Group commit of requests already validated (the server validates on its receiver
    /// threads, so the single writer does only what must be serial).
    pub fn append_validated(
        &mut self,
        requests: Vec<(Vec<ResourceSpans>, Vec<Violation>)>,
    ) -> Result<Vec<Submitted>, CoordError> {
        self.writable()?;
        let mut answers = Vec::with_capacity(requests.len());
        let mut combined = Vec::new();
        for (resource_spans, rejected) in requests {
            answers.push(Submitted {
                accepted: resource_spans.iter().map(ResourceSpans::span_count).sum(),
                rejected,
                ..Submitted::default()
            });
            combined.extend(resource_spans);
        }
        let appended = match self.log.append(combined, emit::now()) {
            Ok(a) => a,
            Err(e) => {
                // The failed append may have left records in the log: fold it again so the view
                // stays a fold of exactly what is there.
                self.refold();
                return Err(e.into());
            }
        };
        if let Some(batch) = appended.batch {
            {
                let mut view = self.view.write();
                for ev in batch.events() {
                    view.apply(&ev);
                }
            }
            self.maybe_checkpoint();
        }
        // Duplicates are accepted (OTLP retries are normal) but counted once, on the group.
        if let Some(first) = answers.first_mut() {
            first.duplicates = appended.duplicates;
        }
        Ok(answers)
    }

    /// Submits spans written by the CLI for an operator: all or nothing, so a refused command
    /// appends no event.
    pub fn submit_client(&mut self, spans: Vec<Span>) -> Result<Submitted, CoordError> {
        let rs = emit::wrap(emit::CLI_SERVICE, spans);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                self.registry
                    .validate(span, &rs.resource, Origin::Client)
                    .map_err(CoordError::Rejected)?;
            }
        }
        // What the fold would refuse (an unknown agent, an illegal transition, an ambiguous
        // report) is refused here, before it reaches the log: a typo is not an eternal alarm.
        let seq = self.log.next_seq();
        let time = emit::now();
        let events = rs.scope_spans.iter().flat_map(|ss| &ss.spans).enumerate();
        let refusal = self.view.read().refusal(events.map(|(i, span)| Event {
            seq: seq + i as u64,
            time,
            span,
            resource: &rs.resource,
        }));
        if let Some(why) = refusal {
            return Err(CoordError::Refused(why));
        }
        self.submit(vec![rs], Origin::Client)
    }

    /// Records the coordinator's own spans. They are validated like everyone's: a violation here
    /// is a defect, reported rather than written.
    fn record(&mut self, mut spans: Vec<Span>) -> Result<(), CoordError> {
        self.writable()?;
        // A decision is never dropped as a duplicate of a span a client sent with the same ids
        // (ids are unpredictable, but not unguessable by luck): such a span is re-identified.
        spans = spans.into_iter().map(emit::bounded).collect();
        for span in &mut spans {
            while self.log.is_known(&span.key())? {
                span.span_id = self.ids.span_id();
            }
        }
        let rs = emit::wrap(emit::COORDINATOR_SERVICE, spans);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                self.registry
                    .validate(span, &rs.resource, Origin::Coordinator)
                    .map_err(CoordError::Rejected)?;
            }
        }
        let copy = self.recorded.is_some().then(|| rs.clone());
        self.submit(vec![rs], Origin::Coordinator)?;
        // Forwarded upstream only once they are in the log.
        if let (Some(kept), Some(copy)) = (self.recorded.as_mut(), copy) {
            kept.push(copy);
        }
        Ok(())
    }

    /// Writes the repository settings; refuses to change them once set.
    pub fn init(
        &mut self,
        repo: &str,
        base: &str,
        worktrees_dir: &str,
        lease_seconds: u64,
    ) -> Result<bool, CoordError> {
        self.writable()?;
        if self.view.read().config.is_some() {
            return Ok(false);
        }
        let span = emit::init(
            &mut self.ids,
            emit::now(),
            repo,
            base,
            worktrees_dir,
            lease_seconds,
        );
        self.record(vec![span])?;
        Ok(true)
    }

    /// Changes the lease of an initialised log (recorded; it applies from now on).
    pub fn configure_lease(&mut self, lease_seconds: u64) -> Result<(), CoordError> {
        self.writable()?;
        let span = emit::configure(&mut self.ids, emit::now(), lease_seconds);
        self.record(vec![span])
    }

    /// A cycle only when the policy would assign something: automatic cycles leave no trace
    /// when there is nothing to decide.
    pub fn cycle_if_useful(&mut self) -> Result<Option<CycleReport>, CoordError> {
        if self.cycle_is_useful()? {
            self.cycle().map(Some)
        } else {
            Ok(None)
        }
    }

    /// One coordination cycle: decide, record the decisions, create the worktrees, record the
    /// outcomes.
    pub fn cycle(&mut self) -> Result<CycleReport, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let recovered = self.recover()?;
        let expired = self.expire_leases(&config)?;
        self.release_abandoned(&config)?;
        let (decision, cycle_number) = {
            let view = self.view.read();
            (
                policy::decide(&view, &self.policy),
                view.counters.cycles + 1,
            )
        };
        let now = emit::now();
        let mut planned = Vec::with_capacity(decision.assignments.len());
        let mut spans = vec![emit::cycle(
            &mut self.ids,
            now,
            cycle_number,
            decision.assignments.len(),
            decision.features_waiting,
        )];
        for a in &decision.assignments {
            // A feature placed before keeps its worktree, so the next agent continues the work.
            let (known_path, known_branch) = {
                let view = self.view.read();
                let f = view.features.get(&a.feature_name);
                (
                    f.and_then(|f| f.worktree_path.clone()),
                    f.and_then(|f| f.branch_name.clone()),
                )
            };
            let path = match known_path.filter(|p| ours(&config, p)) {
                Some(p) => p,
                None => {
                    match names::worktree_path(Path::new(&config.worktrees_dir), &a.feature_name) {
                        Ok(p) => p.to_string_lossy().into_owned(),
                        // The reducer admits only valid names; a queue entry that is not is skipped.
                        Err(e) => {
                            tracing::error!("not placing {}: {e}", a.feature_name);
                            continue;
                        }
                    }
                }
            };
            let branch = known_branch.unwrap_or_else(|| format!("spanfold/{}", a.feature_name));
            spans.push(emit::assignment(
                &mut self.ids,
                now,
                &emit::AssignmentSpan {
                    agent_id: &a.agent_id,
                    feature: &a.feature_name,
                    priority: a.priority,
                    score: a.score,
                    reasons: &a.reasons,
                    worktree_path: &path,
                    branch: &branch,
                },
            ));
            planned.push((a.clone(), path, branch));
        }
        self.record(spans)?;
        crate::fault::point(crate::fault::AFTER_ASSIGNMENT_DECISION);

        let mut placed = Vec::with_capacity(planned.len());
        let mut outcomes = Vec::with_capacity(planned.len() + 1);
        for (a, path, branch) in planned {
            let result = git::ensure_worktree(
                Path::new(&config.repo),
                &config.base_branch,
                &branch,
                Path::new(&path),
                &a.agent_id,
            );
            let (action, error) = match &result {
                Ok(o) if o.reused => ("reused", None),
                Ok(_) => ("created", None),
                Err(e) => ("create_failed", Some(e.to_string())),
            };
            outcomes.push(emit::worktree(
                &mut self.ids,
                emit::now(),
                &emit::WorktreeSpan {
                    action,
                    agent_id: &a.agent_id,
                    feature: &a.feature_name,
                    path: &path,
                    branch: &branch,
                    error: error.as_deref(),
                },
            ));
            placed.push(Placed {
                agent_id: a.agent_id,
                feature_name: a.feature_name,
                match_score: a.score,
                reasons: a.reasons,
                worktree_path: path,
                branch_name: branch,
                worktree_action: action.to_owned(),
                error,
            });
        }
        self.record(outcomes)?;
        let merges = self.merge_submitted(&config)?;
        let health = self.health_span(emit::now());
        self.record(vec![health])?;
        Ok(CycleReport {
            cycle_number,
            assignments: placed,
            features_waiting: decision.features_waiting,
            merges,
            leases_expired: expired,
            recovered,
        })
    }

    /// Makes git and the view agree again, recording what it finds. A held feature whose
    /// worktree is gone (removed by hand) is drift: recorded as `missing`. A held feature without
    /// a worktree — drifted, or assigned just before a crash that cut off the worktree's
    /// creation — gets it (re)created from its branch, recorded with the reason.
    pub fn recover(&mut self) -> Result<Vec<String>, CoordError> {
        self.writable()?;
        let Ok(config) = self.config() else {
            return Ok(Vec::new());
        };
        let repo = Path::new(&config.repo).to_path_buf();
        let mut notes = Vec::new();
        // A merge that started and has no outcome: if the base branch moved but the main
        // checkout stayed behind, finish the checkout; the next merge attempt then finds the
        // feature already merged and records it.
        let interrupted: Vec<(String, String)> = self
            .view
            .read()
            .features
            .values()
            .filter(|f| f.status == FeatureStatus::Merging)
            .filter_map(|f| Some((f.name.clone(), f.merge_from.clone()?)))
            .collect();
        for (feature, from) in interrupted {
            if git::complete_checkout(&repo, &config.base_branch, &from)? {
                notes.push(format!(
                    "{feature}: the merge was cut off after moving {}; the main checkout was brought up to date",
                    config.base_branch
                ));
            }
        }
        let registered = git::worktree_paths(&repo)?;
        let drifted: Vec<(String, String, String, String)> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status == WorktreeStatus::Active)
            .filter(|w| {
                // Compared canonically: the configured directory may sit behind a symlink.
                match std::fs::canonicalize(&w.path) {
                    Ok(real) => !registered.contains(&real.to_string_lossy().into_owned()),
                    Err(_) => true,
                }
            })
            .map(|w| {
                (
                    w.path.clone(),
                    w.branch_name.clone(),
                    w.feature_name.clone(),
                    w.agent_id.clone().unwrap_or_default(),
                )
            })
            .collect();
        if !drifted.is_empty() {
            let spans = drifted
                .iter()
                .map(|(path, branch, feature, agent)| {
                    notes.push(format!("worktree {path} of {feature} was removed by hand"));
                    emit::worktree(
                        &mut self.ids,
                        emit::now(),
                        &emit::WorktreeSpan {
                            action: "missing",
                            agent_id: agent,
                            feature,
                            path,
                            branch,
                            error: Some("removed by hand (found on recovery)"),
                        },
                    )
                })
                .collect();
            self.record(spans)?;
        }
        // After the drift is recorded: every held feature that now lacks a worktree.
        let unbuilt: Vec<(String, String, String, String)> = {
            let view = self.view.read();
            view.features
                .values()
                .filter(|f| f.status.is_in_progress())
                .filter_map(|f| {
                    let path = f.worktree_path.clone().filter(|p| ours(&config, p))?;
                    let agent = f.assigned_agent.clone()?;
                    let built = view
                        .worktrees
                        .get(&path)
                        .is_some_and(|w| w.status == WorktreeStatus::Active);
                    (!built).then(|| {
                        let branch = f
                            .branch_name
                            .clone()
                            .unwrap_or_else(|| format!("spanfold/{}", f.name));
                        (path, branch, f.name.clone(), agent)
                    })
                })
                .collect()
        };
        let drifted_paths: Vec<&String> = drifted.iter().map(|d| &d.0).collect();
        let mut outcomes = Vec::new();
        for (path, branch, feature, agent) in &unbuilt {
            let why = if drifted_paths.contains(&path) {
                "recreated from its branch after it was removed by hand"
            } else {
                "created on recovery: the assignment was recorded but not its worktree (a crash in between)"
            };
            notes.push(format!("{feature}: {why}"));
            let result =
                git::ensure_worktree(&repo, &config.base_branch, branch, Path::new(path), agent);
            let (action, note) = match &result {
                Ok(o) if o.reused => ("reused", why.to_owned()),
                Ok(_) => ("created", why.to_owned()),
                Err(e) => ("create_failed", e.to_string()),
            };
            outcomes.push(emit::worktree(
                &mut self.ids,
                emit::now(),
                &emit::WorktreeSpan {
                    action,
                    agent_id: agent,
                    feature,
                    path,
                    branch,
                    error: Some(&note),
                },
            ));
        }
        if !outcomes.is_empty() {
            self.record(outcomes)?;
        }
        Ok(notes)
    }

    /// Silent agents lose their features: the decision is recorded, then their worktrees are
    /// unlocked (kept, with the work).
    fn expire_leases(&mut self, config: &Config) -> Result<Vec<String>, CoordError> {
        let now = emit::now();
        let expired = policy::expired_leases(&self.view.read(), now);
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let spans = expired
            .iter()
            .map(|(id, silent)| emit::lease_expired(&mut self.ids, now, id, *silent))
            .collect();
        self.record(spans)?;
        self.release_abandoned(config)?;
        Ok(expired.into_iter().map(|(id, _)| id).collect())
    }

    /// Unlocks worktrees whose feature was let go of (reset, lease, cancel) and records it. They
    /// keep their work; the next agent to get the feature locks it again.
    /// Unlocks the worktrees of features let go of (cancelled, requeued) now, rather than at
    /// the next cycle: what `cancel-feature` promises without a server.
    pub fn release_now(&mut self) -> Result<(), CoordError> {
        let config = self.config()?;
        self.release_abandoned(&config)
    }

    fn release_abandoned(&mut self, config: &Config) -> Result<(), CoordError> {
        let abandoned: Vec<(String, String, String)> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status == WorktreeStatus::Abandoned && w.locked)
            .map(|w| {
                (
                    w.path.clone(),
                    w.branch_name.clone(),
                    w.feature_name.clone(),
                )
            })
            .collect();
        let mut outcomes = Vec::with_capacity(abandoned.len());
        for (path, branch, feature) in abandoned {
            let error = git::unlock_worktree(Path::new(&config.repo), Path::new(&path))
                .err()
                .map(|e| e.to_string());
            outcomes.push(emit::worktree(
                &mut self.ids,
                emit::now(),
                &emit::WorktreeSpan {
                    action: "unlocked",
                    agent_id: "",
                    feature: &feature,
                    path: &path,
                    branch: &branch,
                    error: error.as_deref(),
                },
            ));
        }
        if !outcomes.is_empty() {
            self.record(outcomes)?;
        }
        Ok(())
    }

    /// Submitted features whose merge is worth trying now, oldest request first.
    fn submitted(&self) -> Vec<MergeCandidate> {
        let view = self.view.read();
        let mut out: Vec<_> = view
            .features
            .values()
            .filter(|f| f.status == FeatureStatus::Merging)
            .filter_map(|f| {
                let agent = view.agents.get(f.assigned_agent.as_deref()?)?;
                matches!(agent.state, AgentState::Submitting | AgentState::Finished).then(|| {
                    (
                        f.queued_seq,
                        MergeCandidate {
                            feature: f.name.clone(),
                            agent: agent.id.clone(),
                            branch: f
                                .branch_name
                                .clone()
                                .unwrap_or_else(|| format!("spanfold/{}", f.name)),
                            worktree: f
                                .worktree_path
                                .clone()
                                .filter(|p| view.config.as_ref().is_some_and(|c| ours(c, p))),
                            note: f.merge_note.clone(),
                            interrupted: f.merge_from.is_some(),
                        },
                    )
                })
            })
            .collect();
        // Oldest request first: a deterministic order of merges.
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.feature.cmp(&b.1.feature)));
        out.into_iter().map(|(_, x)| x).collect()
    }

    /// Merges each submitted feature: record the decision, merge, record the outcome, clean up.
    /// A merge that must wait is recorded only when its reason changes, so retries every cycle
    /// leave no trail of identical spans.
    fn merge_submitted(&mut self, config: &Config) -> Result<Vec<MergeReport>, CoordError> {
        let repo = Path::new(&config.repo).to_path_buf();
        let gate = git::config_value(&repo, "spanfold.validateCmd")?;
        let timeout = git::config_value(&repo, "spanfold.validateTimeout")?
            .and_then(|t| t.trim().parse().ok())
            .map_or(
                std::time::Duration::from_secs(1800),
                std::time::Duration::from_secs,
            );
        let mut reports = Vec::new();
        for MergeCandidate {
            feature,
            agent,
            branch,
            worktree,
            note: last_note,
            interrupted,
        } in self.submitted()
        {
            let span = |ids: &mut IdGen, result: &str, outcome: &git::MergeOutcome| {
                let (kind, commit, conflicts, reason) = match outcome {
                    git::MergeOutcome::Merged { kind, commit } => {
                        (Some(kind.as_str()), Some(commit.clone()), Vec::new(), None)
                    }
                    git::MergeOutcome::Conflicted { paths } => (None, None, paths.clone(), None),
                    git::MergeOutcome::Deferred { reason } => {
                        (None, None, Vec::new(), Some(reason.clone()))
                    }
                };
                emit::merge(
                    ids,
                    emit::now(),
                    &emit::MergeSpan {
                        result,
                        agent_id: &agent,
                        feature: &feature,
                        branch: &branch,
                        base: &config.base_branch,
                        kind,
                        commit: commit.as_deref(),
                        conflicts: &conflicts,
                        reason: reason.as_deref(),
                        from: None,
                    },
                )
            };
            // The agent's to fix: work left uncommitted, or nothing committed at all. (Not after
            // a merge a crash cut off: the base may already hold the branch.)
            let problem = match interrupted {
                true => None,
                false => git::submission_problem(
                    &repo,
                    worktree.as_deref().map(Path::new),
                    &config.base_branch,
                    &branch,
                )?,
            };
            if let Some(reason) = problem {
                let outcome = git::MergeOutcome::Deferred { reason };
                let s = span(&mut self.ids, "returned", &outcome);
                self.record(vec![s])?;
                reports.push(MergeReport::new(&feature, &agent, "returned", &outcome));
                continue;
            }
            if let Some(reason) = git::merge_blocker(&repo, &config.base_branch)? {
                if last_note.as_deref() != Some(reason.as_str()) {
                    let outcome = git::MergeOutcome::Deferred { reason };
                    let s = span(&mut self.ids, "deferred", &outcome);
                    self.record(vec![s])?;
                    reports.push(MergeReport::new(&feature, &agent, "deferred", &outcome));
                }
                continue;
            }
            // The merge gate: the operator's command, from the repository's configuration (never
            // from a span), run in the worktree; only a pass lets the merge go ahead.
            if let (Some(cmd), Some(path)) = (&gate, &worktree) {
                // A gate that ran on an older tip (the agent committed again meanwhile) tested
                // something else: it runs again on what would be merged.
                let tip = git::branch_tip(&repo, &branch)?;
                if self.gates.get(&feature).is_some_and(|g| g.tip != tip) {
                    self.gates.remove(&feature);
                }
                if !self.gates.contains_key(&feature) {
                    let s = span(
                        &mut self.ids,
                        "gate_started",
                        &git::MergeOutcome::Deferred {
                            reason: format!("running the merge gate `{cmd}`"),
                        },
                    );
                    self.record(vec![s])?;
                    let (cmd, dir) = (cmd.clone(), std::path::PathBuf::from(path));
                    let handle = std::thread::spawn(move || git::run_gate(&cmd, &dir, timeout));
                    self.gates
                        .insert(feature.clone(), RunningGate { handle, tip });
                }
                let finished = self
                    .gates
                    .get(&feature)
                    .is_some_and(|g| g.handle.is_finished());
                if !finished && self.background_gates {
                    continue;
                }
                let result = match self.gates.remove(&feature).map(|g| g.handle.join()) {
                    Some(Ok(r)) => r,
                    _ => git::GateResult {
                        passed: false,
                        summary: "the merge gate stopped unexpectedly".into(),
                    },
                };
                if !result.passed {
                    let outcome = git::MergeOutcome::Deferred {
                        reason: result.summary,
                    };
                    let s = span(&mut self.ids, "gate_failed", &outcome);
                    self.record(vec![s])?;
                    reports.push(MergeReport::new(&feature, &agent, "gate_failed", &outcome));
                    continue;
                }
            }
            let from = git::branch_tip(&repo, &config.base_branch)?;
            let started = emit::merge(
                &mut self.ids,
                emit::now(),
                &emit::MergeSpan {
                    result: "started",
                    agent_id: &agent,
                    feature: &feature,
                    branch: &branch,
                    base: &config.base_branch,
                    kind: None,
                    commit: None,
                    conflicts: &[],
                    reason: None,
                    from: Some(&from),
                },
            );
            self.record(vec![started])?;
            let message = format!("Merge {branch} ({feature}, by agent {agent})");
            let outcome = match git::merge_feature(&repo, &config.base_branch, &branch, &message) {
                Ok(o) => o,
                Err(e) => git::MergeOutcome::Deferred {
                    reason: format!("the merge could not be attempted: {e}"),
                },
            };
            let result = match &outcome {
                git::MergeOutcome::Merged { .. } => "merged",
                git::MergeOutcome::Conflicted { .. } => "conflicted",
                git::MergeOutcome::Deferred { reason }
                    if reason.starts_with("the merge could not") =>
                {
                    "failed"
                }
                git::MergeOutcome::Deferred { .. } => "deferred",
            };
            let s = span(&mut self.ids, result, &outcome);
            self.record(vec![s])?;
            let mut report = MergeReport::new(&feature, &agent, result, &outcome);
            if let (git::MergeOutcome::Merged { .. }, Some(path)) = (&outcome, &worktree) {
                let removal = git::remove_worktree(
                    &repo,
                    Path::new(path),
                    &branch,
                    &config.base_branch,
                    false,
                );
                let (action, note) = match removal {
                    Ok(git::Removal::Removed) => ("removed", None),
                    Ok(git::Removal::Kept { reason }) => ("kept", Some(reason)),
                    Err(e) => ("kept", Some(format!("removing it failed: {e}"))),
                };
                let s = emit::worktree(
                    &mut self.ids,
                    emit::now(),
                    &emit::WorktreeSpan {
                        action,
                        agent_id: &agent,
                        feature: &feature,
                        path,
                        branch: &branch,
                        error: note.as_deref(),
                    },
                );
                self.record(vec![s])?;
                report.worktree = Some(action.to_owned());
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// Removes worktrees nobody holds (feature merged, cancelled, or back in the queue) that have
    /// been so for at least `older_than`: only when they hold no uncommitted work, unless `force`.
    /// Branches go only when the base branch contains them.
    pub fn gc(
        &mut self,
        older_than: std::time::Duration,
        force: bool,
    ) -> Result<GcReport, CoordError> {
        self.writable()?;
        let config = self.config()?;
        let now = emit::now();
        let candidates: Vec<(String, String, String)> = self
            .view
            .read()
            .worktrees
            .values()
            .filter(|w| w.status != WorktreeStatus::Active && ours(&config, &w.path))
            .filter(|w| now.saturating_sub(w.since) >= older_than.as_nanos() as u64)
            .map(|w| {
                (
                    w.path.clone(),
                    w.branch_name.clone(),
                    w.feature_name.clone(),
                )
            })
            .collect();
        let mut report = GcReport::default();
        for (path, branch, feature) in candidates {
            let removal = git::remove_worktree(
                Path::new(&config.repo),
                Path::new(&path),
                &branch,
                &config.base_branch,
                force,
            );
            match removal {
                Ok(git::Removal::Removed) => {
                    let s = emit::worktree(
                        &mut self.ids,
                        emit::now(),
                        &emit::WorktreeSpan {
                            action: "removed",
                            agent_id: "",
                            feature: &feature,
                            path: &path,
                            branch: &branch,
                            error: None,
                        },
                    );
                    self.record(vec![s])?;
                    report.removed.push(GcEntry {
                        path,
                        feature,
                        reason: None,
                    });
                }
                Ok(git::Removal::Kept { reason }) => report.kept.push(GcEntry {
                    path,
                    feature,
                    reason: Some(reason),
                }),
                Err(e) => report.kept.push(GcEntry {
                    path,
                    feature,
                    reason: Some(e.to_string()),
                }),
            }
        }
        Ok(report)
    }

    /// Whether a cycle now would change anything: an assignment to make, or a submitted
    /// feature whose merge can proceed (or waits for a new reason).
    fn cycle_is_useful(&self) -> Result<bool, CoordError> {
        let Ok(config) = self.config() else {
            return Ok(false);
        };
        if !policy::expired_leases(&self.view.read(), emit::now()).is_empty()
            || self
                .view
                .read()
                .worktrees
                .values()
                .any(|w| w.status == WorktreeStatus::Abandoned && w.locked)
        {
            return Ok(true);
        }
        if !policy::decide(&self.view.read(), &self.policy)
            .assignments
            .is_empty()
        {
            return Ok(true);
        }
        let submitted = self.submitted();
        if submitted.is_empty() {
            return Ok(false);
        }
        let blocker = git::merge_blocker(Path::new(&config.repo), &config.base_branch)?;
        // A candidate whose gate is still running has nothing to decide yet.
        Ok(submitted.iter().any(|c| {
            let gate_busy = self
                .gates
                .get(&c.feature)
                .is_some_and(|g| !g.handle.is_finished());
            !gate_busy && (blocker.is_none() || c.note.as_deref() != blocker.as_deref())
        }))
    }

    fn health_span(&mut self, time: UnixNanos) -> Span {
        let st = status::build(&self.view.read(), &status::StatusOptions::default());
        let c = st.coordination_status;
        emit::health(
            &mut self.ids,
            time,
            &emit::Health {
                total_agents: c.total_agents,
                active_agents: c.active_agents,
                health_score: c.coordination_health,
                features_completed: c.features_completed,
                features_in_queue: c.features_in_queue,
            },
        )
    }

    /// Drops derived data and folds the log again from the start.
    pub fn rebuild(self) -> Result<(Coordinator, Vec<String>), CoordError> {
        let dropped = self.log.drop_derived()?;
        let dir = self.dir.clone();
        drop(self);
        Ok((Coordinator::open(&dir)?, dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client span that took the ids of a decision before it was written does not erase the
    /// decision: the decision is stored under new ids.
    #[test]
    fn a_decision_is_never_dropped_as_a_duplicate_of_a_client_span() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut coord = Coordinator::create(dir.path()).expect("log");
        let taken = emit::IdGen::default().span("tool.call", 1);
        let (trace, span) = (taken.trace_id, taken.span_id);
        coord
            .submit(vec![emit::wrap("agent", vec![taken])], Origin::Client)
            .expect("client span stored");
        let mut decision = emit::init(&mut IdGen::default(), 2, "/r", "main", "/w", 600);
        decision.trace_id = trace;
        decision.span_id = span;
        coord.record(vec![decision]).expect("recorded");
        let view = coord.view();
        assert_eq!(view.counters.events, 2, "both spans are in the log");
        assert!(view.config.is_some(), "the decision was applied");
    }
}
