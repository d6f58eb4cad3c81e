//! `spanfold serve` started for real on loopback port 0, talked to by real clients: the Python
//! OpenTelemetry SDK, curl, and a tonic gRPC client.

use crate::common;

mod decisions;
mod merges;
mod telemetry;
mod usage;

use std::time::Duration;

use common::otlp::{kv, request, s, span};
use common::{Sandbox, curl};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

fn initialised() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb
}

fn status_via(sb: &Sandbox) -> Value {
    sb.status()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn client(grpc: &str) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("connects")
}

#[test]
fn the_python_sdk_registers_and_reports_over_grpc_and_http() {
    let python = common::python();
    let sb = initialised();
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "add-feature", "api-grpc", "--langs", "python"]);
    sb.ok(&["agents", "add-feature", "api-http", "--langs", "python"]);
    let mut held = Vec::new();
    for (protocol, endpoint, agent) in [
        ("grpc", format!("http://{}", served.grpc), "py-grpc"),
        ("http/protobuf", served.http.clone(), "py-http"),
    ] {
        let out = std::process::Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/agent.py"))
            .arg(&served.http)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
            .env("OTEL_RESOURCE_ATTRIBUTES", format!("agent.id={agent}"))
            .env("OTEL_SERVICE_NAME", agent)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{protocol}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let said: Value = serde_json::from_slice(&out.stdout).expect("agent prints json");
        held.push((
            agent,
            said["feature"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let status = status_via(&sb);
    for (agent, feature) in held {
        let a = status["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["agent_id"] == agent))
            .unwrap_or_else(|| panic!("{agent} not in status: {status}"));
        assert_eq!(a["state"], "working", "{a}");
        assert_eq!(a["progress_percentage"], 50.0);
        assert_eq!(a["current_feature"], feature.as_str());
        let f = status["features"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == feature.as_str()))
            .expect("feature");
        assert_eq!(f["status"], "in_progress");
    }
    assert_eq!(
        status["counters"]["unregistered_spans"], 2,
        "tool.call spans are kept"
    );
    let (code, _) = served.stop();
    assert!(code.success());
}

#[test]
fn otlp_json_through_curl_with_hex_ids_string_int64_and_gzip() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let dir = sb.tmp.path();
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"agent.id","value":{"stringValue":"curl-agent"}}]},
      "scopeSpans":[{"scope":{"name":"curl"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"agent.registration",
         "kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000000001",
         "attributes":[{"key":"agent.languages","value":{"arrayValue":{"values":[{"stringValue":"go"}]}}},
                       {"key":"agent.max_concurrent_features","value":{"intValue":"3"}}]}]}]}]}"#;
    let plain = dir.join("reg.json");
    std::fs::write(&plain, json).expect("write");
    let (code, body) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        None,
        Some(&plain),
        &["Content-Type: application/json"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("rejectedSpans"), "{body}");

    let gz = dir.join("progress.json.gz");
    let progress = json
        .replace("eee19b7ec3c1b174", "eee19b7ec3c1b175")
        .replace("\"agent.registration\"", "\"agent.communication\"");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, progress.as_bytes()).expect("gzip");
    std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
    let (code, body) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        None,
        Some(&gz),
        &["Content-Type: application/json", "Content-Encoding: gzip"],
    );
    assert_eq!(code, 200, "{body}");

    let status = sb.status();
    let agent = &status["agents"][0];
    assert_eq!(agent["agent_id"], "curl-agent");
    assert_eq!(
        status["counters"]["events"].as_u64(),
        Some(3),
        "init, registration, communication"
    );
    let (code, _) = served.get("/api/agents/curl-agent", None);
    assert_eq!(code, 200);
}

#[test]
fn a_partly_invalid_export_keeps_the_valid_spans_and_names_every_problem() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let rt = runtime();
    let response = rt.block_on(async {
        let mut c = client(&served.grpc).await;
        c.export(request(vec![
            span(1, "agent.registration", vec![kv("agent.id", s("good-1"))]),
            span(2, "agent.registration", vec![kv("agent.id", s("Bad Id"))]),
            span(3, "agent.registration", vec![kv("agent.id", s("good-2"))]),
            span(4, "agent.work_progress", vec![kv("agent.id", s("good-1"))]),
            span(5, "feature.request", vec![kv("feature.name", s("f1"))]),
        ]))
        .await
        .expect("export answered")
        .into_inner()
    });
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("invalid agent id \"Bad Id\""),
        "{}",
        partial.error_message
    );
    assert!(
        partial
            .error_message
            .contains("required attribute agent.state"),
        "{}",
        partial.error_message
    );
    let status = sb.status();
    let agents: Vec<&str> = status["agents"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["agent_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(agents, ["good-1", "good-2"]);
    assert_eq!(status["features"][0]["name"], "f1");
}

#[test]
fn bad_requests_get_the_otlp_answers_and_the_server_keeps_serving() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let dir = sb.tmp.path();
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, b"\xff\xfe this is not protobuf \x00\x01").expect("write");
    let http = &served.http;
    assert_eq!(
        curl(
            http,
            "POST",
            "/v1/traces",
            None,
            Some(&garbage),
            &["Content-Type: application/x-protobuf"]
        )
        .0,
        400
    );
    assert_eq!(
        curl(
            http,
            "POST",
            "/v1/traces",
            None,
            Some(&garbage),
            &["Content-Type: application/json"]
        )
        .0,
        400
    );
    assert_eq!(
        curl(
            http,
            "POST",
            "/v1/traces",
            None,
            Some(&garbage),
            &["Content-Type: text/plain"]
        )
        .0,
        415
    );
    assert_eq!(curl(http, "GET", "/v1/traces", None, None, &[]).0, 405);
    assert_eq!(
        curl(
            http,
            "POST",
            "/v1/traces",
            None,
            Some(&garbage),
            &["Content-Type: application/json", "Content-Encoding: gzip"]
        )
        .0,
        400
    );
    // 100,001 empty spans: 200 KB on the wire, tens of MB once decoded: refused unread.
    let mut scope = Vec::new();
    for _ in 0..=100_000 {
        scope.extend([0x12u8, 0x00]);
    }
    let mut rs = vec![0x12u8];
    prost::encoding::encode_varint(scope.len() as u64, &mut rs);
    rs.extend(scope);
    let mut body = vec![0x0au8];
    prost::encoding::encode_varint(rs.len() as u64, &mut body);
    body.extend(rs);
    let many = dir.join("many.bin");
    std::fs::write(&many, body).expect("write");
    let (code, answer) = curl(
        http,
        "POST",
        "/v1/traces",
        None,
        Some(&many),
        &["Content-Type: application/x-protobuf"],
    );
    assert_eq!(code, 413, "{answer}");
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![b'x'; 21 * 1024 * 1024]).expect("write");
    assert_eq!(
        curl(
            http,
            "POST",
            "/v1/traces",
            None,
            Some(&big),
            &["Content-Type: application/x-protobuf"]
        )
        .0,
        413
    );

    let rt = runtime();
    rt.block_on(async {
        // Garbage over gRPC: a raw body that is not an ExportTraceServiceRequest.
        let mut c = client(&served.grpc).await;
        let huge = span(
            9,
            "tool.call",
            vec![kv("blob", s(&"x".repeat(5 * 1024 * 1024)))],
        );
        let err = c.export(request(vec![huge])).await.expect_err("too large");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", served.grpc))
            .expect("endpoint")
            .connect()
            .await
            .expect("connects");
        let mut raw = tonic::client::Grpc::new(channel);
        raw.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        let err = raw
            .unary::<Vec<u8>, _, _>(
                tonic::Request::new(b"\xff\xff\xff\xff\x0f".to_vec()),
                path,
                spanfold::otlp::grpc::RawCodec,
            )
            .await
            .expect_err("garbage refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    });
    // Still serving.
    assert_eq!(served.get("/healthz", None).0, 200);
    sb.ok(&["agents", "register-agent", "still-here"]);
}

#[test]
fn the_same_export_twice_is_applied_once() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let rt = runtime();
    let req = request(vec![
        span(1, "agent.registration", vec![kv("agent.id", s("a1"))]),
        span(2, "feature.request", vec![kv("feature.name", s("f1"))]),
    ]);
    rt.block_on(async {
        let mut c = client(&served.grpc).await;
        c.export(req.clone()).await.expect("first");
    });
    let first = sb.status();
    rt.block_on(async {
        let mut c = client(&served.grpc).await;
        let again = c.export(req).await.expect("second").into_inner();
        assert!(
            again.partial_success.is_none(),
            "a duplicate is not an error"
        );
    });
    let second = sb.status();
    assert_eq!(first["counters"]["events"], second["counters"]["events"]);
    assert_eq!(first["as_of"], second["as_of"]);
    assert_eq!(first["agents"], second["agents"]);
    let (_, metrics) = served.get("/metrics", None);
    assert!(
        metrics.contains("spanfold_spans_duplicate_total 2"),
        "{metrics}"
    );
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_nothing_is_appended() {
    let sb = initialised();
    let served = sb.serve(&["--manual", "--token", "s3cret"]);
    let before = sb
        .run(&["--json", "--token", "s3cret", "agents", "agent-status"])
        .json();
    let seq = before["data"]["as_of"]["seq"].clone();
    for token in [None, Some("wrong")] {
        let mut args = vec!["--json"];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        args.extend(["agents", "register-agent", "intruder"]);
        let run = sb.run(&args);
        assert_ne!(run.code, 0);
        let doc = run.json();
        let error = doc["errors"][0].as_str().unwrap_or("");
        assert!(error.contains("authorization"), "{error}");
        assert_eq!(
            curl(&served.http, "GET", "/api/status", token, None, &[]).0,
            401
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let mut c = client(&served.grpc).await;
        let err = c
            .export(request(vec![span(
                7,
                "agent.registration",
                vec![kv("agent.id", s("intruder"))],
            )]))
            .await
            .expect_err("no token");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    });
    let after = sb
        .run(&["--json", "--token", "s3cret", "agents", "agent-status"])
        .json();
    assert_eq!(after["data"]["as_of"]["seq"], seq, "nothing appended");
    assert_eq!(
        curl(
            &served.http,
            "GET",
            "/api/status",
            Some("s3cret"),
            None,
            &[]
        )
        .0,
        200
    );
    let ok = sb.run(&[
        "--json",
        "--token",
        "s3cret",
        "agents",
        "register-agent",
        "friend",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
}

/// Times, random span ids and temp paths differ between two runs; everything else must not.
fn normalised(mut status: Value, root: &std::path::Path) -> String {
    fn walk(v: &mut Value, root: &str) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    if k == "time"
                        || k == "last_activity"
                        || k == "lease_expires_at"
                        || k == "span_id"
                    {
                        *val = Value::Null;
                    } else {
                        walk(val, root);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, root)),
            Value::String(s) => *s = s.replace(root, "<root>"),
            _ => {}
        }
    }
    walk(&mut status, &root.display().to_string());
    serde_json::to_string_pretty(&status).unwrap_or_default()
}

/// The core issue's scenario, then an agent report and a refused one.
fn scenario(sb: &Sandbox) {
    common::features(sb);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&[
        "agents",
        "progress",
        "backend-1",
        "--state",
        "working",
        "--progress",
        "30",
    ]);
    sb.fails(&["agents", "progress", "frontend-1", "--state", "finished"]);
}

#[test]
fn the_core_scenario_through_a_server_gives_the_same_status_as_embedded() {
    let embedded = Sandbox::new("main");
    embedded.ok(&["agents", "init"]);
    common::team(&embedded);
    scenario(&embedded);
    let status_embedded = normalised(embedded.status(), embedded.tmp.path());

    let served_sb = Sandbox::new("main");
    served_sb.ok(&["agents", "init"]);
    let served = served_sb.serve(&["--manual"]);
    common::team(&served_sb);
    scenario(&served_sb);
    let status_served = normalised(served_sb.status(), served_sb.tmp.path());
    // The same worktrees exist and are locked either way.
    assert_eq!(served_sb.git_worktrees().len(), 4);
    let (code, _) = served.stop();
    assert!(code.success());
    assert_eq!(status_embedded, status_served);
    assert!(
        !served_sb.repo.join(".git/spanfold/server.json").exists(),
        "advert removed on exit"
    );
}

#[test]
fn next_waits_for_an_assignment_and_prints_where_to_work() {
    let sb = initialised();
    let _served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "worker"]);
    let bin = env!("CARGO_BIN_EXE_spanfold");
    let mut cmd = std::process::Command::new(bin);
    cmd.args([
        "--json",
        "agents",
        "next",
        "worker",
        "--wait",
        "--timeout",
        "30",
    ])
    .current_dir(&sb.repo)
    .stdout(std::process::Stdio::piped());
    let waiting = cmd.spawn().expect("next runs");
    std::thread::sleep(Duration::from_millis(300));
    sb.ok(&["agents", "add-feature", "task-1"]);
    let out = waiting.wait_with_output().expect("next finishes");
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["data"]["feature_name"], "task-1");
    assert_eq!(doc["data"]["branch_name"], "spanfold/task-1");
    let path = doc["data"]["worktree_path"].as_str().unwrap_or("");
    assert!(
        std::path::Path::new(path).join("README.md").exists(),
        "{path}"
    );
    let quick = sb.fails(&["agents", "next", "nobody"]);
    assert!(quick.contains("not registered"), "{quick}");
}

#[test]
fn events_and_metrics_are_served() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let (code, body) = served.get("/api/events?from=2", None);
    assert_eq!(code, 200);
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["seq"], 2);
    assert_eq!(lines[0]["name"], "agent.registration");
    assert_eq!(lines[0]["agent_id"], "a1");
    let (code, metrics) = served.get("/metrics", None);
    assert_eq!(code, 200);
    for needle in [
        "spanfold_spans_accepted_total 1",
        "spanfold_agents{state=\"idle\"} 1",
        "spanfold_features_queued 0",
        "spanfold_log_bytes",
        "spanfold_cycle_duration_seconds_bucket{le=\"+Inf\"}",
        "spanfold_coordination_health 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    // The whole log's timeline index catches up with the log (on idle CPU, beside the writer).
    let last = lines[0]["seq"].as_u64().expect("seq");
    let caught_up = format!("spanfold_timeline_index_events {last}\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !served.get("/metrics", None).1.contains(&caught_up) {
        assert!(
            std::time::Instant::now() < deadline,
            "the timeline index never reached seq {last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // gc is work on the coordinator, not a coordination cycle: only the cycle is counted.
    sb.ok(&["gc"]);
    sb.ok(&["agents", "coordination-cycle"]);
    sb.ok(&["gc"]);
    let (_, metrics) = served.get("/metrics", None);
    assert!(
        metrics.contains("spanfold_cycle_duration_seconds_count 1\n"),
        "{metrics}"
    );
}
