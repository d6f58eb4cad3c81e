//! The bad-input catalogue of TESTING.md, row by row, against a real `spanfold serve` on
//! loopback: each bad input gets a clear answer that says what was wrong, nothing else that was
//! sent is lost, nothing is appended that should not be, and the server keeps serving.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Sandbox, Served, curl};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

fn initialised() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn span(n: u8, name: &str, attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        name: name.into(),
        kind: 1,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: attrs,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// POST /v1/traces with these bytes and headers; returns (status, body).
fn post(sb: &Sandbox, served: &Served, body: &[u8], headers: &[&str]) -> (u16, String) {
    let file = sb.tmp.path().join("body.bin");
    std::fs::write(&file, body).expect("write body");
    curl(
        &served.http,
        "POST",
        "/v1/traces",
        None,
        Some(&file),
        headers,
    )
}

const JSON: &str = "Content-Type: application/json";
const PROTOBUF: &str = "Content-Type: application/x-protobuf";

/// A raw gRPC Export call through curl (HTTP/2 without TLS): `frame` is the whole
/// length-prefixed message, so it can lie about its length or compression. Returns grpc-status
/// and grpc-message from the trailers.
fn grpc_raw(served: &Served, dir: &Path, frame: &[u8], headers: &[&str]) -> (String, String) {
    let file = dir.join("frame.bin");
    std::fs::write(&file, frame).expect("write frame");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-D",
        "-",
    ])
    .args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            served.grpc
        ));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .next_back()
            .unwrap_or_default()
    };
    (field("grpc-status"), field("grpc-message"))
}

fn frame(compressed: bool, declared: usize, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend((declared as u32).to_be_bytes());
    f.extend(payload);
    f
}

/// Events in the log beyond `agents init`'s own.
fn events(sb: &Sandbox) -> u64 {
    sb.status()["counters"]["events"].as_u64().unwrap_or(0) - 1
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
    let (code, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert_eq!(code, 200);
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
