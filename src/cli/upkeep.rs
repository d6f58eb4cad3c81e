//! Upkeep of the log and the worktrees: `gc` (worktrees nobody holds) and `rebuild` (the
//! derived data folded again from the log).

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{GcArgs, Output};
use crate::backend::Backend;
use crate::status::{self, StatusOptions};

/// `gc`: removes the worktrees nobody holds, and says which it kept and why.
pub(super) fn gc(args: &GcArgs, backend: &mut Backend) -> Result<Output> {
    let report = backend.gc(args.older_than, args.force)?;
    let mut text = String::new();
    for e in &report.removed {
        text.push_str(&format!("removed {} ({})\n", e.path, e.feature));
    }
    for e in &report.kept {
        text.push_str(&format!(
            "kept    {} ({}): {}\n",
            e.path,
            e.feature,
            e.reason.as_deref().unwrap_or("")
        ));
    }
    if text.is_empty() {
        text = "Nothing to collect: every worktree belongs to an agent at work.\n".into();
    }
    for branch in &report.remote_branches {
        text.push_str(&format!(
            "on the remote, owned by no feature: {branch} (delete it there with git push --delete if it is not wanted)\n"
        ));
    }
    Ok(Output::new(serde_json::to_value(&report)?, text))
}

/// `rebuild`: folds the log again from the start, and says whether status came out the same.
pub(super) fn rebuild(mut backend: Backend) -> Result<Output> {
    let coord = backend.local()?;
    let before = serde_json::to_string(&status::build(&coord.view(), &StatusOptions::default()))?;
    let Backend::Local { coord, .. } = &mut backend else {
        bail!("rebuild needs the log itself");
    };
    let (rebuilt, dropped) = coord.take().context("the log is open")?.rebuild()?;
    let after = serde_json::to_string(&status::build(&rebuilt.view(), &StatusOptions::default()))?;
    let identical = before == after;
    let events = rebuilt.view().counters.events;
    Ok(Output::new(
        json!({"events": events, "dropped": dropped, "identical_to_before": identical}),
        format!(
            "Rebuilt the view from {events} events{}; status is {}.",
            if dropped.is_empty() {
                String::new()
            } else {
                format!(" (dropped derived data: {})", dropped.join(", "))
            },
            if identical {
                "unchanged"
            } else {
                "DIFFERENT from before"
            }
        ),
    ))
}
