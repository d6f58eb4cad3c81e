//! The HTTP port in-process: `http::router` over a real `State` on a real log in a temporary
//! directory, called through `tower::ServiceExt::oneshot` with no socket. What a client sees —
//! status, headers, body — is asserted as it would read it; the integration tests (`tests/it`)
//! run the same routes through the real binary.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::http::router;
use super::port::Job;
use super::{RunError, State};
use crate::coordinator::Coordinator;

const OPERATOR: &str = "operator-secret";
/// An agent token the log binds to agent `a1` (see `Fixture::new`).
const AGENT_TOKEN: &str = "sfa_0000000000000000000000000000000000000000000000000000000000000001";

/// A server's state on a fresh log, and its writer's queue (no writer serves it unless a test
/// starts one).
struct Fixture {
    state: Arc<State>,
    queue: Option<std::sync::mpsc::Receiver<Job>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut coord = Coordinator::create(dir.path()).expect("a new log");
        let hash = crate::credentials::hash(AGENT_TOKEN);
        let issued = crate::emit::token_issued(
            &mut crate::emit::IdGen::default(),
            crate::emit::now(),
            "a1",
            &hash,
        );
        coord
            .submit_client(vec![issued])
            .expect("the token is recorded");
        let (state, queue) = State::new(&coord, Some(OPERATOR.into()));
        Fixture {
            state: Arc::new(state),
            queue: Some(queue),
            _dir: dir,
        }
    }

    /// The answer to `method uri` with `token` (if any) as a bearer token, and `body`.
    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body)).expect("a request");
        let response = router(Arc::clone(&self.state))
            .oneshot(request)
            .await
            .expect("the router answers every request");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a whole body");
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call("GET", uri, token, Vec::new()).await
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The envelope, its timestamp checked and taken out (the rest is compared whole).
    fn envelope(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        let mut doc: Value = serde_json::from_str(&self.body).expect("a JSON body");
        let stamp = doc
            .as_object_mut()
            .and_then(|o| o.remove("timestamp"))
            .expect("a timestamp");
        assert!(stamp.as_str().is_some_and(|t| t.ends_with('Z')), "{stamp}");
        doc
    }
}

/// The envelope of a failed `command`, without its timestamp.
fn failed(command: &str, error: &str) -> Value {
    json!({
        "command": command,
        "success": false,
        "data": null,
        "errors": [error],
        "warnings": [],
        "metadata": {"spanfold_version": env!("CARGO_PKG_VERSION")},
    })
}

#[tokio::test]
async fn healthz_needs_no_token_and_every_answer_names_the_server() {
    let f = Fixture::new();
    let a = f.get("/healthz", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "ok\n");
    assert_eq!(
        a.header("spanfold-server"),
        Some(f.state.server_id.as_str())
    );
    let refused = f.get("/api/status", None).await;
    assert_eq!(
        refused.header("spanfold-server"),
        Some(f.state.server_id.as_str())
    );
}

#[tokio::test]
async fn healthz_says_503_once_the_log_refuses_writes() {
    let f = Fixture::new();
    *f.state.metrics.log_failure.lock() = Some("No space left on device".into());
    let a = f.get("/healthz", None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.body,
        "the coordination log could not be written (No space left on device); nothing more is accepted until spanfold restarts. Free disk space, then restart\n"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_with_the_verdict_only() {
    let f = Fixture::new();
    let a = f.get("/api/status", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.body,
        r#"{"errors":["missing authorization: send the header `authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>)"],"success":false}"#
    );
    let wrong = f.get("/metrics", Some("guess")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        wrong.body,
        r#"{"errors":["wrong authorization token"],"success":false}"#
    );
}

#[tokio::test]
async fn the_status_is_the_envelope_of_the_fold() {
    let f = Fixture::new();
    let a = f.get("/api/status", Some(OPERATOR)).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.envelope();
    assert_eq!(doc["command"], "agents agent-status");
    assert_eq!(doc["success"], true);
    assert_eq!(doc["errors"], json!([]));
    assert_eq!(doc["warnings"], json!([]));
    assert_eq!(
        doc["metadata"],
        json!({"spanfold_version": env!("CARGO_PKG_VERSION")})
    );
    assert!(doc["data"]["agents"].is_array(), "{doc}");
    // Reading is open to agents.
    let agent = f.get("/api/status", Some(AGENT_TOKEN)).await;
    assert_eq!(agent.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_agent_is_404() {
    let f = Fixture::new();
    let a = f.get("/api/agents/ghost", Some(OPERATOR)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.envelope(),
        failed("agents agent-status", "agent ghost is not registered")
    );
}

#[tokio::test]
async fn a_query_string_that_cannot_be_read_is_400_in_the_envelope() {
    let f = Fixture::new();
    let a = f.get("/api/status?details=maybe", Some(OPERATOR)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.envelope(),
        failed(
            "request",
            "the query string could not be read: Failed to deserialize query string: details: provided string was not `true` or `false`"
        )
    );
    let unknown = f.get("/api/status?status=sideways", Some(OPERATOR)).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.envelope()["command"], "agents agent-status");
    let neither = f.get("/api/history", Some(OPERATOR)).await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        neither.envelope(),
        failed("history", "give exactly one of agent=ID or feature=NAME")
    );
    let at = f.get("/api/status?at=yesterday-ish", Some(OPERATOR)).await;
    assert_eq!(at.status, StatusCode::BAD_REQUEST);
    assert_eq!(at.envelope()["command"], "agents agent-status");
    let format = f.get("/api/export?format=xml", Some(OPERATOR)).await;
    assert_eq!(format.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        format.envelope(),
        failed("export", r#"unknown format "xml"; use json or protobuf"#)
    );
}

#[tokio::test]
async fn an_agent_may_not_run_a_cycle() {
    let f = Fixture::new();
    for path in ["/api/cycle", "/api/gc"] {
        let a = f.call("POST", path, Some(AGENT_TOKEN), Vec::new()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(a.header("www-authenticate"), None);
        assert_eq!(
            a.body,
            r#"{"errors":["an agent's token may not run cycles or collect garbage: use the operator token"],"success":false}"#
        );
    }
}

#[tokio::test]
async fn the_events_are_lines_of_json() {
    let f = Fixture::new();
    let a = f.get("/api/events?from=1", Some(OPERATOR)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = a
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "the token's event: {}", a.body);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = Fixture::new();
    let a = f.get("/metrics", Some(OPERATOR)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("text/plain; version=0.0.4"));
    assert!(
        a.body
            .contains("# TYPE spanfold_exports_total counter\nspanfold_exports_total 0\n"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn a_cycle_or_gc_the_writer_cannot_take_is_500() {
    let mut f = Fixture::new();
    // No writer: the queue is closed, and the work is not taken.
    drop(f.queue.take());
    let busy = RunError::Busy.to_string();
    let gc = f.call("POST", "/api/gc", Some(OPERATOR), Vec::new()).await;
    assert_eq!(gc.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(gc.envelope(), failed("gc", &busy));
    let cycle = f
        .call("POST", "/api/cycle", Some(OPERATOR), Vec::new())
        .await;
    assert_eq!(cycle.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(cycle.envelope(), failed("agents coordination-cycle", &busy));
}

#[tokio::test]
async fn a_submission_not_applied_is_422_and_one_not_an_export_400() {
    let mut f = Fixture::new();
    let junk = f
        .call(
            "POST",
            "/api/submit",
            Some(OPERATOR),
            b"\xff\xff\xff".to_vec(),
        )
        .await;
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    let doc = junk.envelope();
    assert_eq!(doc["command"], "submit");
    let error = doc["errors"][0].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the body is not an OTLP/protobuf export: "),
        "{error}"
    );
    // A writer that takes the work and stops before answering.
    let queue = f.queue.take().expect("the queue");
    let writer = std::thread::spawn(move || drop(queue.recv()));
    let empty = f
        .call("POST", "/api/submit", Some(OPERATOR), Vec::new())
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        empty.envelope(),
        failed("submit", &RunError::Stopped.to_string())
    );
    writer.join().expect("the stand-in writer");
}

#[tokio::test]
async fn an_agent_may_not_submit_another_agents_spans() {
    let f = Fixture::new();
    let other = crate::emit::token_issued(
        &mut crate::emit::IdGen::default(),
        crate::emit::now(),
        "a2",
        &crate::credentials::hash(AGENT_TOKEN),
    );
    let body =
        crate::otlp::encode_request(&[crate::emit::wrap(crate::emit::CLI_SERVICE, vec![other])]);
    let a = f.call("POST", "/api/submit", Some(AGENT_TOKEN), body).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let doc = a.envelope();
    assert_eq!(doc["command"], "submit");
    assert_eq!(doc["success"], false);
    assert_eq!(doc["errors"].as_array().map(Vec::len), Some(1), "{doc}");
    let error = doc["errors"][0].as_str().unwrap_or_default();
    assert!(
        error.starts_with("span agent.token_issued (trace ")
            && error.ends_with(
                "it is the operator's to send, and the token is agent \"a1\"'s: send it with the operator token"
            ),
        "{error}"
    );
}

/// Each kind of failure and its status; and the three forms a failure's body takes.
#[test]
fn each_kind_answers_with_its_status_in_its_form() {
    use super::api_error::{ApiError, Kind};
    use axum::response::IntoResponse;
    for (kind, status) in [
        (Kind::BadRequest, StatusCode::BAD_REQUEST),
        (Kind::Unauthorized, StatusCode::UNAUTHORIZED),
        (Kind::Forbidden, StatusCode::FORBIDDEN),
        (Kind::NotFound, StatusCode::NOT_FOUND),
        (Kind::Refused, StatusCode::UNPROCESSABLE_ENTITY),
        (Kind::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        assert_eq!(kind.status(), status);
        let enveloped = ApiError::new(kind, "why").of("gc").into_response();
        assert_eq!(enveloped.status(), status);
        let challenge = enveloped.headers().get(header::WWW_AUTHENTICATE);
        assert_eq!(challenge.is_some(), kind == Kind::Unauthorized, "{kind:?}");
    }
    let text = ApiError::internal("the log could not be read")
        .in_text()
        .into_response();
    assert_eq!(
        text.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"text/plain; charset=utf-8"[..])
    );
    assert_eq!(ApiError::internal("x").to_string(), "x");
}

#[test]
fn a_port_bound_to_every_address_is_advertised_on_loopback() {
    let at = |s: &str| super::reachable(s.parse().expect("an address")).to_string();
    assert_eq!(at("0.0.0.0:4318"), "127.0.0.1:4318");
    assert_eq!(at("[::]:4317"), "[::1]:4317");
    assert_eq!(at("10.0.0.7:4318"), "10.0.0.7:4318");
}
