//! `agents coordination-cycle`: one cycle, or cycles every `--interval` seconds.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use super::{CycleArgs, Output};
use crate::backend::Backend;
use crate::coordinator::CycleReport;
use crate::render::cycle_text;

/// Runs the cycles; in continuous mode each one's text goes to `on_cycle` as it finishes.
pub(super) fn cycles(
    args: &CycleArgs,
    backend: &mut Backend,
    on_cycle: &mut dyn FnMut(&str),
) -> Result<Output> {
    if !(args.interval.is_finite() && args.interval >= 0.0) {
        bail!("--interval must be a number of seconds, 0 or more");
    }
    let max = if args.continuous {
        args.max_cycles
    } else {
        Some(1)
    };
    let mut reports: Vec<CycleReport> = Vec::new();
    let mut text = String::new();
    loop {
        let report = backend.cycle()?;
        // The log is let go between cycles so that other commands can reach it.
        backend.release();
        let line = cycle_text(&report);
        if args.continuous {
            on_cycle(&line);
        } else {
            text = line;
        }
        reports.push(report);
        if max.is_some_and(|m| reports.len() as u64 >= m) {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
    let data = if args.continuous {
        json!({"cycles": reports})
    } else {
        serde_json::to_value(&reports[0])?
    };
    Ok(Output::new(data, text))
}
