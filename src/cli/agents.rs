//! The `agents` subcommands: which function answers each, and the ones an agent itself says
//! (register, progress, validate) or that act on one agent (reset, token), with the checks
//! every submitted span goes through.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use super::{
    AgentsCommand, Output, ProgressArgs, RegisterArgs, ResetArgs, ResultArg, TokenArgs,
    ValidateArgs, agent_status, cycle, features, next,
};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::names;

/// Runs an `agents` subcommand other than `init`, which `run` answers before a backend is
/// chosen for it.
pub(super) fn run(
    cmd: &AgentsCommand,
    backend: &mut Backend,
    on_cycle: &mut dyn FnMut(&str),
) -> Result<Output> {
    match cmd {
        AgentsCommand::Init(_) | AgentsCommand::Run(_) | AgentsCommand::Logs(_) => {
            unreachable!("dispatched before, with the coordination directory")
        }
        AgentsCommand::RegisterAgent(args) => register_agent(args, backend),
        AgentsCommand::AddFeature(args) => features::add_feature(args, backend),
        AgentsCommand::CoordinationCycle(args) => cycle::cycles(args, backend, on_cycle),
        AgentsCommand::AgentStatus(args) => agent_status::agent_status(args, backend),
        AgentsCommand::WorktreeStatus(args) => agent_status::worktree_status(args, backend),
        AgentsCommand::Progress(args) => progress(args, backend),
        AgentsCommand::Validate(args) => validate(args, backend),
        AgentsCommand::Reset(args) => reset(args, backend),
        AgentsCommand::Next(args) => next::next(args, backend),
        AgentsCommand::CheckPath(args) => super::check_path::check_path(args, backend),
        AgentsCommand::ShowFeature(args) => super::review::show_feature(args, backend),
        AgentsCommand::Approve(args) => super::review::approve(args, backend),
        AgentsCommand::Reject(args) => super::review::reject(args, backend),
        AgentsCommand::Messages(args) => agent_status::messages(args, backend),
        AgentsCommand::Reopen(args) => features::reopen(args, backend),
        AgentsCommand::AckAnomaly(args) => agent_status::ack_anomaly(args, backend),
        AgentsCommand::Token(args) => issue_token(args, backend),
        AgentsCommand::CancelFeature(args) => features::cancel_feature(args, backend),
        AgentsCommand::SetBudget(args) => features::set_budget(args, backend),
    }
}

/// `agents register-agent`: registers the agent, or updates its capabilities.
fn register_agent(args: &RegisterArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let reg = emit::Registration {
        agent_id: args.id.clone(),
        languages: clean_list(&args.langs, "--langs")?,
        frameworks: clean_list(&args.frameworks, "--frameworks")?,
        expertise_areas: clean_list(&args.expertise, "--expertise")?,
        max_concurrent_features: args.max_concurrent,
        preferred_complexity: args.complexity.map(Into::into),
        lease_seconds: args.lease,
        budget_usd_per_day: args.budget_usd.filter(|u| *u > 0.0),
        remote: args.remote,
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

/// `agents progress`: the agent's state and progress, as the agent would report it.
fn progress(args: &ProgressArgs, backend: &mut Backend) -> Result<Output> {
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

/// `agents validate`: the result of validating the agent's work.
fn validate(args: &ValidateArgs, backend: &mut Backend) -> Result<Output> {
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

/// `agents reset`: the agent back to idle, its features back in the queue.
fn reset(args: &ResetArgs, backend: &mut Backend) -> Result<Output> {
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

/// Sends one operator span; a span the reducer could not apply fails the command with its reason
/// (the span stays in the log: it is what was said).
pub(super) fn submit_checked(backend: &mut Backend, span: crate::model::Span) -> Result<()> {
    if let Some(anomaly) = backend.submit(vec![span])? {
        bail!(
            "recorded as an anomaly (seq {}): {}",
            anomaly.seq,
            anomaly.reason
        );
    }
    Ok(())
}

/// Sends the agent's span and answers with the state it leaves the agent in.
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
    let warnings = radar_warnings(backend, agent_id)?;
    let mut text = format!("Agent {agent_id} is {}.", agent.state.as_str());
    for w in &warnings {
        text.push_str(&format!("\nwarning: {w}"));
    }
    Ok(Output::new(
        json!({"agent_id": agent_id, "state": agent.state, "assignments": held, "warnings": warnings}),
        text,
    ))
}

/// The conflict radar's warnings for the features `agent_id` holds, each naming its feature.
fn radar_warnings(backend: &mut Backend, agent_id: &str) -> Result<Vec<String>> {
    let st = backend.status(&crate::status::StatusOptions {
        agent: Some(agent_id.to_owned()),
        ..crate::status::StatusOptions::default()
    })?;
    let base = st.config.as_ref().map(|c| c.base_branch.as_str());
    Ok(st
        .features
        .iter()
        .filter(|f| f.assigned_agent.as_deref() == Some(agent_id))
        .flat_map(|f| {
            crate::task::risk_warnings(f, base)
                .into_iter()
                .map(move |w| format!("{}: {w}", f.name))
        })
        .collect())
}

/// A capability list as given on the command line, lower-cased, checked, without repeats, sorted.
pub(super) fn clean_list(items: &[String], flag: &str) -> Result<Vec<String>> {
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
