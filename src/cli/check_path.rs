//! `agents check-path AGENT PATH`: would editing PATH collide with another active feature? Yes
//! when another feature's branch changed that path since it left the base branch, or the
//! conflict radar's latest forecast names it between the agent's feature and another. The
//! answer is exit code 2 with the reason on stderr, which is how a Claude Code `PreToolUse`
//! hook refuses an edit and tells the model why (`--hook` reads the hook's JSON from stdin).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::{CheckPathArgs, Output};
use crate::backend::Backend;
use crate::git;
use crate::names;
use crate::reducer::FeatureStatus;
use crate::status::{FeatureJson, StatusOptions};

/// The exit code of an answer "it would collide".
pub const COLLIDES: u8 = 2;

pub(super) fn check_path(args: &CheckPathArgs, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let asked = match (&args.path, args.hook) {
        (Some(path), _) => path.clone(),
        (None, true) => hook_path(std::io::stdin().lock())?,
        (None, false) => bail!(
            "give the PATH to check, or --hook to read it from a Claude Code PreToolUse hook's input on stdin"
        ),
    };
    let st = backend.status(&StatusOptions {
        statuses: FeatureStatus::ALL
            .into_iter()
            .filter(|s| s.is_in_progress())
            .collect(),
        ..StatusOptions::default()
    })?;
    let config = st
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("coordination is not set up; run spanfold agents init"))?;
    let (mine, others): (Vec<&FeatureJson>, Vec<&FeatureJson>) = st
        .features
        .iter()
        .partition(|f| f.assigned_agent.as_deref() == Some(args.id.as_str()));
    let roots: Vec<&str> = mine
        .iter()
        .filter_map(|f| f.worktree_path.as_deref())
        .chain([config.repo.as_str()])
        .collect();
    let path = repo_relative(&asked, &roots)?;
    let mut collisions = Vec::new();
    for f in &mine {
        for r in &f.conflict_risk {
            if let Some(other) = &r.with
                && r.paths.iter().any(|p| p == &path)
            {
                collisions.push(json!({"feature": other, "kind": r.kind, "by": "forecast"}));
            }
        }
    }
    let repo = Path::new(&config.repo);
    if !mine.is_empty() && repo.is_dir() {
        for name in changed_elsewhere(repo, &config.base_branch, &others, &path)? {
            if !collisions.iter().any(|c| c["feature"] == name.as_str()) {
                collisions.push(json!({"feature": name, "kind": "changes", "by": "branch"}));
            }
        }
    }
    Ok(answer(&args.id, &path, &collisions))
}

fn answer(agent: &str, path: &str, collisions: &[Value]) -> Output {
    let data = json!({"agent_id": agent, "path": path, "collides": !collisions.is_empty(), "with": collisions});
    if collisions.is_empty() {
        return Output::new(data, format!("{path}: no other active feature changes it"));
    }
    let said: Vec<String> = collisions
        .iter()
        .map(|c| {
            let feature = c["feature"].as_str().unwrap_or_default();
            match c["kind"].as_str() {
                Some("conflict") => {
                    format!("feature {feature} changes the same lines (a conflict is forecast)")
                }
                _ => format!("feature {feature} also changes it"),
            }
        })
        .collect();
    let mut out = Output::new(
        data,
        format!(
            "{path} collides with another active feature: {}. Edit another file if you can, or merge the base branch after that feature lands.",
            said.join("; ")
        ),
    );
    out.exit_code = Some(COLLIDES);
    out
}

/// The features among `others` whose branch changed `path` since it left `base`.
fn changed_elsewhere(
    repo: &Path,
    base: &str,
    others: &[&FeatureJson],
    path: &str,
) -> Result<Vec<String>> {
    let mut radar = git::Radar::open(repo)?;
    let mut names: Vec<&str> = vec![base];
    let with_branch: Vec<(&str, &str)> = others
        .iter()
        .filter_map(|f| Some((f.name.as_str(), f.branch_name.as_deref()?)))
        .collect();
    names.extend(with_branch.iter().map(|(_, b)| *b));
    let tips = radar.tips(&names);
    let Some(base_tip) = tips[0] else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ((feature, _), tip) in with_branch.iter().zip(&tips[1..]) {
        let Some(tip) = tip else { continue };
        if radar.changed_paths(base_tip, *tip)?.contains(path) {
            out.push((*feature).to_owned());
        }
    }
    Ok(out)
}

/// The path a Claude Code `PreToolUse` hook's input names (`tool_input.file_path`, or
/// `notebook_path`, or `path`).
fn hook_path(input: impl Read) -> Result<String> {
    let v: Value = serde_json::from_reader(input).context(
        "--hook reads a Claude Code PreToolUse hook's JSON on stdin, and that was not JSON",
    )?;
    ["file_path", "notebook_path", "path"]
        .iter()
        .find_map(|k| v["tool_input"][k].as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!("the hook's input names no file (tool_input.file_path); nothing to check")
        })
}

/// `asked` relative to the repository: an absolute path (or one relative to the current
/// directory, when that is inside one of `roots`) with the root it lies in taken off; any other
/// relative path as given. Refuses what leaves the repository.
fn repo_relative(asked: &str, roots: &[&str]) -> Result<String> {
    let absolute = Path::new(asked).is_absolute();
    let full = if absolute {
        PathBuf::from(asked)
    } else {
        std::env::current_dir().map_or_else(|_| PathBuf::from(asked), |d| d.join(asked))
    };
    let full = lexical(&full);
    for root in roots {
        let root = lexical(Path::new(root));
        if let Ok(rest) = full.strip_prefix(&root) {
            return clean(rest, asked);
        }
        // The roots may be spelled through a symlink (a temporary directory, for one).
        if let (Ok(real_root), Some(real)) = (std::fs::canonicalize(&root), real_path(&full))
            && let Ok(rest) = real.strip_prefix(real_root)
        {
            return clean(rest, asked);
        }
    }
    if absolute {
        bail!("{asked} is not in the repository or in one of the agent's worktrees");
    }
    clean(Path::new(asked), asked)
}

/// The real path of `p`, or of its nearest existing parent with the rest joined on (a file
/// about to be written need not exist).
fn real_path(p: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut at = p;
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return Some(rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c)));
        }
        rest.push(at.file_name()?.to_owned());
        at = at.parent()?;
    }
}

/// `.` and `..` resolved by the path's words alone.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn clean(rest: &Path, asked: &str) -> Result<String> {
    let words: Vec<String> = rest
        .components()
        .map(|c| match c {
            Component::Normal(w) => Ok(w.to_string_lossy().into_owned()),
            _ => Err(anyhow!("{asked} leaves the repository")),
        })
        .collect::<Result<_>>()?;
    if words.is_empty() {
        bail!("{asked} is the repository itself, not a file in it");
    }
    Ok(words.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_relative_to_the_worktree_or_repository_they_lie_in() {
        let roots = ["/w/spanfold/f1", "/repo"];
        let rel = |p: &str| repo_relative(p, &roots).map_err(|e| e.to_string());
        assert_eq!(rel("/w/spanfold/f1/src/a.rs").as_deref(), Ok("src/a.rs"));
        assert_eq!(rel("/repo/./src/../lib.rs").as_deref(), Ok("lib.rs"));
        assert!(rel("/elsewhere/a.rs").is_err_and(|e| e.contains("not in the repository")));
        assert!(rel("/repo").is_err_and(|e| e.contains("repository itself")));
    }

    #[test]
    fn a_hooks_input_names_the_file_it_would_edit() {
        let input =
            br#"{"tool_name":"Edit","tool_input":{"file_path":"/repo/src/a.rs","old_string":"x"}}"#;
        assert_eq!(
            hook_path(&input[..]).ok().as_deref(),
            Some("/repo/src/a.rs")
        );
        assert!(hook_path(&b"not json"[..]).is_err());
        assert!(
            hook_path(&br#"{"tool_input":{}}"#[..])
                .is_err_and(|e| e.to_string().contains("names no file"))
        );
    }
}
