//! `agents next`: the agent's task — its feature, worktree and branch, its port block, what the
//! feature asks for and why it came back — at once, or once it has one (`--wait`); its
//! worktree made ready first (copied files, the set-up command).

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::agents::submit_checked;
use super::{NextArgs, Output};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::launcher::prepare::{self, Prepared};
use crate::names;
use crate::status::{self, StatusOptions};

/// `agents next`: the agent's task, polling the log until it has one with `--wait`.
pub(super) fn next(args: &NextArgs, backend: &mut Backend) -> Result<Output> {
    let ask = Ask {
        id: &args.id,
        wait: args.wait,
        timeout: args.timeout,
        prompt: args.prompt,
        stop: None,
    };
    let mut output = wait_task(&ask, backend)?;
    let ready = make_ready(&output.data, &[], backend)?;
    output.data["ready"] = ready.describe().into();
    Ok(output)
}

/// Makes the task's worktree ready for its agent (`launcher::prepare`), with `env` and the
/// task's own variables for the set-up command. A set-up that fails sends the feature back,
/// with why, and is the error.
pub(super) fn make_ready(
    task: &Value,
    env: &[(String, String)],
    backend: &mut Backend,
) -> Result<Prepared> {
    let text = |key: &str| task[key].as_str().unwrap_or_default();
    let (agent, feature, worktree) = (
        text("agent_id"),
        text("feature_name"),
        text("worktree_path"),
    );
    if !Path::new(worktree).is_dir() || text("repo").is_empty() {
        // Another host's worktree (the coordinator is remote): its agent prepares it there.
        return Ok(Prepared::Already);
    }
    let mut vars: Vec<(String, String)> = vec![
        ("SPANFOLD_AGENT".into(), agent.into()),
        ("SPANFOLD_FEATURE".into(), feature.into()),
        ("SPANFOLD_WORKTREE".into(), worktree.into()),
        ("SPANFOLD_BRANCH".into(), text("branch_name").into()),
    ];
    if let Some(port) = task["port"].as_u64() {
        vars.push(("SPANFOLD_PORT".into(), port.to_string()));
    }
    vars.extend_from_slice(env);
    match prepare::prepare(Path::new(text("repo")), Path::new(worktree), &vars) {
        Ok(ready) => Ok(ready),
        Err(why) => {
            let reason = format!(
                "the worktree of {feature} could not be made ready, so the feature went back to the queue: {why}"
            );
            let reset = emit::reset(&mut IdGen::default(), emit::now(), agent, Some(&reason));
            submit_checked(backend, reset)?;
            bail!("{reason}");
        }
    }
}

/// A question for the agent's task: whose, whether to wait and how long, in which form.
pub(super) struct Ask<'a> {
    pub id: &'a str,
    pub wait: bool,
    pub timeout: f64,
    pub prompt: bool,
    /// Asked between polls: true gives up waiting (the launcher was told to stop).
    pub stop: Option<&'a dyn Fn() -> bool>,
}

/// The agent's task (its JSON in the output's data), polling the log until it has one when
/// `ask.wait`.
pub(super) fn wait_task(args: &Ask<'_>, backend: &mut Backend) -> Result<Output> {
    names::agent_id(args.id)?;
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        bail!("--timeout must be a number of seconds, 0 or more");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        let agent = backend
            .agent(args.id)?
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
        if args.stop.is_some_and(|stop| stop()) {
            bail!("stopped while waiting for an assignment for {}", args.id);
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
    args: &Ask<'_>,
    backend: &mut Backend,
    agent: &status::AgentJson,
    feature: &str,
) -> Result<Option<Output>> {
    let st = backend.status(&StatusOptions {
        agent: Some(args.id.to_owned()),
        details: true,
        ..StatusOptions::default()
    })?;
    let f = st
        .features
        .iter()
        .find(|f| f.name == feature)
        .ok_or_else(|| anyhow!("feature {feature} is not in the status; try again"))?;
    // A remote agent's feature has no local worktree: its branch on the remote is its place.
    let made = st.worktrees.iter().find(|w| {
        w.feature_name == f.name
            && w.status == crate::reducer::WorktreeStatus::Active
            && (f.worktree_path.as_deref() == Some(w.path.as_str()) || w.remote_url.is_some())
    });
    let Some(worktree) = made else {
        return Ok(None);
    };
    let base = st.config.as_ref().map(|c| c.base_branch.as_str());
    let task = crate::task::task(agent, f, base);
    let prompt = crate::task::prompt(&task);
    let mut data = serde_json::to_value(&task)?;
    data["state"] = serde_json::to_value(agent.state)?;
    if let (Some(config), Some(slot), None) = (&st.config, worktree.port_slot, &worktree.remote_url)
    {
        let port = crate::launcher::prepare::port(Path::new(&config.repo), slot)?;
        data["port"] = port.into();
    }
    if let Some(config) = &st.config {
        data["repo"] = config.repo.clone().into();
    }
    data["prompt"] = Value::String(prompt.clone());
    let text = if args.prompt {
        prompt
    } else {
        let mut line = format!(
            "{}\t{}\t{}",
            task.feature_name,
            task.worktree_path
                .as_deref()
                .or(task.remote_url.as_deref())
                .unwrap_or(""),
            task.branch_name.as_deref().unwrap_or("")
        );
        if let Some(why) = &task.came_back {
            line.push_str(&format!("\ncame back: {why}"));
        }
        for w in &task.warnings {
            line.push_str(&format!("\nwarning: {w}"));
        }
        line
    };
    Ok(Some(Output::new(data, text)))
}
