//! The command line's shape: the global flags, the top-level commands and their arguments, as
//! clap parses them and `--help` shows them. The `agents` subcommands are in `agents_args`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::AgentsCommand;

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
    /// The certificate (PEM) to trust for an `https://` --endpoint: the server's own, the file
    /// its --tls-cert names. On the server's machine the CLI finds it in the server's advert.
    #[arg(long, global = true, env = "SPANFOLD_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
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
    /// The demo's bundled coding agent, the command `spanfold demo` runs under `agents run`.
    #[command(hide = true)]
    DemoAgent {
        /// The prompt file `agents run` wrote (`{prompt_file}`).
        prompt_file: std::path::PathBuf,
    },
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
    /// Tokens and dollars of the agents' LLM requests (from their own telemetry), by feature,
    /// agent, model or day: over the whole log, up to --at, or between --from and --to.
    Usage(UsageArgs),
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
#[command(
    after_help = "POINT is a sequence number (1234), an RFC 3339 time (2026-11-26T14:02:00Z) or a time relative to now (-5m).\n\
    cost is: reported (as the agent reported it), priced (its tokens at the price table the log recorded then) or unpriced (no price for its model: tokens counted, dollars not)."
)]
pub struct UsageArgs {
    /// Group the rows by feature, agent, model, day (UTC) or agent session.
    #[arg(long, value_enum, default_value = "feature")]
    pub by: UsageBy,
    /// The usage up to this POINT.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true, conflicts_with_all = ["from", "to"])]
    pub at: Option<String>,
    /// The usage after this POINT (with --to: between the two).
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// The usage up to this POINT. Default: now.
    #[arg(long, value_name = "POINT", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// With --by session: only what each session spent on this feature.
    #[arg(long, value_name = "NAME")]
    pub feature: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageBy {
    Feature,
    Agent,
    Model,
    Day,
    Session,
}

impl From<UsageBy> for crate::usage::By {
    fn from(b: UsageBy) -> Self {
        match b {
            UsageBy::Feature => crate::usage::By::Feature,
            UsageBy::Agent => crate::usage::By::Agent,
            UsageBy::Model => crate::usage::By::Model,
            UsageBy::Day => crate::usage::By::Day,
            UsageBy::Session => crate::usage::By::Session,
        }
    }
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

impl Command {
    /// The command's name as users type it, for the envelope.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Spans { .. } => "spans",
            Command::Rebuild => "rebuild",
            Command::Serve(_) => "serve",
            Command::Gc(_) => "gc",
            Command::Demo(_) => "demo",
            Command::DemoAgent { .. } => "demo-agent",
            Command::Export(_) => "export",
            Command::Replay(_) => "replay",
            Command::History(_) => "history",
            Command::Diff(_) => "diff",
            Command::Usage(_) => "usage",
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
                AgentsCommand::CheckPath(_) => "agents check-path",
                AgentsCommand::ShowFeature(_) => "agents show-feature",
                AgentsCommand::Approve(_) => "agents approve",
                AgentsCommand::Reject(_) => "agents reject",
                AgentsCommand::Messages(_) => "agents messages",
                AgentsCommand::Reopen(_) => "agents reopen",
                AgentsCommand::AckAnomaly(_) => "agents ack-anomaly",
                AgentsCommand::Token(_) => "agents token",
                AgentsCommand::CancelFeature(_) => "agents cancel-feature",
                AgentsCommand::SetBudget(_) => "agents set-budget",
                AgentsCommand::Run(_) => "agents run",
                AgentsCommand::Logs(_) => "agents logs",
            },
        }
    }
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
}
