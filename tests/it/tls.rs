//! TLS on both receivers and the refusal to listen beyond loopback unprotected, with clients
//! nobody here wrote: curl, the OpenTelemetry Python SDK's gRPC and HTTP exporters.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::{Sandbox, Served};

pub(crate) const OPERATOR: &str = "op-s3cret";

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
pub(crate) fn certificate(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let issued =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let cert = sb.tmp.path().join("cert.pem");
    let key = sb.tmp.path().join("key.pem");
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

fn serve_tls(sb: &Sandbox, cert: &std::path::Path, key: &std::path::Path) -> Served {
    serve_tls_with(sb, cert, key, "--manual")
}

/// A TLS server with the operator token and `mode` (`--manual`, or `--interval SECS`).
pub(crate) fn serve_tls_with(
    sb: &Sandbox,
    cert: &std::path::Path,
    key: &std::path::Path,
    mode: &str,
) -> Served {
    let mode: Vec<&str> = mode.split(' ').collect();
    sb.serve(
        &[
            &mode[..],
            &[
                "--token",
                OPERATOR,
                "--tls-cert",
                cert.to_str().expect("path"),
                "--tls-key",
                key.to_str().expect("path"),
            ],
        ]
        .concat(),
    )
}

fn python_agent(served: &Served, cert: &std::path::Path, protocol: &str, agent: &str) {
    let (module, endpoint) = match protocol {
        "grpc" => ("grpc", format!("https://{}", served.grpc)),
        _ => ("http", format!("{}/v1/traces", served.http)),
    };
    let script = format!(
        r#"
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.{module}.trace_exporter import OTLPSpanExporter
provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint="{endpoint}")))
with provider.get_tracer("t").start_as_current_span("agent.registration", attributes={{"agent.languages": ["python"]}}):
    pass
provider.shutdown()
"#
    );
    let out = Command::new(common::python())
        .args(["-c", &script])
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", cert)
        // requests lets these override the exporter's certificate (machines often set them).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{OPERATOR}"),
        )
        .env("OTEL_RESOURCE_ATTRIBUTES", format!("agent.id={agent}"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn both_ports_speak_tls_to_real_clients_and_the_cli_trusts_its_server() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let (cert, key) = certificate(&sb);
    let served = serve_tls(&sb, &cert, &key);
    assert!(served.http.starts_with("https://"), "{}", served.http);

    // curl with the certificate as its CA; without it the certificate is not trusted, and
    // plain HTTP gets no answer.
    let health = |extra: &[&str], url: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(url)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = format!("{}/healthz", served.http);
    let ca = cert.to_str().expect("path");
    assert_eq!(health(&["--cacert", ca], &url), "200");
    assert_eq!(
        health(&[], &url),
        "000",
        "an untrusted certificate is refused"
    );
    let plain = url.replacen("https://", "http://", 1);
    assert_eq!(health(&[], &plain), "000", "plain HTTP on the TLS port");

    // The SDK's exporters, over gRPC (ALPN h2) and HTTP.
    python_agent(&served, &cert, "grpc", "over-grpc");
    python_agent(&served, &cert, "http", "over-http");

    // The CLI finds the server in its advert and trusts it by the certificate named there.
    let run = sb.run(&["--json", "--token", OPERATOR, "agents", "agent-status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("does not answer"), "{}", run.stderr);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let mut ids: Vec<&str> = status["data"]["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["over-grpc", "over-http"]);
}

#[test]
fn beyond_loopback_a_server_needs_a_token_and_tls() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    // Refused before anything listens.
    let run = sb.run(&["serve", "--grpc", "0.0.0.0:0", "--http", "127.0.0.1:0"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("refusing to listen on 0.0.0.0") && run.stderr.contains("a token"),
        "{}",
        run.stderr
    );
    let run = sb.run(&[
        "--token",
        OPERATOR,
        "serve",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "0.0.0.0:0",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("without TLS") && run.stderr.contains("--tls-cert"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["serve", "--tls-cert", "/nonexistent.pem", "--tls-key", "/x"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("cannot read the TLS certificate /nonexistent.pem"),
        "{}",
        run.stderr
    );
}

/// `agents run` beside a TLS server hands its agent the `https://` gRPC address and the
/// server's certificate, so an agent exporting over gRPC (as Gemini CLI does) is heard.
#[test]
fn an_agent_run_here_exports_to_a_tls_server_over_both_ports() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let (cert, key) = certificate(&sb);
    // Cycles as things happen (no periodic ones): the agent's registration assigns.
    let _served = serve_tls_with(&sb, &cert, &key, "--interval 0");
    let op = |args: &[&str]| sb.ok(&[&["--token", OPERATOR], args].concat());
    op(&["agents", "register-agent", "gemini-1"]);
    op(&["agents", "add-feature", "hello"]);
    let run = sb.run_env(
        &[
            "--token",
            OPERATOR,
            "agents",
            "run",
            "gemini-1",
            "--once",
            "--timeout",
            "60",
            "--profile",
            "gemini",
            "--",
            "bash",
            "-c",
            &common::telemetry_then_commit("hello.txt"),
        ],
        // requests lets these override the exporter's certificate (machines often set them).
        &[("REQUESTS_CA_BUNDLE", ""), ("CURL_CA_BUNDLE", "")],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let status = op(&["agents", "agent-status"]);
    let agent = status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent_id"] == "gemini-1"))
        .expect("gemini-1");
    assert_eq!(
        agent["telemetry"]["llm_requests"], 2,
        "{}",
        agent["telemetry"]
    );
}

/// A certificate file that cannot be used is named, with what to give instead, before
/// anything is sent.
#[test]
fn a_certificate_that_is_not_one_is_refused_with_what_to_give() {
    let sb = Sandbox::new("main");
    let not_pem = sb.tmp.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    for (file, why) in [
        (
            not_pem.to_str().expect("path"),
            "it holds no PEM certificate",
        ),
        ("/nonexistent/ca.pem", "No such file"),
    ] {
        let error = sb.fails(&[
            "--endpoint",
            "https://127.0.0.1:9",
            "--ca-cert",
            file,
            "agents",
            "agent-status",
        ]);
        assert!(
            error.contains(&format!("cannot use {file} as the server's certificate"))
                && error.contains(why)
                && error.contains("--tls-cert"),
            "{error}"
        );
    }
}
