//! The bad-input catalogue of TESTING.md, row by row, against a real `spanfold serve` on
//! loopback: each bad input gets a clear answer that says what was wrong, nothing else that was
//! sent is lost, nothing is appended that should not be, and the server keeps serving.

use crate::common;

mod later;
mod storage;
mod telemetry;

use std::process::Command;

use common::otlp::{kv, s, span};
use common::wire::{JSON, PROTOBUF, frame, grpc_raw, gzip, post, post_proto};
use common::{Sandbox, Served, curl};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

fn initialised() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb
}

/// An export request with these spans, encoded.
fn request(spans: Vec<Span>) -> Vec<u8> {
    common::otlp::request(spans).encode_to_vec()
}

/// One Export through tonic with an optional bearer token.
fn grpc_export(served: &Served, body: &[u8], token: Option<&str>) -> Result<(), tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = ExportTraceServiceRequest::decode(body).expect("a valid request");
    runtime.block_on(async {
        let mut client =
            opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
                format!("http://{}", served.grpc),
            )
            .await
            .expect("connects");
        let mut request = tonic::Request::new(request);
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().expect("header value");
            request.metadata_mut().insert("authorization", value);
        }
        client.export(request).await.map(|_| ())
    })
}

/// Events in the log beyond `agents init`'s own.
fn events(sb: &Sandbox) -> u64 {
    let all = sb.status()["counters"]["events"].as_u64();
    all.and_then(|n| n.checked_sub(1))
        .expect("the status counts init's event")
}

/// The server still takes good spans after the bad ones.
fn still_serving(sb: &Sandbox, served: &Served) {
    assert_eq!(served.get("/healthz", None).0, 200);
    let before = events(sb);
    let (code, body) = post(
        sb,
        served,
        &request(vec![span(
            0x77,
            "agent.registration",
            vec![kv("agent.id", s("still-here"))],
        )]),
        &[PROTOBUF],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(events(sb), before + 1);
}

#[test]
fn truncated_gzip_is_refused_whole_over_http_and_grpc() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = request(vec![span(
        1,
        "agent.registration",
        vec![kv("agent.id", s("a1"))],
    )]);
    let zipped = gzip(&good);
    let cut = &zipped[..zipped.len() / 2];
    let (code, body) = post(&sb, &served, cut, &[JSON, "Content-Encoding: gzip"]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("could not be decompressed"), "{body}");
    let (code, _) = post(&sb, &served, cut, &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(code, 400);
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(true, cut.len(), cut),
        &["grpc-encoding: gzip"],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    assert_eq!(events(&sb), 0, "nothing appended");
    still_serving(&sb, &served);
}

#[test]
fn a_truncated_grpc_frame_is_invalid_argument_not_a_server_fault() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = request(vec![span(1, "tool.call", vec![])]);
    // The frame says more bytes follow than do.
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(false, good.len() + 100, &good),
        &[],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn a_gzip_bomb_is_refused_unread_over_http_and_grpc() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // 64 MiB of zeros in about 64 KB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000);
    let (code, body) = post(&sb, &served, &bomb, &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(code, 413, "{body}");
    let (code, body) = post(&sb, &served, &bomb, &[JSON, "Content-Encoding: gzip"]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("\"code\":8"), "{body}");
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(true, bomb.len(), &bomb),
        &["grpc-encoding: gzip"],
    );
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn json_with_wrong_types_names_the_field() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // Structure: a trace id that is not hex refuses the export and names where.
    let (code, body) = post(
        &sb,
        &served,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","spanId":"0102030405060708","name":"x"}]}]}]}"#,
        &[JSON],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("traceId"), "{body}");
    let (code, body) = post(&sb, &served, br#"{"resourceSpans":7}"#, &[JSON]);
    assert_eq!(code, 400, "{body}");
    // An attribute of the wrong type refuses that span only.
    let (code, body) = post(
        &sb,
        &served,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"agent.registration",
             "attributes":[{"key":"agent.id","value":{"stringValue":"a1"}},
                           {"key":"agent.max_concurrent_features","value":{"stringValue":"two"}}]},
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"agent.registration",
             "attributes":[{"key":"agent.id","value":{"stringValue":"a2"}}]}]}]}]}"#,
        &[JSON],
    );
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json answer");
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{body}");
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.contains("agent.max_concurrent_features must be int"),
        "{message}"
    );
    assert_eq!(events(&sb), 1, "the good span is kept");
    still_serving(&sb, &served);
}

#[test]
fn a_ten_megabyte_attribute_is_refused_with_the_limit() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let huge = "x".repeat(10 << 20);
    let body = request(vec![
        span(1, "tool.call", vec![kv("tool.output", s(&huge))]),
        span(2, "agent.registration", vec![kv("agent.id", s("a1"))]),
    ]);
    // OTLP/HTTP takes up to 20 MiB: the span is refused, its neighbour kept. (The answer is
    // protobuf; its message is readable as text inside it.)
    let (code, rejected, answer) = post_proto(&sb, &served, &body);
    assert_eq!(code, 200);
    assert_eq!(rejected, 1);
    assert!(answer.len() < 10_000, "the answer does not echo the value");
    assert!(
        answer.contains("tool.output") && answer.contains("the limit is 1048576"),
        "{answer}"
    );
    assert_eq!(events(&sb), 1, "only a1's registration");
    assert_eq!(sb.status()["agents"][0]["agent_id"], "a1");
    still_serving(&sb, &served);
}

#[test]
fn a_hundred_thousand_attributes_are_refused_with_the_limit() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let many: Vec<KeyValue> = (0..100_000)
        .map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i)))
        .collect();
    let body = request(vec![
        span(1, "tool.call", many),
        span(2, "agent.registration", vec![kv("agent.id", s("a1"))]),
    ]);
    let file = sb.tmp.path().join("many.bin");
    std::fs::write(&file, &body).expect("write");
    let (code, answer) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        None,
        Some(&file),
        &[PROTOBUF],
    );
    assert_eq!(code, 200);
    assert!(
        answer.contains("carries 100000 attributes") && answer.contains("the limit is 10000"),
        "the reason names the count and the limit: {answer:?}"
    );
    assert_eq!(events(&sb), 1, "only the registration");
    still_serving(&sb, &served);
}

#[test]
fn invalid_utf8_is_refused_over_protobuf_grpc_and_json() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // A span name of "XXXX" turned into bytes that are not UTF-8.
    let mut body = request(vec![span(1, "XXXX", vec![])]);
    let at = body
        .windows(4)
        .position(|w| w == b"XXXX")
        .expect("name in the encoding");
    body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    let (code, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert_eq!(code, 400);
    assert!(answer.contains("invalid UTF-8"), "{answer}");
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(false, body.len(), &body),
        &[],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    let json = b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xff\xfe\"}]}]}]}";
    let (code, _) = post(&sb, &served, json, &[JSON]);
    assert_eq!(code, 400);
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn ids_of_the_wrong_length_refuse_their_span_only() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = span(1, "agent.registration", vec![kv("agent.id", s("a1"))]);
    let short_trace = Span {
        trace_id: vec![2; 8],
        ..span(2, "tool.call", vec![])
    };
    let long_span = Span {
        span_id: vec![3; 9],
        ..span(3, "tool.call", vec![])
    };
    let zero_trace = Span {
        trace_id: vec![0; 16],
        ..span(4, "tool.call", vec![])
    };
    let odd_parent = Span {
        parent_span_id: vec![5; 3],
        ..span(5, "tool.call", vec![])
    };
    let body = request(vec![good, short_trace, long_span, zero_trace, odd_parent]);
    let (code, rejected, answer) = post_proto(&sb, &served, &body);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(rejected, 4, "{answer}");
    for reason in [
        "trace_id must be 16 bytes",
        "span_id must be 8 bytes",
        "parent_span_id",
    ] {
        assert!(answer.contains(reason), "{reason}: {answer}");
    }
    assert_eq!(events(&sb), 1, "the good span is kept");
    still_serving(&sb, &served);
}

#[test]
fn names_that_could_escape_a_directory_or_break_a_ref_are_refused_over_otlp() {
    let sb = initialised();
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let bad = [
        "../../etc",
        "/abs",
        "a/../../b",
        "a..b",
        "x.lock",
        "a@{b",
        "with space",
        "semi;colon",
        "$(touch pwned)",
        "back`tick`",
        ".hidden",
        "-option",
        "",
    ];
    let spans = bad
        .iter()
        .enumerate()
        .map(|(i, name)| {
            span(
                10 + i as u8,
                "feature.request",
                vec![kv("feature.name", s(name))],
            )
        })
        .collect();
    let (code, rejected, answer) = post_proto(&sb, &served, &request(spans));
    assert_eq!(code, 200);
    assert_eq!(rejected, bad.len() as i64, "every one refused: {answer}");
    assert_eq!(
        answer.matches("attribute feature.name").count(),
        bad.len(),
        "each by name: {answer}"
    );
    // A bad agent id in the resource, for any span, is refused too.
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("agent.id", s("../a1"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(40, "tool.call", vec![])],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec();
    let (_, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert!(answer.contains("resource attribute agent.id"), "{answer}");
    let status = sb.status();
    assert_eq!(status["features"].as_array().map(Vec::len), Some(0));
    // Nothing was made anywhere: no worktree, no branch, no file outside the repository.
    assert!(sb.git_worktrees().is_empty());
    assert_eq!(sb.git(&["branch", "--list", "spanfold/*"]), "");
    assert!(!sb.repo.join("pwned").exists() && !sb.tmp.path().join("pwned").exists());
    still_serving(&sb, &served);
}

#[test]
fn span_times_from_a_skewed_clock_never_reach_the_view() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let year_2200 = 7_258_118_400_000_000_000u64;
    let skewed = Span {
        start_time_unix_nano: year_2200,
        end_time_unix_nano: 1, // ends before it starts
        ..span(1, "agent.registration", vec![kv("agent.id", s("a1"))])
    };
    let (code, answer) = post(&sb, &served, &request(vec![skewed]), &[PROTOBUF]);
    assert_eq!(code, 200, "{answer}");
    let status = sb.status();
    // Every time the view holds is the log's receive time, not the sender's.
    let as_of = status["as_of"]["time"].as_str().unwrap_or("").to_owned();
    assert!(as_of.starts_with("20"), "{as_of}");
    let year: u64 = as_of[..4].parse().unwrap_or(0);
    assert!(year < 2100, "as_of is the receive time: {as_of}");
    let agent = &status["agents"][0];
    assert_eq!(agent["agent_id"], "a1");
    let last = agent["last_activity"].as_str().unwrap_or("");
    assert!(
        last.starts_with(&as_of[..4]),
        "last activity {last} is receive time"
    );
    // A lease counts from receive times: the agent is not seen as active far into the future,
    // nor expired at once; a cycle with a feature places it normally.
    sb.ok(&["agents", "add-feature", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["agent_id"], "a1", "{cycle}");
    still_serving(&sb, &served);
}

#[test]
fn spans_from_unknown_agents_are_kept_and_reported_as_anomalies() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let ghost = span(
        1,
        "agent.work_progress",
        vec![kv("agent.id", s("ghost")), kv("agent.state", s("working"))],
    );
    let (code, answer) = post(&sb, &served, &request(vec![ghost]), &[PROTOBUF]);
    assert_eq!(code, 200);
    assert!(!answer.contains("ghost"), "acknowledged whole: {answer}");
    let status = sb.status();
    assert_eq!(
        events(&sb),
        1,
        "kept in the log as the record of what was sent"
    );
    assert_eq!(
        status["agents"].as_array().map(Vec::len),
        Some(0),
        "no agent made up"
    );
    let anomalies = status["anomalies"].to_string();
    assert!(anomalies.contains("ghost"), "{anomalies}");
    still_serving(&sb, &served);
}

#[test]
fn decision_spans_sent_over_otlp_http_are_refused() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let before = events(&sb);
    let forged = span(
        1,
        "agent.feature_assignment",
        vec![
            kv("agent.id", s("a1")),
            kv("feature.name", s("f1")),
            kv("worktree.path", s("/etc")),
        ],
    );
    let (code, answer) = post(&sb, &served, &request(vec![forged]), &[PROTOBUF]);
    assert_eq!(code, 200);
    assert!(answer.contains("coordinator decision"), "{answer}");
    assert_eq!(events(&sb), before);
    let status = sb.status();
    assert_eq!(status["features"][0]["status"], "queued");
    still_serving(&sb, &served);
}

#[test]
fn a_missing_or_wrong_token_refuses_spans_on_every_receiver() {
    let sb = initialised();
    let served = sb.serve(&["--manual", "--token", "s3cret"]);
    let body = request(vec![span(
        1,
        "agent.registration",
        vec![kv("agent.id", s("a1"))],
    )]);
    let file = sb.tmp.path().join("reg.bin");
    std::fs::write(&file, &body).expect("write");
    for token in [None, Some("wrong")] {
        let (code, answer) = curl(
            &served.http,
            "POST",
            "/v1/traces",
            token,
            Some(&file),
            &[PROTOBUF],
        );
        assert_eq!(code, 401, "{answer}");
        // tonic, a real gRPC client: curl may lose an answer sent before the body was read.
        let status = grpc_export(&served, &body, token).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    }
    for path in ["/metrics", "/api/status", "/api/events"] {
        assert_eq!(served.get(path, None).0, 401, "{path}");
    }
    let (code, _) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        Some("s3cret"),
        Some(&file),
        &[PROTOBUF],
    );
    assert_eq!(code, 200);
    let status = sb
        .run(&["--json", "--token", "s3cret", "agents", "agent-status"])
        .json();
    assert_eq!(
        status["data"]["counters"]["events"], 2,
        "init and the one accepted registration"
    );
}
