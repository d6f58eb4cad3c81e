//! The commands that run the server in this process: `serve`, and `demo`, which runs it with
//! simulated agents on a scratch repository.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Cli, DemoArgs, Output, ServeArgs};

/// `serve`: runs until stopped, refusing an empty token and a second server for the same log.
pub(super) fn serve(args: &ServeArgs, cli: &Cli, coord_dir: &Path) -> Result<Output> {
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

/// `demo`: the whole story on a scratch repository; each progress line goes to `on_line`.
pub(super) fn demo(args: &DemoArgs, on_line: &mut dyn FnMut(&str)) -> Result<Output> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    let config = crate::demo::DemoConfig {
        agents: args.agents as usize,
        features: args.features as usize,
        repo: args.repo.clone(),
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let summary = crate::demo::run(config, |line| on_line(line))?;
    let t = &summary.launched_agent;
    let text = format!(
        "\nDemo finished in {:.1}s: {} features merged ({} conflict resolved by its agent), {} commits on main, {} events in the log.\n\
         demo-claude ran under `spanfold agents run` and reported as Claude Code does: {} tool calls, {} LLM requests ({} telemetry).\n\
         Repository: {}\n\
         Look around:\n  cd {} && git log --oneline --graph | head -20\n  spanfold --coord-dir {} agents agent-status\n  spanfold --coord-dir {} agents worktree-status\n",
        summary.seconds,
        summary.features_merged,
        summary.conflicts_resolved,
        summary.commits_on_base,
        summary.events_in_log,
        t["tool_calls"],
        t["llm_requests"],
        t["source"].as_str().unwrap_or("no"),
        summary.repo,
        summary.repo,
        summary.coord_dir,
        summary.coord_dir
    );
    Ok(Output::new(serde_json::to_value(&summary)?, text))
}
