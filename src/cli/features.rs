//! The feature queue's commands: `agents add-feature` (queue, update, reprioritise),
//! `agents cancel-feature` and `agents reopen`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;

use super::agents::{clean_list, submit_checked};
use super::{AddFeatureArgs, BudgetArgs, CancelArgs, Output, ReopenArgs};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::names;
use crate::reducer::Priority;
use crate::status::{self, StatusOptions};

/// The contents of `--req-file`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReqFile {
    #[serde(default)]
    requirements: Vec<String>,
    #[serde(default)]
    acceptance_criteria: Vec<String>,
}

/// Reads `--req-file`: a JSON object of requirements and acceptance criteria, nothing else.
fn read_req_file(path: &Path) -> Result<ReqFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --req-file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "--req-file {} is not a JSON object of the form {{\"requirements\": [strings], \"acceptance_criteria\": [strings]}}",
            path.display()
        )
    })
}

/// `agents add-feature`: queues the feature, updates it while queued, or only changes the
/// priority of one an agent holds.
pub(super) fn add_feature(args: &AddFeatureArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let (requirements, acceptance_criteria) = match &args.req_file {
        None => (vec![], vec![]),
        Some(path) => {
            let req = read_req_file(path)?;
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
        paths: scope_list(&args.paths)?,
        allow_overlap: args.allow_overlap,
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
        if f.status == crate::reducer::FeatureStatus::Held {
            bail!(
                "feature {} is held over its budget; `spanfold agents set-budget {} --usd X` lets it continue",
                args.name,
                args.name
            );
        }
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
            paths: Vec::new(),
            allow_overlap: false,
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
            paths: d.paths,
            allow_overlap: d.allow_overlap,
        };
        verb = "reprioritised";
    }
    let span = emit::feature_request(&mut IdGen::default(), emit::now(), &request);
    submit_checked(backend, span)?;
    if args.budget_usd.is_some() || args.budget_tokens.is_some() {
        let (usd, tokens) = (args.budget_usd, args.budget_tokens);
        let span = emit::budget(&mut IdGen::default(), emit::now(), &args.name, usd, tokens);
        submit_checked(backend, span)?;
    }
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

/// `agents set-budget`: what the feature may spend from now on; a held feature no longer over
/// it continues.
pub(super) fn set_budget(args: &BudgetArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let tokens = args.tokens.filter(|t| *t > 0);
    let usd = args.usd.filter(|u| *u > 0.0);
    let span = emit::budget(
        &mut IdGen::default(),
        emit::now(),
        &args.name,
        args.usd,
        args.tokens,
    );
    submit_checked(backend, span)?;
    let st = backend.status(&StatusOptions::default())?;
    let f = st.features.iter().find(|f| f.name == args.name);
    let status = f.map_or("unknown", |f| f.status.as_str());
    let limits: Vec<String> = usd
        .map(|u| format!("${u:.2}"))
        .into_iter()
        .chain(tokens.map(|t| format!("{t} tokens")))
        .collect();
    let text = match limits.is_empty() {
        true => format!("Feature {} has no budget now ({status}).", args.name),
        false => format!(
            "Feature {} may spend {} ({status}).",
            args.name,
            limits.join(" and ")
        ),
    };
    Ok(Output::new(
        json!({"feature_name": args.name, "budget_usd": usd, "budget_tokens": tokens, "status": status}),
        text,
    ))
}

/// `agents cancel-feature`: the feature withdrawn; its agent lets go, its worktree stays.
pub(super) fn cancel_feature(args: &CancelArgs, backend: &mut Backend) -> Result<Output> {
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

/// `agents reopen`: a cancelled or completed feature back at the end of the queue.
pub(super) fn reopen(args: &ReopenArgs, backend: &mut Backend) -> Result<Output> {
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

/// `--paths` as given: each a path or glob relative to the repository, trimmed, no repeats.
fn scope_list(items: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        if item.starts_with('/') || item.split('/').any(|part| part == "..") {
            bail!(
                "--paths: {item:?} must be relative to the repository and stay inside it (like src/auth/** or docs/auth.md)"
            );
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}
