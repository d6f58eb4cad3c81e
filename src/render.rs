//! Text for a person: the tables and lines that commands print without `--json`. Every reason
//! the JSON carries (conflict paths, a gate's output, a merge's commit) is shown here too.

use crate::coordinator::CycleReport;
use crate::fact::{MergeKind, MergeResult};
use crate::status;

pub fn cycle_text(r: &CycleReport) -> String {
    let mut out = format!(
        "Cycle {}: {} assignment(s), {} feature(s) waiting.\n",
        r.cycle_number,
        r.assignments.len(),
        r.features_waiting
    );
    if !r.assignments.is_empty() {
        let rows = r
            .assignments
            .iter()
            .map(|p| {
                vec![
                    p.feature_name.clone(),
                    p.agent_id.clone(),
                    format!("{:.3}", p.match_score),
                    match &p.error {
                        None => match &p.remote_url {
                            Some(url) => format!("{} to {url}", p.worktree_action),
                            None => format!("{} {}", p.worktree_action, p.worktree_path),
                        },
                        Some(e) => format!("FAILED: {e}"),
                    },
                ]
            })
            .collect::<Vec<_>>();
        out.push_str(&table(&["FEATURE", "AGENT", "SCORE", "WORKTREE"], &rows));
    }
    for id in &r.leases_expired {
        out.push_str(&format!(
            "Lease expired: {id} was silent too long; its features are queued again, their worktrees kept.\n"
        ));
    }
    for m in &r.merges {
        let detail = match m.result {
            MergeResult::Merged => format!(
                "{} at {}{}",
                m.kind.map_or("", MergeKind::as_str),
                m.commit
                    .as_deref()
                    .map(|c| &c[..c.len().min(12)])
                    .unwrap_or(""),
                m.worktree
                    .map(|w| format!(", worktree {w}"))
                    .unwrap_or_default()
            ),
            MergeResult::Conflicted => format!(
                "conflicts in {}; back to {}",
                m.conflicts.join(", "),
                m.agent_id
            ),
            _ => m.reason.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "Merge {}: {} ({detail})\n",
            m.feature_name, m.result
        ));
    }
    out
}

/// Where a status is looked at from: the moment (for the lease left) and the directory (for
/// short paths). Both come from the shell; a replay or `--at` looks from the status's own time.
#[derive(Debug, Clone, Default)]
pub struct Viewpoint {
    pub now: Option<crate::model::UnixNanos>,
    pub cwd: Option<std::path::PathBuf>,
}

pub fn status_text(st: &status::Status, seen: &Viewpoint) -> String {
    let c = &st.coordination_status;
    let mut out = format!(
        "Agents: {} ({} active, {} idle)   Features: {} queued, {} in progress, {} completed   Worktrees: {}   Health: {:.3}\n",
        c.total_agents,
        c.active_agents,
        c.idle_agents,
        c.features_in_queue,
        c.features_in_progress,
        c.features_completed,
        c.total_worktrees,
        c.coordination_health
    );
    if let Some(u) = &c.usage {
        out.push_str(&format!(
            "Spent: {} (LLM requests: {}; tokens: {} input, {} output; `spanfold usage` for more)\n",
            cost(u),
            u.llm_requests,
            u.input_tokens,
            u.output_tokens
        ));
    }
    for note in &st.health_notes {
        out.push_str(&format!("  health: {note}\n"));
    }
    if !st.merge_queue.is_empty() {
        let queue: Vec<String> = st
            .merge_queue
            .iter()
            .map(|e| format!("{}. {} ({})", e.position, e.feature, e.state))
            .collect();
        out.push_str(&format!("Merge queue: {}\n", queue.join(", ")));
    }
    if !st.merge_queue_done.is_empty() {
        let done: Vec<String> = st
            .merge_queue_done
            .iter()
            .take(5)
            .map(|d| format!("{} ({})", d.feature, d.state))
            .collect();
        out.push_str(&format!(
            "Left the merge queue lately: {}\n",
            done.join(", ")
        ));
    }
    out.push_str(&format!(
        "As of seq {}{}\n\n",
        st.as_of.seq,
        st.as_of
            .time
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default()
    ));
    let now = seen
        .now
        .or_else(|| st.as_of.time.as_deref().and_then(parse_time));
    out.push_str(&agents_table(st, now, seen.cwd.as_deref()));
    for a in &st.agents {
        if let Some(why) = &a.error {
            out.push_str(&format!("Agent {} is in error: {why}.\n", a.agent_id));
        }
        if let Some(m) = &a.last_message {
            out.push_str(&format!(
                "Agent {} said at {}: {}\n",
                a.agent_id,
                m.time,
                one_line(&m.text)
            ));
        }
    }
    out.push('\n');
    out.push_str(&features_table(st));
    if !st.anomalies.is_empty() {
        out.push_str(&format!(
            "\nAnomalies ({} in all):\n",
            st.counters.anomalies
        ));
        let rows: Vec<Vec<String>> = st
            .anomalies
            .iter()
            .map(|a| {
                vec![
                    a.seq.to_string(),
                    a.agent_id.clone().unwrap_or_default(),
                    a.span.clone(),
                    a.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["SEQ", "AGENT", "SPAN", "REASON"], &rows));
    }
    out
}

fn parse_time(t: &str) -> Option<crate::model::UnixNanos> {
    humantime::parse_rfc3339(t)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as crate::model::UnixNanos)
}

/// One line per feature an agent holds (one with "-" when it holds none), with its progress
/// and the lease left.
fn agents_table(
    st: &status::Status,
    now: Option<crate::model::UnixNanos>,
    cwd: Option<&std::path::Path>,
) -> String {
    if st.agents.is_empty() {
        return "No agents registered.\n".into();
    }
    let details = st.agents.first().is_some_and(|a| a.capabilities.is_some());
    let mut rows = Vec::new();
    for a in &st.agents {
        let mut progress = Vec::new();
        if let Some(p) = a.progress_percentage {
            progress.push(format!("{p}%"));
        }
        if let Some(n) = a.files_modified {
            progress.push(format!("{n} files"));
        }
        if let Some(n) = a.lines_added {
            progress.push(format!("+{n}"));
        }
        let lease = match (a.lease_expires_at.as_deref().and_then(parse_time), now) {
            (Some(end), Some(now)) if end > now => humantime::format_duration(
                std::time::Duration::from_secs((end - now) / 1_000_000_000),
            )
            .to_string(),
            (Some(_), Some(_)) => "overdue".into(),
            _ => "-".into(),
        };
        let held: Vec<(String, String)> = if a.assignments.is_empty() {
            vec![("-".into(), String::new())]
        } else {
            a.assignments
                .iter()
                .map(|x| {
                    let path = x.worktree_path.as_deref().map(|p| shown_path(p, cwd));
                    (
                        format!("{} ({})", x.feature_name, x.status.as_str()),
                        path.unwrap_or_default(),
                    )
                })
                .collect()
        };
        for (i, (feature, path)) in held.into_iter().enumerate() {
            let first = i == 0;
            let mut row = vec![
                if first {
                    a.agent_id.clone()
                } else {
                    String::new()
                },
                if first {
                    a.state.as_str().to_owned()
                } else {
                    String::new()
                },
                feature,
                if first {
                    progress.join(" ")
                } else {
                    String::new()
                },
                if first { lease.clone() } else { String::new() },
                path,
                if first {
                    a.last_activity.clone()
                } else {
                    String::new()
                },
            ];
            if let (true, Some(c)) = (first, &a.capabilities) {
                row.push(
                    c.items
                        .items()
                        .map(|(_, i)| i)
                        .collect::<Vec<_>>()
                        .join(","),
                );
                row.push(c.max_concurrent_features.to_string());
            } else if details {
                row.extend([String::new(), String::new()]);
            }
            rows.push(row);
        }
    }
    let mut headers = vec![
        "AGENT",
        "STATE",
        "FEATURE",
        "PROGRESS",
        "LEASE LEFT",
        "WORKTREE",
        "LAST ACTIVITY",
    ];
    if details {
        headers.extend(["CAPABILITIES", "MAX"]);
    }
    table(&headers, &rows)
}

/// Features with work going on first, then the queue, then what is done.
fn features_table(st: &status::Status) -> String {
    use crate::reducer::FeatureStatus as S;
    if st.features.is_empty() {
        return "No features.\n".into();
    }
    let rank = |s: S| match s {
        S::Conflicted | S::InProgress | S::Validating | S::Merging | S::Assigned => 0,
        S::Queued | S::Held => 1,
        S::Completed | S::Cancelled => 2,
    };
    let mut features: Vec<&status::FeatureJson> = st.features.iter().collect();
    features.sort_by_key(|f| rank(f.status));
    let rows: Vec<Vec<String>> = features
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.priority.as_str().to_owned(),
                f.status.as_str().to_owned(),
                f.assigned_agent.clone().unwrap_or_default(),
                f.usage.as_ref().map_or_else(|| "–".to_owned(), cost),
                risk(f),
                feature_why(f),
            ]
        })
        .collect();
    table(
        &[
            "FEATURE",
            "PRIORITY",
            "STATUS",
            "AGENT",
            "COST",
            "RISK",
            "WHY / NOTE",
        ],
        &rows,
    )
}

/// The conflict radar's column: `conflict:auth-tokens(src/auth.rs)`, `overlap:base(a.rs)`, or
/// `–`.
fn risk(f: &status::FeatureJson) -> String {
    if f.conflict_risk.is_empty() {
        return "–".into();
    }
    f.conflict_risk
        .iter()
        .map(|r| {
            let with = r.with.as_deref().unwrap_or("base");
            format!("{}:{with}({})", r.kind, r.paths.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Dollars as their source allows: as reported ("$0.0117"), priced ("~$0.0280"), or a lower
/// bound when some tokens had no price ("≥$0.0280").
pub fn cost(u: &crate::usage::UsageJson) -> String {
    use crate::usage::CostSource;
    let mark = match u.cost_source {
        Some(CostSource::Priced) => "~",
        Some(CostSource::Unpriced) => "≥",
        _ => "",
    };
    format!("{mark}${:.4}", u.cost_usd)
}

/// A path as a person near it reads it: relative to `cwd` when that is short (at most two
/// steps up), otherwise absolute.
pub fn shown_path(path: &str, cwd: Option<&std::path::Path>) -> String {
    use std::path::{Component, Path};
    let Some(cwd) = cwd else {
        return path.to_owned();
    };
    let target = Path::new(path);
    let (a, b): (Vec<Component>, Vec<Component>) =
        (cwd.components().collect(), target.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let ups = a.len() - common;
    if common <= 1 || ups > 2 {
        return path.to_owned();
    }
    let mut rel = std::path::PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    for c in &b[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// The one line that says why a feature is where it is: what it waits for, the conflict or
/// the reason it came back to its agent, or where it was merged.
pub fn feature_why(f: &status::FeatureJson) -> String {
    use crate::reducer::FeatureStatus as S;
    let short = |c: &str| c.chars().take(12).collect::<String>();
    match f.status {
        S::Conflicted => format!(
            "conflicts in {}: merge the base branch into the feature branch, then validate again",
            f.conflicts.join(", ")
        ),
        S::Completed => f
            .merge_commit
            .as_deref()
            .map(|c| {
                format!(
                    "merged at {}{}{}",
                    short(c),
                    f.merged_by
                        .as_deref()
                        .map(|a| format!(", {a}'s work"))
                        .unwrap_or_default(),
                    f.merged_at
                        .as_deref()
                        .map(|t| format!(", {t}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default(),
        S::InProgress | S::Assigned | S::Validating => f
            .merge_note
            .as_deref()
            .map(|n| format!("came back: {n}"))
            .unwrap_or_default(),
        _ => f.wait_reason.clone().unwrap_or_default(),
    }
}

pub fn worktree_text(st: &status::Status) -> String {
    if st.worktrees.is_empty() {
        return "No worktrees yet: a coordination cycle creates one per assigned feature.\n".into();
    }
    let rows: Vec<Vec<String>> = st
        .worktrees
        .iter()
        .map(|w| {
            vec![
                w.path.clone(),
                w.branch_name.clone(),
                w.status.as_str().to_owned(),
                w.agent_id.clone().unwrap_or_default(),
                w.feature_name.clone(),
            ]
        })
        .collect();
    table(&["PATH", "BRANCH", "STATUS", "AGENT", "FEATURE"], &rows)
}

pub fn step_line(step: &crate::replay::Step) -> String {
    let changes: Vec<String> = step.changes.iter().map(|c| c.describe()).collect();
    let mut out = format!(
        "{:>8} {} {:<28} {:<16} {}\n",
        step.seq,
        status::rfc3339(step.time),
        step.span,
        step.agent_id.as_deref().unwrap_or("-"),
        if changes.is_empty() {
            "-".to_owned()
        } else {
            changes.join("; ")
        }
    );
    out.push_str(&detail_lines(&step.details));
    out
}

/// A span's details under its line, indented; a multi-line reason (a gate's output) keeps its
/// lines.
pub fn detail_lines(details: &[String]) -> String {
    let mut out = String::new();
    for d in details {
        for (i, line) in d.lines().enumerate() {
            let lead = if i == 0 { "- " } else { "  " };
            out.push_str(&format!("{:>40}{lead}{line}\n", ""));
        }
    }
    out
}

pub fn what_if_text(w: &crate::whatif::Report) -> String {
    let mut out = format!(
        "\nWhat-if over {} recorded cycles (work takes as long as it did in the record):\n",
        w.cycles
    );
    out.push_str(&format!(
        "  {:<26} {:>10} {:>10} {:>12}\n",
        "", "recorded", "current", "alternative"
    ));
    type Figure = fn(&crate::whatif::Outcome) -> String;
    let rows: [(&str, Figure); 6] = [
        ("features completed", |o| o.features_completed.to_string()),
        ("features assigned", |o| o.features_assigned.to_string()),
        ("mean wait in queue (s)", |o| {
            format!("{:.1}", o.mean_wait_seconds)
        }),
        ("max wait in queue (s)", |o| {
            format!("{:.1}", o.max_wait_seconds)
        }),
        ("lease verdicts", |o| o.lease_verdicts.to_string()),
        ("cost of work done (USD)", |o| format!("{:.4}", o.cost_usd)),
    ];
    for (label, f) in &rows {
        out.push_str(&format!(
            "  {:<26} {:>10} {:>10} {:>12}\n",
            label,
            f(&w.recorded),
            f(&w.current),
            f(&w.alternative)
        ));
    }
    let agents: std::collections::BTreeSet<&String> = w
        .recorded
        .load
        .keys()
        .chain(w.current.load.keys())
        .chain(w.alternative.load.keys())
        .collect();
    for a in agents {
        let n = |o: &crate::whatif::Outcome| o.load.get(a).copied().unwrap_or(0).to_string();
        out.push_str(&format!(
            "  {:<26} {:>10} {:>10} {:>12}\n",
            format!("assignments to {a}"),
            n(&w.recorded),
            n(&w.current),
            n(&w.alternative)
        ));
    }
    if w.differences.is_empty() {
        out.push_str("The alternative makes the same assignments as the current policy.\n");
    } else {
        out.push_str("Assignments the alternative makes differently:\n");
        for d in &w.differences {
            out.push_str(&format!(
                "  cycle {:>4} {} {} → {} (score {:.3})\n",
                d.cycle,
                status::rfc3339(d.time),
                d.feature_name,
                d.agent_id,
                d.score
            ));
        }
    }
    out
}

/// A plain text table: columns padded to their widest cell, the last column unpadded.
/// Text from the log as one line a terminal shows as it is: every control character (escape
/// sequences, newlines that would forge a table row) written out as `\u{..}`.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    written_out(text, |_| false)
}

/// Text for a terminal: lines and tabs kept, every other control character written out, so
/// nothing a span carried can move the cursor, retitle the window or change colours.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    written_out(text, |c| c == '\n' || c == '\t')
}

/// `text` with its control characters written out as `\u{..}`, but those `kept`.
fn written_out(text: &str, kept: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !kept(c);
    if !text.chars().any(escaped) {
        return text.into();
    }
    text.chars()
        .map(|c| match escaped(c) {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| one_line(c).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
