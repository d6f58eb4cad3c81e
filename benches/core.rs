//! Criterion benchmarks of the pure core: folding events into the view, and one policy cycle.
//! Run: `cargo bench --bench core`. Results and machine notes: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spanfold::model::{AnyValue, Batch, Resource, ResourceSpans, Scope, Span, string_array};
use spanfold::policy::{PolicyConfig, decide};
use spanfold::reducer::View;

const LANGS: [&str; 6] = ["python", "rust", "typescript", "go", "java", "kotlin"];
const FRAMEWORKS: [&str; 6] = ["fastapi", "axum", "react", "gin", "spring", "ktor"];

fn s(v: &str) -> AnyValue {
    AnyValue::String(v.into())
}

fn span(i: u64, name: &str) -> Span {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&i.to_be_bytes());
    Span::new(trace, (i + 1).to_be_bytes(), name, i)
}

fn registration(i: u64, agent: usize) -> Span {
    span(i, "agent.registration")
        .with("agent.id", s(&format!("agent-{agent:04}")))
        .with(
            "agent.languages",
            string_array([LANGS[agent % 6], LANGS[(agent + 1) % 6]]),
        )
        .with("agent.frameworks", string_array([FRAMEWORKS[agent % 6]]))
        .with("agent.max_concurrent_features", AnyValue::Int(2))
}

fn feature(i: u64, n: usize) -> Span {
    span(i, "feature.request")
        .with("feature.name", s(&format!("feature-{n:06}")))
        .with(
            "feature.priority",
            s(["low", "medium", "high", "critical"][n % 4]),
        )
        .with(
            "feature.estimated_effort",
            AnyValue::Int((n % 13 + 1) as i64),
        )
        .with("feature.languages", string_array([LANGS[n % 6]]))
        .with(
            "feature.frameworks",
            string_array([FRAMEWORKS[(n / 6) % 6]]),
        )
}

/// A log shaped like a busy day: registrations and features first, then mostly progress
/// reports from working agents (the bulk of real traffic).
fn workload(agents: usize, features: usize, progress: usize) -> Batch {
    let mut spans = Vec::with_capacity(agents + features + progress);
    let mut i = 0;
    for a in 0..agents {
        spans.push(registration(i, a));
        i += 1;
    }
    for f in 0..features {
        spans.push(feature(i, f));
        i += 1;
    }
    for p in 0..progress {
        spans.push(
            span(i, "agent.work_progress")
                .with("agent.id", s(&format!("agent-{:04}", p % agents)))
                .with("agent.state", s("idle"))
                .with(
                    "work.progress_percentage",
                    AnyValue::Double((p % 100) as f64),
                )
                .with("work.files_modified", AnyValue::Int(3))
                .with("work.duration_ms", AnyValue::Int(1200)),
        );
        i += 1;
    }
    let spans = ResourceSpans::single(Resource::default(), Scope::default(), spans);
    Batch::of_spans(1, 1, vec![spans])
}

fn fold(c: &mut Criterion) {
    let batch = workload(100, 10_000, 200_000);
    let events = batch.span_count() as u64;
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("events", events), |b| {
        b.iter(|| black_box(View::fold(batch.events())))
    });
    // Peer in the same run: only walking the events and their attributes, the floor any fold
    // pays. The ratio to it is steadier than absolute times on a shared machine.
    group.bench_function(BenchmarkId::new("walk_only", events), |b| {
        b.iter(|| {
            black_box(
                batch
                    .events()
                    .map(|e| e.span.name.len() + e.span.attributes.len())
                    .sum::<usize>(),
            )
        })
    });
    group.finish();
}

fn policy_cycle(c: &mut Criterion) {
    let batch = workload(100, 10_000, 0);
    let view = View::fold(batch.events());
    let config = PolicyConfig::default();
    let decision = decide(&view, &config);
    // All 100 agents × 2 slots are filled by capable features; the rest wait.
    assert_eq!(decision.assignments.len(), 200);
    let mut group = c.benchmark_group("policy");
    group.sample_size(30);
    group.bench_function("cycle_100_agents_10000_features", |b| {
        b.iter(|| black_box(decide(black_box(&view), &config)))
    });
    // Peer in the same run: ordering the queue alone, which any priority policy must do.
    group.bench_function("queue_order_only_10000_features", |b| {
        b.iter(|| black_box(spanfold::policy::queue(black_box(&view)).len()))
    });
    group.finish();
}

/// What every CLI command pays: read the sled log, decode the batches, fold them.
fn log_scan_fold(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = spanfold::store::Log::open(dir.path(), true).expect("open log");
    let all = workload(100, 10_000, 200_000);
    let spans = all.resource_spans[0].scope_spans[0].spans.clone();
    // Batches of 512, as an OTLP exporter sends them.
    for chunk in spans.chunks(512) {
        let rs = ResourceSpans::single(Resource::default(), Scope::default(), chunk.to_vec());
        log.append(vec![rs], 1).expect("append");
    }
    let events = spans.len() as u64;
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("scan_decode_fold", events), |b| {
        b.iter(|| {
            let mut view = View::default();
            log.scan(|batch| {
                for ev in batch.events() {
                    view.apply(&ev);
                }
            })
            .expect("scan");
            black_box(view)
        })
    });
    group.finish();
}

criterion_group!(benches, fold, policy_cycle, log_scan_fold);
criterion_main!(benches);
