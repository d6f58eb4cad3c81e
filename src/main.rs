use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use serde_json::json;

use spanfold::cli::{self, Cli, Command, Envelope, Output};
use spanfold::render::terminal_safe;

// Decoding allocates on worker threads what the folding thread frees; glibc's allocator spent
// about 40% of a replay on that hand-over. mimalloc frees across threads without a lock.
// Built without transparent huge pages (`no_thp`): with them every process started at ~60 MB
// resident (2 MB pages behind a few touched bytes) and a server at three times its heap, for
// about 4% of CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Decided before parsing, so that even a usage error is answered in JSON.
    let wants_json = args.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage(e, wants_json, &args),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPANFOLD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let command = cli.command.name();
    let coord_dir = current_dir().and_then(|cwd| coord_dir_for(&cli, cwd));
    let result = coord_dir
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|dir| {
            cli::run(&cli, dir, |line| {
                if !cli.json {
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(terminal_safe(line).as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        // The reader went away (`| head`): stop quietly, as Unix tools do.
                        std::process::exit(0);
                    }
                }
            })
        });
    let ok = result.is_ok();
    let answer = result.as_ref().ok().and_then(|o| o.exit_code);
    if cli.json {
        let envelope = Envelope::new(command, &result, coord_dir.as_deref().ok());
        println!(
            "{}",
            serde_json::to_string_pretty(&envelope).unwrap_or_else(|e| format!(
                "{{\"success\": false, \"errors\": [\"cannot print the result: {e}\"]}}"
            ))
        );
    } else {
        match result {
            Ok(Output {
                text,
                exit_code: Some(_),
                ..
            }) => eprintln!("{}", terminal_safe(&text)),
            Ok(Output { text, warnings, .. }) => {
                let mut out = std::io::stdout().lock();
                let newline = if !text.is_empty() && !text.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                // A reader that went away (`| head`) is not an error of the command. Span data
                // in the text never reaches the terminal as control codes.
                let text = terminal_safe(&text);
                let _ = write!(out, "{text}{newline}").and_then(|()| out.flush());
                for w in warnings {
                    eprintln!("warning: {}", terminal_safe(&w));
                }
            }
            Err(e) => eprintln!("error: {}", terminal_safe(&cli::error_text(&e))),
        }
    }
    if let Some(code) = answer {
        ExitCode::from(code)
    } else if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where the command's coordination directory is, from the current directory `cwd`.
fn coord_dir_for(cli: &Cli, cwd: std::path::PathBuf) -> anyhow::Result<std::path::PathBuf> {
    let start = match &cli.command {
        Command::Agents(cli::AgentsCommand::Init(init)) => init.repo.clone(),
        _ => None,
    };
    // `demo` makes its own repository and `spans` needs none: no coordination directory to find.
    let needs_log = !matches!(
        cli.command,
        Command::Demo(_) | Command::DemoAgent { .. } | Command::Spans { .. } | Command::Replay(_)
    );
    if !needs_log {
        return Ok(cli.coord_dir.clone().unwrap_or(cwd));
    }
    let found = cli::resolve_coord_dir(cli.coord_dir.as_deref(), start.as_deref().unwrap_or(&cwd));
    // On another host, talking to a server by its address: no log here, and what a command
    // keeps for itself (`agents run`'s output) goes to `.spanfold` here.
    match (found, &cli.endpoint) {
        (Err(_), Some(_)) => Ok(cwd.join(".spanfold")),
        (found, _) => found,
    }
}

/// The current directory, or what to do when it is gone: an agent's shell is often left in a
/// worktree that spanfold removed after its feature merged.
fn current_dir() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_dir().map_err(|e| {
        if e.kind() != std::io::ErrorKind::NotFound {
            return anyhow::anyhow!("cannot read the current directory: {e}");
        }
        let was = std::env::var("PWD")
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "the current directory{was} no longer exists; if it was an agent's worktree, it was removed after its feature merged. Run spanfold from the repository (cd there), or pass --coord-dir"
        )
    })
}

/// The command words of a command line that did not parse, for the envelope's `command`.
fn command_words(args: &[OsString]) -> String {
    let mut words = Vec::new();
    let mut skip_value = false;
    for arg in args.iter().skip(1).map(|a| a.to_string_lossy()) {
        if skip_value {
            skip_value = false;
        } else if arg == "--coord-dir" {
            skip_value = true;
        } else if !arg.starts_with('-') {
            words.push(arg.into_owned());
            if words.len() == 2 || words[0] != "agents" {
                break;
            }
        }
    }
    words.join(" ")
}

fn usage(e: clap::Error, wants_json: bool, args: &[OsString]) -> ExitCode {
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json {
        let _ = e.print();
        return if shown && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let text = e.render().to_string();
    let success = shown && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    let result = if success {
        Ok(json!({"help": text}))
    } else {
        Err(text.trim().to_owned())
    };
    // The API's form of the envelope: no coordination directory is known before parsing.
    let envelope = spanfold::envelope::Envelope::api(&command_words(args), result).to_value();
    println!(
        "{}",
        serde_json::to_string_pretty(&envelope).unwrap_or_default()
    );
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
