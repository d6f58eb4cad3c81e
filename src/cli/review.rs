//! A person's review of submitted features, for repositories that want one before anything
//! merges (`git config spanfold.requireApproval true`): `agents show-feature` shows what a
//! feature would bring (diffstat, or the diff, against the base branch), `agents approve` lets
//! it merge, `agents reject --reason` sends it back to its agent with the reason.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::agents::submit_checked;
use super::{ApproveArgs, Output, RejectArgs, ShowFeatureArgs};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::fact::{Fact, Review, ReviewVerdict};
use crate::git;
use crate::names;
use crate::status::StatusOptions;

/// `agents approve FEATURE`.
pub(super) fn approve(args: &ApproveArgs, backend: &mut Backend) -> Result<Output> {
    review(backend, &args.name, ReviewVerdict::Approved, None)?;
    Ok(Output::new(
        json!({"feature_name": args.name, "verdict": "approved"}),
        format!(
            "Feature {} is approved: the next cycle merges it (through the merge gate, if one is set).",
            args.name
        ),
    ))
}

/// `agents reject FEATURE --reason TEXT`.
pub(super) fn reject(args: &RejectArgs, backend: &mut Backend) -> Result<Output> {
    if args.reason.trim().is_empty() {
        bail!("--reason must say what the agent is to change");
    }
    review(
        backend,
        &args.name,
        ReviewVerdict::Rejected,
        Some(&args.reason),
    )?;
    Ok(Output::new(
        json!({"feature_name": args.name, "verdict": "rejected", "reason": args.reason}),
        format!(
            "Feature {} went back to its agent with the reason.",
            args.name
        ),
    ))
}

fn review(
    backend: &mut Backend,
    name: &str,
    verdict: ReviewVerdict,
    reason: Option<&str>,
) -> Result<()> {
    names::feature_name(name)?;
    let fact = Fact::Review(Review {
        feature_name: name,
        verdict,
        reason,
    });
    let mut ids = IdGen::default();
    let span = fact.to_span(ids.trace_id(), ids.span_id(), emit::now());
    submit_checked(backend, span)
}

/// `agents show-feature FEATURE [--diff]`: the feature's branch against the base branch.
pub(super) fn show_feature(args: &ShowFeatureArgs, backend: &mut Backend) -> Result<Output> {
    names::feature_name(&args.name)?;
    let st = backend.status(&StatusOptions::default())?;
    let config = st
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("coordination is not set up; run spanfold agents init"))?;
    let f = st
        .features
        .iter()
        .find(|f| f.name == args.name)
        .ok_or_else(|| anyhow!("feature {} was never requested", args.name))?;
    let branch = f.branch_name.clone().ok_or_else(|| {
        anyhow!(
            "feature {} has no branch yet: it was never assigned",
            args.name
        )
    })?;
    // Both names reach git's command line: only what git accepts as a branch name.
    for name in [&branch, &config.base_branch] {
        git::check_branch_name(name)?;
        if name.starts_with('-') {
            bail!("branch {name:?} from the log starts with '-': not passed to git");
        }
    }
    let range = format!("{}...{branch}", config.base_branch);
    let repo = Path::new(&config.repo);
    let stat = git::git_cli(repo, &["diff", "--stat", &range, "--"])?;
    let diff = match args.diff {
        true => Some(git::git_cli(repo, &["diff", &range, "--"])?),
        false => None,
    };
    let mut text = format!(
        "{} ({}), branch {branch} against {}:\n{stat}",
        f.name,
        f.status.as_str(),
        config.base_branch
    );
    if let Some(d) = &diff {
        text.push('\n');
        text.push_str(d);
    }
    Ok(Output::new(
        json!({"feature_name": f.name, "status": f.status, "branch": branch, "base": config.base_branch, "diffstat": stat, "diff": diff}),
        text,
    ))
}
