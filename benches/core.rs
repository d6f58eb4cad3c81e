//! Criterion benchmarks of the pure core: folding events into the view, and one policy cycle.
//! Run: `cargo bench --bench core`. Results and machine notes: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spanfold::model::{
    AnyValue, Batch, KeyValue, LogRecord, Resource, ResourceLogs, ResourceSpans, Scope, ScopeLogs,
    Span, string_array,
};
use spanfold::policy::{PolicyConfig, decide};
use spanfold::reducer::View;
use spanfold::timeline::Index;

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

fn fold_with_index(batch: &Batch) -> u64 {
    let (mut view, mut index) = (View::default(), Index::default());
    index.apply_batch(&mut view, batch, 0);
    index.as_of().seq
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
    // The same fold keeping the whole log's timeline index, as a server does.
    group.bench_function(
        BenchmarkId::new("events_with_timeline_index", events),
        |b| b.iter(|| black_box(fold_with_index(&batch))),
    );
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

/// Agents' own telemetry as Claude Code and Codex send it: 100 registered agents each holding
/// a feature, a price table, then `records` log records — Claude's `api_request` (reported
/// cost), `tool_result`, and Codex's completed `sse_event` (tokens priced) in turn — one
/// resource (and so one agent) per 100 records.
fn telemetry_workload(records: usize) -> Batch {
    let mut spans: Vec<Span> = (0..100).map(|a| registration(a as u64, a)).collect();
    let table = serde_json::to_string(&spanfold::usage::PriceTable::builtin()).expect("json");
    spans.push(
        span(100, "coordination.prices")
            .with("prices.date", s("2026-12-05"))
            .with("prices.table", s(&table)),
    );
    for a in 0..100usize {
        spans.push(feature(101 + 2 * a as u64, a));
        spans.push(
            span(102 + 2 * a as u64, "agent.feature_assignment")
                .with("agent.id", s(&format!("agent-{a:04}")))
                .with("feature.name", s(&format!("feature-{a:06}")))
                .with("worktree.path", s(&format!("/wt/feature-{a:06}")))
                .with("worktree.branch", s(&format!("spanfold/feature-{a:06}"))),
        );
    }
    let kv = |k: &str, v: AnyValue| KeyValue::new(k, v);
    let int = |n: i64| AnyValue::Int(n);
    let record = |n: usize| {
        let attributes = match n % 3 {
            0 => vec![
                kv("event.name", s("api_request")),
                kv("session.id", s("s-1")),
                kv("model", s("claude-sonnet-4-5-20250929")),
                kv("input_tokens", int(1200)),
                kv("output_tokens", int(340)),
                kv("cache_read_tokens", int(800)),
                kv("cost_usd", AnyValue::Double(0.0123)),
            ],
            1 => vec![
                kv("event.name", s("tool_result")),
                kv("session.id", s("s-1")),
                kv("tool_name", s("Edit")),
                kv("success", s("true")),
                kv("duration_ms", int(40)),
            ],
            _ => vec![
                kv("event.name", s("codex.sse_event")),
                kv("conversation.id", s("c-1")),
                kv("event.kind", s("response.completed")),
                kv("model", s("gpt-5-codex")),
                kv("input_token_count", int(2100)),
                kv("output_token_count", int(380)),
                kv("cached_token_count", int(1200)),
            ],
        };
        LogRecord {
            attributes,
            body: s(["claude_code.api_request", "claude_code.tool_result", ""][n % 3]),
            ..LogRecord::empty()
        }
    };
    let resource_logs = (0..records.div_ceil(100))
        .map(|r| ResourceLogs {
            resource: Resource {
                attributes: vec![kv("agent.id", s(&format!("agent-{:04}", r % 100)))],
                ..Resource::default()
            },
            schema_url: String::new(),
            scope_logs: vec![ScopeLogs {
                scope: Scope::default(),
                schema_url: String::new(),
                log_records: (r * 100..(r * 100 + 100).min(records))
                    .map(record)
                    .collect(),
            }],
        })
        .collect();
    Batch {
        resource_logs,
        ..Batch::of_spans(
            1,
            1,
            vec![ResourceSpans::single(
                Resource::default(),
                Scope::default(),
                spans,
            )],
        )
    }
}

fn fold_telemetry(c: &mut Criterion) {
    let batch = telemetry_workload(200_000);
    let events = batch.event_count() as u64;
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("agent_records", events), |b| {
        b.iter(|| {
            let mut view = View::default();
            view.apply_batch(&batch, 0);
            black_box(view.usage.ledger.total.cost_nanos)
        })
    });
    group.bench_function(
        BenchmarkId::new("agent_records_with_timeline_index", events),
        |b| b.iter(|| black_box(fold_with_index(&batch))),
    );
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

criterion_group!(benches, fold, fold_telemetry, policy_cycle, log_scan_fold);
criterion_main!(benches);
