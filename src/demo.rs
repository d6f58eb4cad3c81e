//! `spanfold demo`: a scratch repository, the server in-process on loopback, and simulated
//! agents that speak real OTLP/HTTP to it, find their work through the API, commit real files in
//! their worktrees, validate and submit; the coordinator merges. Two features edit the same
//! line, so one of them conflicts and its agent resolves it. Everything is left for the user.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::client::{Advert, Client};
use crate::coordinator::Coordinator;
use crate::emit::{self, IdGen};
use crate::reducer::AgentState;
use crate::server::{self, ServerConfig};

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub agents: usize,
    pub features: usize,
    pub repo: Option<PathBuf>,
    /// Give up after this long (a demo must end by itself).
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub repo: String,
    pub coord_dir: String,
    pub features_merged: usize,
    pub conflicts_resolved: usize,
    pub commits_on_base: usize,
    /// Events in the log: the agents' spans and the coordinator's decisions and outcomes.
    pub events_in_log: u64,
    /// The agent run by `spanfold agents run` (the bundled script agent, reporting as Claude
    /// Code does): what its telemetry showed, from the status.
    pub launched_agent: serde_json::Value,
    pub seconds: f64,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    Ok(crate::git::git_cli(dir, args)?)
}

/// A commit by `who`, whatever git identity the machine has (none, on a fresh one).
fn commit(dir: &Path, who: &str, message: &str) -> Result<()> {
    git(
        dir,
        &[
            "-c",
            &format!("user.name={who}"),
            "-c",
            &format!("user.email={who}@spanfold.demo"),
            "commit",
            "-q",
            "-m",
            message,
        ],
    )
    .map(|_| ())
}

fn feature_name(i: usize) -> String {
    format!("feature-{i:02}")
}

pub fn run(config: DemoConfig, mut progress: impl FnMut(&str)) -> Result<DemoSummary> {
    if config.agents == 0 || config.features < 2 {
        bail!("the demo needs at least 1 agent and 2 features");
    }
    let started = Instant::now();
    let repo = make_repo(config.repo.as_deref())?;
    let server = InProcessServer::start(&repo)?;
    progress(&format!(
        "server on {} (OTLP/gRPC {}), repository {}\n",
        server.advert.http,
        server.advert.grpc,
        repo.display()
    ));

    // An agent launched and supervised by `spanfold agents run`, as a user would run Claude
    // Code: the bundled script agent, which sends Claude Code's events. Registered before the
    // features are queued, so that the first cycle gives it one.
    let operator = Client::new(&server.advert.http, None);
    let mut launched = launch_agent(&operator, &repo, &server.coord_dir)?;

    // The operator queues the features (through the server, as OTLP).
    queue_features(&operator, config.features)?;

    let stop = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = (1..=config.agents)
        .map(|n| {
            let (http, stop) = (server.advert.http.clone(), Arc::clone(&stop));
            std::thread::spawn(move || agent(&format!("demo-agent-{n}"), &http, &stop))
        })
        .collect();

    let outcome = watch_until_merged(&operator, &config, started, &mut progress)?;
    stop.store(true, Ordering::Relaxed);
    crate::launcher::terminate(&mut launched, Duration::from_secs(10))
        .context("stopping the launched agent")?;
    for a in agents {
        // What an agent thread says is in the log already; its count is read from main below.
        let _ = a.join();
    }
    let status = outcome?;
    let launched_agent = status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent_id"] == LAUNCHED))
        .map(|a| a["telemetry"].clone())
        .unwrap_or_default();
    // Whichever agent resolved a conflict, its resolution is a commit on main now.
    let resolved = git(&repo, &["rev-list", "--count", "--grep", RESOLVED, "main"])?
        .trim()
        .parse()
        .unwrap_or(0);
    let coord_dir = server.stop()?;
    let commits = git(&repo, &["rev-list", "--count", "main"])?
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(DemoSummary {
        repo: repo.display().to_string(),
        coord_dir: coord_dir.display().to_string(),
        features_merged: status["coordination_status"]["features_completed"]
            .as_u64()
            .unwrap_or(0) as usize,
        conflicts_resolved: resolved,
        commits_on_base: commits,
        events_in_log: status["as_of"]["seq"].as_u64().unwrap_or(0),
        launched_agent,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The scratch repository: a new directory (the one given, or one in the temp dir) with a
/// README and a changelog committed on main.
fn make_repo(given: Option<&Path>) -> Result<PathBuf> {
    let repo = match given {
        Some(r) => r.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "spanfold-demo-{}-{}",
            std::process::id(),
            emit::now() / 1_000_000
        )),
    };
    if repo.join(".git").exists() {
        bail!(
            "{} is already a repository; give the demo a new directory",
            repo.display()
        );
    }
    std::fs::create_dir_all(&repo).with_context(|| format!("creating {}", repo.display()))?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    std::fs::write(repo.join("README.md"), "# demo project\n")?;
    std::fs::write(repo.join("CHANGELOG.md"), "# Changelog\n\n- nothing yet\n")?;
    git(&repo, &["add", "-A"])?;
    commit(&repo, "demo-user", "initial commit")?;
    Ok(std::fs::canonicalize(&repo)?)
}

/// The server on loopback ports of its own, on a thread of its own, until stopped.
struct InProcessServer {
    coord_dir: PathBuf,
    advert: Advert,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<Result<server::Summary>>,
}

impl InProcessServer {
    /// Initialises coordination for `repo` (log in its git directory, worktrees beside it) and
    /// starts the server on it; returns once the server says where it listens.
    fn start(repo: &Path) -> Result<InProcessServer> {
        let coord_dir = repo.join(".git").join("spanfold");
        std::fs::create_dir_all(&coord_dir)?;
        let worktrees = repo.with_file_name(format!(
            "{}.worktrees",
            repo.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut coord = Coordinator::create(&coord_dir)?;
        coord.init(
            &repo.display().to_string(),
            "main",
            &worktrees.display().to_string(),
            600,
        )?;
        coord.background_gates();
        let server_config = ServerConfig {
            coord_dir: coord_dir.clone(),
            grpc: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            interval: Some(Duration::from_millis(500)),
            react: true,
            token: None,
            export_endpoint: None,
            tls: None,
            insecure: false,
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || -> Result<server::Summary> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            Ok(runtime.block_on(server::serve(server_config, coord, stop_rx))?)
        });
        let advert = wait_for_advert(&coord_dir)?;
        Ok(InProcessServer {
            coord_dir,
            advert,
            stop,
            thread,
        })
    }

    /// Stops the server and waits for it; returns the coordination directory it served.
    fn stop(self) -> Result<PathBuf> {
        let _ = self.stop.send(true);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
        Ok(self.coord_dir)
    }
}

/// The operator's feature requests, `feature-01` to `feature-NN`, each with a budget of one
/// dollar on its agents' LLM requests, in one export.
fn queue_features(operator: &Client, features: usize) -> Result<()> {
    let mut ids = IdGen::default();
    let spans = (1..=features)
        .flat_map(|i| {
            let request = emit::feature_request(
                &mut ids,
                emit::now(),
                &emit::FeatureRequest {
                    name: feature_name(i),
                    description: format!("demo feature {i}"),
                    estimated_effort: (i % 8 + 1) as u32,
                    ..Default::default()
                },
            );
            let budget = emit::budget(&mut ids, emit::now(), &feature_name(i), Some(1.0), None);
            [request, budget]
        })
        .collect();
    operator.export(&[emit::wrap(emit::CLI_SERVICE, spans)])?;
    Ok(())
}

/// Follows the status until every feature is merged, giving `progress` each count line that
/// differs from the one before, and returns the last status. An outer error (the server did
/// not answer) ends the demo at once; the inner one (the timeout passed) once the agents have
/// stopped.
fn watch_until_merged(
    operator: &Client,
    config: &DemoConfig,
    started: Instant,
    progress: &mut impl FnMut(&str),
) -> Result<Result<serde_json::Value>> {
    let deadline = started + config.timeout;
    let mut last = String::new();
    loop {
        let status = operator.api("GET", "/api/status")?;
        let c = &status["coordination_status"];
        let line = format!(
            "completed {}/{}  in progress {}  queued {}  agents active {}\n",
            c["features_completed"],
            config.features,
            c["features_in_progress"],
            c["features_in_queue"],
            c["active_agents"]
        );
        if line != last {
            progress(&line);
            last = line;
        }
        if c["features_completed"].as_u64() == Some(config.features as u64) {
            return Ok(Ok(status));
        }
        if Instant::now() > deadline {
            return Ok(Err(anyhow::anyhow!(
                "the demo did not finish within {:?}: {}",
                config.timeout,
                status["features"]
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent `launch_agent` runs.
const LAUNCHED: &str = "demo-claude";

/// Registers [`LAUNCHED`] and starts `spanfold agents run` for it, with the bundled script agent
/// (`spanfold demo-agent`) as its command, under the Claude Code profile.
fn launch_agent(operator: &Client, repo: &Path, coord_dir: &Path) -> Result<std::process::Child> {
    let registration = emit::registration(
        &mut IdGen::default(),
        emit::now(),
        &emit::Registration {
            agent_id: LAUNCHED.to_owned(),
            max_concurrent_features: 1,
            ..Default::default()
        },
    );
    operator.export(&[emit::wrap(emit::CLI_SERVICE, vec![registration])])?;
    let exe = std::env::current_exe().context("finding spanfold's own executable")?;
    let exe_text = exe.display().to_string();
    let coord = coord_dir.display().to_string();
    std::process::Command::new(&exe)
        .args(["--coord-dir", &coord, "agents", "run", LAUNCHED])
        .args([
            "--profile",
            "claude",
            "--grace",
            "5",
            "--timeout",
            "3600",
            "--",
        ])
        .args([exe_text.as_str(), "demo-agent", "{prompt_file}"])
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting `spanfold agents run` for the demo's launched agent")
}

fn wait_for_advert(coord_dir: &Path) -> Result<Advert> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(a) = Advert::read(coord_dir) {
            return Ok(a);
        }
        if Instant::now() > until {
            bail!("the in-process server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One simulated agent: register, then take work until told to stop. Returns how many merge
/// conflicts it resolved.
fn agent(id: &str, http: &str, stop: &AtomicBool) -> Result<usize> {
    let mut me = SimulatedAgent {
        id,
        client: Client::new(http, None),
        ids: IdGen::default(),
    };
    me.register()?;
    let mut resolved = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(work) = me.work()? else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if work.conflicted {
            me.resolve_conflict(&work)?;
            resolved += 1;
        } else {
            me.implement(&work)?;
        }
        me.report(&work.feature, AgentState::Validating)?;
        let span = emit::validation(
            &mut me.ids,
            emit::now(),
            id,
            Some(&work.feature),
            true,
            Some(0),
        );
        me.send(span)?;
        me.wait_for_merge(&work.feature, stop)?;
    }
    Ok(resolved)
}

/// A simulated agent's connection to the server and its span ids.
struct SimulatedAgent<'a> {
    id: &'a str,
    client: Client,
    ids: IdGen,
}

/// A feature the agent holds with work to do, in a worktree that exists.
struct Work {
    feature: String,
    dir: PathBuf,
    /// Sent back by a merge conflict: the base branch is to be merged in first.
    conflicted: bool,
}

impl SimulatedAgent<'_> {
    /// Sends one span over OTLP/HTTP; a span the server refuses ends the agent.
    fn send(&self, span: crate::model::Span) -> Result<()> {
        let (rejected, message) = self
            .client
            .export(&[emit::wrap("spanfold-demo-agent", vec![span])])?;
        if rejected > 0 {
            bail!("{}: {message}", self.id);
        }
        Ok(())
    }

    fn register(&mut self) -> Result<()> {
        let span = emit::registration(
            &mut self.ids,
            emit::now(),
            &emit::Registration {
                agent_id: self.id.to_owned(),
                max_concurrent_features: 1,
                ..Default::default()
            },
        );
        self.send(span)
    }

    /// The agent's state on `feature`, with a percentage that says how far along it is.
    fn report(&mut self, feature: &str, state: AgentState) -> Result<()> {
        let span = emit::progress(
            &mut self.ids,
            emit::now(),
            &emit::ProgressReport {
                agent_id: self.id.to_owned(),
                state: Some(state),
                feature: Some(feature.to_owned()),
                percentage: Some(if state == AgentState::Validating {
                    90.0
                } else {
                    30.0
                }),
                ..Default::default()
            },
        );
        self.send(span)
    }

    /// The first assignment not waiting for its merge, as the API shows it; None while there
    /// is none or its worktree is not made yet.
    fn work(&self) -> Result<Option<Work>> {
        let me = self
            .client
            .api("GET", &format!("/api/agents/{}", self.id))?;
        let work = me["assignments"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["status"] != "merging").cloned());
        let Some(work) = work else {
            return Ok(None);
        };
        let feature = work["feature_name"].as_str().unwrap_or_default().to_owned();
        let Some(dir) = work["worktree_path"].as_str().map(PathBuf::from) else {
            return Ok(None);
        };
        Ok(Some(Work {
            feature,
            dir,
            conflicted: work["status"] == "conflicted",
        }))
    }

    fn resolve_conflict(&self, work: &Work) -> Result<()> {
        resolve_conflict(&work.dir, &work.feature, self.id)
    }

    fn implement(&mut self, work: &Work) -> Result<()> {
        self.report(&work.feature, AgentState::Working)?;
        implement(&work.dir, &work.feature, self.id)
    }

    /// Waits for the merge (or a conflict sent back).
    fn wait_for_merge(&self, feature: &str, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let me = self
                .client
                .api("GET", &format!("/api/agents/{}", self.id))?;
            let still = me["assignments"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["feature_name"] == feature).cloned());
            match still {
                Some(x) if x["status"] == "merging" => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break,
            }
        }
        Ok(())
    }
}

/// The words a resolved conflict leaves in its commit's message: how the demo counts
/// the conflicts its agents resolved, whichever agent did.
pub(crate) const RESOLVED: &str = "merge main, keep both changelog entries";

/// Resolves like a person would: merge the base branch, keep both sides, commit.
pub(crate) fn resolve_conflict(dir: &Path, feature: &str, id: &str) -> Result<()> {
    let _ = git(
        dir,
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@x",
            "merge",
            "-q",
            "main",
        ],
    );
    let theirs = git(dir, &["show", "main:CHANGELOG.md"]).unwrap_or_default();
    let line = format!("- {feature} (by {id})\n");
    std::fs::write(dir.join("CHANGELOG.md"), format!("{theirs}{line}"))?;
    git(dir, &["add", "CHANGELOG.md"])?;
    commit(dir, id, &format!("{feature}: {RESOLVED}"))
}

/// Works on the feature: a file of its own, and for the first two the same changelog line.
pub(crate) fn implement(dir: &Path, feature: &str, id: &str) -> Result<()> {
    let n: usize = feature.trim_start_matches("feature-").parse().unwrap_or(0);
    std::fs::write(
        dir.join(format!("{}.txt", feature.replace('/', "-"))),
        format!("{feature}: implemented by {id}\n"),
    )?;
    if n <= 2 {
        // The first two features both rewrite the same changelog line: one conflicts.
        std::fs::write(
            dir.join("CHANGELOG.md"),
            format!("# Changelog\n\n- {feature} (by {id})\n"),
        )?;
    }
    git(dir, &["add", "-A"])?;
    commit(dir, id, &format!("{feature}: implement"))
}
