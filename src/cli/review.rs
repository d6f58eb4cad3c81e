//! A person's review of submitted features, for repositories that want one before anything
//! merges (`git config spanfold.requireApproval true`): `agents show-feature` shows what a
//! feature would bring (diffstat, or the diff, against the base branch), `agents approve` lets
//! it merge, `agents reject --reason` sends it back to its agent with the reason.

use anyhow::{Result, bail};
use serde_json::json;

use super::agents::submit_checked;
use super::{ApproveArgs, Output, RejectArgs, ShowFeatureArgs};
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::fact::{Fact, Review, ReviewVerdict};
use crate::names;
use crate::review;
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
    let c = review::feature_changes(&st, &args.name, args.diff)?;
    let mut text = format!(
        "{} ({}), branch {} against {}:\n{}",
        c.feature_name,
        c.status.as_str(),
        c.branch,
        c.base,
        c.diffstat
    );
    if let Some(d) = &c.diff {
        text.push('\n');
        text.push_str(d);
    }
    Ok(Output::new(serde_json::to_value(&c)?, text))
}
