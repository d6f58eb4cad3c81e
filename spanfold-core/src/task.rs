//! What `agents next` hands an agent: the feature to work on, where, what it asks for, and —
//! when the feature came back — why and what to do about it. A pure function of the status, so
//! the CLI and a script that feeds a coding agent read the same thing.

use serde::{Deserialize, Serialize};

use crate::reducer::FeatureStatus;
use crate::status::{AgentJson, FeatureJson};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub agent_id: String,
    pub feature_name: String,
    pub status: FeatureStatus,
    pub worktree_path: Option<String>,
    pub branch_name: Option<String>,
    pub base_branch: Option<String>,
    /// For a remote agent: the remote its branch is on, and the commands that get it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_commands: Vec<String>,
    pub description: String,
    pub requirements: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    /// Capabilities the feature asks for, as "language python", "framework react".
    pub requires: Vec<String>,
    /// Why the feature came back to its agent, when it did: what to do is in the words.
    pub came_back: Option<String>,
    /// The paths of the merge conflict, when it conflicted.
    pub conflicts: Vec<String>,
    /// The conflict radar's warnings: other active features (or the base branch) whose
    /// changes meet this feature's, and what to do.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The commands that report progress on this feature.
    pub report_commands: Vec<String>,
}

/// The conflict radar's forecasts for `feature`, as advice to its agent.
pub fn risk_warnings(feature: &FeatureJson, base_branch: Option<&str>) -> Vec<String> {
    let base = base_branch.unwrap_or("the base branch");
    feature
        .conflict_risk
        .iter()
        .map(|r| {
            let paths = r.paths.join(", ");
            let lines = if r.hunks.is_empty() {
                String::new()
            } else {
                format!(" (at {})", r.hunks.join(", "))
            };
            match (&r.with, r.kind.as_str()) {
                (None, "conflict") => format!(
                    "your branch already conflicts with {base} in {paths}{lines}: merge {base} into your branch (git merge {base}) and resolve them now"
                ),
                (None, _) => format!(
                    "{base} has changed {paths} since your branch started; they still merge cleanly"
                ),
                (Some(other), "conflict") => format!(
                    "feature {other} also changes {paths} and the two conflict{lines}; avoid those lines if you can, and merge {base} after {other} lands"
                ),
                (Some(other), _) => format!(
                    "feature {other} also changes {paths}; merge {base} after {other} lands"
                ),
            }
        })
        .collect()
}

/// The task for `agent` on `feature` (a status built with details).
pub fn task(agent: &AgentJson, feature: &FeatureJson, base_branch: Option<&str>) -> Task {
    let details = feature.details.as_ref();
    let base = base_branch.unwrap_or("the base branch");
    let came_back = match feature.status {
        FeatureStatus::Conflicted => Some(format!(
            "its merge into {base} conflicted in {}: merge {base} into your branch (git merge {base}), resolve those paths, commit, then validate again",
            feature.conflicts.join(", ")
        )),
        _ => feature.merge_note.clone(),
    };
    let (id, name) = (&agent.agent_id, &feature.name);
    let start_commands = match (&feature.remote_url, &feature.branch_name) {
        (Some(url), Some(branch)) => start_commands(url, branch, name),
        _ => Vec::new(),
    };
    Task {
        agent_id: id.clone(),
        feature_name: name.clone(),
        status: feature.status,
        worktree_path: feature.worktree_path.clone(),
        branch_name: feature.branch_name.clone(),
        base_branch: base_branch.map(str::to_owned),
        remote_url: feature.remote_url.clone(),
        start_commands,
        description: details.map(|d| d.description.clone()).unwrap_or_default(),
        requirements: details.map(|d| d.requirements.clone()).unwrap_or_default(),
        acceptance_criteria: details
            .map(|d| d.acceptance_criteria.clone())
            .unwrap_or_default(),
        requires: details
            .map(|d| {
                d.requires
                    .items()
                    .map(|(kind, item)| format!("{kind} {item}"))
                    .collect()
            })
            .unwrap_or_default(),
        came_back,
        conflicts: feature.conflicts.clone(),
        warnings: risk_warnings(feature, base_branch),
        report_commands: vec![
            format!(
                "spanfold agents progress {id} --state working --feature {name} --progress PCT"
            ),
            format!("spanfold agents progress {id} --state validating --feature {name}"),
            format!("spanfold agents validate {id} --result passed --feature {name}"),
        ],
    }
}

/// How a remote agent gets its feature's branch: a fresh clone of just that branch, or, in a
/// clone it has, a fetch and a switch. Quoted for a POSIX shell: the URL is the operator's.
fn start_commands(url: &str, branch: &str, feature: &str) -> Vec<String> {
    let (url, branch_q) = (shell_quote(url), shell_quote(branch));
    vec![
        format!(
            "git clone --branch {branch_q} --single-branch {url} {}",
            shell_quote(feature)
        ),
        format!("git fetch {url} {branch_q} && git switch --create {branch_q} FETCH_HEAD"),
        format!(
            "git push {url} {}",
            shell_quote(&format!("HEAD:refs/heads/{branch}"))
        ),
    ]
}

/// `s` as one word for a POSIX shell: kept as is when it holds nothing a shell would read.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=,".contains(&b));
    match plain {
        true => s.to_owned(),
        false => format!("'{}'", s.replace('\'', r"'\''")),
    }
}

/// The task as plain text for a coding agent's prompt.
pub fn prompt(t: &Task) -> String {
    let mut out = format!(
        "You are agent {}. Your task is the feature \"{}\".\n",
        t.agent_id, t.feature_name
    );
    if let (Some(url), Some(branch)) = (&t.remote_url, &t.branch_name) {
        out.push_str(&format!(
            "Your branch {branch} is on the git remote {url}{}. Get it with:\n  {}\nor, in a clone you have:\n  {}\nPush your commits to it before you report validating:\n  {}\n",
            t.base_branch
                .as_deref()
                .map(|b| format!(" (it started from {b})"))
                .unwrap_or_default(),
            t.start_commands.first().map(String::as_str).unwrap_or_default(),
            t.start_commands.get(1).map(String::as_str).unwrap_or_default(),
            t.start_commands.get(2).map(String::as_str).unwrap_or_default(),
        ));
    } else if let Some(path) = &t.worktree_path {
        out.push_str(&format!(
            "Work in the git worktree {path}, on branch {}{}.\n",
            t.branch_name.as_deref().unwrap_or("(its branch)"),
            t.base_branch
                .as_deref()
                .map(|b| format!(", which started from {b}"))
                .unwrap_or_default()
        ));
    }
    if !t.description.is_empty() {
        out.push_str(&format!("\nDescription:\n{}\n", t.description));
    }
    for (title, items) in [
        ("Requirements", &t.requirements),
        ("Acceptance criteria", &t.acceptance_criteria),
        ("Skills it asks for", &t.requires),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}:\n"));
            for item in items {
                out.push_str(&format!("- {item}\n"));
            }
        }
    }
    if let Some(why) = &t.came_back {
        out.push_str(&format!("\nThis feature came back to you: {why}\n"));
    }
    if !t.warnings.is_empty() {
        out.push_str("\nConflicts ahead (spanfold's conflict radar):\n");
        for w in &t.warnings {
            out.push_str(&format!("- {w}\n"));
        }
    }
    out.push_str(match t.remote_url {
        Some(_) => "\nCommit your work and push it to the branch on the remote (what is not pushed is not merged). Report as you go:\n",
        None => "\nCommit your work in the worktree (uncommitted changes are not merged). Report as you go:\n",
    });
    for cmd in &t.report_commands {
        out.push_str(&format!("  {cmd}\n"));
    }
    out.push_str("spanfold merges the branch once validation passed.\n");
    out
}
