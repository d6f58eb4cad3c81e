//! Agents' own telemetry — OTLP logs and metrics, as Claude Code sends them — taken by the
//! server from real clients nobody here wrote (the OpenTelemetry Python SDK's log and metric
//! exporters, over gRPC and HTTP) and from curl (OTLP/JSON).

use serde_json::Value;

use super::initialised;
use crate::common::{self, curl};

/// Claude Code's events and delta metrics from `agent`, sent `sends` times over `protocol`.
fn claude_telemetry(protocol: &str, endpoint: &str, agent: &str, sends: u32) -> Value {
    let out = std::process::Command::new(common::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/claude_telemetry.py"
        ))
        .arg(sends.to_string())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
        .env("OTEL_RESOURCE_ATTRIBUTES", format!("agent.id={agent}"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{protocol}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints json")
}

fn agent<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["agent_id"] == id))
        .unwrap_or_else(|| panic!("{id} not in status: {status}"))
}

#[test]
fn claude_codes_logs_and_metrics_are_stored_once_over_grpc_and_http() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let mut sent = 0;
    for (protocol, endpoint, id) in [
        ("grpc", format!("http://{}", served.grpc), "claude-grpc"),
        ("http/protobuf", served.http.clone(), "claude-http"),
    ] {
        sb.ok(&["agents", "register-agent", id]);
        let before = agent(&sb.status(), id)["last_activity"].clone();
        // Everything twice: the second time is what a retry after a lost answer resends.
        let said = claude_telemetry(protocol, &endpoint, id, 2);
        sent += said["log_records"].as_u64().expect("a count");
        let after = agent(&sb.status(), id)["last_activity"].clone();
        assert!(
            after.as_str() > before.as_str(),
            "{protocol}: the agent's telemetry is a sign of life: {before} then {after}"
        );
    }
    assert_eq!(sent, 12);
    let status = sb.status();
    for id in ["claude-grpc", "claude-http"] {
        let t = &agent(&status, id)["telemetry"];
        assert_eq!(
            t["source"], "claude",
            "read through Claude Code's profile: {t}"
        );
        assert_eq!(
            (&t["tool_calls"], &t["llm_requests"], &t["tool_failures"]),
            (&1.into(), &1.into(), &0.into()),
            "one Edit and one api_request, each stored once: {t}"
        );
        assert!(t["last_activity"]["name"].is_string(), "{t}");
    }
    assert_eq!(
        status["telemetry"],
        serde_json::json!({"log_records": 6, "metrics": 4}),
        "three events and two metrics per agent, each stored once"
    );
    assert_eq!(served.metric("spanfold_log_records_accepted_total"), 12);
    assert_eq!(served.metric("spanfold_log_records_rejected_total"), 0);
    assert_eq!(served.metric("spanfold_metrics_accepted_total"), 4);
    // Nothing of it is a span: nothing was refused or counted as an unregistered span.
    assert_eq!(status["counters"]["unregistered_spans"], 0);
    assert_eq!(status["counters"]["anomalies"], 0);

    // The dashboard's lanes mark each agent's tool calls and LLM requests, and its timeline
    // folds every event of the log, not only the spans.
    let (code, body) = served.get("/api/timeline?resolution=100", None);
    assert_eq!(code, 200, "{body}");
    let timeline: Value = serde_json::from_str(&body).expect("json");
    let t = &timeline["data"];
    assert_eq!(t["events"], status["counters"]["events"], "{t}");
    for id in ["claude-grpc", "claude-http"] {
        let lane = t["lanes"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["agent_id"] == id))
            .unwrap_or_else(|| panic!("no lane for {id}: {t}"));
        let sum = |key: &str| -> u64 {
            let steps = lane["activity"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            steps.iter().filter_map(|a| a[key].as_u64()).sum()
        };
        assert_eq!((sum("tool_calls"), sum("llm_requests")), (1, 1), "{lane}");
    }

    // The log holds it all: exported in either format and replayed, it folds to the same status.
    let (_, stderr) = served.stop();
    let live = sb.ok(&["agents", "agent-status"]);
    assert_eq!(live["telemetry"]["log_records"], 6);
    for format in ["json", "protobuf"] {
        let path = sb.tmp.path().join(format!("telemetry.{format}"));
        let p = path.to_str().expect("utf-8");
        sb.ok(&["export", "--format", format, "-o", p]);
        let replayed = sb.ok(&["replay", p]);
        assert_eq!(replayed, live, "{format}\n{stderr}");
    }
}

#[test]
fn otlp_json_logs_with_a_malformed_id_are_refused_one_by_one_and_named() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"agent.id","value":{"stringValue":"gemini-1"}}]},
      "scopeLogs":[{"scope":{"name":"gemini-cli"},"logRecords":[
        {"timeUnixNano":"1764000000000000000","severityNumber":"SEVERITY_NUMBER_INFO","severityText":"INFO",
         "body":{"stringValue":"API response"},
         "attributes":[{"key":"event.name","value":{"stringValue":"gemini_cli.api_response"}},
                       {"key":"input_token_count","value":{"intValue":"1500"}}]},
        {"timeUnixNano":"1764000000000000001","eventName":"gemini_cli.tool_call",
         "traceId":"0102","attributes":[{"key":"function_name","value":{"stringValue":"read_file"}}]}
      ]}]}]}"#;
    let path = sb.tmp.path().join("logs.json");
    std::fs::write(&path, body).expect("write");
    let (code, answer) = curl(
        &served.http,
        "POST",
        "/v1/logs",
        None,
        Some(&path),
        &["Content-Type: application/json"],
    );
    assert_eq!(code, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("an OTLP/JSON answer");
    let partial = &answer["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "1", "{answer}");
    let message = partial["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("gemini_cli.tool_call") && message.contains("trace_id"),
        "the refused record and the rule are named: {message}"
    );
    let status = sb.status();
    assert_eq!(
        status["telemetry"]["log_records"], 1,
        "the good record is kept"
    );
    assert_eq!(served.metric("spanfold_log_records_rejected_total"), 1);
}

#[test]
fn codex_and_gemini_cli_events_are_read_through_their_profiles() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    for (which, id, protocol, endpoint) in [
        (
            "codex",
            "codex-1",
            "grpc",
            format!("http://{}", served.grpc),
        ),
        ("gemini", "gemini-1", "http/protobuf", served.http.clone()),
    ] {
        sb.ok(&["agents", "register-agent", id]);
        let out = std::process::Command::new(common::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/py/agent_events.py"
            ))
            .arg(which)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
            .env("OTEL_RESOURCE_ATTRIBUTES", format!("agent.id={id}"))
            .output()
            .expect("python runs");
        assert!(out.status.success(), "{which}: {out:?}");
    }
    let status = sb.status();
    let codex = &agent(&status, "codex-1")["telemetry"];
    assert_eq!(codex["source"], "codex", "{codex}");
    assert_eq!(
        codex["llm_requests"], 1,
        "only the completed response is a request, not every streamed event: {codex}"
    );
    assert_eq!(
        (&codex["tool_calls"], &codex["tool_failures"]),
        (&1.into(), &1.into())
    );
    assert_eq!(codex["last_activity"]["tool"], "shell");
    let gemini = &agent(&status, "gemini-1")["telemetry"];
    assert_eq!(gemini["source"], "gemini", "{gemini}");
    assert_eq!(
        (&gemini["llm_requests"], &gemini["tool_calls"]),
        (&1.into(), &1.into())
    );
    assert_eq!(
        gemini["tool_failures"], 0,
        "success: true (a boolean) is a success"
    );
    assert_eq!(gemini["last_activity"]["name"], "gemini_cli.file_operation");
}
