//! What the log says about agents and worktrees: `agents agent-status`,
//! `agents worktree-status`, `agents messages`, and `agents ack-anomaly` for the anomalies
//! status lists.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use super::agents::submit_checked;
use super::{AckArgs, MessagesArgs, Output, StatusArgs, WorktreeStatusArgs};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::git;
use crate::names;
use crate::render::{status_text, worktree_text};
use crate::status::{self, StatusOptions};

/// `agents agent-status`: agents, features, worktrees and health, now or at a point.
pub(super) fn agent_status(args: &StatusArgs, backend: &mut Backend) -> Result<Output> {
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
        bail!("agent {id} is not registered; `spanfold agents agent-status` lists the agents");
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

/// `agents worktree-status`: the worktrees the log knows, and the ones git has that it does
/// not.
pub(super) fn worktree_status(args: &WorktreeStatusArgs, backend: &mut Backend) -> Result<Output> {
    let st = backend.status_at(&StatusOptions::default(), args.at.as_deref())?;
    // Orphans: worktrees git has that the log knows nothing of (made by hand, or by
    // another tool). Listed, never touched; git only knows the present.
    let known: Vec<&str> = st.worktrees.iter().map(|w| w.path.as_str()).collect();
    let orphaned: Vec<String> = match &st.config {
        Some(c) if args.at.is_none() => git::orphaned_worktrees(Path::new(&c.repo), &known)?,
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

/// `agents messages`: what the agent sent, oldest first.
pub(super) fn messages(args: &MessagesArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let entries = backend.history(crate::changes::Subject::Agent(args.id.clone()))?;
    let mut sent: Vec<Value> = Vec::new();
    let mut text = String::new();
    let all: Vec<_> = entries
        .iter()
        .filter(|e| e.span == crate::vocab::span::AGENT_COMMUNICATION)
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

/// `agents ack-anomaly`: status stops listing the anomalies acknowledged.
pub(super) fn ack_anomaly(args: &AckArgs, backend: &mut Backend) -> Result<Output> {
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
