//! The bad-input catalogue for agents' log records and metrics: what spans get, they get —
//! malformed bodies refused whole with OTLP's answers, a record over a limit or with a malformed
//! id refused alone with the rule, bombs refused unread, an agent's token speaking only for its
//! agent — and the server keeps serving.

use super::{initialised, still_serving};
use crate::common::wire::{JSON, PROTOBUF, frame, grpc_raw_at, gzip, post_at};
use crate::common::{Sandbox, curl};

fn telemetry(sb: &Sandbox) -> serde_json::Value {
    sb.status()["telemetry"].clone()
}

#[test]
fn malformed_log_and_metric_exports_get_the_otlp_answers() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // A resource group whose length runs past the end of the body.
    let garbage = b"\x0a\x10\x12\x03\xff\xff\xff";
    for path in ["/v1/logs", "/v1/metrics"] {
        let (code, body) = post_at(&sb, &served, path, garbage, &[PROTOBUF]);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body.contains("not a valid OTLP export request"),
            "{path}: {body}"
        );
    }
    let wrong_logs =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":true}]}]}]}"#;
    let (code, body) = post_at(&sb, &served, "/v1/logs", wrong_logs, &[JSON]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano"),
        "the path is named: {body}"
    );
    let wrong_metrics = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asInt":"many"}]}}]}]}]}"#;
    let (code, body) = post_at(&sb, &served, "/v1/metrics", wrong_metrics, &[JSON]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt"),
        "the path is named: {body}"
    );
    for (service, request) in [
        ("logs.v1.LogsService", "ExportLogsServiceRequest"),
        ("metrics.v1.MetricsService", "ExportMetricsServiceRequest"),
    ] {
        let (status, message) = grpc_raw_at(
            &served,
            sb.tmp.path(),
            service,
            &frame(false, garbage.len(), garbage),
            &[],
        );
        assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
        assert!(message.contains(request), "{message}");
    }
    assert_eq!(telemetry(&sb), serde_json::Value::Null, "nothing appended");
    still_serving(&sb, &served);
}

#[test]
fn a_log_record_over_a_limit_is_refused_alone_with_the_limit() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let huge = "x".repeat(10 << 20);
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[
            {{"eventName":"claude_code.tool_result","attributes":[{{"key":"tool_output","value":{{"stringValue":"{huge}"}}}}]}},
            {{"eventName":"claude_code.api_request","timeUnixNano":"5"}}]}}]}}]}}"#
    );
    let (code, answer) = post_at(&sb, &served, "/v1/logs", body.as_bytes(), &[JSON]);
    assert_eq!(code, 200, "{}", &answer[..answer.len().min(500)]);
    assert!(answer.len() < 10_000, "the answer does not echo the value");
    assert!(answer.contains(r#""rejectedLogRecords":"1""#), "{answer}");
    assert!(
        answer.contains("claude_code.tool_result") && answer.contains("the limit is 1048576"),
        "the record and the rule: {answer}"
    );
    assert_eq!(telemetry(&sb)["log_records"], 1, "its neighbour is kept");
    still_serving(&sb, &served);
}

#[test]
fn a_gzip_bomb_of_logs_or_metrics_is_refused_unread() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let bomb = gzip(&vec![0u8; 64 << 20]);
    for path in ["/v1/logs", "/v1/metrics"] {
        let (code, body) = post_at(
            &sb,
            &served,
            path,
            &bomb,
            &[PROTOBUF, "Content-Encoding: gzip"],
        );
        assert_eq!(code, 413, "{path}: {body}");
    }
    let (status, message) = grpc_raw_at(
        &served,
        sb.tmp.path(),
        "logs.v1.LogsService",
        &frame(true, bomb.len(), &bomb),
        &["grpc-encoding: gzip"],
    );
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    still_serving(&sb, &served);
}

#[test]
fn an_agents_token_speaks_only_for_its_agent_in_logs_and_metrics_too() {
    const OPERATOR: &str = "op-s3cret";
    let sb = initialised();
    let served = sb.serve(&["--manual", "--token", OPERATOR]);
    let run = sb.run(&["--json", "--token", OPERATOR, "agents", "token", "a1"]);
    let token = run.json()["data"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let logs = r#"{"resourceLogs":[
        {"resource":{"attributes":[{"key":"agent.id","value":{"stringValue":"a1"}}]},
         "scopeLogs":[{"logRecords":[{"eventName":"mine","timeUnixNano":"1"}]}]},
        {"resource":{"attributes":[{"key":"agent.id","value":{"stringValue":"a2"}}]},
         "scopeLogs":[{"logRecords":[{"eventName":"theirs","timeUnixNano":"2"}]}]},
        {"scopeLogs":[{"logRecords":[{"eventName":"nobodys","timeUnixNano":"3"}]}]}]}"#;
    let file = sb.tmp.path().join("logs.json");
    std::fs::write(&file, logs).expect("write");
    let (code, answer) = curl(
        &served.http,
        "POST",
        "/v1/logs",
        Some(&token),
        Some(&file),
        &["Content-Type: application/json"],
    );
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains(r#""rejectedLogRecords":"2""#), "{answer}");
    assert!(
        answer.contains(r#"speaks for agent \"a2\""#) && answer.contains("names no agent.id"),
        "{answer}"
    );
    let status = sb.run(&["--json", "--token", OPERATOR, "agents", "agent-status"]);
    assert_eq!(status.json()["data"]["telemetry"]["log_records"], 1);
}
