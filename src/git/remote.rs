//! Branches on a git remote, for agents that work on other hosts (a cloud sandbox, a
//! container, a second workstation): a feature's branch is put on the remote for its agent
//! instead of being checked out here. The remote is the one the operator names with
//! `git config spanfold.remote`. Talking to it runs the git command line (gix does not push)
//! with fixed arguments — that remote's name and refs spanfold made, never span data — without
//! a terminal to prompt on, killed after a minute.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gix::ObjectId;

use super::merge::{MergeKind, MergeOutcome, land};
use super::worktree::{Removal, ensure_branch, keep_branches, remove_worktree};
use super::{GitError, check_branch_name, open, ref_tip};

/// The repository configuration key naming the remote that remote agents' branches go to.
pub const REMOTE_KEY: &str = "spanfold.remote";

/// How long one exchange with the remote may take before it is given up.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(60);

/// The remote that remote agents' branches go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Its name in the repository's configuration (`origin`).
    pub name: String,
    /// Its URL, as configured: what a remote agent clones.
    pub url: String,
    /// The repository's configuration says how git runs ssh (`core.sshCommand`).
    pub own_ssh: bool,
}

/// A feature's branch put on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub url: String,
    /// The remote had the branch already (an earlier agent's work), and it was left as it is.
    pub reused: bool,
}

fn remote_error(message: String) -> GitError {
    GitError::Remote { message }
}

/// Refuses a branch the remote may be told to take, overwrite or delete on a remote agent's
/// behalf unless it is a feature branch spanfold makes (`spanfold/…`), never the base, whatever
/// a log from elsewhere says.
fn feature_branch(branch: &str, base: &str) -> Result<(), GitError> {
    check_branch_name(branch)?;
    check_branch_name(base)?;
    if !branch.starts_with("spanfold/") || branch == base {
        return Err(remote_error(format!(
            "{branch} is not a feature branch spanfold made, so it is not touched on the remote"
        )));
    }
    Ok(())
}

/// `remote`, or the error saying how to name one.
pub fn required(remote: Option<Remote>) -> Result<Remote, GitError> {
    remote.ok_or_else(|| {
        remote_error(format!(
            "no remote is named for remote agents: set one with `git config {REMOTE_KEY} origin` (a remote of this repository)"
        ))
    })
}

/// The remote named by `spanfold.remote`, if one is: then the base branch is kept in step
/// with the remote's.
pub fn named_remote(repo_dir: &Path) -> Result<Option<Remote>, GitError> {
    let repo = open(repo_dir)?;
    let config = repo.config_snapshot();
    let Some(name) = config
        .string(REMOTE_KEY)
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    // It reaches git's command line: an option or odd bytes are refused, never passed.
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if name.starts_with('-') || !plain {
        return Err(remote_error(format!(
            "{REMOTE_KEY} is {name:?}, which is not a remote's name: name one of `git remote`'s"
        )));
    }
    let url = config
        .string(format!("remote.{name}.url").as_str())
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            remote_error(format!(
                "{REMOTE_KEY} names {name}, which has no URL: add it with `git remote add {name} URL`"
            ))
        })?;
    let own_ssh = config.string("core.sshCommand").is_some();
    Ok(Some(Remote { name, url, own_ssh }))
}

/// Puts `branch` on the configured remote for a remote agent. When the remote has it already
/// (an earlier agent's work) it is left as it is — but when the feature was an agent's here
/// (`worked_here`), whose commits go to it as a fast-forward; otherwise the local branch, made
/// from the tip of `base` when new, is pushed. The branch here of a feature only remote agents
/// had is a copy that may lag theirs, so it is never pushed over it.
pub fn push_branch(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
    worked_here: bool,
) -> Result<Pushed, GitError> {
    feature_branch(branch, base)?;
    let full = format!("refs/heads/{branch}");
    if remote_has(repo_dir, remote, &full)? {
        if worked_here {
            bring_up_to_date(repo_dir, remote, base, branch)?;
        }
        return Ok(Pushed {
            url: remote.url.clone(),
            reused: true,
        });
    }
    ensure_branch(&open(repo_dir)?, base, branch, &full)?;
    let refspec = format!("{full}:{full}");
    remote_git(
        repo_dir,
        remote.own_ssh,
        &["push", "--quiet", &remote.name, &refspec],
    )?;
    Ok(Pushed {
        url: remote.url.clone(),
        reused: false,
    })
}

/// The remote's `branch` and the one here made the same where one contains the other: what is
/// here pushed as a fast-forward, or what is there brought here. Two that diverged (work on
/// both sides) are an error that says how to join them; nothing is overwritten either way.
fn bring_up_to_date(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
) -> Result<(), GitError> {
    let full = format!("refs/heads/{branch}");
    let refspec = format!("{full}:{full}");
    let args = ["push", "--porcelain", &remote.name, &refspec];
    let (ok, out, err) = run_remote(repo_dir, remote.own_ssh, &args)?;
    if ok {
        return Ok(());
    }
    let refused = out.lines().find(|l| l.starts_with('!'));
    // `[rejected]` is git's "not a fast-forward": the remote has commits this branch lacks.
    // Anything else (a hook, a protected branch, no answer) is said in git's words.
    let Some(_) = refused.filter(|l| l.contains("[rejected]")) else {
        let why = refused.map_or(err.trim(), |l| l.rsplit('\t').next().unwrap_or(l).trim());
        return Err(remote_error(format!("git {}: {why}", args.join(" "))));
    };
    fetch_into(repo_dir, remote, base, branch, "").map_err(|e| {
        remote_error(format!(
            "{branch} here and on the remote {name} have diverged: an agent here and a remote agent both committed to it ({e}); make one contain the other by hand (merge them, or reset one to the other, and push {branch} to {name}), and it is placed again",
            name = remote.name
        ))
    })
}

/// Whether the remote has the ref `full`.
fn remote_has(repo_dir: &Path, remote: &Remote, full: &str) -> Result<bool, GitError> {
    let listed = remote_git(
        repo_dir,
        remote.own_ssh,
        &["ls-remote", "--refs", &remote.name, full],
    )?;
    Ok(listed
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(full)))
}

/// Brings the remote agent's `branch` here as the remote has it: the local branch is set to
/// the remote's tip, whatever it was (for a remote agent's feature the work is on the remote).
pub fn fetch_branch(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
) -> Result<(), GitError> {
    fetch_into(repo_dir, remote, base, branch, "+")
}

/// Brings `branch` here as the remote has it when the remote's is ahead (a fast-forward only: a
/// branch here with commits the remote lacks is left as it is, and the error says so): for a
/// feature handed from a remote agent to one here, whose work is on the remote.
pub fn fetch_ahead(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
) -> Result<(), GitError> {
    fetch_into(repo_dir, remote, base, branch, "")
}

/// Fetches the remote's `branch` into the branch of that name here; `force` is `+` to set it
/// whatever it was, empty for a fast-forward only.
fn fetch_into(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
    force: &str,
) -> Result<(), GitError> {
    feature_branch(branch, base)?;
    let refspec = format!("{force}refs/heads/{branch}:refs/heads/{branch}");
    let args = ["fetch", "--quiet", "--no-tags", &remote.name, &refspec];
    remote_git(repo_dir, remote.own_ssh, &args).map(|_| ())
}

/// Moves `base` on the remote from `from` to `commit`, only if it is still at `from` there
/// (`--force-with-lease`; `from` empty: only if the remote has no such branch): a base someone
/// else moved on the remote is never overwritten. Ok(Err(why)) when the remote refused.
pub fn publish_base(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    from: &str,
    commit: &str,
) -> Result<Result<(), String>, GitError> {
    let full = format!("refs/heads/{base}");
    let lease = format!("--force-with-lease={full}:{from}");
    let refspec = format!("{commit}:{full}");
    let args = ["push", "--porcelain", &lease, &remote.name, &refspec];
    let (ok, out, err) = run_remote(repo_dir, remote.own_ssh, &args)?;
    if ok {
        return Ok(Ok(()));
    }
    // `--porcelain` marks a refused ref with `!`; anything else is a failure to talk.
    match out.lines().find(|l| l.starts_with('!')) {
        Some(line) => Ok(Err(line
            .rsplit('\t')
            .next()
            .unwrap_or(line)
            .trim()
            .to_owned())),
        None => Err(remote_error(format!(
            "git {}: {}",
            args.join(" "),
            err.trim()
        ))),
    }
}

/// After a remote agent's feature merged: deletes its branch on the remote — only if the base
/// here contains the tip that was fetched and the remote's is still at it (the agent did not
/// push again), and not with `spanfold.keepBranches` — then here, as for a local feature
/// (`place` is its worktree's path; nothing is there unless the feature was once local).
pub fn remove_remote_branch(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branch: &str,
    place: &Path,
) -> Result<Removal, GitError> {
    feature_branch(branch, base)?;
    let repo = open(repo_dir)?;
    let tip = ref_tip(&repo, &format!("refs/heads/{branch}"))?;
    let base_tip = ref_tip(&repo, &format!("refs/heads/{base}"))?;
    let merged = repo
        .merge_base(base_tip, tip)
        .is_ok_and(|mb| mb.map(|m| m.detach()) == Some(tip));
    if !merged {
        return Ok(Removal::Kept {
            reason: format!("{base} does not contain {branch}'s tip {}", short(tip)),
        });
    }
    if !keep_branches(&repo) {
        let lease = format!("--force-with-lease=refs/heads/{branch}:{tip}");
        let delete = format!(":refs/heads/{branch}");
        let args = ["push", "--porcelain", &lease, &remote.name, &delete];
        let (ok, out, err) = run_remote(repo_dir, remote.own_ssh, &args)?;
        if !ok {
            return match out.lines().find(|l| l.starts_with('!')) {
                Some(line) => Ok(Removal::Kept {
                    reason: format!(
                        "{branch} on the remote {} moved after the merge (its agent pushed again), so it was kept: {}",
                        remote.name,
                        line.rsplit('\t').next().unwrap_or(line).trim()
                    ),
                }),
                None => Err(remote_error(format!(
                    "git {}: {}",
                    args.join(" "),
                    err.trim()
                ))),
            };
        }
    }
    remove_worktree(repo_dir, place, branch, base, false)
}

/// [`land`], with a remote named: the remote's base moves first, from `from` to the tested
/// commit, with a lease — never over someone else's push — and only then the base here. Once
/// the remote has taken it the merge is done, whatever happens here: a crash, or a checkout
/// that cannot follow, leaves it for the next sync to bring here, and the push is never made
/// twice.
pub fn land_through_remote(
    repo_dir: &Path,
    remote: Option<&Remote>,
    base: &str,
    branch: &str,
    tested: (&str, &str, MergeKind),
) -> Result<MergeOutcome, GitError> {
    let Some(remote) = remote else {
        return land(repo_dir, base, branch, tested);
    };
    let (from, commit, kind) = tested;
    // What would stop the move here is checked before the remote's moves.
    if super::branch_tip(repo_dir, base)? != from {
        return land(repo_dir, base, branch, tested);
    }
    if let Some(reason) = super::merge_blocker(repo_dir, base)? {
        return Ok(MergeOutcome::Deferred { reason });
    }
    crate::fault::point(crate::fault::BEFORE_REMOTE_PUSH);
    if let Err(why) = publish_base(repo_dir, remote, base, from, commit)? {
        return Ok(MergeOutcome::Deferred {
            reason: format!(
                "{base} on the remote {} moved (someone else pushed to it), so it was not overwritten ({why}); the merge is tested again on its new tip",
                remote.name
            ),
        });
    }
    crate::fault::point(crate::fault::AFTER_REMOTE_PUSH);
    match land(repo_dir, base, branch, tested) {
        Ok(merged @ MergeOutcome::Merged { .. }) => Ok(merged),
        other => {
            tracing::warn!(
                "{branch} is merged on the remote's {base}; the base here follows at the next sync ({other:?})"
            );
            Ok(MergeOutcome::Merged {
                kind,
                commit: commit.to_owned(),
            })
        }
    }
}

/// [`super::merge_feature`], with a remote named: the merge is computed without moving
/// anything, then lands through the remote.
pub fn merge_through_remote(
    repo_dir: &Path,
    remote: Option<&Remote>,
    base: &str,
    branch: &str,
    message: &str,
) -> Result<MergeOutcome, GitError> {
    if remote.is_none() {
        return super::merge_feature(repo_dir, base, branch, message);
    }
    match super::trial_merge(repo_dir, base, branch, message)? {
        super::Trial::Ready {
            base: from,
            commit,
            kind,
        } => land_through_remote(repo_dir, remote, base, branch, (&from, &commit, kind)),
        super::Trial::Stays(outcome) => Ok(outcome),
    }
}

/// The feature branches (`spanfold/…`) the remote has, with their tips (hex), by name; None
/// when no remote is named.
pub fn remote_feature_branches(
    repo_dir: &Path,
) -> Result<Option<std::collections::BTreeMap<String, String>>, GitError> {
    match named_remote(repo_dir)? {
        Some(remote) => feature_branches_on(repo_dir, &remote).map(Some),
        None => Ok(None),
    }
}

/// The feature branches `remote` has, with their tips (hex), by name.
fn feature_branches_on(
    repo_dir: &Path,
    remote: &Remote,
) -> Result<std::collections::BTreeMap<String, String>, GitError> {
    let listed = remote_git(
        repo_dir,
        remote.own_ssh,
        &["ls-remote", "--heads", &remote.name],
    )?;
    Ok(listed
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once('\t')?;
            let branch = name.trim().strip_prefix("refs/heads/")?;
            branch
                .starts_with("spanfold/")
                .then(|| (branch.to_owned(), id.trim().to_owned()))
        })
        .collect())
}

/// Brings here those of `branches` (remote agents' feature branches) whose tip on the remote
/// differs from the one here: one look at the remote, then one fetch of the ones that moved,
/// so the conflict radar sees the work before it is submitted. The branches fetched.
pub fn refresh_branches(
    repo_dir: &Path,
    base: &str,
    branches: &[&str],
) -> Result<Vec<String>, GitError> {
    for branch in branches {
        feature_branch(branch, base)?;
    }
    let remote = match named_remote(repo_dir)? {
        Some(remote) if !branches.is_empty() => remote,
        _ => return Ok(Vec::new()),
    };
    let theirs = feature_branches_on(repo_dir, &remote)?;
    let repo = open(repo_dir)?;
    let moved: Vec<&str> = branches
        .iter()
        .copied()
        .filter(|b| {
            theirs.get(*b).is_some_and(|tip| {
                ref_tip(&repo, &format!("refs/heads/{b}"))
                    .map(hex)
                    .ok()
                    .as_ref()
                    != Some(tip)
            })
        })
        .collect();
    if moved.is_empty() {
        return Ok(Vec::new());
    }
    let specs: Vec<String> = moved
        .iter()
        .map(|b| format!("+refs/heads/{b}:refs/heads/{b}"))
        .collect();
    let mut args = vec!["fetch", "--quiet", "--no-tags", remote.name.as_str()];
    args.extend(specs.iter().map(String::as_str));
    remote_git(repo_dir, remote.own_ssh, &args)?;
    Ok(moved.into_iter().map(str::to_owned).collect())
}

/// On a remote agent's host: `dir` as a clone of `branch` from `url` — made when absent,
/// else brought up to date with the remote's branch (a fast-forward only: work of its own is
/// never overwritten). The URL and branch come from the coordinator's task: checked, and given
/// to git after `--`.
pub fn clone_or_update(url: &str, branch: &str, dir: &Path) -> Result<(), GitError> {
    check_branch_name(branch)?;
    if url.starts_with('-') || !branch.starts_with("spanfold/") {
        return Err(remote_error(format!(
            "the task names {url} and {branch}: not a remote and feature branch spanfold gives"
        )));
    }
    if !dir.exists() {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|e| remote_error(format!("making {}: {e}", parent.display())))?;
        let target = dir.to_string_lossy();
        let args = [
            "clone",
            "--quiet",
            "--branch",
            branch,
            "--single-branch",
            "--",
            url,
            &target,
        ];
        return remote_git(parent, own_ssh_at(parent), &args).map(|_| ());
    }
    let own_ssh = own_ssh_at(dir);
    remote_git(
        dir,
        own_ssh,
        &[
            "fetch",
            "--quiet",
            "--",
            url,
            &format!("refs/heads/{branch}"),
        ],
    )?;
    remote_git(
        dir,
        own_ssh,
        &["merge", "--quiet", "--ff-only", "FETCH_HEAD"],
    )
    .map(|_| ())
}

/// On a remote agent's host: the clone's `branch` pushed to `url`, for the coordinator to
/// fetch.
pub fn push_work(dir: &Path, url: &str, branch: &str) -> Result<(), GitError> {
    check_branch_name(branch)?;
    let refspec = format!("HEAD:refs/heads/{branch}");
    remote_git(
        dir,
        own_ssh_at(dir),
        &["push", "--quiet", "--", url, &refspec],
    )
    .map(|_| ())
}

/// What keeping the base branch in step with the remote's came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSync {
    /// Both at the same commit.
    InStep,
    /// The remote's was ahead (someone pushed to it): the base here, and its checkout, moved
    /// to it.
    Pulled { from: String, to: String },
    /// The remote's was behind: the base here was pushed to it.
    Published { to: String },
    /// Merges wait, and why: the two have diverged, or the checkout could not follow.
    Waits { reason: String },
}

/// Brings `base` and the remote's base to the same commit where one contains the other (the
/// base here fast-forwards, or is pushed with a lease).
///
/// In the same fetch (one round trip) come `branches` (remote agents' feature branches, each
/// set to the remote's tip as [`fetch_branch`] does). When that fetch fails (one of them is
/// gone from the remote, say), the base alone is fetched, and `branches_fetched` says so.
pub fn sync_base(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    branches: &[&str],
) -> Result<Synced, GitError> {
    check_branch_name(base)?;
    for branch in branches {
        feature_branch(branch, base)?;
    }
    let full = format!("refs/heads/{base}");
    let tracking = format!("refs/remotes/{}/{base}", remote.name);
    let mut refspecs = vec![format!("+{full}:{tracking}")];
    refspecs.extend(
        branches
            .iter()
            .map(|b| format!("+refs/heads/{b}:refs/heads/{b}")),
    );
    let fetch = |specs: &[String]| {
        let mut args = vec!["fetch", "--quiet", "--no-tags", remote.name.as_str()];
        args.extend(specs.iter().map(String::as_str));
        remote_git(repo_dir, remote.own_ssh, &args)
    };
    let mut branches_fetched = !branches.is_empty();
    let mut fetched = fetch(&refspecs);
    if fetched.is_err() && branches_fetched {
        branches_fetched = false;
        fetched = fetch(&refspecs[..1]);
    }
    let base = compare_base(repo_dir, remote, base, fetched.map(|_| ()))?;
    Ok(Synced {
        base,
        branches_fetched,
    })
}

/// [`sync_base`]'s outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub base: BaseSync,
    /// The branches asked for came in the same fetch.
    pub branches_fetched: bool,
}

/// The base here against the remote's just fetched (`fetched`: how that went), brought in step.
fn compare_base(
    repo_dir: &Path,
    remote: &Remote,
    base: &str,
    fetched: Result<(), GitError>,
) -> Result<BaseSync, GitError> {
    let full = format!("refs/heads/{base}");
    let tracking = format!("refs/remotes/{}/{base}", remote.name);
    let repo = open(repo_dir)?;
    let ours = ref_tip(&repo, &full)?;
    if let Err(e) = fetched {
        // A remote without the base yet (a fresh one) gets it; anything else is an error.
        if remote_has(repo_dir, remote, &full)? {
            return Err(e);
        }
        return Ok(
            match publish_base(repo_dir, remote, base, "", &hex(ours))? {
                Ok(()) => BaseSync::Published { to: hex(ours) },
                Err(why) => BaseSync::Waits {
                    reason: format!("{base} could not be pushed to {}: {why}", remote.name),
                },
            },
        );
    }
    let theirs = ref_tip(&repo, &tracking)?;
    if ours == theirs {
        return Ok(BaseSync::InStep);
    }
    let merge_base = repo
        .merge_base(ours, theirs)
        .map(|id| id.map(|i| i.detach()))
        .map_err(|e| remote_error(format!("comparing {base} with {tracking}: {e}")))?;
    Ok(if merge_base == Some(ours) {
        match land(
            repo_dir,
            base,
            base,
            (&hex(ours), &hex(theirs), MergeKind::FastForward),
        )? {
            MergeOutcome::Merged { .. } => BaseSync::Pulled {
                from: hex(ours),
                to: hex(theirs),
            },
            MergeOutcome::Deferred { reason } | MergeOutcome::Failed { reason } => {
                BaseSync::Waits { reason }
            }
            MergeOutcome::Conflicted { .. } => BaseSync::Waits {
                reason: format!("{base} could not take the remote's {base}"),
            },
        }
    } else if merge_base == Some(theirs) {
        match publish_base(repo_dir, remote, base, &hex(theirs), &hex(ours))? {
            Ok(()) => BaseSync::Published { to: hex(ours) },
            Err(why) => BaseSync::Waits {
                reason: format!("{base} could not be pushed to {}: {why}", remote.name),
            },
        }
    } else {
        BaseSync::Waits {
            reason: format!(
                "{base} here and on the remote {name} have diverged ({} and {}); merge them by hand (git pull --no-rebase {name} {base}, then git push {name} {base}); merges wait until then",
                short(ours),
                short(theirs),
                name = remote.name
            ),
        }
    })
}

/// Whether the configuration git reads in `dir` (a clone on an agent's host, or none) says how
/// git runs ssh.
fn own_ssh_at(dir: &Path) -> bool {
    open(dir).is_ok_and(|r| r.config_snapshot().string("core.sshCommand").is_some())
}

fn hex(id: ObjectId) -> String {
    id.to_string()
}

fn short(id: ObjectId) -> String {
    id.to_hex_with_len(7).to_string()
}

/// Runs `git args` in `repo_dir` against a remote: its standard output, or why it failed.
fn remote_git(repo_dir: &Path, own_ssh: bool, args: &[&str]) -> Result<String, GitError> {
    let (ok, out, err) = run_remote(repo_dir, own_ssh, args)?;
    match ok {
        true => Ok(out),
        false => Err(remote_error(format!(
            "git {}: {}",
            args.join(" "),
            err.trim()
        ))),
    }
}

/// Runs `git args` in `repo_dir` against a remote: no prompt for credentials (there is nobody
/// to answer), killed after [`NETWORK_TIMEOUT`]; ssh does not ask either, unless the
/// configuration (`own_ssh`) or the environment says how git runs it. Whether it succeeded, and
/// its output and errors; Err when it could not run or did not finish.
fn run_remote(
    repo_dir: &Path,
    own_ssh: bool,
    args: &[&str],
) -> Result<(bool, String, String), GitError> {
    let what = format!("git {}", args.join(" "));
    let failed = |message: String| remote_error(format!("{what}: {message}"));
    let mut cmd = Command::new("git");
    if !own_ssh && std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let mut child = cmd
        .arg("-C")
        .arg(repo_dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    // Read on their own threads, so that a chatty git cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > NETWORK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "no answer from the remote within {} s",
                    NETWORK_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    Ok((status.success(), out, err))
}
