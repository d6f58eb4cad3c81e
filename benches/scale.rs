//! The view at scale: 1,000 agents, 100,000 features and a log of SPANFOLD_BENCH_EVENTS events
//! (default 10,000,000). Measures, over several repetitions each:
//! - restart to ready: `Coordinator::open` (the latest checkpoint plus the rest of the log);
//! - a coordination cycle's decision: `policy::decide` over the whole view, with 1,000 free
//!   slots to fill from 99,000 queued features (the worst case: every slot has a candidate
//!   search), and the peer in the same run, ordering the queue alone;
//! - status queries: the summary and one agent (`agent-status --agent ID`), and the whole
//!   document (`agent-status`, every feature listed), built and serialised to JSON.
//!
//! The log is built once in target/bench-scale-N (delete it to rebuild). Agents know one or
//! two of six languages and one of four frameworks; features ask for one language and, one in
//! three, a framework. 1,000 features are already assigned (one per agent; each agent takes
//! two), the rest are queued; then progress reports from the agents in batches of 512.
//!
//! Run: cargo bench --bench scale

use std::time::{Duration, Instant};

mod support;
use support::BATCH;

use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::policy::{self, PolicyConfig};
use spanfold::reducer::Priority;
use spanfold::status::{self, StatusOptions};
use spanfold::store::Log;

const LANGUAGES: [&str; 6] = ["rust", "python", "go", "typescript", "java", "c"];
const FRAMEWORKS: [&str; 4] = ["tokio", "django", "react", "spring"];

struct Shape {
    agents: usize,
    features: usize,
    events: u64,
}

fn agent(a: usize) -> String {
    format!("agent-{a:04}")
}

fn feature(f: usize) -> String {
    format!("feature-{f:06}")
}

fn build(dir: &std::path::Path, shape: &Shape) {
    let started = Instant::now();
    let mut log = Log::open(dir, true).expect("open");
    let mut ids = IdGen::default();
    let wrap = |spans| vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)];
    let mut time = 1_790_000_000_000_000_000u64;
    let mut tick = || {
        time += 1_000_000;
        time
    };
    let mut setup = vec![emit::init(&mut ids, 0, "/repo", "main", "/wt", 3600)];
    setup.extend((0..shape.agents).map(|a| {
        let mut languages = vec![LANGUAGES[a % 6].to_owned()];
        if a % 2 == 0 {
            languages.push(LANGUAGES[(a / 2 + 1) % 6].to_owned());
        }
        emit::registration(
            &mut ids,
            0,
            &emit::Registration {
                agent_id: agent(a),
                languages,
                frameworks: vec![FRAMEWORKS[a % 4].to_owned()],
                max_concurrent_features: 2,
                ..Default::default()
            },
        )
    }));
    for chunk in setup.chunks(BATCH) {
        log.append(wrap(chunk.to_vec()), tick()).expect("append");
    }
    let requests: Vec<_> = (0..shape.features)
        .map(|f| {
            emit::feature_request(
                &mut ids,
                0,
                &emit::FeatureRequest {
                    name: feature(f),
                    priority: Some(Priority::ALL[f % 4]),
                    estimated_effort: (f % 10) as u32 + 1,
                    languages: vec![LANGUAGES[f % 6].to_owned()],
                    frameworks: if f % 3 == 0 {
                        vec![FRAMEWORKS[f % 4].to_owned()]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                },
            )
        })
        .collect();
    for chunk in requests.chunks(BATCH) {
        log.append(wrap(chunk.to_vec()), tick()).expect("append");
    }
    let assignments: Vec<_> = (0..shape.agents)
        .map(|a| {
            emit::assignment(
                &mut ids,
                0,
                &emit::AssignmentSpan {
                    agent_id: &agent(a),
                    feature: &feature(a),
                    priority: Priority::Medium,
                    score: 0.5,
                    reasons: &["bench".to_owned()],
                    worktree_path: &format!("/wt/{}", feature(a)),
                    branch: &format!("spanfold/{}", feature(a)),
                },
            )
        })
        .collect();
    for chunk in assignments.chunks(BATCH) {
        log.append(wrap(chunk.to_vec()), tick()).expect("append");
    }
    support::fill_with_progress(
        log,
        &mut ids,
        tick,
        shape.agents as u64,
        |a| agent(a as usize),
        shape.events,
        started,
    );
    support::first_open(dir);
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: n={} min {:.2} ms  median {:.2} ms  max {:.2} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

fn main() {
    // `cargo bench` passes --bench; anything else (cargo test --benches) runs a small shape.
    let benching = std::env::args().any(|a| a == "--bench");
    let shape = if benching {
        Shape {
            agents: 1000,
            features: 100_000,
            events: std::env::var("SPANFOLD_BENCH_EVENTS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(10_000_000),
        }
    } else {
        Shape {
            agents: 50,
            features: 2_000,
            events: 20_000,
        }
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!(
            "bench-scale-{}-{}-{}",
            shape.agents, shape.features, shape.events
        ));
    if !Log::exists(&dir) {
        build(&dir, &shape);
    }
    let reps = if benching { 7 } else { 2 };
    // Not timed: the first open after a change of reducer version folds the whole log again
    // and writes new checkpoints; every later start opens from them.
    drop(Coordinator::open(&dir).expect("open"));

    let opens = time(reps, || Coordinator::open(&dir).expect("open"));
    report(
        "restart to ready (open: latest checkpoint plus the rest)",
        opens,
    );
    let coord = Coordinator::open(&dir).expect("open");
    let view = coord.view();
    let reader = coord.log().reader();
    println!(
        "log: {} events, {} agents, {} features, {} checkpoints, {:.0} MB on disk",
        view.as_of.seq,
        view.agents.len(),
        view.features.len(),
        reader.checkpoint_entries().expect("index").len(),
        reader.size_on_disk() as f64 / 1e6
    );

    let config = PolicyConfig::default();
    let decision = policy::decide(&view, &config);
    println!(
        "a cycle places {} features on the {} free slots",
        decision.assignments.len(),
        shape.agents
    );
    assert_eq!(
        decision.assignments.len(),
        shape.agents,
        "every free slot has a capable queued feature"
    );
    report(
        "cycle decision (policy::decide)",
        time(reps, || policy::decide(&view, &config)),
    );
    report(
        "peer: ordering the queue alone",
        time(reps, || policy::queue(&view).len()),
    );

    let one = StatusOptions {
        agent: Some(agent(shape.agents / 2)),
        ..Default::default()
    };
    report(
        "status query: summary and one agent, JSON",
        time(reps * 3, || {
            serde_json::to_vec(&status::build(&view, &one)).expect("json")
        }),
    );
    let full = serde_json::to_vec(&status::build(&view, &StatusOptions::default())).expect("json");
    println!(
        "the whole status document is {:.1} MB",
        full.len() as f64 / 1e6
    );
    report(
        "status query: the whole document, JSON",
        time(reps, || {
            serde_json::to_vec(&status::build(&view, &StatusOptions::default())).expect("json")
        }),
    );
}
