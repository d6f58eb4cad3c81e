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
    let repo = match &config.repo {
        Some(r) => r.clone(),
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
    let repo = std::fs::canonicalize(&repo)?;

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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = std::thread::spawn(move || -> Result<server::Summary> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(runtime.block_on(server::serve(server_config, coord, stop_rx))?)
    });
    let advert = wait_for_advert(&coord_dir)?;
    progress(&format!(
        "server on {} (OTLP/gRPC {}), repository {}\n",
        advert.http,
        advert.grpc,
        repo.display()
    ));

    // The operator queues the features (through the server, as OTLP).
    let operator = Client::new(&advert.http, None);
    let mut ids = IdGen::default();
    let spans = (1..=config.features)
        .map(|i| {
            emit::feature_request(
                &mut ids,
                emit::now(),
                &emit::FeatureRequest {
                    name: feature_name(i),
                    description: format!("demo feature {i}"),
                    estimated_effort: (i % 8 + 1) as u32,
                    ..Default::default()
                },
            )
        })
        .collect();
    operator.export(&[emit::wrap(emit::CLI_SERVICE, spans)])?;

    let stop = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = (1..=config.agents)
        .map(|n| {
            let (http, stop) = (advert.http.clone(), Arc::clone(&stop));
            std::thread::spawn(move || agent(&format!("demo-agent-{n}"), &http, &stop))
        })
        .collect();

    let deadline = started + config.timeout;
    let mut last = String::new();
    let outcome = loop {
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
            break Ok(status);
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the demo did not finish within {:?}: {}",
                config.timeout,
                status["features"]
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    let mut resolved = 0;
    for a in agents {
        resolved += a.join().unwrap_or(Ok(0)).unwrap_or(0);
    }
    let status = outcome?;
    let _ = stop_tx.send(true);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
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
        seconds: started.elapsed().as_secs_f64(),
    })
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
    let client = Client::new(http, None);
    let mut ids = IdGen::default();
    let send = |span: crate::model::Span| -> Result<()> {
        let (rejected, message) =
            client.export(&[emit::wrap("spanfold-demo-agent", vec![span])])?;
        if rejected > 0 {
            bail!("{id}: {message}");
        }
        Ok(())
    };
    send(emit::registration(
        &mut ids,
        emit::now(),
        &emit::Registration {
            agent_id: id.to_owned(),
            max_concurrent_features: 1,
            ..Default::default()
        },
    ))?;
    let mut resolved = 0;
    while !stop.load(Ordering::Relaxed) {
        let me = client.api("GET", &format!("/api/agents/{id}"))?;
        let work = me["assignments"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["status"] != "merging").cloned());
        let Some(work) = work else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let feature = work["feature_name"].as_str().unwrap_or_default().to_owned();
        let Some(dir) = work["worktree_path"].as_str().map(PathBuf::from) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let progress = |ids: &mut IdGen, state: AgentState| -> Result<()> {
            let span = emit::progress(
                ids,
                emit::now(),
                &emit::ProgressReport {
                    agent_id: id.to_owned(),
                    state: Some(state),
                    feature: Some(feature.clone()),
                    percentage: Some(if state == AgentState::Validating {
                        90.0
                    } else {
                        30.0
                    }),
                    ..Default::default()
                },
            );
            send(span)
        };
        if work["status"] == "conflicted" {
            // Resolve like a person would: merge the base branch, keep both sides, commit.
            let _ = git(
                &dir,
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
            let theirs = git(&dir, &["show", "main:CHANGELOG.md"]).unwrap_or_default();
            let line = format!("- {feature} (by {id})\n");
            std::fs::write(dir.join("CHANGELOG.md"), format!("{theirs}{line}"))?;
            git(&dir, &["add", "CHANGELOG.md"])?;
            commit(
                &dir,
                id,
                &format!("{feature}: merge main, keep both changelog entries"),
            )?;
            resolved += 1;
        } else {
            progress(&mut ids, AgentState::Working)?;
            let n: usize = feature.trim_start_matches("feature-").parse().unwrap_or(0);
            std::fs::write(
                dir.join(format!("{feature}.txt")),
                format!("{feature}: implemented by {id}\n"),
            )?;
            if n <= 2 {
                // The first two features both rewrite the same changelog line: one conflicts.
                std::fs::write(
                    dir.join("CHANGELOG.md"),
                    format!("# Changelog\n\n- {feature} (by {id})\n"),
                )?;
            }
            git(&dir, &["add", "-A"])?;
            commit(&dir, id, &format!("{feature}: implement"))?;
        }
        progress(&mut ids, AgentState::Validating)?;
        send(emit::validation(
            &mut ids,
            emit::now(),
            id,
            Some(&feature),
            true,
            Some(0),
        ))?;
        // Wait for the merge (or a conflict sent back).
        while !stop.load(Ordering::Relaxed) {
            let me = client.api("GET", &format!("/api/agents/{id}"))?;
            let still = me["assignments"].as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["feature_name"] == feature.as_str())
                    .cloned()
            });
            match still {
                Some(x) if x["status"] == "merging" => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break,
            }
        }
    }
    Ok(resolved)
}
