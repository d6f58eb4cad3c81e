//! The coordinator: the shell around the pure core. It opens the log, keeps the view folded,
//! validates and appends spans, runs the policy, records its decisions, then acts on them and
//! records the outcomes — in that order, so a crash never leaves an effect without its decision.
//!
//! This file holds the log and the view (open, fold, checkpoints, submit, record); the jobs are
//! in their own files: `cycle` (one coordination cycle: plan, record, carry out, record),
//! `execute` (carrying out the plan's worktree effects through a `Workspace`), `recovery` (drift,
//! interrupted effects, leases), `merge` (merging submitted features), `batch` (the merge queue's batches), `gate` (merge gates), `radar` (conflict forecasts), `gc`
//! (removing unheld worktrees), `error` (what they fail with).

mod batch;
mod budgets;
mod cycle;
mod error;
mod execute;
mod gate;
mod gc;
mod merge;
mod prices;
mod radar;
mod recovery;
mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

use crate::clock::{Clock, SystemClock};
use crate::emit::{self, IdGen};
use crate::model::{Batch, Event, ResourceSpans, Span};
use crate::names;
use crate::policy::{Decision, PolicyConfig};
use crate::reducer::{Config, REDUCER_VERSION, View};
use crate::registry::{Origin, Registry, Violation};
use crate::store::Log;
use crate::timetravel;
use crate::vocab::span;

pub use cycle::{CycleReport, Placed};
pub use error::CoordError;
pub use execute::{GitWorkspace, Workspace};
pub use gate::{Gates, RunningGate};
pub use gc::{GcEntry, GcReport};
pub use merge::MergeReport;

/// What a submission of client spans did.
#[derive(Debug, Default)]
pub struct Submitted {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Violation>,
}

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
    /// Where "now" comes from (the system's clock, or a test's).
    clock: Arc<dyn Clock>,
    /// The policy's last decision and the seq of the view it was made on: asking whether a
    /// cycle is useful decides, and the cycle that follows on the same view reuses it.
    decided: Option<(u64, Decision)>,
    /// Where worktree effects are carried out when not in git (a test's stand-in).
    workspace: Option<Arc<dyn Workspace>>,
    /// What was last wrong with the repository's price file, said once.
    prices_problem: Option<String>,
    /// The conflict radar, opened at its first look.
    radar: Option<radar::RadarState>,
    /// `spanfold.requireApproval`, as the current round of merges read it.
    require_approval: bool,
    /// Remote agents' branches fetched, by feature, with the submission fetched for.
    fetched: std::collections::BTreeMap<String, u64>,
    /// Remote agents' features whose branch this round could not fetch: they sit it out.
    unfetched: std::collections::BTreeSet<String>,
    /// A merge is on the remote's base and not on this one: the next round syncs even with
    /// nothing submitted.
    sync_due: bool,
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
            prices_problem: None,
            clock: Arc::new(SystemClock),
            decided: None,
            workspace: None,
            radar: None,
            require_approval: false,
            fetched: Default::default(),
            unfetched: Default::default(),
            sync_due: false,
        };
        for batch in reader.batches_from(from) {
            let batch = batch?;
            coord.view.write().apply_batch(&batch, from);
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
        if self.log.scan(|batch| view.apply_batch(batch, 0)).is_ok() {
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

    /// Takes "now" from `clock` from here on (a test's clock that moves only when told).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The policy's decision on the view as it is now, made once per state of the view.
    fn decide(&mut self) -> Decision {
        let view = self.view.read();
        match self.decided.take() {
            Some((seq, decision)) if seq == view.as_of.seq => decision,
            _ => crate::policy::decide(&view, &self.policy),
        }
    }

    /// Keeps a decision made on the view at `seq` for a cycle that follows on the same view.
    fn keep_decision(&mut self, seq: u64, decision: Decision) {
        self.decided = Some((seq, decision));
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
        let requests = requests
            .into_iter()
            .map(|(spans, rejected)| (Batch::of_spans(0, 0, spans), rejected))
            .collect();
        self.append_exports(requests)
    }

    /// [`Coordinator::append_validated`] for exports of any signal: each request's spans, log
    /// records and metrics (a batch still without its place).
    pub fn append_exports(
        &mut self,
        requests: Vec<(Batch, Vec<Violation>)>,
    ) -> Result<Vec<Submitted>, CoordError> {
        self.writable()?;
        let mut answers = Vec::with_capacity(requests.len());
        let mut combined = Batch::default();
        for (batch, rejected) in requests {
            answers.push(Submitted {
                accepted: batch.event_count(),
                rejected,
                ..Submitted::default()
            });
            combined.resource_spans.extend(batch.resource_spans);
            // In the records' order: used only if every request brought its records' keys.
            combined.log_keys.extend(batch.log_keys);
            combined.resource_logs.extend(batch.resource_logs);
            combined.resource_metrics.extend(batch.resource_metrics);
        }
        let appended = match self.log.append_events(combined, self.clock.now()) {
            Ok(a) => a,
            Err(e) => {
                // The failed append may have left records in the log: fold it again so the view
                // stays a fold of exactly what is there.
                self.refold();
                return Err(e.into());
            }
        };
        if let Some(batch) = appended.batch {
            let spent = self.view.read().usage.ledger.total;
            self.view.write().apply_batch(&batch, 0);
            self.maybe_checkpoint();
            // A budget crossed by what was just folded is decided now, at its time: only
            // when the batch moved spending or set a budget, not on every append.
            // Without any budget (the common case) the batch is not scanned at all.
            let moved = self.view.read().usage.ledger.total != spent;
            let set = |name: &str| batch.events().any(|e| e.span.name == name);
            let (features_budgeted, agents_budgeted) = {
                let usage = &self.view.read().usage;
                (!usage.budgets.is_empty(), !usage.agent_budgets.is_empty())
            };
            if features_budgeted && (moved || set(span::FEATURE_BUDGET)) {
                self.record_budget_verdicts()?;
            }
            if agents_budgeted && (moved || set(span::AGENT_REGISTRATION)) {
                self.record_agent_budget_verdicts()?;
            }
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
        let time = self.clock.now();
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
        // Validated above, span by span: appended as it is.
        let mut answers = self.append_validated(vec![(vec![rs], Vec::new())])?;
        Ok(answers.pop().unwrap_or_default())
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
        // Validated above, span by span: appended as it is.
        self.append_validated(vec![(vec![rs], Vec::new())])?;
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
            self.clock.now(),
            repo,
            base,
            worktrees_dir,
            lease_seconds,
        );
        self.record(vec![span])?;
        Ok(true)
    }

    /// Changes settings of an initialised log (recorded; they apply from now on).
    pub fn configure(&mut self, settings: crate::fact::Configure) -> Result<(), CoordError> {
        self.writable()?;
        let span = emit::configure(&mut self.ids, self.clock.now(), settings);
        self.record(vec![span])
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
mod tests;
