//! The command line: parsing (the only module that knows clap), the JSON envelope (the one
//! DSLModel's `dsl agents` printed, so its users' scripts keep working), and each command's
//! logic and text. Commands append spans through the coordinator and answer from its fold.
//!
//! This file finds the coordination directory and sends each parsed command to the module that
//! answers it:
//! - `args`, `agents_args`: the clap definitions, top-level and `agents …`.
//! - `agents`: the `agents` dispatch, and what an agent says (register, progress, validate).
//! - `features`, `agent_status`, `next`, `cycle`, `init`: the other `agents` subcommands;
//!   `run`: `agents run` (launching and supervising an agent) and `agents logs`.
//! - `export`, `replay`, `history` (and `diff`), `upkeep` (`gc`, `rebuild`), `serve` (and
//!   `demo`), `spans`: the top-level commands.

mod agent_status;
mod agents;
mod agents_args;
mod args;
mod check_path;
mod cycle;
mod export;
mod features;
mod history;
mod init;
mod next;
mod replay;
mod review;
mod run;
mod serve;
mod spans;
mod upkeep;

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::backend::Backend;
use crate::git;

pub use crate::envelope::{Envelope, Failure, Output, error_text};
pub use agents_args::*;
pub use args::*;
pub use spans::spans_markdown;

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
    // Checked where it is used, so a stale SPANFOLD_CA_CERT does not stop commands that
    // talk to no server by address.
    if let (Some(ca), Some(_)) = (&cli.ca_cert, &cli.endpoint) {
        crate::client::certificates(ca)?;
    }
    let connect = || {
        Backend::connect(
            coord_dir,
            cli.endpoint.as_deref(),
            cli.token.clone(),
            cli.ca_cert.as_deref(),
        )
    };
    match &cli.command {
        Command::Spans { markdown } => Ok(spans::spans(*markdown)),
        Command::Serve(args) => serve::serve(args, cli, coord_dir),
        Command::Demo(args) => serve::demo(args, &mut on_cycle),
        Command::DemoAgent { prompt_file } => {
            let line = crate::demo_agent::run(prompt_file)?;
            Ok(Output::new(serde_json::json!({ "did": line }), line))
        }
        Command::Gc(args) => upkeep::gc(args, &mut connect()),
        Command::Rebuild => upkeep::rebuild(connect()),
        Command::Export(args) => export::export(args, cli, coord_dir, &mut connect()),
        Command::Replay(args) => replay::replay(args, cli, &mut on_cycle),
        Command::History(args) => history::history(args, &mut connect()),
        Command::Diff(args) => history::diff(args, &mut connect()),
        Command::Usage(args) => history::usage(args, &mut connect()),
        Command::Agents(AgentsCommand::Init(args)) => init::init(args, coord_dir, &mut connect()),
        Command::Agents(AgentsCommand::Run(args)) => {
            run::run_agent(args, cli, coord_dir, &mut connect())
        }
        Command::Agents(AgentsCommand::Logs(args)) => run::logs(args, coord_dir, &mut connect()),
        Command::Agents(cmd) => agents::run(cmd, &mut connect(), &mut on_cycle),
    }
}
