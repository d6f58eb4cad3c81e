//! `agent-status --at` on a large log: the status as of random points of a log of
//! SPANFOLD_BENCH_EVENTS events (default 10,000,000), answered as the CLI and the API answer it
//! (resolve the point, latest checkpoint, fold the rest, build and serialise the status).
//! Prints p50/p99/max over 1,000 random seqs and 200 random times, the time to open the log
//! (restart to ready), and the log's size.
//!
//! The log is built once in target/bench-timetravel-N (delete it to rebuild): 100 agents, 1,000
//! features (100 of them assigned), then progress reports from the agents, in batches of 512 —
//! the shape of a busy day.
//!
//! Run: cargo bench --bench timetravel

use std::time::{Duration, Instant};

mod support;

use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::reducer::Priority;
use spanfold::status::{self, StatusOptions};
use spanfold::store::Log;
use spanfold::timetravel::{self, Point};

const AGENTS: usize = 100;
const FEATURES: usize = 1000;

fn build(dir: &std::path::Path, events: u64) {
    let started = Instant::now();
    let mut log = Log::open(dir, true).expect("open");
    let mut ids = IdGen::default();
    let wrap = |spans| vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)];
    let mut time = 1_790_000_000_000_000_000u64;
    let mut tick = || {
        time += 1_000_000;
        time
    };
    let mut setup: Vec<_> = (0..AGENTS)
        .map(|a| {
            emit::registration(
                &mut ids,
                0,
                &emit::Registration {
                    agent_id: format!("agent-{a:03}"),
                    languages: vec!["rust".into()],
                    max_concurrent_features: 2,
                    ..Default::default()
                },
            )
        })
        .collect();
    setup.extend((0..FEATURES).map(|f| {
        emit::feature_request(
            &mut ids,
            0,
            &emit::FeatureRequest {
                name: format!("feature-{f:04}"),
                priority: Some(Priority::ALL[f % 4]),
                estimated_effort: (f % 10) as u32 + 1,
                ..Default::default()
            },
        )
    }));
    setup.extend((0..AGENTS).map(|a| {
        emit::assignment(
            &mut ids,
            0,
            &emit::AssignmentSpan {
                agent_id: &format!("agent-{a:03}"),
                feature: &format!("feature-{a:04}"),
                priority: Priority::Medium,
                score: 0.5,
                reasons: &["bench".to_owned()],
                worktree_path: &format!("/wt/feature-{a:04}"),
                branch: &format!("spanfold/feature-{a:04}"),
            },
        )
    }));
    log.append(wrap(setup), tick()).expect("append");
    support::fill_with_progress(
        log,
        &mut ids,
        &mut tick,
        AGENTS as u64,
        |a| format!("agent-{a:03}"),
        events,
        started,
    );
    support::first_open(dir);
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: n={} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
}

fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) runs a small log.
    let benching = std::env::args().any(|a| a == "--bench");
    let events: u64 = std::env::var("SPANFOLD_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 10_000_000 } else { 50_000 });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("bench-timetravel-{events}"));
    if !Log::exists(&dir) {
        build(&dir, events);
    }
    let started = Instant::now();
    let coord = Coordinator::open(&dir).expect("open");
    println!(
        "open (restart to ready: latest checkpoint plus the rest): {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let reader = coord.log().reader();
    let last = reader.last_seq().expect("last");
    let first_time = timetravel::view_at(&reader, 1).expect("view").as_of.time;
    let last_time = coord.view().as_of.time;
    println!(
        "log: {last} events, {} checkpoints, {:.0} MB on disk",
        reader.checkpoint_entries().expect("index").len(),
        reader.size_on_disk() as f64 / 1e6
    );
    // A fixed-seed generator: the same points every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let query = |point: Point| {
        let t = Instant::now();
        let seq = point.resolve(&reader, last_time).expect("resolve");
        let view = timetravel::view_at(&reader, seq).expect("view_at");
        let st = status::build(&view, &StatusOptions::default());
        let json = serde_json::to_vec(&st).expect("json");
        std::hint::black_box(json);
        t.elapsed()
    };
    // Under `cargo test` (a debug build) a few queries show that it works; the figures come from
    // `cargo bench`.
    let (n_seqs, n_times) = if benching { (1000, 200) } else { (20, 10) };
    let seqs = (0..n_seqs)
        .map(|_| query(Point::Seq(next() % last + 1)))
        .collect();
    report("status --at SEQ", seqs);
    let span = last_time.saturating_sub(first_time).max(1);
    let times = (0..n_times)
        .map(|_| query(Point::Time(first_time + next() % span)))
        .collect();
    report("status --at TIME", times);
}
