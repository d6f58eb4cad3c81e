//! `agents init`: coordination set up for a repository — its base branch, where worktrees go,
//! the lease and the merge gate — and, run again, the settings that may change applied.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{InitArgs, Output};
use crate::backend::Backend;
use crate::coordinator::Coordinator;
use crate::fact::{Configure, DefaultBudget};
use crate::git;
use crate::reducer::{Config, FeatureBudget};
use crate::setup;
use crate::usage::NANOS_PER_USD;

/// Initialises the log in `coord_dir_flag` for the repository around `--repo` (or the current
/// directory), or applies what may change when it is initialised already.
pub(super) fn init(
    args: &InitArgs,
    coord_dir_flag: &Path,
    backend: &mut Backend,
) -> Result<Output> {
    if backend.is_remote() {
        bail!(
            "a spanfold server already holds the log in {}; it is initialised",
            coord_dir_flag.display()
        );
    }
    let start = match &args.repo {
        Some(r) => r.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let info = git::discover(&start)?;
    let base = setup::base_branch(args.base.as_deref(), &info)?;
    let worktrees_dir = setup::worktrees_dir(args.worktrees_dir.as_deref(), &info)?;
    std::fs::create_dir_all(coord_dir_flag).with_context(|| {
        format!(
            "creating the coordination directory {}",
            coord_dir_flag.display()
        )
    })?;
    let excluded = setup::exclude_coord_dir(coord_dir_flag, &info)?;
    let mut coord = Coordinator::create(coord_dir_flag)?;
    let repo = info.workdir.display().to_string();
    let wt = worktrees_dir.display().to_string();
    let lease = args.lease.unwrap_or(crate::reducer::DEFAULT_LEASE_SECONDS);
    let created = coord.init(&repo, &base, &wt, lease)?;
    let changed = apply_settings(
        args,
        &mut coord,
        &info.workdir,
        created,
        [&repo, &base, &wt],
    )?;
    if args.keep_branches {
        git::set_config(&info.workdir, "spanfold.keepBranches", "true")?;
    }
    let config = coord.config()?;
    let budget = coord.view().usage.default_budget.clone();
    let mut out = init_output(&config, &budget, coord_dir_flag, created, changed);
    if let Some(pattern) = excluded {
        out.warnings.push(format!(
            "the coordination directory is inside the checkout; {pattern} was added to .git/info/exclude so git status stays clean"
        ));
    }
    Ok(out)
}

/// `agents init` run again: what was given explicitly and cannot change (repository, base
/// branch, worktrees directory) is refused; what may change (the lease, recorded; the merge
/// gate, in git config) is applied and said.
fn apply_settings(
    args: &InitArgs,
    coord: &mut Coordinator,
    workdir: &Path,
    created: bool,
    [repo, base, wt]: [&String; 3],
) -> Result<Vec<String>> {
    let config = coord.config()?;
    if !created {
        let fixed = [
            ("--repo", args.repo.is_some(), &config.repo, repo),
            ("--base", args.base.is_some(), &config.base_branch, base),
            (
                "--worktrees-dir",
                args.worktrees_dir.is_some(),
                &config.worktrees_dir,
                wt,
            ),
        ];
        let refused: Vec<String> = fixed
            .iter()
            .filter(|(_, given, was, now)| *given && was != now)
            .map(|(flag, _, was, now)| format!("{flag} is {was} (given: {now})"))
            .collect();
        if !refused.is_empty() {
            bail!(
                "the log is initialised and these settings cannot change: {}; features and worktrees already depend on them. Start a new coordination directory (--coord-dir) to use others",
                refused.join("; ")
            );
        }
    }
    let mut changed = Vec::new();
    let mut settings = Configure {
        lease_seconds: None,
        default_budget: DefaultBudget::default(),
        barrier_paths: None,
    };
    if let Some(lease) = args
        .lease
        .filter(|l| !created && *l != config.lease_seconds)
    {
        settings.lease_seconds = Some(lease);
        changed.push(format!("lease {}s → {lease}s", config.lease_seconds));
    }
    let before = coord.view().usage.default_budget.clone();
    settings.default_budget = default_budget_change(args, &before, created, &mut changed);
    if settings.lease_seconds.is_some() || settings.default_budget != DefaultBudget::default() {
        coord.configure(settings)?;
    }
    if let Some(cmd) = &args.validate_cmd {
        let before = git::config_value(workdir, "spanfold.validateCmd")?;
        if before.as_deref() != Some(cmd.as_str()) {
            git::set_config(workdir, "spanfold.validateCmd", cmd)?;
            if !created {
                changed.push(format!(
                    "merge gate {} → `{cmd}`",
                    before.map_or("none".to_string(), |b| format!("`{b}`"))
                ));
            }
        }
    }
    Ok(changed)
}

/// The default feature budget's parts that `--feature-budget-usd` and `--feature-budget-tokens`
/// change, each said (0: none).
fn default_budget_change(
    args: &InitArgs,
    before: &FeatureBudget,
    created: bool,
    changed: &mut Vec<String>,
) -> DefaultBudget {
    let mut change = DefaultBudget::default();
    let mut say = |what: &str, was: String, now: String| {
        if !created {
            changed.push(format!("default feature {what} budget {was} → {now}"));
        }
    };
    let usd_now = args.feature_budget_usd.filter(|u| *u > 0.0);
    let usd_was = before.usd_nanos.map(|n| n as f64 / NANOS_PER_USD as f64);
    if args.feature_budget_usd.is_some() && usd_now != usd_was {
        change.usd = args.feature_budget_usd;
        say("dollar", dollars_or_none(usd_was), dollars_or_none(usd_now));
    }
    let tokens_now = args.feature_budget_tokens.filter(|t| *t > 0);
    if args.feature_budget_tokens.is_some() && tokens_now != before.tokens {
        change.tokens = args
            .feature_budget_tokens
            .map(|t| t.min(i64::MAX as u64) as i64);
        let words = |t: Option<u64>| t.map_or("none".to_string(), |t| t.to_string());
        say("token", words(before.tokens), words(tokens_now));
    }
    change
}

fn dollars_or_none(usd: Option<f64>) -> String {
    usd.map_or("none".to_string(), |u| format!("${u:.2}"))
}

/// What init says: the settings in force, and whether it initialised, changed or left them.
fn init_output(
    config: &Config,
    budget: &FeatureBudget,
    coord_dir: &Path,
    created: bool,
    changed: Vec<String>,
) -> Output {
    let state = match (created, changed.is_empty()) {
        (true, _) => "initialised".to_string(),
        (false, true) => "was already initialised; nothing changed".to_string(),
        (false, false) => format!("was already initialised; changed: {}", changed.join(", ")),
    };
    let usd = budget.usd_nanos.map(|n| n as f64 / NANOS_PER_USD as f64);
    let mut limits = Vec::new();
    if let Some(u) = usd {
        limits.push(format!("${u:.2}"));
    }
    if let Some(t) = budget.tokens {
        limits.push(format!("{t} tokens"));
    }
    let default_budget = match limits.is_empty() {
        true => String::new(),
        false => format!(", default feature budget {}", limits.join(" and ")),
    };
    Output::new(
        json!({"repo": config.repo, "base_branch": config.base_branch, "worktrees_dir": config.worktrees_dir, "lease_seconds": config.lease_seconds, "feature_budget": {"usd": usd, "tokens": budget.tokens}, "coord_dir": coord_dir.display().to_string(), "created": created, "changed": changed}),
        format!(
            "Coordination {state} for {} (base branch {}, worktrees in {}, lease {}s{default_budget}, log in {}).",
            config.repo,
            config.base_branch,
            config.worktrees_dir,
            config.lease_seconds,
            coord_dir.display()
        ),
    )
}
