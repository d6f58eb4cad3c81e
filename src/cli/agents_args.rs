//! The `agents` subcommands' shape: each subcommand's arguments as clap parses them and
//! `--help` shows them, and the value enums that become the reducer's own types.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::reducer::{AgentState, Complexity, Priority};

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
    /// Whether editing PATH would collide with another active feature (its branch changed
    /// the path, or a conflict is forecast there): exit 2 with the reason on stderr if so. As a
    /// Claude Code PreToolUse hook: `spanfold agents check-path "$SPANFOLD_AGENT" --hook`.
    CheckPath(CheckPathArgs),
    /// What a feature's branch brings against the base branch: the diffstat, or the diff.
    ShowFeature(ShowFeatureArgs),
    /// Approve a submitted feature held for approval (git config spanfold.requireApproval):
    /// the next cycle merges it.
    Approve(ApproveArgs),
    /// Reject a submitted feature: it goes back to its agent with the reason.
    Reject(RejectArgs),
    /// Withdraw a feature: its agent lets go; its worktree and branch are kept with their work.
    CancelFeature(CancelArgs),
    /// Set what a feature may spend on its agents' LLM requests (dollars, tokens or both); a
    /// feature held over its budget continues once the new budget is above what it spent.
    SetBudget(BudgetArgs),
    /// Put a cancelled or completed feature back at the end of the queue.
    Reopen(ReopenArgs),
    /// Acknowledge anomalies (spans the log holds but could not apply): status stops listing
    /// them; they stay in the log and in the count.
    AckAnomaly(AckArgs),
    /// Launch and supervise an agent: for each of its assignments, start COMMAND in the
    /// feature's worktree with this coordinator's OTLP endpoint, the agent's identity and the
    /// task; submit its work when it exits 0 with new commits, send the feature back otherwise.
    Run(RunArgs),
    /// The output of an agent's runs under `agents run` (the latest run; --follow to keep
    /// printing while it runs).
    Logs(LogsArgs),
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
#[command(group(clap::ArgGroup::new("limit").required(true).multiple(true).args(["usd", "tokens"])))]
pub struct BudgetArgs {
    /// The feature.
    pub name: String,
    /// The most it may cost, in US dollars (0: no dollar budget).
    #[arg(long, value_name = "DOLLARS", value_parser = dollars)]
    pub usd: Option<f64>,
    /// The most tokens it may use, of every kind (0: no token budget).
    #[arg(long, value_name = "N")]
    pub tokens: Option<u64>,
}

/// A number of dollars: finite, 0 or more.
pub fn dollars(s: &str) -> Result<f64, String> {
    match s.trim().trim_start_matches('$').parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of dollars (such as 5 or 2.50)"
        )),
    }
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
pub struct ShowFeatureArgs {
    /// The feature.
    pub name: String,
    /// The whole diff, not only the diffstat.
    #[arg(long)]
    pub diff: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The submitted feature.
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RejectArgs {
    /// The submitted feature.
    pub name: String,
    /// What the agent is to change (shown to it as why the feature came back).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct CheckPathArgs {
    /// The agent about to edit.
    pub id: String,
    /// The file, absolute or relative to the repository (or to the current directory inside
    /// the agent's worktree).
    pub path: Option<String>,
    /// Read the path from a Claude Code PreToolUse hook's JSON on stdin (tool_input.file_path).
    #[arg(long)]
    pub hook: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The agent to run (registered).
    pub id: String,
    /// Carry one feature to its end, then stop: run again when it comes back (a conflict, a
    /// failed gate); exit 0 once it is merged or leaves the agent, 1 when a run failed.
    #[arg(long)]
    pub once: bool,
    /// Which coding agent COMMAND is, for the switches that turn its telemetry on.
    #[arg(long, value_enum, default_value = "plain")]
    pub profile: ProfileArg,
    /// Seconds between SIGTERM and SIGKILL when the process must stop (the feature was
    /// cancelled or the lease lost, or the launcher was told to stop).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub grace: f64,
    /// Give up waiting for an assignment after this many seconds.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub timeout: f64,
    /// The agent's own token (`spanfold agents token AGENT`), handed to the command in
    /// OTEL_EXPORTER_OTLP_HEADERS so that its telemetry speaks for that agent only. Without
    /// it the command gets the launcher's token (--token).
    #[arg(
        long,
        env = "SPANFOLD_AGENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub agent_token: Option<String>,
    /// Send the agent's own telemetry here (OTLP/HTTP, e.g. an OpenTelemetry Collector's
    /// https://collector:4318) instead of to the server; its records still name the agent and
    /// the repository (`spanfold.repo`), which a Collector routes by.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// With --otlp-endpoint: where gRPC exporters (Codex, Gemini CLI) send. Default: port 4317
    /// on the --otlp-endpoint host.
    #[arg(long, value_name = "URL", requires = "otlp_endpoint")]
    pub otlp_grpc_endpoint: Option<String>,
    /// With --otlp-endpoint: the certificate (PEM) its TLS is trusted by. Default: --ca-cert.
    #[arg(long, value_name = "FILE", requires = "otlp_endpoint")]
    pub otlp_ca_cert: Option<PathBuf>,
    /// For an agent registered with --remote (this host is not the coordinator's): where its
    /// clones go, one per feature, made from the remote its task names and brought up to date
    /// from it; the work is pushed there before it is submitted.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workdir: PathBuf,
    /// The command and its arguments; `{prompt}`, `{prompt_file}`, `{feature}`, `{worktree}`
    /// and `{branch}` are filled in.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileArg {
    Claude,
    Codex,
    Gemini,
    Copilot,
    Plain,
}

impl From<ProfileArg> for crate::launcher::env::Profile {
    fn from(p: ProfileArg) -> Self {
        use crate::launcher::env::Profile;
        match p {
            ProfileArg::Claude => Profile::Claude,
            ProfileArg::Codex => Profile::Codex,
            ProfileArg::Gemini => Profile::Gemini,
            ProfileArg::Copilot => Profile::Copilot,
            ProfileArg::Plain => Profile::Plain,
        }
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The agent whose run output to print.
    pub id: String,
    /// Keep printing what the run writes until it ends.
    #[arg(long)]
    pub follow: bool,
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
    /// The dollar budget of each feature added from now on without one of its own (0: none).
    /// Run init again to change it; features added before keep theirs.
    #[arg(long, value_name = "DOLLARS", value_parser = dollars)]
    pub feature_budget_usd: Option<f64>,
    /// The token budget of each feature added from now on without one of its own (0: none).
    #[arg(long, value_name = "N")]
    pub feature_budget_tokens: Option<u64>,
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
    /// What its LLM requests may cost a day (UTC), in US dollars: at 80% the coordinator warns;
    /// at all of it the agent lets go of its features and gets no work until the next day.
    /// Registering again without it removes it.
    #[arg(long, value_name = "DOLLARS", value_parser = dollars)]
    pub budget_usd: Option<f64>,
    /// The agent works on another host (a cloud sandbox, a container, another machine): its
    /// feature's branch is pushed to the remote `git config spanfold.remote` names, instead of
    /// a local worktree, and `agents next` says how to clone it. Registering again without it
    /// makes the agent local for the features it takes next.
    #[arg(long)]
    pub remote: bool,
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
    /// The most it may cost on its agents' LLM requests, in US dollars: at 80% the coordinator
    /// warns, at 100% the feature leaves its agent and is held until its budget is raised.
    #[arg(long, value_name = "DOLLARS", value_parser = dollars)]
    pub budget_usd: Option<f64>,
    /// The most tokens it may use, of every kind (as --budget-usd).
    #[arg(long, value_name = "N")]
    pub budget_tokens: Option<u64>,
    /// The paths it will change, comma-separated globs relative to the repository
    /// ('src/auth/**,docs/auth.md'): features whose paths overlap are not worked on at once.
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub paths: Vec<String>,
    /// Let it be worked on beside features whose paths overlap its own.
    #[arg(long)]
    pub allow_overlap: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

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
