//! The dashboard with 100 agents and 100,000 events: a log where every agent goes through
//! features one after another (assigned, working, validating, submitting, merged), served by
//! `spanfold serve`, opened in headless Chromium (tests/browser/ensure.sh installs it). Prints
//! the time to first render and the time per scrubber step (one arrow key until the board shows
//! that event, timed in the page and by the driver; see dashboard.cjs), medians of the runs.
//! Usage: `cargo bench --bench dashboard [-- RUNS]`; `SPANFOLD_BENCH_BIN=PATH` serves with
//! another build of spanfold (an earlier revision, for a comparison on the same log).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::fact::{MergeKind, MergeResult};
use spanfold::reducer::{AgentState, Priority};
use spanfold::registry::Origin;

const AGENTS: usize = 100;
const EVENTS: u64 = 100_000;

/// The log, made once: agents register, then each feature is requested, assigned, worked on,
/// validated, submitted and merged, round-robin over the agents.
fn build(dir: &Path) {
    // A real repository for the server's start-up checks; no worktree is ever made.
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "initial",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .status()
            .expect("git runs");
        assert!(ok.success());
    }
    let wt = dir.join("worktrees");
    let mut coord = Coordinator::create(dir).expect("a new log");
    let mut ids = IdGen::default();
    let now = emit::now();
    let agent = |a: usize| format!("agent-{a:03}");
    let mut spans = vec![emit::init(
        &mut ids,
        now,
        &repo.to_string_lossy(),
        "main",
        &wt.to_string_lossy(),
        3600,
    )];
    for a in 0..AGENTS {
        spans.push(emit::registration(
            &mut ids,
            now,
            &emit::Registration {
                agent_id: agent(a),
                languages: vec!["rust".into()],
                max_concurrent_features: 1,
                ..Default::default()
            },
        ));
    }
    coord
        .submit(
            vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)],
            Origin::Coordinator,
        )
        .expect("append");
    let mut f = 0usize;
    while coord.log().next_seq() <= EVENTS {
        // One round: every agent takes a feature and carries it to the merge, one append per
        // step so that the steps are apart in time as they would be in a day's work.
        let mut spans = Vec::new();
        let names: Vec<String> = (0..AGENTS)
            .map(|i| format!("feature-{:06}", f + i))
            .collect();
        for name in &names {
            spans.push(emit::feature_request(
                &mut ids,
                now,
                &emit::FeatureRequest {
                    name: name.clone(),
                    priority: Some(Priority::Medium),
                    estimated_effort: 3,
                    ..Default::default()
                },
            ));
        }
        append(&mut coord, &mut spans);
        for (a, name) in names.iter().enumerate() {
            spans.push(emit::assignment(
                &mut ids,
                now,
                &emit::AssignmentSpan {
                    agent_id: &agent(a),
                    feature: name,
                    priority: Priority::Medium,
                    score: 0.6,
                    reasons: &["bench".to_owned()],
                    worktree_path: &wt.join(name).to_string_lossy(),
                    branch: &format!("spanfold/{name}"),
                },
            ));
        }
        append(&mut coord, &mut spans);
        for state in [AgentState::Working, AgentState::Validating] {
            for (a, name) in names.iter().enumerate() {
                spans.push(emit::progress(
                    &mut ids,
                    now,
                    &emit::ProgressReport {
                        agent_id: agent(a),
                        state: Some(state),
                        feature: Some(name.clone()),
                        ..Default::default()
                    },
                ));
            }
            append(&mut coord, &mut spans);
        }
        for (a, name) in names.iter().enumerate() {
            spans.push(emit::validation(
                &mut ids,
                now,
                &agent(a),
                Some(name),
                true,
                None,
            ));
        }
        append(&mut coord, &mut spans);
        for (a, name) in names.iter().enumerate() {
            spans.push(emit::merge(
                &mut ids,
                now,
                &emit::MergeSpan {
                    result: MergeResult::Merged,
                    agent_id: &agent(a),
                    feature: name,
                    branch: &format!("spanfold/{name}"),
                    base: "main",
                    kind: Some(MergeKind::FastForward),
                    commit: Some("0123456789abcdef0123456789abcdef01234567"),
                    conflicts: &[],
                    reason: None,
                    from: None,
                },
            ));
        }
        append(&mut coord, &mut spans);
        f += AGENTS;
    }
}

/// Appends `spans` as one export, then waits a little: receive times are the wall clock's.
fn append(coord: &mut Coordinator, spans: &mut Vec<spanfold::model::Span>) {
    coord
        .submit(
            vec![emit::wrap(emit::COORDINATOR_SERVICE, std::mem::take(spans))],
            Origin::Coordinator,
        )
        .expect("append");
    std::thread::sleep(Duration::from_millis(2));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, and the browser
    // test in tests/it/dashboard.rs already covers the page there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("the dashboard bench runs under `cargo bench --bench dashboard` only");
        return;
    }
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("bench-dashboard");
    if !dir.join("log").exists() {
        let started = Instant::now();
        build(&dir);
        eprintln!("built the log in {:.1?}", started.elapsed());
    }
    let built = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--bin",
            "spanfold",
        ])
        .status()
        .expect("cargo runs");
    assert!(built.success());
    let ensure = Command::new("bash")
        .arg(root.join("tests/browser/ensure.sh"))
        .output()
        .expect("ensure runs");
    assert!(
        ensure.status.success(),
        "{}",
        String::from_utf8_lossy(&ensure.stderr)
    );
    let node_dir = String::from_utf8_lossy(&ensure.stdout).trim().to_owned();

    let _ = std::fs::remove_file(dir.join("server.json"));
    // Another build's binary (its page is embedded in it) for an A/B in the same session.
    let bin = std::env::var_os("SPANFOLD_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/spanfold"));
    let mut server = Command::new(bin)
        .arg("--coord-dir")
        .arg(&dir)
        .args([
            "serve",
            "--manual",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("server.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            break v["http"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut first, mut step, mut driven) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let out = Command::new("node")
            .arg(root.join("benches/dashboard.cjs"))
            .arg(&node_dir)
            .arg(format!("{http}/"))
            .arg(AGENTS.to_string())
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        println!("run {}: {r}", run + 1);
        first.push(r["first_render_ms"].as_f64().unwrap_or(f64::NAN));
        step.push(r["step_ms_median"].as_f64().unwrap_or(f64::NAN));
        driven.push(r["driven_ms_median"].as_f64().unwrap_or(f64::NAN));
    }
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{AGENTS} agents, {EVENTS} events: first render {:.0} ms, scrubber step {:.1} ms in the page, {:.1} ms driven (medians of {runs} runs)",
        median(first),
        median(step),
        median(driven)
    );
}
