//! What each feature cost, from the agents' own telemetry sent by the OpenTelemetry Python SDK
//! as Claude Code, Codex CLI and Gemini CLI send theirs: `spanfold usage`, `/api/usage`, the
//! status and `/metrics`, to the token and the billionth of a dollar.

use serde_json::Value;

use super::initialised;
use crate::common;

/// Sends `script` (tests/py) with `args` as agent `id` over `protocol`.
fn send(script: &str, args: &[&str], id: &str, protocol: &str, endpoint: &str) {
    let out = std::process::Command::new(common::python())
        .arg(format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_INSECURE", "true")
        .env("OTEL_RESOURCE_ATTRIBUTES", format!("agent.id={id}"))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} {args:?}: {out:?}");
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no row {name}: {report}"))
}

#[test]
fn each_agents_requests_are_counted_once_and_priced_or_reported_to_the_billionth() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    for id in ["claude-1", "codex-1", "gemini-1"] {
        sb.ok(&["agents", "register-agent", id]);
        sb.ok(&["agents", "add-feature", &format!("work-{id}")]);
    }
    // The cycle places the features and records the price table in force.
    sb.ok(&["agents", "coordination-cycle"]);
    let grpc = format!("http://{}", served.grpc);
    // Claude Code's events twice (a retried export) and its metrics of the same session: the
    // request counts once, and the metrics not at all (its session sent request events).
    send("claude_telemetry.py", &["2"], "claude-1", "grpc", &grpc);
    send("agent_events.py", &["codex"], "codex-1", "grpc", &grpc);
    send(
        "agent_events.py",
        &["gemini"],
        "gemini-1",
        "http/protobuf",
        &served.http,
    );

    let by_agent = sb.ok(&["usage", "--by", "agent"]);
    let claude = row(&by_agent, "claude-1");
    assert_eq!(
        (
            &claude["input_tokens"],
            &claude["output_tokens"],
            &claude["cache_read_tokens"]
        ),
        (&1200.into(), &340.into(), &800.into()),
        "{claude}"
    );
    assert_eq!(
        (claude["cost_usd"].as_f64(), &claude["cost_source"]),
        (Some(0.0123), &"reported".into())
    );
    // Codex: 2100 input of which 1200 cached, 380 output of which 64 reasoning, priced as
    // gpt-5-codex: 900 × $1.25 + (316 + 64) × $10 + 1200 × $0.125 per million.
    let codex = row(&by_agent, "codex-1");
    assert_eq!(
        (
            &codex["input_tokens"],
            &codex["cache_read_tokens"],
            &codex["output_tokens"],
            &codex["reasoning_tokens"]
        ),
        (&900.into(), &1200.into(), &316.into(), &64.into()),
        "{codex}"
    );
    assert_eq!(
        (codex["cost_usd"].as_f64(), &codex["cost_source"]),
        (Some(0.005075), &"priced".into())
    );
    // Gemini: 3000 × $1.25 + (500 + 120 thoughts) × $10 per million, as gemini-2.5-pro.
    let gemini = row(&by_agent, "gemini-1");
    assert_eq!(gemini["cost_usd"].as_f64(), Some(0.00995), "{gemini}");
    assert_eq!(
        by_agent["total"]["cost_usd"].as_f64(),
        Some(0.027325),
        "exact: summed in billionths, not in floating point"
    );
    assert_eq!(by_agent["total"]["llm_requests"], 3);

    // Each feature holds what its agent spent; the status says it too, and the API and
    // /metrics agree.
    let by_feature = sb.ok(&["usage"]);
    assert_eq!(
        row(&by_feature, "work-codex-1")["cost_usd"],
        codex["cost_usd"]
    );
    let status = sb.status();
    let feature = status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "work-claude-1"))
        .expect("the feature");
    assert_eq!(
        feature["usage"]["cost_usd"].as_f64(),
        Some(0.0123),
        "{feature}"
    );
    assert_eq!(status["coordination_status"]["usage"]["llm_requests"], 3);
    // The history of a feature ends with what each session spent on it.
    let history = sb.ok(&["history", "--feature", "work-claude-1"]);
    let spend = &history["spend"];
    assert_eq!(spend.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(spend[0]["name"], "8f2c1e4a-session (claude-1)");
    assert_eq!(spend[0]["cost_usd"].as_f64(), Some(0.0123));
    let sessions = sb.ok(&["usage", "--by", "session", "--feature", "work-codex-1"]);
    assert_eq!(
        row(&sessions, "c-1 (codex-1)")["cost_usd"].as_f64(),
        Some(0.005075)
    );
    let (code, body) = served.get("/api/usage?by=model", None);
    assert_eq!(code, 200, "{body}");
    let api: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        row(&api["data"], "gemini-2.5-pro")["cost_usd"].as_f64(),
        Some(0.00995)
    );
    let (_, metrics) = served.get("/metrics", None);
    assert!(
        metrics.contains("spanfold_model_llm_cost_usd_total{model=\"gpt-5-codex\"} 0.005075")
            && metrics.contains(
                "spanfold_agent_llm_tokens_total{agent=\"claude-1\",kind=\"input\"} 1200"
            ),
        "{metrics}"
    );
    // And the log alone gives the same dollars: exported, replayed, the same report.
    let (_, stderr) = served.stop();
    let path = sb.tmp.path().join("usage.jsonl");
    sb.ok(&["export", "-o", path.to_str().expect("utf-8")]);
    let replayed = sb.ok(&["replay", path.to_str().expect("utf-8")]);
    assert_eq!(
        replayed["coordination_status"]["usage"], status["coordination_status"]["usage"],
        "{stderr}"
    );
}

#[test]
fn usage_between_two_points_is_what_was_spent_in_between() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "claude-1"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let grpc = format!("http://{}", served.grpc);
    send("claude_telemetry.py", &["1"], "claude-1", "grpc", &grpc);
    let middle = sb.status()["as_of"]["seq"].as_u64().expect("seq");
    send("agent_events.py", &["gemini"], "claude-1", "grpc", &grpc);
    let all = sb.ok(&["usage", "--by", "day"]);
    let up_to = sb.ok(&["usage", "--at", &middle.to_string()]);
    let after = sb.ok(&["usage", "--from", &middle.to_string(), "--by", "model"]);
    assert_eq!(up_to["total"]["cost_usd"].as_f64(), Some(0.0123));
    assert_eq!(after["total"]["cost_usd"].as_f64(), Some(0.00995));
    assert_eq!(after["rows"].as_array().map(Vec::len), Some(1), "{after}");
    assert_eq!(all["total"]["llm_requests"], 2);
    let bad = sb.run(&["usage", "--from", "9999999"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("after the last event"),
        "{}",
        bad.stderr
    );
    let (code, body) = served.get("/api/usage?by=week", None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("feature") && body.contains("day"),
        "what to give: {body}"
    );
}

#[test]
fn a_budget_for_nothing_or_of_nothing_is_refused_with_what_to_give() {
    let sb = initialised();
    let unknown = sb.fails(&["agents", "set-budget", "ghost", "--usd", "1"]);
    assert!(
        unknown.contains("feature ghost was never requested"),
        "{unknown}"
    );
    sb.ok(&["agents", "add-feature", "f1"]);
    let neither = sb.run(&["agents", "set-budget", "f1"]);
    assert_eq!(neither.code, 2, "a usage error: {}", neither.stderr);
    assert!(
        neither.stderr.contains("--usd") && neither.stderr.contains("--tokens"),
        "{}",
        neither.stderr
    );
    let negative = sb.run(&["agents", "set-budget", "f1", "--usd", "-3"]);
    assert_eq!(negative.code, 2);
    let words = sb.run(&["agents", "add-feature", "f2", "--budget-usd", "lots"]);
    assert!(
        words.stderr.contains("is not a number of dollars"),
        "{}",
        words.stderr
    );
    let set = sb.ok(&[
        "agents",
        "set-budget",
        "f1",
        "--usd",
        "$2.50",
        "--tokens",
        "1000",
    ]);
    assert_eq!(
        (set["budget_usd"].as_f64(), &set["budget_tokens"]),
        (Some(2.5), &1000.into())
    );
    let f = &sb.status()["features"][0];
    assert_eq!(
        f["budget"],
        serde_json::json!({"usd": 2.5, "tokens": 1000, "state": "ok"})
    );
}
