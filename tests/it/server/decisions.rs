//! The server's own spans: forwarded to an upstream collector, never accepted from outside;
//! and what SIGTERM does to exports in flight.

use super::*;

#[derive(Clone, Default)]
struct Collector {
    names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let mut names = self.names.lock().expect("lock");
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                names.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

#[test]
fn decision_spans_are_forwarded_to_an_upstream_collector() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let collector = Collector::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(collector.clone());
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let sb = initialised();
    let _served = sb.serve(&[
        "--interval",
        "0",
        "--export-endpoint",
        &format!("http://{addr}"),
    ]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let names = collector.names.lock().expect("lock").clone();
        if names.iter().any(|n| n == "agent.feature_assignment") {
            assert!(names.iter().any(|n| n == "coordination.cycle"), "{names:?}");
            assert!(names.iter().any(|n| n == "worktree.lifecycle"), "{names:?}");
            // Agents' own spans stay with spanfold; only decisions go upstream.
            assert!(
                !names.iter().any(|n| n == "agent.registration"),
                "{names:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing forwarded: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_answers_in_flight_exports_and_loses_no_acknowledged_span() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let grpc = served.grpc.clone();
    let senders: Vec<_> = (0..4u8)
        .map(|task| {
            let grpc = grpc.clone();
            rt.spawn(async move {
                let mut acked = Vec::new();
                let Ok(mut c) = TraceServiceClient::connect(format!("http://{grpc}")).await else {
                    return acked;
                };
                for n in 0..10_000u32 {
                    let spans: Vec<Span> = (0..50u32)
                        .map(|i| {
                            let mut sp = span(1, "tool.call", vec![]);
                            sp.trace_id[0] = task;
                            sp.trace_id[1..5].copy_from_slice(&n.to_be_bytes());
                            sp.span_id = [i.to_be_bytes(), [7; 4]].concat();
                            sp
                        })
                        .collect();
                    let ids: Vec<String> =
                        spans.iter().map(|s| hex(&s.span_id, &s.trace_id)).collect();
                    match c.export(request(spans)).await {
                        Ok(_) => acked.extend(ids),
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let (code, stderr) = served.stop();
    assert!(code.success(), "exit {code}: {stderr}");
    let acked: Vec<String> = rt.block_on(async {
        let mut all = Vec::new();
        for s in senders {
            all.extend(s.await.expect("task"));
        }
        all
    });
    assert!(acked.len() > 100, "the load ran ({} acked)", acked.len());
    // Every acknowledged span is in the log, once.
    let again = sb.serve(&["--manual"]);
    let (_, body) = again.get("/api/events?from=1&limit=100000", None);
    let mut stored = std::collections::HashMap::new();
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).expect("json line");
        let key = format!(
            "{}/{}",
            v["span_id"].as_str().unwrap_or(""),
            v["trace_id"].as_str().unwrap_or("")
        );
        *stored.entry(key).or_insert(0) += 1;
    }
    for id in &acked {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "acknowledged span {id} not in the log exactly once"
        );
    }
}

fn hex(span_id: &[u8], trace_id: &[u8]) -> String {
    let h = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}/{}", h(span_id), h(trace_id))
}

#[test]
fn decision_spans_from_outside_are_refused() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let rt = runtime();
    let partial = rt.block_on(async {
        let mut c = client(&served.grpc).await;
        c.export(request(vec![span(
            9,
            "agent.feature_assignment",
            vec![
                kv("agent.id", s("a1")),
                kv("feature.name", s("f1")),
                kv("assignment.match_score", any_value::Value::DoubleValue(1.0)),
                kv("assignment.reasons", s("because")),
                kv("assignment.timestamp", s("2026-01-01T00:00:00Z")),
                kv("worktree.path", s("/etc")),
                kv("worktree.branch", s("main")),
            ],
        )]))
        .await
        .expect("answered")
        .into_inner()
        .partial_success
        .expect("refused")
    });
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("coordinator decision"),
        "{}",
        partial.error_message
    );
    let status = sb.status();
    assert_eq!(
        status["features"][0]["status"], "queued",
        "the forged assignment changed nothing"
    );
    assert_eq!(status["counters"]["assignments"], 0);
}
