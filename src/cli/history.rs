//! The past of the log: `history` (one agent's or feature's timeline) and `diff` (what
//! changed between two points).

use anyhow::{Result, bail};
use serde_json::json;

use super::{DiffArgs, HistoryArgs, Output, UsageArgs};
use crate::backend::Backend;
use crate::status;

/// `history`: each change to the agent or feature, with its time and causing span.
pub(super) fn history(args: &HistoryArgs, backend: &mut Backend) -> Result<Output> {
    use crate::changes::Subject;
    let subject = match (&args.agent, &args.feature) {
        (Some(a), _) => Subject::Agent(a.clone()),
        (_, Some(f)) => Subject::Feature(f.clone()),
        _ => bail!("give --agent ID or --feature NAME"),
    };
    let what = match &subject {
        Subject::Agent(a) => format!("agent {a}"),
        Subject::Feature(f) => format!("feature {f}"),
    };
    let entries = backend.history(subject)?;
    if entries.is_empty() {
        bail!(
            "the log holds nothing about {what}; `spanfold agents agent-status` lists what it knows"
        );
    }
    let mut text = format!("History of {what}:\n");
    for e in &entries {
        let changes: Vec<String> = e.changes.iter().map(|c| c.describe()).collect();
        text.push_str(&format!(
            "{:>8} {} {:<28} {}\n",
            e.seq,
            status::rfc3339(e.time),
            e.span,
            changes.join("; ")
        ));
        if let Some(score) = e.score {
            text.push_str(&format!("{:>40}score {score:.3}\n", ""));
        }
        for r in &e.reasons {
            text.push_str(&format!("{:>40}- {r}\n", ""));
        }
        text.push_str(&crate::render::detail_lines(&e.details));
    }
    // A feature's history ends with what each agent session spent on it.
    let mut data = json!({"entries": entries});
    if let Some(feature) = &args.feature {
        let by = (crate::usage::By::Session, Some(feature.as_str()));
        let spend = backend.usage(by, None, None)?;
        if !spend.rows.is_empty() {
            text.push_str(&format!("\nSpent on {feature}, by session:\n"));
            for row in &spend.rows {
                let u = &row.usage;
                text.push_str(&format!(
                    "  {:<48} {} ({} LLM requests; {} input, {} output tokens)\n",
                    row.name,
                    crate::render::cost(u),
                    u.llm_requests,
                    u.input_tokens,
                    u.output_tokens
                ));
            }
        }
        data["spend"] = serde_json::to_value(&spend.rows)?;
    }
    Ok(Output::new(data, text))
}

/// `usage`: tokens and dollars by feature, agent, model or day, over a range of the log.
pub(super) fn usage(args: &UsageArgs, backend: &mut Backend) -> Result<Output> {
    let to = args.at.as_deref().or(args.to.as_deref());
    let by: crate::usage::By = args.by.into();
    if args.feature.is_some() && by != crate::usage::By::Session {
        bail!("--feature goes with --by session (what each session spent on it)");
    }
    let report = backend.usage((by, args.feature.as_deref()), args.from.as_deref(), to)?;
    let mut out = Output::new(serde_json::to_value(&report)?, crate::usage::table(&report));
    if !report.unpriced_models.is_empty() {
        out.warnings.push(format!(
            "no price for {}: their tokens are counted, their cost is not",
            report.unpriced_models.join(", ")
        ));
    }
    Ok(out)
}

/// `diff`: the changes between two points, `--to` now by default.
pub(super) fn diff(args: &DiffArgs, backend: &mut Backend) -> Result<Output> {
    let to = args.to.clone().unwrap_or_else(|| u64::MAX.to_string());
    let report = backend.diff(&args.from, &to)?;
    let mut text = format!(
        "From seq {} ({}) to seq {} ({}): {} events.\n",
        report.from.seq,
        status::rfc3339(report.from.time),
        report.to.seq,
        status::rfc3339(report.to.time),
        report.events
    );
    if report.changes.is_empty() {
        text.push_str("Nothing changed.\n");
    }
    for c in &report.changes {
        text.push_str(&format!("  {:<9} {}\n", c.entity, c.describe()));
    }
    Ok(Output::new(serde_json::to_value(&report)?, text))
}
