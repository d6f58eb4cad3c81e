//! The command line: parsing (the only module that knows clap), the JSON envelope (the one
//! DSLModel's `dsl agents` printed, so its users' scripts keep working), and text tables. Commands append spans through the coordinator and answer from its fold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::coordinator::{Coordinator, CycleReport};
use crate::emit::{self, IdGen};
use crate::git;
use crate::names;
use crate::reducer::{AgentState, Complexity, Priority};
use crate::registry::Registry;
use crate::render::{cycle_text, status_text, step_line, table, what_if_text, worktree_text};
use crate::status::{self, StatusOptions};

#[derive(Parser, Debug)]
#[command(
    name = "spanfold",
    version,
    about = "Coordinates AI coding agents on one git repository: exclusive worktrees per feature, \
             capability matching, all state folded from an append-only log of OpenTelemetry spans.",
    after_help = "Every command appends spans to the coordination log and answers from a fold of it.\n\
                  The log lives in the repository's git directory (.git/spanfold) unless --coord-dir says otherwise."
)]
pub struct Cli {
    /// Print exactly one JSON document on stdout ({timestamp, command, success, data, errors,
    /// warnings, metadata}), failures included; the exit code still says whether it worked.
    #[arg(long, global = true)]
    pub json: bool,
    /// The coordination directory. Default: `spanfold` inside the git directory of the
    /// repository around the current directory (found from any of its worktrees too).
    #[arg(long, global = true, env = "SPANFOLD_COORD_DIR", value_name = "DIR")]
    pub coord_dir: Option<PathBuf>,
    /// A running server's HTTP address (e.g. http://127.0.0.1:4318). Default: the one a server
    /// advertises in the coordination directory, if it answers; otherwise the log is used directly.
    #[arg(long, global = true, env = "SPANFOLD_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Bearer token: the one `serve` requires, and the one other commands present to a server.
    #[arg(
        long,
        global = true,
        env = "SPANFOLD_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Agent coordination: agents, features, cycles, status and reports.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// List the span types of the registry and their attributes.
    Spans {
        /// Print the catalogue as Markdown tables (the README's span catalogue).
        #[arg(long)]
        markdown: bool,
    },
    /// Discard everything derived from the log and fold it again from the start.
    Rebuild,
    /// Run the coordinator: OTLP/gRPC and OTLP/HTTP receivers, the JSON API, automatic cycles.
    Serve(ServeArgs),
    /// The whole story on a scratch repository: the server in-process, simulated agents over
    /// OTLP committing real code, merges, one conflict resolved. Leaves the repository and log.
    Demo(DemoArgs),
    /// Remove worktrees nobody holds (merged, cancelled or requeued features) — only clean ones,
    /// unless --force; lists the uncommitted work that would be lost instead.
    Gc(GcArgs),
    /// Write the log as OTLP/JSON lines (one ExportTraceServiceRequest per line, the
    /// Collector's file format); `replay` reads it back to the same events.
    Export(ExportArgs),
    /// Fold recorded traces again, away from the live log: the final status, each event's
    /// changes (--step), a check that the policy still makes the recorded decisions (--verify),
    /// or the same inputs under another policy (--policy-config). Never runs git.
    Replay(ReplayArgs),
    /// The timeline of one agent or feature: each change with its time and causing span.
    History(HistoryArgs),
    /// What changed between two points of the log.
    Diff(DiffArgs),
}

#[derive(Args, Debug)]
#[command(
    after_help = "POINT is a sequence number (1234), an RFC 3339 time (2026-11-26T14:02:00Z) or a time relative to now (-5m).\n\
    Lines are whole records of the log: the first and last may start before --from or end after --to."
)]
pub struct ExportArgs {
    /// First event to export (POINT).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Last event to export (POINT).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Write to FILE instead of stdout (needed with --json, whose stdout is the envelope).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// json: OTLP/JSON lines. protobuf: length-prefixed OTLP protobuf messages (the Collector
    /// file exporter's `format: proto`; smaller, and several times faster to replay).
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    pub format: ExportFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ExportFormat {
    Json,
    Protobuf,
}

impl From<ExportFormat> for crate::otlp::file::Format {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Json => crate::otlp::file::Format::Json,
            ExportFormat::Protobuf => crate::otlp::file::Format::Protobuf,
        }
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Input: OTLP/JSON lines (from `spanfold export` or a Collector's file exporter) or OTLP protobuf\n\
    (one ExportTraceServiceRequest, or several each prefixed by a 4-byte big-endian length).\n\
    --policy-config FILE (YAML or JSON) may set: weights: {capability, priority, complexity, load},\n\
    lease_seconds, max_concurrent_features."
)]
pub struct ReplayArgs {
    /// Recorded trace files, replayed in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One line per event: seq, time, span, agent, and what it changed.
    #[arg(long)]
    pub step: bool,
    /// Stop after this POINT (a seq, or a time: the last event received by then).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Re-run the policy at every recorded decision and compare; the first difference is shown
    /// side by side and the exit code is 1.
    #[arg(long)]
    pub verify: bool,
    /// What-if: the recorded inputs under other policy weights, lease or concurrency limits.
    #[arg(long, value_name = "FILE")]
    pub policy_config: Option<PathBuf>,
    /// Also write the replayed events as a new log in DIR (which must not exist), to query it
    /// with --coord-dir DIR. It is read-only: commands that would act on it are refused.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct HistoryArgs {
    /// The agent to follow.
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// The feature to follow.
    #[arg(long, value_name = "NAME")]
    pub feature: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "POINT is a sequence number (1234), an RFC 3339 time (2026-11-26T14:02:00Z) or a time relative to now (-5m)."
)]
pub struct DiffArgs {
    /// The earlier POINT.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub from: String,
    /// The later POINT. Default: now.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub to: Option<String>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub agents: u64,
    /// Features (at least 2: the first two conflict).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..=200))]
    pub features: u64,
    /// Where to make the demo repository (a new directory). Default: a new one in the temp dir.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub timeout: f64,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Only worktrees let go of at least this long ago (e.g. 30m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub older_than: Duration,
    /// Also remove worktrees with uncommitted changes (the changes are lost; commits never are:
    /// a branch goes only when the base branch contains it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// OTLP/gRPC listen address. Anything but loopback must be asked for explicitly.
    #[arg(long, default_value = "127.0.0.1:4317", value_name = "ADDR")]
    pub grpc: String,
    /// OTLP/HTTP and API listen address.
    #[arg(long, default_value = "127.0.0.1:4318", value_name = "ADDR")]
    pub http: String,
    /// Seconds between timed coordination cycles (0: none; cycles still follow relevant spans).
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub interval: f64,
    /// No automatic cycles at all: only `agents coordination-cycle` (POST /api/cycle) runs one.
    #[arg(long)]
    pub manual: bool,
    /// Also send decision spans to this OTLP/gRPC endpoint (Jaeger, Tempo, a Collector).
    /// Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, if set.
    #[arg(long, value_name = "URL")]
    pub export_endpoint: Option<String>,
    /// TLS on both ports, for agents on other machines: the certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen beyond loopback without TLS or without a token (refused otherwise).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Set up coordination for a repository.
    Init(InitArgs),
    /// Register an agent with its capabilities (again to update them).
    RegisterAgent(RegisterArgs),
    /// Add a feature to the queue (again, while queued, to update it).
    AddFeature(AddFeatureArgs),
    /// Place queued features on capable agents and create their worktrees.
    CoordinationCycle(CycleArgs),
    /// Agents, features, worktrees and health.
    AgentStatus(StatusArgs),
    /// Worktrees and the features and agents they belong to.
    WorktreeStatus(WorktreeStatusArgs),
    /// Report an agent's state and progress (as the agent would, over OTLP).
    Progress(ProgressArgs),
    /// Report the result of validating an agent's work.
    Validate(ValidateArgs),
    /// The messages an agent sent (agent.communication spans), oldest first.
    Messages(MessagesArgs),
    /// Bring an agent back to idle; its features return to the queue and keep their worktrees.
    Reset(ResetArgs),
    /// The agent's task: feature, worktree, branch, what the feature asks for and why it came
    /// back (--wait blocks until it has one, --prompt prints it for a coding agent).
    Next(NextArgs),
    /// Withdraw a feature: its agent lets go; its worktree and branch are kept with their work.
    CancelFeature(CancelArgs),
    /// Put a cancelled or completed feature back at the end of the queue.
    Reopen(ReopenArgs),
    /// Acknowledge anomalies (spans the log holds but could not apply): status stops listing
    /// them; they stay in the log and in the count.
    AckAnomaly(AckArgs),
    /// Issue an agent its own token: spans sent with it must be about that agent, and the
    /// operator's spans (features, resets, acknowledgements, tokens) need the operator token.
    /// Printed once; the log keeps only its SHA-256. A new token replaces the agent's earlier one.
    Token(TokenArgs),
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The agent the token speaks for (it need not be registered yet).
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ReopenArgs {
    /// The feature to reopen.
    pub name: String,
    /// Why, for the record (shown as the feature's reason while it waits).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct AckArgs {
    /// The seq of the anomaly to acknowledge (the SEQ column of agent-status).
    pub seq: Option<u64>,
    /// Acknowledge every anomaly listed.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The feature to withdraw.
    pub name: String,
    /// Why, for the record (shown in status).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct NextArgs {
    /// The agent asking for work.
    pub id: String,
    /// Wait until the agent is assigned a feature.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 1).
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub timeout: f64,
    /// Print the task as plain text for a coding agent's prompt: the feature, its worktree,
    /// description, requirements, acceptance criteria, why it came back, how to report.
    #[arg(long)]
    pub prompt: bool,
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// The agent whose messages to show.
    pub id: String,
    /// Only the last N messages.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The repository (any directory inside it). Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The branch features start from and merge into. Default: the branch checked out now.
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
    /// Where agents' worktrees go. Default: REPO.worktrees beside the repository.
    #[arg(long, value_name = "DIR")]
    pub worktrees_dir: Option<PathBuf>,
    /// The merge gate: a shell command run in a feature's worktree before it is merged (e.g.
    /// "cargo test"); a failure sends the feature back to its agent. Stored in the repository's
    /// git config as spanfold.validateCmd (spanfold.validateTimeout: seconds, default 1800).
    #[arg(long, value_name = "CMD")]
    pub validate_cmd: Option<String>,
    /// Keep feature branches after their merge (git config spanfold.keepBranches).
    #[arg(long)]
    pub keep_branches: bool,
    /// Seconds an agent holding features may stay silent before it loses them (default 600).
    /// Run init again with another value to change it; the change is recorded in the log.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The agent's id: a-z, 0-9, '.', '_', '-'.
    pub id: String,
    /// Languages, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub langs: Vec<String>,
    /// Frameworks, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub frameworks: Vec<String>,
    /// Expertise areas, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub expertise: Vec<String>,
    /// Features the agent may hold at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent: u32,
    /// Preferred feature size, compared with a feature's effort.
    #[arg(long, value_enum)]
    pub complexity: Option<ComplexityArg>,
    /// This agent's lease in seconds: how long it may stay silent while holding features
    /// (default: the one `agents init` set for all).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: Option<u64>,
}

#[derive(Args, Debug)]
pub struct AddFeatureArgs {
    /// The feature's name; becomes its branch spanfold/NAME and its worktree directory.
    pub name: String,
    /// What the feature is.
    #[arg(long, default_value = "")]
    pub desc: String,
    /// How urgent: higher priorities are placed on agents first.
    #[arg(long, value_enum, default_value_t = PriorityArg::Medium)]
    pub priority: PriorityArg,
    /// Effort in story points (1-3 low, 4-6 medium, 7+ high complexity).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub effort: u32,
    /// JSON file with {"requirements": [...], "acceptance_criteria": [...]}.
    #[arg(long, value_name = "FILE")]
    pub req_file: Option<PathBuf>,
    /// Languages an agent must have, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub langs: Vec<String>,
    /// Frameworks an agent must have, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub frameworks: Vec<String>,
    /// Expertise an agent must have, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub expertise: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CycleArgs {
    /// Keep cycling every --interval seconds.
    #[arg(long)]
    pub continuous: bool,
    /// Seconds between cycles in continuous mode.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub interval: f64,
    /// Stop after this many cycles in continuous mode.
    #[arg(long, value_name = "N")]
    pub max_cycles: Option<u64>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this agent in the agent list.
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Include capabilities and feature requirements.
    #[arg(long)]
    pub details: bool,
    /// The status as of POINT: a sequence number (1234), an RFC 3339 time
    /// (2026-11-26T14:02:00Z) or a time relative to now (-5m).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Only features in these statuses, comma-separated (queued, assigned, in_progress,
    /// validating, merging, completed, conflicted, cancelled); the summary still counts all.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub status: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WorktreeStatusArgs {
    /// The worktrees as of POINT (seq, RFC 3339 time, or -5m); orphans are only looked for now.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
#[command(after_help = TRANSITIONS)]
pub struct ProgressArgs {
    /// The reporting agent's id.
    pub id: String,
    /// The agent's state after this report (see the legal transitions below).
    #[arg(long, value_enum)]
    pub state: StateArg,
    /// The feature the report is about; needed when the agent holds several.
    #[arg(long, value_name = "NAME")]
    pub feature: Option<String>,
    /// Percent done, 0 to 100.
    #[arg(long, value_name = "PCT")]
    pub progress: Option<f64>,
    /// Files modified so far.
    #[arg(long, value_name = "N")]
    pub files: Option<i64>,
    /// Lines added so far.
    #[arg(long, value_name = "N")]
    pub lines_added: Option<i64>,
    /// Time spent so far, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub duration_ms: Option<i64>,
}

/// The agent lifecycle, as `progress --help` shows it (a unit test checks it against the
/// reducer's table).
pub const TRANSITIONS: &str = "Legal transitions (a report may also repeat the current state):
  idle        -> claiming (when the coordinator assigns a feature), error
  claiming    -> working, error
  working     -> validating, error
  validating  -> submitting (agents validate --result passed), working, error
  submitting  -> finished, error
  finished    -> idle, working, error
  error       -> none (only `spanfold agents reset ID`, which makes it idle)";

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The reporting agent's id.
    pub id: String,
    /// passed: the feature is submitted for its merge; failed: back to working on it.
    #[arg(long, value_enum)]
    pub result: ResultArg,
    /// The feature validated; needed when the agent holds several with work to do.
    #[arg(long, value_name = "NAME")]
    pub feature: Option<String>,
    /// How many problems validation found, for the record.
    #[arg(long, value_name = "N")]
    pub issues: Option<i64>,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The agent to bring back to idle.
    pub id: String,
    /// Why, for the record.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PriorityArg {
    Low,
    Medium,
    High,
    Critical,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Priority {
        match p {
            PriorityArg::Low => Priority::Low,
            PriorityArg::Medium => Priority::Medium,
            PriorityArg::High => Priority::High,
            PriorityArg::Critical => Priority::Critical,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ComplexityArg {
    Low,
    Medium,
    High,
}

impl From<ComplexityArg> for Complexity {
    fn from(c: ComplexityArg) -> Complexity {
        match c {
            ComplexityArg::Low => Complexity::Low,
            ComplexityArg::Medium => Complexity::Medium,
            ComplexityArg::High => Complexity::High,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StateArg {
    Idle,
    Claiming,
    Working,
    Validating,
    Submitting,
    Finished,
    Error,
}

impl From<StateArg> for AgentState {
    fn from(s: StateArg) -> AgentState {
        match s {
            StateArg::Idle => AgentState::Idle,
            StateArg::Claiming => AgentState::Claiming,
            StateArg::Working => AgentState::Working,
            StateArg::Validating => AgentState::Validating,
            StateArg::Submitting => AgentState::Submitting,
            StateArg::Finished => AgentState::Finished,
            StateArg::Error => AgentState::Error,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultArg {
    Passed,
    Failed,
}

/// What a command produced: the JSON `data`, the text for people, and warnings.
pub struct Output {
    pub data: Value,
    pub text: String,
    pub warnings: Vec<String>,
    /// Merged into the envelope's metadata (what a command says about how it got its data).
    pub metadata: Option<Value>,
}

impl Output {
    fn new(data: Value, text: String) -> Output {
        Output {
            data,
            text,
            warnings: Vec::new(),
            metadata: None,
        }
    }
}

/// A failure that still has data to show (with --json, in `data`), such as the divergence
/// `replay --verify` found.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub data: Value,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The seed's envelope.
#[derive(Serialize)]
pub struct Envelope {
    pub timestamp: String,
    pub command: String,
    pub success: bool,
    pub data: Value,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub metadata: Value,
}

/// An error and its causes on one line, each cause said once: a message that already quotes
/// its cause does not get it repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

impl Envelope {
    pub fn new(
        command: &str,
        result: &std::result::Result<Output, anyhow::Error>,
        coord_dir: Option<&Path>,
    ) -> Envelope {
        let (success, data, errors, warnings) = match result {
            Ok(out) => (true, out.data.clone(), vec![], out.warnings.clone()),
            Err(e) => (
                false,
                e.downcast_ref::<Failure>()
                    .map_or(Value::Null, |f| f.data.clone()),
                vec![error_text(e)],
                vec![],
            ),
        };
        let mut metadata = json!({
            "spanfold_version": env!("CARGO_PKG_VERSION"),
            "coord_dir": coord_dir.map(|p| p.display().to_string()),
        });
        if let (
            Ok(Output {
                metadata: Some(Value::Object(extra)),
                ..
            }),
            Some(m),
        ) = (result, metadata.as_object_mut())
        {
            m.extend(extra.clone());
        }
        Envelope {
            timestamp: status::rfc3339(emit::now()),
            command: command.to_owned(),
            success,
            data,
            errors,
            warnings,
            metadata,
        }
    }
}

impl Command {
    /// The command's name as users type it, for the envelope.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Spans { .. } => "spans",
            Command::Rebuild => "rebuild",
            Command::Serve(_) => "serve",
            Command::Gc(_) => "gc",
            Command::Demo(_) => "demo",
            Command::Export(_) => "export",
            Command::Replay(_) => "replay",
            Command::History(_) => "history",
            Command::Diff(_) => "diff",
            Command::Agents(a) => match a {
                AgentsCommand::Init(_) => "agents init",
                AgentsCommand::RegisterAgent(_) => "agents register-agent",
                AgentsCommand::AddFeature(_) => "agents add-feature",
                AgentsCommand::CoordinationCycle(_) => "agents coordination-cycle",
                AgentsCommand::AgentStatus(_) => "agents agent-status",
                AgentsCommand::WorktreeStatus(_) => "agents worktree-status",
                AgentsCommand::Progress(_) => "agents progress",
                AgentsCommand::Validate(_) => "agents validate",
                AgentsCommand::Reset(_) => "agents reset",
                AgentsCommand::Next(_) => "agents next",
                AgentsCommand::Messages(_) => "agents messages",
                AgentsCommand::Reopen(_) => "agents reopen",
                AgentsCommand::AckAnomaly(_) => "agents ack-anomaly",
                AgentsCommand::Token(_) => "agents token",
                AgentsCommand::CancelFeature(_) => "agents cancel-feature",
            },
        }
    }
}

/// Finds the coordination directory: the flag, or `spanfold` in the git directory of the
/// repository around `start`.
pub fn resolve_coord_dir(flag: Option<&Path>, start: &Path) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    let info = git::discover(start).map_err(|e| match e {
        git::GitError::NotARepository { path, .. } => anyhow!(
            "{} is not inside a git repository; run this from a repository or one of its worktrees, or pass --coord-dir DIR (the coordination directory; `agents init --repo DIR` makes one for a repository elsewhere)",
            path.display()
        ),
        other => other.into(),
    })?;
    Ok(info.common_dir.join("spanfold"))
}

/// Runs a parsed command. `on_cycle` receives each cycle's text as it finishes (continuous
/// mode prints as it goes in text mode).
pub fn run(cli: &Cli, coord_dir: &Path, mut on_cycle: impl FnMut(&str)) -> Result<Output> {
    let connect = || Backend::connect(coord_dir, cli.endpoint.as_deref(), cli.token.clone());
    match &cli.command {
        Command::Spans { markdown } => {
            let mut out = spans_output();
            if *markdown {
                out.text = spans_markdown();
            }
            Ok(out)
        }
        Command::Serve(args) => serve(args, cli, coord_dir),
        Command::Demo(args) => {
            if !(args.timeout.is_finite() && args.timeout > 0.0) {
                bail!("--timeout must be a positive number of seconds");
            }
            let config = crate::demo::DemoConfig {
                agents: args.agents as usize,
                features: args.features as usize,
                repo: args.repo.clone(),
                timeout: Duration::from_secs_f64(args.timeout),
            };
            let summary = crate::demo::run(config, |line| on_cycle(line))?;
            let text = format!(
                "\nDemo finished in {:.1}s: {} features merged ({} conflict resolved by its agent), {} commits on main, {} events in the log.\n\
                 Repository: {}\n\
                 Look around:\n  cd {} && git log --oneline --graph | head -20\n  spanfold --coord-dir {} agents agent-status\n  spanfold --coord-dir {} agents worktree-status\n",
                summary.seconds,
                summary.features_merged,
                summary.conflicts_resolved,
                summary.commits_on_base,
                summary.events_in_log,
                summary.repo,
                summary.repo,
                summary.coord_dir,
                summary.coord_dir
            );
            Ok(Output::new(serde_json::to_value(&summary)?, text))
        }
        Command::Gc(args) => {
            let report = connect().gc(args.older_than, args.force)?;
            let mut text = String::new();
            for e in &report.removed {
                text.push_str(&format!("removed {} ({})\n", e.path, e.feature));
            }
            for e in &report.kept {
                text.push_str(&format!(
                    "kept    {} ({}): {}\n",
                    e.path,
                    e.feature,
                    e.reason.as_deref().unwrap_or("")
                ));
            }
            if text.is_empty() {
                text = "Nothing to collect: every worktree belongs to an agent at work.\n".into();
            }
            Ok(Output::new(serde_json::to_value(&report)?, text))
        }
        Command::Rebuild => {
            let mut backend = connect();
            let coord = backend.local()?;
            let before =
                serde_json::to_string(&status::build(&coord.view(), &StatusOptions::default()))?;
            let Backend::Local { coord, .. } = &mut backend else {
                bail!("rebuild needs the log itself");
            };
            let (rebuilt, dropped) = coord.take().context("the log is open")?.rebuild()?;
            let after =
                serde_json::to_string(&status::build(&rebuilt.view(), &StatusOptions::default()))?;
            let identical = before == after;
            let events = rebuilt.view().counters.events;
            Ok(Output::new(
                json!({"events": events, "dropped": dropped, "identical_to_before": identical}),
                format!(
                    "Rebuilt the view from {events} events{}; status is {}.",
                    if dropped.is_empty() {
                        String::new()
                    } else {
                        format!(" (dropped derived data: {})", dropped.join(", "))
                    },
                    if identical {
                        "unchanged"
                    } else {
                        "DIFFERENT from before"
                    }
                ),
            ))
        }
        Command::Export(args) => export(args, cli, coord_dir, &mut connect()),
        Command::Replay(args) => replay(args, cli, &mut on_cycle),
        Command::History(args) => history(args, &mut connect()),
        Command::Diff(args) => diff(args, &mut connect()),
        Command::Agents(AgentsCommand::Init(args)) => init(args, coord_dir, &mut connect()),
        Command::Agents(cmd) => run_agents(cmd, &mut connect(), &mut on_cycle),
    }
}

fn run_agents(
    cmd: &AgentsCommand,
    backend: &mut Backend,
    on_cycle: &mut dyn FnMut(&str),
) -> Result<Output> {
    match cmd {
        AgentsCommand::Init(_) => unreachable!("init is dispatched before"),
        AgentsCommand::RegisterAgent(args) => {
            names::agent_id(&args.id)?;
            let reg = emit::Registration {
                agent_id: args.id.clone(),
                languages: clean_list(&args.langs, "--langs")?,
                frameworks: clean_list(&args.frameworks, "--frameworks")?,
                expertise_areas: clean_list(&args.expertise, "--expertise")?,
                max_concurrent_features: args.max_concurrent,
                preferred_complexity: args.complexity.map(Into::into),
                lease_seconds: args.lease,
            };
            let existed = backend.agent(&args.id)?.is_some();
            let span = emit::registration(&mut IdGen::default(), emit::now(), &reg);
            submit_checked(backend, span)?;
            let verb = if existed { "updated" } else { "registered" };
            Ok(Output::new(
                json!({"agent_id": args.id, "action": verb}),
                format!("Agent {} {verb}.", args.id),
            ))
        }
        AgentsCommand::AddFeature(args) => add_feature(args, backend),
        AgentsCommand::CoordinationCycle(args) => cycles(args, backend, on_cycle),
        AgentsCommand::AgentStatus(args) => {
            let options = StatusOptions {
                agent: args.agent.clone(),
                details: args.details,
                per_status: None,
                statuses: status::parse_statuses(&args.status.join(",")).map_err(|e| anyhow!(e))?,
            };
            let (st, note) = backend.status_noted(&options, args.at.as_deref())?;
            if let Some(id) = &args.agent
                && st.agents.is_empty()
            {
                bail!(
                    "agent {id} is not registered; `spanfold agents agent-status` lists the agents"
                );
            }
            // The lease left counts from now, or from the moment asked about.
            let seen = crate::render::Viewpoint {
                now: args.at.is_none().then(emit::now),
                cwd: std::env::current_dir().ok(),
            };
            let text = status_text(&st, &seen);
            let mut out = Output::new(serde_json::to_value(&st)?, text);
            out.warnings.extend(note);
            Ok(out)
        }
        AgentsCommand::WorktreeStatus(args) => {
            let st = backend.status_at(&StatusOptions::default(), args.at.as_deref())?;
            // Orphans: worktrees git has that the log knows nothing of (made by hand, or by
            // another tool). Listed, never touched; git only knows the present.
            let orphaned: Vec<String> = match &st.config {
                Some(c) if args.at.is_none() => git::worktree_paths(Path::new(&c.repo))?
                    .into_iter()
                    .filter(|p| {
                        !st.worktrees.iter().any(|w| {
                            std::fs::canonicalize(&w.path)
                                .map(|r| r.to_string_lossy() == p.as_str())
                                .unwrap_or(false)
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut text = worktree_text(&st);
            for o in &orphaned {
                text.push_str(&format!(
                    "orphaned: {o} (a git worktree the log does not know)\n"
                ));
            }
            let abandoned: Vec<&str> = st
                .worktrees
                .iter()
                .filter(|w| w.status == crate::reducer::WorktreeStatus::Abandoned)
                .map(|w| w.path.as_str())
                .collect();
            Ok(Output::new(
                json!({
                    "as_of": st.as_of,
                    "total_worktrees": st.coordination_status.total_worktrees,
                    "worktrees_by_status": st.coordination_status.worktrees_by_status,
                    "worktrees": st.worktrees,
                    "abandoned": abandoned,
                    "orphaned": orphaned,
                    "config": st.config,
                }),
                text,
            ))
        }
        AgentsCommand::Progress(args) => {
            names::agent_id(&args.id)?;
            if let Some(f) = &args.feature {
                names::feature_name(f)?;
            }
            if let Some(p) = args.progress
                && !(0.0..=100.0).contains(&p)
            {
                bail!("--progress must be between 0 and 100, got {p}");
            }
            let report = emit::ProgressReport {
                agent_id: args.id.clone(),
                state: Some(args.state.into()),
                feature: args.feature.clone(),
                percentage: args.progress,
                files_modified: args.files,
                lines_added: args.lines_added,
                duration_ms: args.duration_ms,
            };
            let span = emit::progress(&mut IdGen::default(), emit::now(), &report);
            report_and_check(backend, span, &args.id)
        }
        AgentsCommand::Validate(args) => {
            names::agent_id(&args.id)?;
            if let Some(f) = &args.feature {
                names::feature_name(f)?;
            }
            let span = emit::validation(
                &mut IdGen::default(),
                emit::now(),
                &args.id,
                args.feature.as_deref(),
                args.result == ResultArg::Passed,
                args.issues,
            );
            report_and_check(backend, span, &args.id)
        }
        AgentsCommand::Reset(args) => {
            names::agent_id(&args.id)?;
            if backend.agent(&args.id)?.is_none() {
                bail!("agent {} is not registered; nothing to reset", args.id);
            }
            let span = emit::reset(
                &mut IdGen::default(),
                emit::now(),
                &args.id,
                args.reason.as_deref(),
            );
            report_and_check(backend, span, &args.id)
        }
        AgentsCommand::Next(args) => next(args, backend),
        AgentsCommand::Messages(args) => messages(args, backend),
        AgentsCommand::Reopen(args) => reopen(args, backend),
        AgentsCommand::AckAnomaly(args) => ack_anomaly(args, backend),
        AgentsCommand::Token(args) => issue_token(args, backend),
        AgentsCommand::CancelFeature(args) => cancel_feature(args, backend),
    }
}

/// Where a file is written before it is renamed to `path` once whole: beside it, so the rename
/// stays on one file system.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Refuses an output file inside the coordination directory: writing there could overwrite
/// the log itself (`export -o .git/spanfold/log/db` once emptied it).
fn refuse_inside(path: &Path, coord_dir: &Path) -> Result<()> {
    let absolute = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.into()))
    };
    // The file may not exist yet: its directory is what is resolved.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let target = absolute(dir).join(path.file_name().unwrap_or_default());
    if target.starts_with(absolute(coord_dir)) {
        bail!(
            "{} is inside the coordination directory {}, where the log lives; write the export elsewhere",
            path.display(),
            coord_dir.display()
        );
    }
    Ok(())
}

/// Sends one operator span; a span the reducer could not apply fails the command with its reason
/// (the span stays in the log: it is what was said).
fn export(args: &ExportArgs, cli: &Cli, coord_dir: &Path, backend: &mut Backend) -> Result<Output> {
    let (from, to) = (args.from.as_deref(), args.to.as_deref());
    let counted = match &args.output {
        None => {
            if cli.json {
                bail!(
                    "with --json, stdout carries the envelope: give --output FILE for the export"
                );
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let counted = backend.export(from, to, args.format.into(), &mut out)?;
            std::io::Write::flush(&mut out).context("writing the export to stdout")?;
            // The lines are the output; the summary goes to stderr so a pipe stays clean.
            if let Some((lines, spans)) = counted {
                eprintln!("exported {spans} spans in {lines} lines");
            }
            return Ok(Output::new(Value::Null, String::new()));
        }
        Some(path) => {
            refuse_inside(path, coord_dir)?;
            // Written beside its destination and renamed once complete: an export cut short
            // never replaces an earlier, whole one.
            let partial = partial_path(path);
            let written = (|| {
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                let mut out = std::io::BufWriter::new(file);
                let counted = backend.export(from, to, args.format.into(), &mut out)?;
                let file = out
                    .into_inner()
                    .map_err(|e| anyhow!("writing {}: {}", partial.display(), e.error()))?;
                file.sync_all()
                    .with_context(|| format!("writing {}", partial.display()))?;
                std::fs::rename(&partial, path)
                    .with_context(|| format!("moving the export to {}", path.display()))?;
                Ok::<_, anyhow::Error>(counted)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            written?
        }
    };
    let path = args.output.as_ref().map(|p| p.display().to_string());
    let (lines, spans) = counted.unzip();
    Ok(Output::new(
        json!({"path": path, "lines": lines, "spans": spans}),
        match counted {
            Some((lines, spans)) => format!(
                "Exported {spans} spans in {lines} lines to {}.",
                path.unwrap_or_default()
            ),
            None => format!("Exported the server's log to {}.", path.unwrap_or_default()),
        },
    ))
}

fn replay(args: &ReplayArgs, cli: &Cli, on_line: &mut dyn FnMut(&str)) -> Result<Output> {
    use std::io::IsTerminal;
    let what_if = args
        .policy_config
        .as_deref()
        .map(crate::replay::read_what_if)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let until = args
        .until
        .as_deref()
        .map(str::parse::<crate::timetravel::Point>)
        .transpose()?;
    // A progress bar only for people: on a terminal, for inputs big enough to wait for.
    let size = crate::replay::input_size(&args.files);
    let show_progress =
        !cli.json && !args.step && std::io::stderr().is_terminal() && size > 32 * 1024 * 1024;
    let options = crate::replay::ReplayOptions {
        files: args.files.clone(),
        step: args.step,
        until,
        verify: args.verify,
        what_if,
        keep: args.keep.clone(),
        now: emit::now(),
        progress: show_progress.then_some(progress_bar as fn(u64, u64)),
    };
    let mut steps = Vec::new();
    let report = crate::replay::replay(&options, |step| {
        if cli.json {
            steps.push(step.clone());
        } else {
            on_line(&step_line(step));
        }
    })?;
    let st = status::build(&report.view, &StatusOptions::default());
    let summary = format!(
        "Replayed {} events from {} lines of {} file(s){}{}{}.\n",
        report.events,
        report.lines,
        args.files.len(),
        if report.duplicates > 0 {
            format!("; {} duplicate spans dropped", report.duplicates)
        } else {
            String::new()
        },
        if report.rejected_count > 0 {
            format!(
                "; {} malformed spans skipped ({})",
                report.rejected_count,
                report.rejected.join("; ")
            )
        } else {
            String::new()
        },
        if report.stopped {
            format!(" (stopped at seq {} by --until)", report.view.as_of.seq)
        } else {
            String::new()
        }
    );
    let mut meta = json!({
        "events": report.events,
        "lines": report.lines,
        "duplicates": report.duplicates,
        "times_raised": report.times_raised,
        "rejected_spans": report.rejected_count,
        "stopped_by_until": report.stopped,
    });
    let mut text = summary;
    if !args.step || cli.json {
        text.push_str(&status_text(&st, &crate::render::Viewpoint::default()));
    }
    if args.step && cli.json {
        meta["steps"] = serde_json::to_value(&steps)?;
    }
    if let Some(w) = &report.what_if {
        meta["what_if"] = serde_json::to_value(w)?;
        text.push_str(&what_if_text(w));
    }
    if let Some(v) = &report.verify {
        meta["verify"] = serde_json::to_value(v)?;
        if let Some(d) = &v.divergence {
            let message = format!(
                "replay --verify: the policy no longer makes a recorded decision.\n{}({} decision points agreed before it)",
                d.render(),
                v.decision_points.saturating_sub(1)
            );
            let mut data = serde_json::to_value(&st)?;
            data["verify"] = serde_json::to_value(v)?;
            return Err(Failure { message, data }.into());
        }
        text.push_str(&format!(
            "verify: {} decision points, {} decisions re-computed, all as recorded.\n",
            v.decision_points, v.decisions
        ));
    }
    let mut out = Output::new(serde_json::to_value(&st)?, text);
    out.metadata = Some(json!({ "replay": meta }));
    if report.times_raised > 0 {
        out.warnings.push(format!(
            "{} line(s) carried a receive time earlier than the line before; they were replayed at that line's time, so time never goes backwards (the file was edited, or exports were joined out of order)",
            report.times_raised
        ));
    }
    Ok(out)
}

fn progress_bar(read: u64, total: u64) {
    use std::sync::OnceLock;
    static BAR: OnceLock<indicatif::ProgressBar> = OnceLock::new();
    let bar = BAR.get_or_init(|| {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "replaying {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    });
    bar.set_position(read);
    if read >= total {
        bar.finish_and_clear();
    }
}

fn history(args: &HistoryArgs, backend: &mut Backend) -> Result<Output> {
    use crate::changes::Subject;
    let subject = match (&args.agent, &args.feature) {
        (Some(a), _) => Subject::Agent(a.clone()),
        (_, Some(f)) => Subject::Feature(f.clone()),
        _ => bail!("give --agent ID or --feature NAME"),
    };
    let what = match &subject {
        Subject::Agent(a) => format!("agent {a}"),
        Subject::Feature(f) => format!("feature {f}"),
    };
    let entries = backend.history(subject)?;
    if entries.is_empty() {
        bail!(
            "the log holds nothing about {what}; `spanfold agents agent-status` lists what it knows"
        );
    }
    let mut text = format!("History of {what}:\n");
    for e in &entries {
        let changes: Vec<String> = e.changes.iter().map(|c| c.describe()).collect();
        text.push_str(&format!(
            "{:>8} {} {:<28} {}\n",
            e.seq,
            status::rfc3339(e.time),
            e.span,
            changes.join("; ")
        ));
        if let Some(score) = e.score {
            text.push_str(&format!("{:>40}score {score:.3}\n", ""));
        }
        for r in &e.reasons {
            text.push_str(&format!("{:>40}- {r}\n", ""));
        }
        text.push_str(&crate::render::detail_lines(&e.details));
    }
    Ok(Output::new(json!({"entries": entries}), text))
}

fn diff(args: &DiffArgs, backend: &mut Backend) -> Result<Output> {
    let to = args.to.clone().unwrap_or_else(|| u64::MAX.to_string());
    let report = backend.diff(&args.from, &to)?;
    let mut text = format!(
        "From seq {} ({}) to seq {} ({}): {} events.\n",
        report.from.seq,
        status::rfc3339(report.from.time),
        report.to.seq,
        status::rfc3339(report.to.time),
        report.events
    );
    if report.changes.is_empty() {
        text.push_str("Nothing changed.\n");
    }
    for c in &report.changes {
        text.push_str(&format!("  {:<9} {}\n", c.entity, c.describe()));
    }
    Ok(Output::new(serde_json::to_value(&report)?, text))
}

fn submit_checked(backend: &mut Backend, span: crate::model::Span) -> Result<()> {
    if let Some(anomaly) = backend.submit(vec![span])? {
        bail!(
            "recorded as an anomaly (seq {}): {}",
            anomaly.seq,
            anomaly.reason
        );
    }
    Ok(())
}

fn report_and_check(
    backend: &mut Backend,
    span: crate::model::Span,
    agent_id: &str,
) -> Result<Output> {
    submit_checked(backend, span)?;
    let agent = backend
        .agent(agent_id)?
        .ok_or_else(|| anyhow!("agent {agent_id} is not registered"))?;
    let held: Vec<&str> = agent
        .assignments
        .iter()
        .map(|a| a.feature_name.as_str())
        .collect();
    Ok(Output::new(
        json!({"agent_id": agent_id, "state": agent.state, "assignments": held}),
        format!("Agent {agent_id} is {}.", agent.state.as_str()),
    ))
}

fn cancel_feature(args: &CancelArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let st = backend.status(&StatusOptions::default())?;
    let Some(f) = st.features.iter().find(|f| f.name == args.name) else {
        bail!(
            "feature {} does not exist; `spanfold agents agent-status` lists the features",
            args.name
        );
    };
    if matches!(
        f.status,
        crate::reducer::FeatureStatus::Completed | crate::reducer::FeatureStatus::Cancelled
    ) {
        bail!(
            "feature {} is already {}; nothing to cancel",
            args.name,
            f.status.as_str()
        );
    }
    let holder = f.assigned_agent.clone();
    let worktree = f.worktree_path.clone();
    let span = emit::cancel(
        &mut IdGen::default(),
        emit::now(),
        &args.name,
        args.reason.as_deref(),
    );
    submit_checked(backend, span)?;
    // Its worktree is unlocked now: by this process when it holds the log, by the
    // cycle the server runs right after such a span otherwise.
    if !backend.is_remote() {
        backend.local()?.release_now()?;
    }
    Ok(Output::new(
        json!({"feature_name": args.name, "status": "cancelled", "released_from": holder, "worktree_kept": worktree}),
        format!(
            "Feature {} cancelled{}{}.",
            args.name,
            holder
                .map(|a| format!("; agent {a} let go of it"))
                .unwrap_or_default(),
            worktree
                .map(|w| format!(
                    "; its worktree {w} is kept, unlocked, with its work (`spanfold gc` removes it)"
                ))
                .unwrap_or_default()
        ),
    ))
}

fn reopen(args: &ReopenArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let span = emit::reopen(
        &mut IdGen::default(),
        emit::now(),
        &args.name,
        args.reason.as_deref(),
    );
    submit_checked(backend, span)?;
    Ok(Output::new(
        json!({"feature_name": args.name, "status": "queued"}),
        format!(
            "Feature {} is queued again, at the end of the queue.",
            args.name
        ),
    ))
}

fn ack_anomaly(args: &AckArgs, backend: &mut Backend) -> Result<Output> {
    let listed = backend.status(&StatusOptions::default())?.anomalies.len();
    let span = emit::acknowledge(&mut IdGen::default(), emit::now(), args.seq);
    submit_checked(backend, span)?;
    let count = if args.all { listed } else { 1 };
    Ok(Output::new(
        json!({"acknowledged": count, "seq": args.seq}),
        format!(
            "{count} anomal{} acknowledged; status no longer lists {}.",
            if count == 1 { "y" } else { "ies" },
            if count == 1 { "it" } else { "them" }
        ),
    ))
}

fn issue_token(args: &TokenArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let mut random = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut random,
    )
    .context("reading /dev/urandom")?;
    let token = crate::credentials::token_from(&random);
    let hash = crate::credentials::hash(&token);
    let span = emit::token_issued(&mut IdGen::default(), emit::now(), &args.id, &hash);
    submit_checked(backend, span)?;
    Ok(Output::new(
        json!({"agent": args.id, "token": token, "sha256": hash}),
        format!(
            "{token}\nThe token for agent {}: give it to that agent only (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20{token}). It is not kept anywhere; a new one replaces it.",
            args.id
        ),
    ))
}

fn messages(args: &MessagesArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let entries = backend.history(crate::changes::Subject::Agent(args.id.clone()))?;
    let mut sent: Vec<Value> = Vec::new();
    let mut text = String::new();
    let all: Vec<_> = entries
        .iter()
        .filter(|e| e.span == "agent.communication")
        .collect();
    let skip = args.last.map_or(0, |n| all.len().saturating_sub(n));
    for e in all.into_iter().skip(skip) {
        let field = |prefix: &str| {
            e.details
                .iter()
                .find_map(|d| d.strip_prefix(prefix).map(str::to_owned))
        };
        let (to, message) = (field("to: "), field("message: ").unwrap_or_default());
        let time = status::rfc3339(e.time);
        text.push_str(&format!(
            "{time} {}{}\n",
            to.as_deref()
                .map(|t| format!("to {}: ", crate::render::one_line(t)))
                .unwrap_or_default(),
            crate::render::one_line(&message)
        ));
        sent.push(json!({"seq": e.seq, "time": time, "to": to, "message": message}));
    }
    if sent.is_empty() {
        text = format!("Agent {} sent no messages.\n", args.id);
    }
    Ok(Output::new(
        json!({"agent_id": args.id, "messages": sent}),
        text,
    ))
}

fn next(args: &NextArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        bail!("--timeout must be a number of seconds, 0 or more");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        let agent = backend
            .agent(&args.id)?
            .ok_or_else(|| anyhow!("agent {} is not registered; register it first", args.id))?;
        // No work comes to an agent in error before a reset: say so now rather than wait.
        if let Some(why) = &agent.error {
            bail!("agent {} is in error: {why}", args.id);
        }
        // Work to do: a feature that is not waiting for its merge, in a worktree that exists
        // (the assignment is recorded before its worktree is made: decide, record, then act).
        let work = agent
            .assignments
            .iter()
            .find(|a| a.status != crate::reducer::FeatureStatus::Merging);
        if let Some(a) = work {
            if let Some(output) = task_output(args, backend, &agent, &a.feature_name)? {
                return Ok(output);
            }
            if !args.wait {
                bail!(
                    "the worktree of {} is being created; ask again in a moment, or with --wait",
                    a.feature_name
                );
            }
        }
        if !args.wait {
            bail!(
                "agent {} has no work to do yet (state {}); --wait to block until it has",
                args.id,
                agent.state.as_str()
            );
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "agent {} got no assignment within {}s",
                args.id,
                args.timeout
            );
        }
        // Between polls, let other processes at the log.
        backend.release();
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The agent's task on `feature`: JSON with everything, text as a tab-separated line (feature,
/// worktree, branch) and why it came back, or the whole task for a prompt. None while its
/// worktree is not made yet.
fn task_output(
    args: &NextArgs,
    backend: &mut Backend,
    agent: &status::AgentJson,
    feature: &str,
) -> Result<Option<Output>> {
    let st = backend.status(&StatusOptions {
        agent: Some(args.id.clone()),
        details: true,
        ..StatusOptions::default()
    })?;
    let f = st
        .features
        .iter()
        .find(|f| f.name == feature)
        .ok_or_else(|| anyhow!("feature {feature} is not in the status; try again"))?;
    let made = f.worktree_path.as_deref().is_some_and(|path| {
        st.worktrees
            .iter()
            .any(|w| w.path == path && w.status == crate::reducer::WorktreeStatus::Active)
    });
    if !made {
        return Ok(None);
    }
    let base = st.config.as_ref().map(|c| c.base_branch.as_str());
    let task = crate::task::task(agent, f, base);
    let prompt = crate::task::prompt(&task);
    let mut data = serde_json::to_value(&task)?;
    data["state"] = serde_json::to_value(agent.state)?;
    data["prompt"] = Value::String(prompt.clone());
    let text = if args.prompt {
        prompt
    } else {
        let mut line = format!(
            "{}\t{}\t{}",
            task.feature_name,
            task.worktree_path.as_deref().unwrap_or(""),
            task.branch_name.as_deref().unwrap_or("")
        );
        if let Some(why) = &task.came_back {
            line.push_str(&format!("\ncame back: {why}"));
        }
        line
    };
    Ok(Some(Output::new(data, text)))
}

fn serve(args: &ServeArgs, cli: &Cli, coord_dir: &Path) -> Result<Output> {
    // An empty token would silently mean none: anyone could speak for every agent.
    if cli.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!(
            "--token (or SPANFOLD_TOKEN) is empty; give a token, or leave it unset to serve without one"
        );
    }
    // One server per log: answer at once that one runs, rather than wait for its lock.
    if let Some(advert) = crate::client::Advert::read(coord_dir)
        && crate::client::Client::for_advert(&advert, cli.token.clone())
            .probe()
            .is_ok()
    {
        bail!(
            "a spanfold server already runs for this coordination directory (pid {}, HTTP and API on {}, OTLP/gRPC on {}); the CLI talks to it as it is, or stop it (kill {}) to start another",
            advert.pid,
            advert.http,
            advert.grpc,
            advert.pid
        );
    }
    if !(args.interval.is_finite() && args.interval >= 0.0) {
        bail!("--interval must be a number of seconds, 0 or more");
    }
    let export_endpoint = args.export_endpoint.clone().or_else(|| {
        std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .ok()
            .filter(|s| !s.is_empty())
    });
    let config = crate::server::ServerConfig {
        coord_dir: coord_dir.to_path_buf(),
        grpc: args.grpc.clone(),
        http: args.http.clone(),
        interval: (!args.manual && args.interval > 0.0)
            .then(|| Duration::from_secs_f64(args.interval)),
        react: !args.manual,
        token: cli.token.clone(),
        export_endpoint,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key)?),
            _ => None,
        },
        insecure: args.insecure,
    };
    let summary = crate::server::run(config)?;
    Ok(Output::new(
        serde_json::to_value(&summary)?,
        format!(
            "spanfold stopped after {} export{}.",
            summary.exports,
            if summary.exports == 1 { "" } else { "s" }
        ),
    ))
}

fn clean_list(items: &[String], flag: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item = item.trim().to_lowercase();
        if item.is_empty() {
            continue;
        }
        if let Err(why) = names::capability(&item) {
            bail!("{flag}: {why}");
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReqFile {
    #[serde(default)]
    requirements: Vec<String>,
    #[serde(default)]
    acceptance_criteria: Vec<String>,
}

fn add_feature(args: &AddFeatureArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let (requirements, acceptance_criteria) = match &args.req_file {
        None => (vec![], vec![]),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --req-file {}", path.display()))?;
            let req: ReqFile = serde_json::from_str(&text).with_context(|| {
                format!(
                    "--req-file {} is not a JSON object of the form {{\"requirements\": [strings], \"acceptance_criteria\": [strings]}}",
                    path.display()
                )
            })?;
            (req.requirements, req.acceptance_criteria)
        }
    };
    let request = emit::FeatureRequest {
        name: args.name.clone(),
        description: args.desc.clone(),
        priority: Some(args.priority.into()),
        estimated_effort: args.effort,
        languages: clean_list(&args.langs, "--langs")?,
        frameworks: clean_list(&args.frameworks, "--frameworks")?,
        expertise_areas: clean_list(&args.expertise, "--expertise")?,
        requirements,
        acceptance_criteria,
    };
    let st = backend.status(&StatusOptions {
        details: true,
        ..StatusOptions::default()
    })?;
    let existing = st.features.iter().find(|f| f.name == args.name);
    let mut request = request;
    let mut verb = if existing.is_some() {
        "updated"
    } else {
        "queued"
    };
    if let Some(f) = existing
        && f.status != crate::reducer::FeatureStatus::Queued
    {
        if !f.status.is_in_progress() {
            bail!(
                "feature {} is {}; `spanfold agents reopen {}` puts it back in the queue",
                args.name,
                f.status.as_str(),
                args.name
            );
        }
        // Held by an agent: only the priority may change; the rest is repeated as it is.
        let d = f.details.clone().unwrap_or_else(|| status::FeatureDetails {
            description: String::new(),
            requires: Default::default(),
            requirements: Vec::new(),
            acceptance_criteria: Vec::new(),
        });
        request = emit::FeatureRequest {
            name: args.name.clone(),
            description: d.description,
            priority: request.priority,
            estimated_effort: f.estimated_effort,
            languages: d.requires.languages.into_iter().collect(),
            frameworks: d.requires.frameworks.into_iter().collect(),
            expertise_areas: d.requires.expertise_areas.into_iter().collect(),
            requirements: d.requirements,
            acceptance_criteria: d.acceptance_criteria,
        };
        verb = "reprioritised";
    }
    let span = emit::feature_request(&mut IdGen::default(), emit::now(), &request);
    submit_checked(backend, span)?;
    let priority = Priority::from(args.priority);
    let note = if verb == "reprioritised" {
        "; an assigned feature keeps everything else"
    } else {
        ""
    };
    Ok(Output::new(
        json!({"feature_name": args.name, "action": verb, "priority": priority}),
        format!(
            "Feature {} {verb} ({} priority{note}).",
            args.name,
            priority.as_str()
        ),
    ))
}

/// `agents init` run again: what was given explicitly and cannot change (repository, base
/// branch, worktrees directory) is refused; what may change (the lease, recorded; the merge
/// gate, in git config) is applied and said.
fn apply_settings(
    args: &InitArgs,
    coord: &mut Coordinator,
    workdir: &Path,
    created: bool,
    [repo, base, wt]: [&String; 3],
) -> Result<Vec<String>> {
    let config = coord.config()?;
    if !created {
        let fixed = [
            ("--repo", args.repo.is_some(), &config.repo, repo),
            ("--base", args.base.is_some(), &config.base_branch, base),
            (
                "--worktrees-dir",
                args.worktrees_dir.is_some(),
                &config.worktrees_dir,
                wt,
            ),
        ];
        let refused: Vec<String> = fixed
            .iter()
            .filter(|(_, given, was, now)| *given && was != now)
            .map(|(flag, _, was, now)| format!("{flag} is {was} (given: {now})"))
            .collect();
        if !refused.is_empty() {
            bail!(
                "the log is initialised and these settings cannot change: {}; features and worktrees already depend on them. Start a new coordination directory (--coord-dir) to use others",
                refused.join("; ")
            );
        }
    }
    let mut changed = Vec::new();
    if let Some(lease) = args
        .lease
        .filter(|l| !created && *l != config.lease_seconds)
    {
        coord.configure_lease(lease)?;
        changed.push(format!("lease {}s → {lease}s", config.lease_seconds));
    }
    if let Some(cmd) = &args.validate_cmd {
        let before = git::config_value(workdir, "spanfold.validateCmd")?;
        if before.as_deref() != Some(cmd.as_str()) {
            git::set_config(workdir, "spanfold.validateCmd", cmd)?;
            if !created {
                changed.push(format!(
                    "merge gate {} → `{cmd}`",
                    before.map_or("none".to_string(), |b| format!("`{b}`"))
                ));
            }
        }
    }
    Ok(changed)
}

fn init(args: &InitArgs, coord_dir_flag: &Path, backend: &mut Backend) -> Result<Output> {
    if backend.is_remote() {
        bail!(
            "a spanfold server already holds the log in {}; it is initialised",
            coord_dir_flag.display()
        );
    }
    let start = match &args.repo {
        Some(r) => r.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let info = git::discover(&start)?;
    let base = match &args.base {
        Some(b) => {
            git::check_branch_name(b)?;
            b.clone()
        }
        None => info.current_branch.clone().ok_or_else(|| {
            anyhow!(
                "HEAD in {} is detached; pass --base BRANCH",
                info.workdir.display()
            )
        })?,
    };
    let worktrees_dir = match &args.worktrees_dir {
        Some(d) => std::path::absolute(d).context("resolving --worktrees-dir")?,
        None => {
            let name = info
                .workdir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "repo".into());
            info.workdir
                .parent()
                .unwrap_or(&info.workdir)
                .join(format!("{name}.worktrees"))
        }
    };
    if worktrees_dir.starts_with(&info.workdir) {
        bail!(
            "--worktrees-dir {} is inside the main checkout {}; worktrees there would show up in its `git status`. Choose a directory outside it",
            worktrees_dir.display(),
            info.workdir.display()
        );
    }
    std::fs::create_dir_all(coord_dir_flag).with_context(|| {
        format!(
            "creating the coordination directory {}",
            coord_dir_flag.display()
        )
    })?;
    // A coordination directory inside the checkout (the seed's `--coord-dir ./coordination`)
    // must not show up in `git status`: exclude it locally, as git's own files are.
    let mut excluded: Option<String> = None;
    let coord_abs = std::fs::canonicalize(coord_dir_flag).unwrap_or(coord_dir_flag.to_path_buf());
    if let Ok(inside) = coord_abs.strip_prefix(&info.workdir)
        && !coord_abs.starts_with(&info.common_dir)
    {
        let pattern = format!("/{}/", inside.display());
        git::exclude_locally(&info.common_dir, &pattern)?;
        excluded = Some(pattern);
    }
    let mut coord = Coordinator::create(coord_dir_flag)?;
    let repo = info.workdir.display().to_string();
    let wt = worktrees_dir.display().to_string();
    let lease = args.lease.unwrap_or(crate::reducer::DEFAULT_LEASE_SECONDS);
    let created = coord.init(&repo, &base, &wt, lease)?;
    let changed = apply_settings(
        args,
        &mut coord,
        &info.workdir,
        created,
        [&repo, &base, &wt],
    )?;
    if args.keep_branches {
        git::set_config(&info.workdir, "spanfold.keepBranches", "true")?;
    }
    let config = coord.config()?;
    let state = match (created, changed.is_empty()) {
        (true, _) => "initialised".to_string(),
        (false, true) => "was already initialised; nothing changed".to_string(),
        (false, false) => format!("was already initialised; changed: {}", changed.join(", ")),
    };
    let mut out = Output::new(
        json!({"repo": config.repo, "base_branch": config.base_branch, "worktrees_dir": config.worktrees_dir, "lease_seconds": config.lease_seconds, "coord_dir": coord_dir_flag.display().to_string(), "created": created, "changed": changed}),
        format!(
            "Coordination {state} for {} (base branch {}, worktrees in {}, lease {}s, log in {}).",
            config.repo,
            config.base_branch,
            config.worktrees_dir,
            config.lease_seconds,
            coord_dir_flag.display()
        ),
    );
    if let Some(pattern) = excluded {
        out.warnings.push(format!(
            "the coordination directory is inside the checkout; {pattern} was added to .git/info/exclude so git status stays clean"
        ));
    }
    Ok(out)
}

fn cycles(
    args: &CycleArgs,
    backend: &mut Backend,
    on_cycle: &mut dyn FnMut(&str),
) -> Result<Output> {
    if !(args.interval.is_finite() && args.interval >= 0.0) {
        bail!("--interval must be a number of seconds, 0 or more");
    }
    let max = if args.continuous {
        args.max_cycles
    } else {
        Some(1)
    };
    let mut reports: Vec<CycleReport> = Vec::new();
    let mut text = String::new();
    loop {
        let report = backend.cycle()?;
        // The log is let go between cycles so that other commands can reach it.
        backend.release();
        let line = cycle_text(&report);
        if args.continuous {
            on_cycle(&line);
        } else {
            text = line;
        }
        reports.push(report);
        if max.is_some_and(|m| reports.len() as u64 >= m) {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
    let data = if args.continuous {
        json!({"cycles": reports})
    } else {
        serde_json::to_value(&reports[0])?
    };
    Ok(Output::new(data, text))
}

/// The registry as Markdown, one section per span type.
pub fn spans_markdown() -> String {
    let mut out = String::new();
    for spec in Registry::builtin().specs() {
        out.push_str(&format!(
            "### `{}` — {}\n\n{}\n\n| attribute | type | requirement | meaning |\n|---|---|---|---|\n",
            spec.name,
            match spec.origin {
                crate::registry::Origin::Client => "sent by agents and operators",
                crate::registry::Origin::Operator => "sent by operators",
                crate::registry::Origin::Coordinator => "written by spanfold only",
            },
            spec.brief
        ));
        for a in &spec.attributes {
            let ty = match &a.ty {
                crate::registry::AttrType::Enum(members) => format!("enum: {}", members.join(", ")),
                other => other.describe(),
            };
            let req = match &a.requirement_level {
                crate::registry::Requirement::ConditionallyRequired(when) => {
                    format!("conditionally required: {when}")
                }
                other => other.describe(),
            };
            out.push_str(&format!("| `{}` | {ty} | {req} | {} |\n", a.id, a.brief));
        }
        out.push('\n');
    }
    out
}

fn spans_output() -> Output {
    let registry = Registry::builtin();
    let specs: Vec<_> = registry.specs().collect();
    let mut text = String::new();
    for spec in &specs {
        text.push_str(&format!(
            "{} ({}, {})\n  {}\n",
            spec.name,
            match spec.origin {
                crate::registry::Origin::Client => "sent by agents",
                crate::registry::Origin::Operator => "sent by operators",
                crate::registry::Origin::Coordinator => "written by spanfold only",
            },
            spec.source,
            spec.brief
        ));
        let rows: Vec<Vec<String>> = spec
            .attributes
            .iter()
            .map(|a| {
                vec![
                    format!("  {}", a.id),
                    a.ty.describe(),
                    a.requirement_level.describe(),
                    a.brief.clone(),
                ]
            })
            .collect();
        text.push_str(&table(
            &["  ATTRIBUTE", "TYPE", "REQUIREMENT", "BRIEF"],
            &rows,
        ));
        text.push('\n');
    }
    Output::new(json!({"spans": specs}), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_listens_on_loopback_unless_told_otherwise() {
        let cli = Cli::try_parse_from(["spanfold", "serve"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {:?}", cli.command);
        };
        for addr in [&args.grpc, &args.http] {
            let addr: std::net::SocketAddr = addr.parse().expect("an address");
            assert!(addr.ip().is_loopback(), "{addr}");
        }
        assert!(cli.token.is_none(), "no token unless given");
    }
}

#[cfg(test)]
mod help_tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's help, walked recursively.
    fn commands(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            commands(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_is_described_and_help_speaks_to_users() {
        let mut all = Vec::new();
        commands(&Cli::command(), "spanfold".into(), &mut all);
        let mut missing = Vec::new();
        for (path, mut cmd) in all {
            if cmd.get_about().is_none() && path != "spanfold" {
                missing.push(path.clone());
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            let help = cmd.render_long_help().to_string().to_lowercase();
            assert!(
                !help.contains("seed"),
                "{path}'s help speaks of the seed:\n{help}"
            );
        }
        assert!(missing.is_empty(), "without a description: {missing:#?}");
    }

    #[test]
    fn progress_help_lists_the_reducers_transitions() {
        for state in AgentState::ALL {
            let line = TRANSITIONS
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", state.as_str())))
                .unwrap_or_else(|| panic!("no line for {}", state.as_str()));
            let listed = line.split("->").nth(1).unwrap_or_default();
            for next in state.next_states() {
                assert!(
                    listed.contains(next.as_str()),
                    "{line} lacks {}",
                    next.as_str()
                );
            }
            let others = AgentState::ALL
                .iter()
                .filter(|s| !state.next_states().contains(s) && **s != state);
            for other in others {
                let word = format!(" {},", other.as_str());
                let last = format!(" {}", other.as_str());
                assert!(
                    !listed.contains(&word) && !listed.trim_end().ends_with(&last),
                    "{line} lists {} which the reducer refuses",
                    other.as_str()
                );
            }
        }
        let help = Cli::command()
            .find_subcommand_mut("agents")
            .and_then(|a| a.find_subcommand_mut("progress"))
            .map(|p| p.render_long_help().to_string())
            .unwrap_or_default();
        assert!(help.contains("validating  -> submitting"), "{help}");
    }
}
