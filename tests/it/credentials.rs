//! Credentials per agent: `spanfold agents token AGENT` issues a token bound to one agent; the
//! log keeps only its hash; spans sent with it must be about that agent, and the operator's
//! spans need the operator token. Against a real server, with curl and the OpenTelemetry
//! Python SDK's gRPC exporter.

use crate::common;

use std::process::Command;

use common::{Sandbox, Served, curl};
use serde_json::{Value, json};

const OPERATOR: &str = "op-s3cret";

fn issue(sb: &Sandbox, agent: &str) -> String {
    let run = sb.run(&["--json", "--token", OPERATOR, "agents", "token", agent]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).expect("json");
    let token = out["data"]["token"]
        .as_str()
        .expect("data.token")
        .to_owned();
    assert!(token.starts_with("sfa_") && token.len() == 68, "{token}");
    token
}

/// One OTLP/JSON export of spans, each `(name, attributes)`; returns (status, body).
fn send(sb: &Sandbox, served: &Served, token: &str, spans: &[(&str, Value)]) -> (u16, String) {
    let spans: Vec<Value> = spans
        .iter()
        .enumerate()
        .map(|(i, (name, attrs))| {
            let attributes: Vec<Value> = attrs
                .as_object()
                .expect("attributes")
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            json!({
                "traceId": format!("{:032x}", 0xabc0 + i + 16 * std::process::id() as usize),
                "spanId": format!("{:016x}", 0xdef0 + i),
                "name": name, "kind": 1,
                "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                "attributes": attributes,
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    let file = sb.tmp.path().join("export.json");
    std::fs::write(&file, body.to_string()).expect("write");
    curl(
        &served.http,
        "POST",
        "/v1/traces",
        Some(token),
        Some(&file),
        &["Content-Type: application/json"],
    )
}

fn status(sb: &Sandbox) -> Value {
    let run = sb.run(&["--json", "--token", OPERATOR, "agents", "agent-status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str::<Value>(&run.stdout).expect("json")["data"].clone()
}

#[test]
fn an_agents_token_speaks_for_that_agent_only() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual", "--token", OPERATOR]);
    let a1 = issue(&sb, "a1");

    // Its own registration is taken; another agent's and the operator's spans are refused,
    // each with its reason, in the same export.
    let (code, body) = send(
        &sb,
        &served,
        &a1,
        &[
            (
                "agent.registration",
                json!({"agent.id": "a1", "agent.languages": "rust"}),
            ),
            ("agent.registration", json!({"agent.id": "a2"})),
            (
                "feature.request",
                json!({"feature.name": "f1", "agent.id": "a1"}),
            ),
            ("tool.call", json!({})),
        ],
    );
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "3", "{body}");
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(message.contains("speaks for agent \"a2\""), "{message}");
    assert!(message.contains("operator's to send"), "{message}");
    assert!(message.contains("names no agent.id"), "{message}");
    let st = status(&sb);
    assert_eq!(st["agents"].as_array().map(Vec::len), Some(1));
    assert_eq!(st["agents"][0]["agent_id"], "a1");
    assert_eq!(st["features"].as_array().map(Vec::len), Some(0));

    // Reading is open to it; running a cycle is not; an unknown agent token is no token.
    assert_eq!(served.get("/api/status", Some(&a1)).0, 200);
    let (code, body) = curl(&served.http, "POST", "/api/cycle", Some(&a1), None, &[]);
    assert_eq!(code, 403, "{body}");
    let forged = format!("sfa_{}", "0".repeat(64));
    assert_eq!(send(&sb, &served, &forged, &[]).0, 401);

    // The operator token still speaks for anyone.
    let (code, body) = send(
        &sb,
        &served,
        OPERATOR,
        &[("feature.request", json!({"feature.name": "f1"}))],
    );
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("rejected"), "{body}");

    // A new token replaces the old one.
    let again = issue(&sb, "a1");
    assert_ne!(again, a1);
    assert_eq!(send(&sb, &served, &a1, &[]).0, 401);
    assert_eq!(send(&sb, &served, &again, &[]).0, 200);

    // Neither token is in the log or an export of it; the hash is.
    served.stop();
    let export = sb.tmp.path().join("log.jsonl");
    sb.ok(&["export", "-o", export.to_str().expect("path")]);
    let text = std::fs::read_to_string(&export).expect("export");
    assert!(!text.contains(&a1) && !text.contains(&again));
    assert!(text.contains(&spanfold::credentials::hash(&again)));
    let log = std::fs::read(sb.repo.join(".git/spanfold/log/db")).expect("db");
    let hex = |t: &str| t.as_bytes().to_vec();
    assert!(
        !log.windows(68).any(|w| w == hex(&a1) || w == hex(&again)),
        "a token in the log's file"
    );
}

#[test]
fn the_python_sdk_with_an_agents_token_over_grpc() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual", "--token", OPERATOR]);
    let token = issue(&sb, "py-agent");
    let script = r#"
import os
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("t")
with tracer.start_as_current_span("agent.registration", attributes={"agent.languages": ["python"]}):
    pass
with tracer.start_as_current_span("agent.registration", attributes={"agent.id": "someone-else"}):
    pass
with tracer.start_as_current_span("feature.request", attributes={"feature.name": "sneaky"}):
    pass
provider.shutdown()
"#;
    let out = Command::new(common::python())
        .args(["-c", script])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", served.grpc),
        )
        .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{token}"),
        )
        .env("OTEL_RESOURCE_ATTRIBUTES", "agent.id=py-agent")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = status(&sb);
    let ids: Vec<&str> = st["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert_eq!(ids, ["py-agent"]);
    assert_eq!(st["features"].as_array().map(Vec::len).unwrap_or(0), 0);
    let (_, lines) = served.stop();
    assert!(
        lines.contains("someone-else") && lines.contains("operator's to send"),
        "{lines}"
    );
}
