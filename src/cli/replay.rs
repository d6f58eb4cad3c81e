//! `replay`: recorded traces folded again away from the live log — the final status, each
//! event (`--step`), the policy checked against its recorded decisions (`--verify`) or run
//! under other settings (`--policy-config`) — and the progress bar a person waits with.

use anyhow::{Result, anyhow};
use serde_json::json;

use super::{Cli, Failure, Output, ReplayArgs};
use crate::emit;
use crate::render::{status_text, step_line, what_if_text};
use crate::replay::{ReplayOptions, ReplayReport, VerifyReport};
use crate::status::{self, StatusOptions};

/// Replays the files; with `--step` in text mode each event's line goes to `on_line` as it is
/// folded, with `--json` the steps go into the envelope's metadata.
pub(super) fn replay(
    args: &ReplayArgs,
    cli: &Cli,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output> {
    let options = replay_options(args, cli)?;
    let mut steps = Vec::new();
    let report = crate::replay::replay(&options, |step| {
        if cli.json {
            steps.push(step.clone());
        } else {
            on_line(&step_line(step));
        }
    })?;
    let st = status::build(&report.view, &StatusOptions::default());
    let mut meta = json!({
        "events": report.events,
        "lines": report.lines,
        "duplicates": report.duplicates,
        "times_raised": report.times_raised,
        "rejected_spans": report.rejected_count,
        "stopped_by_until": report.stopped,
    });
    let mut text = summary(args, &report);
    if !args.step || cli.json {
        text.push_str(&status_text(&st, &crate::render::Viewpoint::default()));
    }
    if args.step && cli.json {
        meta["steps"] = serde_json::to_value(&steps)?;
    }
    if let Some(w) = &report.what_if {
        meta["what_if"] = serde_json::to_value(w)?;
        text.push_str(&what_if_text(w));
    }
    if let Some(v) = &report.verify {
        meta["verify"] = serde_json::to_value(v)?;
        refuse_divergence(v, &st)?;
        text.push_str(&format!(
            "verify: {} decision points, {} decisions re-computed, all as recorded.\n",
            v.decision_points, v.decisions
        ));
    }
    let mut out = Output::new(serde_json::to_value(&st)?, text);
    out.metadata = Some(json!({ "replay": meta }));
    if report.times_raised > 0 {
        out.warnings.push(format!(
            "{} line(s) carried a receive time earlier than the line before; they were replayed at that line's time, so time never goes backwards (the file was edited, or exports were joined out of order)",
            report.times_raised
        ));
    }
    Ok(out)
}

/// The arguments as the replay reads them: the what-if settings and `--until` parsed first, so
/// that a mistake in them is said before any input is read.
fn replay_options(args: &ReplayArgs, cli: &Cli) -> Result<ReplayOptions> {
    use std::io::IsTerminal;
    let what_if = args
        .policy_config
        .as_deref()
        .map(crate::replay::read_what_if)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let until = args
        .until
        .as_deref()
        .map(str::parse::<crate::timetravel::Point>)
        .transpose()?;
    // A progress bar only for people: on a terminal, for inputs big enough to wait for.
    let size = crate::replay::input_size(&args.files);
    let show_progress =
        !cli.json && !args.step && std::io::stderr().is_terminal() && size > 32 * 1024 * 1024;
    Ok(ReplayOptions {
        files: args.files.clone(),
        step: args.step,
        until,
        verify: args.verify,
        what_if,
        keep: args.keep.clone(),
        now: emit::now(),
        progress: show_progress.then_some(progress_bar as fn(u64, u64)),
    })
}

/// The first line: how much was replayed, what was dropped or skipped, where `--until` stopped.
fn summary(args: &ReplayArgs, report: &ReplayReport) -> String {
    format!(
        "Replayed {} events from {} lines of {} file(s){}{}{}.\n",
        report.events,
        report.lines,
        args.files.len(),
        if report.duplicates > 0 {
            format!("; {} duplicate spans dropped", report.duplicates)
        } else {
            String::new()
        },
        if report.rejected_count > 0 {
            format!(
                "; {} malformed spans skipped ({})",
                report.rejected_count,
                report.rejected.join("; ")
            )
        } else {
            String::new()
        },
        if report.stopped {
            format!(" (stopped at seq {} by --until)", report.view.as_of.seq)
        } else {
            String::new()
        }
    )
}

/// `--verify` found a recorded decision the policy no longer makes: the command fails, showing
/// the first difference side by side, with the status and the check as its data.
fn refuse_divergence(v: &VerifyReport, st: &status::Status) -> Result<()> {
    if let Some(d) = &v.divergence {
        let message = format!(
            "replay --verify: the policy no longer makes a recorded decision.\n{}({} decision points agreed before it)",
            d.render(),
            v.decision_points.saturating_sub(1)
        );
        let mut data = serde_json::to_value(st)?;
        data["verify"] = serde_json::to_value(v)?;
        return Err(Failure { message, data }.into());
    }
    Ok(())
}

/// Draws the bar on stderr: one bar for the whole replay, cleared once all input is read.
fn progress_bar(read: u64, total: u64) {
    use std::sync::OnceLock;
    static BAR: OnceLock<indicatif::ProgressBar> = OnceLock::new();
    let bar = BAR.get_or_init(|| {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "replaying {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    });
    bar.set_position(read);
    if read >= total {
        bar.finish_and_clear();
    }
}
