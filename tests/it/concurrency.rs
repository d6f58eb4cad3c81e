//! 200 agents at once over gRPC, each on its own connection, for a bounded time: they register,
//! report while idle, learn their assignment from the API and report work on it, while a
//! planner queues features. Every acknowledged span is in the log exactly once, each feature is
//! assigned once and to one agent, no agent holds more than it may, and agents that behave
//! correctly cause no anomaly.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Sandbox;
use common::otlp::request;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use spanfold::store::Log;

const AGENTS: u16 = 200;
const FEATURES: u16 = 60;
const RUN_FOR: Duration = Duration::from_secs(8);

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

/// A span whose ids say who sent it: trace id = sender (2 bytes) + 0xC0 filler, span id =
/// sender + sequence, so the log can be checked against what each sender had acknowledged.
fn span(sender: u16, n: u32, name: &str, attrs: Vec<KeyValue>) -> Span {
    let mut trace_id = vec![0xC0; 16];
    trace_id[..2].copy_from_slice(&sender.to_be_bytes());
    let mut span_id = vec![0; 8];
    span_id[..2].copy_from_slice(&sender.to_be_bytes());
    span_id[4..].copy_from_slice(&(n + 1).to_be_bytes());
    Span {
        trace_id,
        span_id,
        name: name.into(),
        kind: 1,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: attrs,
        ..Default::default()
    }
}

/// One export, sent again while the server answers UNAVAILABLE (back-pressure), as an OTLP
/// exporter retries.
async fn export_retrying(
    client: &mut TraceServiceClient<tonic::transport::Channel>,
    spans: Vec<Span>,
) -> Result<(), tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.export(request(spans.clone())).await {
            Err(status)
                if status.code() == tonic::Code::Unavailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

/// The agent's current feature, from the API.
fn current_feature(http: &str, agent: &str) -> Option<String> {
    let mut answer = ureq::get(format!("{http}/api/agents/{agent}"))
        .call()
        .ok()?;
    let doc: Value = serde_json::from_str(&answer.body_mut().read_to_string().ok()?).ok()?;
    doc["data"]["current_feature"].as_str().map(str::to_owned)
}

/// One correct agent: registers, then reports every 100 ms — idle until the API shows it a
/// feature, then working on that feature. Returns how many of its spans were acknowledged.
async fn agent(index: u16, grpc: String, http: String, deadline: Instant) -> u32 {
    let id = format!("agent-{index:03}");
    let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("connects");
    let mut n = 0;
    let mut acked = 0;
    let registration = span(index, n, "agent.registration", vec![kv("agent.id", &id)]);
    export_retrying(&mut client, vec![registration])
        .await
        .expect("registered");
    acked += 1;
    while Instant::now() < deadline {
        n += 1;
        let (http, who) = (http.clone(), id.clone());
        let feature = tokio::task::spawn_blocking(move || current_feature(&http, &who))
            .await
            .ok()
            .flatten();
        let report = match &feature {
            None => span(
                index,
                n,
                "agent.work_progress",
                vec![kv("agent.id", &id), kv("agent.state", "idle")],
            ),
            Some(f) => span(
                index,
                n,
                "agent.work_progress",
                vec![
                    kv("agent.id", &id),
                    kv("agent.state", "working"),
                    kv("feature.name", f),
                ],
            ),
        };
        match client.export(request(vec![report])).await {
            Ok(answer) => {
                let rejected = answer
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans);
                assert_eq!(rejected, 0, "{id}: a valid report was refused");
                acked += 1;
            }
            // Back-pressure is allowed; the report is simply not counted.
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acked
}

#[test]
fn two_hundred_agents_at_once_lose_nothing_and_each_feature_goes_to_one_agent() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    // Cycles after relevant spans and every second: worktrees for a burst of placements can
    // keep one cycle busy past the agents' last report.
    let served = sb.serve(&["--interval", "1"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + RUN_FOR;
    let planner_acked = Arc::new(AtomicU64::new(0));
    let acked: Vec<u32> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..AGENTS {
            tasks.push(tokio::spawn(agent(
                i,
                served.grpc.clone(),
                served.http.clone(),
                deadline,
            )));
        }
        // The planner queues features while the agents arrive, one export each.
        let grpc = served.grpc.clone();
        let planned = Arc::clone(&planner_acked);
        let planner = tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(format!("http://{grpc}"))
                .await
                .expect("connects");
            for f in 0..FEATURES {
                let name = format!("feature-{f:02}");
                let s = span(
                    AGENTS,
                    u32::from(f),
                    "feature.request",
                    vec![kv("feature.name", &name)],
                );
                export_retrying(&mut client, vec![s]).await.expect("queued");
                planned.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        planner.await.expect("planner");
        let mut acked = Vec::new();
        for t in tasks {
            acked.push(t.await.expect("agent task"));
        }
        acked
    });
    assert!(
        Instant::now() < deadline + Duration::from_secs(60),
        "bounded in time"
    );

    // Placements still in flight when the agents stopped finish within a few ticks.
    let settle = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = sb.status();
        let queued = status["coordination_status"]["features_in_queue"].as_u64();
        if queued == Some(0) || Instant::now() > settle {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let anomalies = status["anomalies"].as_array().cloned().unwrap_or_default();
    assert!(
        anomalies.is_empty(),
        "correct agents caused anomalies: {anomalies:?}"
    );
    let agents = status["agents"].as_array().cloned().unwrap_or_default();
    assert_eq!(agents.len(), usize::from(AGENTS));
    let waiting: Vec<&Value> = status["features"]
        .as_array()
        .map(|f| f.iter().filter(|f| f["status"] == "queued").collect())
        .unwrap_or_default();
    assert!(waiting.is_empty(), "features left waiting: {waiting:?}");
    let (code, stderr) = served.stop();
    assert!(code.success(), "{stderr}");

    // The log against what each sender had acknowledged; assignments counted per feature.
    let mut log = Log::open(&sb.repo.join(".git").join("spanfold"), false).expect("log");
    let mut stored: BTreeMap<u16, BTreeMap<u32, u32>> = BTreeMap::new();
    let mut assigned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    log.scan(|batch| {
        for ev in batch.events() {
            let span = ev.span;
            if span.trace_id[2..] == [0xC0; 14] {
                let sender = u16::from_be_bytes([span.trace_id[0], span.trace_id[1]]);
                let n = u32::from_be_bytes(span.span_id[4..].try_into().expect("4 bytes"));
                *stored.entry(sender).or_default().entry(n).or_default() += 1;
            }
            if span.name == "agent.feature_assignment" {
                let attr = |k: &str| match ev.attr(k) {
                    Some(spanfold::model::AnyValue::String(s)) => s.to_string(),
                    _ => String::new(),
                };
                assigned
                    .entry(attr("feature.name"))
                    .or_default()
                    .push(attr("agent.id"));
            }
        }
    })
    .expect("the log reads back without gaps");
    for (i, count) in acked.iter().enumerate() {
        let spans = stored.get(&(i as u16)).cloned().unwrap_or_default();
        assert!(
            spans.values().all(|c| *c == 1),
            "agent {i}: a span stored twice"
        );
        assert!(
            spans.len() as u32 >= *count,
            "agent {i}: {count} acknowledged, {} stored",
            spans.len()
        );
    }
    assert_eq!(
        stored.get(&AGENTS).map_or(0, BTreeMap::len) as u64,
        planner_acked.load(Ordering::Relaxed),
        "every queued feature is in the log"
    );
    assert_eq!(
        assigned.len(),
        usize::from(FEATURES),
        "every feature was placed: {assigned:?}"
    );
    for (feature, holders) in &assigned {
        assert_eq!(holders.len(), 1, "{feature} assigned to {holders:?}");
    }
    let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
    for holders in assigned.values() {
        *per_agent.entry(&holders[0]).or_default() += 1;
    }
    assert!(
        per_agent.values().all(|n| *n == 1),
        "one feature per agent (max_concurrent_features 1): {per_agent:?}"
    );
    let worktrees = sb.git_worktrees();
    assert_eq!(
        worktrees.len(),
        usize::from(FEATURES),
        "one worktree per feature"
    );
    let branches: std::collections::BTreeSet<String> =
        worktrees.iter().map(|w| w.1.clone()).collect();
    let expected: std::collections::BTreeSet<String> = (0..FEATURES)
        .map(|f| format!("spanfold/feature-{f:02}"))
        .collect();
    assert_eq!(
        branches, expected,
        "one worktree per feature, on its branch"
    );
}
