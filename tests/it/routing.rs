//! Many repositories behind one Collector: the launcher names the repository in its agent's
//! resource (`spanfold.repo`), which a Collector routes by, and a server refuses telemetry
//! naming another repository (routed to the wrong server) rather than fold it into its own.

use crate::common::{self, Sandbox};

/// An OTLP/JSON export of one Codex log record from `agent`, for `repo`.
fn record_for(agent: &str, repo: &str) -> String {
    serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "agent.id", "value": {"stringValue": agent}},
            {"key": "spanfold.repo", "value": {"stringValue": repo}},
        ]},
        "scopeLogs": [{"scope": {}, "logRecords": [{
            "timeUnixNano": "1764000000000000000",
            "body": {"stringValue": "codex.tool_result"},
            "attributes": [
                {"key": "event.name", "value": {"stringValue": "codex.tool_result"}},
                {"key": "tool_name", "value": {"stringValue": "shell"}},
                {"key": "success", "value": {"stringValue": "true"}},
            ],
        }]}],
    }]})
    .to_string()
}

/// A repository whose agents' telemetry names it `app`.
fn repository_named_app() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.git(&["config", "spanfold.repo", "app"]);
    sb
}

#[test]
fn the_launcher_names_the_repository_and_another_repositorys_records_are_refused() {
    let sb = repository_named_app();
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);

    let post = |repo: &str| {
        let body = record_for("a1", repo);
        let json = ["content-type: application/json"];
        let (code, answer) =
            common::wire::post_at(&sb, &served, "/v1/logs", body.as_bytes(), &json);
        assert_eq!(code, 200, "{answer}");
        answer
    };
    let answer = post("web");
    assert!(
        answer.contains(
            "1 log records for repository \\\"web\\\", and this server coordinates \\\"app\\\""
        ),
        "{answer}"
    );
    let answer = post("app");
    assert!(!answer.contains("rejected"), "{answer}");
    let telemetry = |sb: &Sandbox| {
        let status = sb.status();
        status["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["agent_id"] == "a1"))
            .map(|a| a["telemetry"].clone())
            .expect("a1")
    };
    assert_eq!(
        telemetry(&sb)["tool_calls"],
        1,
        "only this repository's record counts"
    );

    // Under `agents run`, the agent's resource (as the SDK reads it from the environment)
    // names this repository, and its records are taken.
    sb.ok(&["agents", "add-feature", "hello"]);
    let check = format!(
        "{} -c 'import sys; from opentelemetry.sdk.resources import Resource; sys.exit(Resource.create().attributes.get(\"spanfold.repo\") != \"app\")'",
        common::python().display()
    );
    let work = format!("{check} && {}", common::telemetry_then_commit("hello.txt"));
    let run = sb.run(&[
        "agents",
        "run",
        "a1",
        "--once",
        "--timeout",
        "60",
        "--profile",
        "gemini",
        "--",
        "bash",
        "-c",
        &work,
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let t = telemetry(&sb);
    assert_eq!(t["llm_requests"], 2, "{t}");
    assert_eq!(t["tool_calls"], 3, "{t}");
}

/// The Collector configuration the README shows routes every signal of every repository it
/// names, to pipelines and exporters it defines. (No Collector with the routing connector can
/// be installed where these tests run, so the file is checked for what it says, not run.)
#[test]
fn the_collector_configuration_routes_each_signal_of_each_repository() {
    use serde_yaml_ng::Value;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/collector-routing.yaml");
    let text = std::fs::read_to_string(path).expect("the configuration");
    let doc: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let names = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let pipelines = &doc["service"]["pipelines"];
    let mut repos_by_signal = Vec::new();
    for signal in ["traces", "logs", "metrics"] {
        let router = format!("routing/{signal}");
        let inbound = &pipelines[format!("{signal}/in").as_str()];
        assert_eq!(names(&inbound["receivers"]), ["otlp"], "{signal}");
        assert_eq!(names(&inbound["exporters"]), [router.as_str()], "{signal}");
        let connector = &doc["connectors"][router.as_str()];
        let mut routed = names(&connector["default_pipelines"]);
        let mut repos = Vec::new();
        for route in connector["table"].as_sequence().expect("a routing table") {
            let condition = route["condition"].as_str().expect("a condition");
            let repo = condition
                .strip_prefix("attributes[\"spanfold.repo\"] == \"")
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{signal}: routes by spanfold.repo: {condition}"));
            assert_eq!(route["context"].as_str(), Some("resource"), "{condition}");
            repos.push(repo.to_owned());
            routed.extend(names(&route["pipelines"]));
        }
        for name in &routed {
            assert!(
                name.starts_with(&format!("{signal}/")),
                "{signal} routed to {name}"
            );
            let pipeline = &pipelines[name.as_str()];
            assert_eq!(names(&pipeline["receivers"]), [router.as_str()], "{name}");
            for exporter in names(&pipeline["exporters"]) {
                assert!(
                    doc["exporters"][exporter.as_str()].is_mapping(),
                    "{name} exports to {exporter}, which is not defined"
                );
            }
        }
        repos_by_signal.push(repos);
    }
    assert!(!repos_by_signal[0].is_empty());
    assert!(
        repos_by_signal.iter().all(|r| *r == repos_by_signal[0]),
        "every repository gets all three signals: {repos_by_signal:?}"
    );
    for extension in names(&doc["service"]["extensions"]) {
        assert!(
            doc["extensions"][extension.as_str()].is_mapping(),
            "{extension}"
        );
    }
}

/// A child process stopped when the test ends, however it ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `agents run --otlp-endpoint`: the agent's telemetry goes to a Collector instead of the
/// server (here a stand-in that notes each export's resources), still naming the agent and the
/// repository, which the Collector routes by.
#[test]
fn an_agents_telemetry_goes_to_the_collector_named_with_what_it_routes_by() {
    let sb = repository_named_app();
    let _served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "hello"]);
    let (port_file, seen) = (sb.tmp.path().join("port"), sb.tmp.path().join("seen"));
    let sink = Stopped(
        std::process::Command::new(common::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/py/otlp_sink.py"
            ))
            .args([&port_file, &seen])
            .spawn()
            .expect("the stand-in Collector starts"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            break port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stand-in never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let collector = format!("http://127.0.0.1:{}", port.trim());
    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/agent_events.py");
    let work = format!(
        "{} {events} codex && echo hi > hello.txt && git add hello.txt && git -c user.name=A -c user.email=a@example.com commit -qm hello",
        common::python().display()
    );
    let run = sb.run(&[
        "agents",
        "run",
        "a1",
        "--once",
        "--timeout",
        "60",
        "--otlp-endpoint",
        &collector,
        "--",
        "bash",
        "-c",
        &work,
    ]);
    drop(sink);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let seen = std::fs::read_to_string(&seen).expect("the stand-in saw exports");
    let logs: Vec<serde_json::Value> = seen
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["path"] == "/v1/logs")
        .collect();
    assert!(!logs.is_empty(), "{seen}");
    for export in &logs {
        let resource = &export["resources"][0];
        assert_eq!(resource["agent.id"], "a1", "{export}");
        assert_eq!(resource["spanfold.repo"], "app", "{export}");
    }
    let status = sb.status();
    let a1 = status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent_id"] == "a1"))
        .expect("a1");
    assert_eq!(
        a1["telemetry"]["llm_requests"], 0,
        "none came to the server"
    );
}
