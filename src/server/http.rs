//! The HTTP port: OTLP/HTTP `POST /v1/traces`, the JSON API and Prometheus metrics. The only
//! module that knows axum.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, Work};
use crate::changes::Subject;
use crate::credentials::Principal;
use crate::envelope::Envelope;
use crate::inflight::BodyError;
use crate::otlp::file::Format;
use crate::otlp::ingest::{ExportError, SinkError};
use crate::otlp::{self, Encoding};
use crate::registry::Origin;
use crate::status::{self, StatusOptions};
use crate::timetravel::{self, Point};

type Shared = Arc<State>;

pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: crate::conn::Gate,
    tls: Option<crate::tls::Acceptor>,
    state: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let protected = Router::new()
        .route("/v1/traces", post(traces))
        .route("/api/status", get(api_status))
        .route("/api/agents/{id}", get(api_agent))
        .route("/api/events", get(api_events))
        .route("/api/history", get(api_history))
        .route("/api/diff", get(api_diff))
        .route("/api/timeline", get(api_timeline))
        .route("/api/export", get(api_export))
        .route("/api/cycle", post(api_cycle))
        .route("/api/submit", post(api_submit))
        .route("/api/gc", post(api_gc))
        .route("/metrics", get(metrics))
        // Checked on the headers, before any body is read.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    let app = Router::new()
        .merge(protected)
        .route("/", get(dashboard))
        // Browsers ask for it on every page; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(healthz))
        // The compressed body may not exceed what the decompressed one may be.
        .layer(DefaultBodyLimit::max(otlp::MAX_HTTP_BODY))
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&state),
            name_server,
        ))
        .with_state(state);
    crate::conn::serve_http1(listener, gate, tls, app, shutdown).await;
    Ok(())
}

/// A query string read into `T`, or the envelope (400) saying what was wrong with it: an API
/// client gets JSON for every failure, not axum's plain text.
struct ApiQuery<T>(T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(e) => Err(envelope_or(
                "request",
                Err(format!(
                    "the query string could not be read: {}",
                    e.body_text()
                )),
                StatusCode::BAD_REQUEST,
            )),
        }
    }
}

/// The seed's envelope, as the CLI prints it with --json.
fn envelope(command: &str, result: Result<Value, String>) -> Response {
    envelope_or(command, result, StatusCode::NOT_FOUND)
}

/// The envelope, answering `failure` when `result` is an error.
fn envelope_or(command: &str, result: Result<Value, String>, failure: StatusCode) -> Response {
    let status = if result.is_ok() {
        StatusCode::OK
    } else {
        failure
    };
    let body = Envelope::api(command, result).to_value();
    (status, axum::Json(body)).into_response()
}

fn unauthorized(why: String) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(json!({"success": false, "errors": [why]})),
    )
        .into_response()
}

async fn require_token(
    Extract(state): Extract<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.principal(presented) {
        Ok(principal) => {
            // Reading is open to agents; changing what the coordinator does is the operator's.
            let operators_only = matches!(request.uri().path(), "/api/cycle" | "/api/gc");
            if operators_only && principal != Principal::Operator {
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"success": false, "errors": [
                        "an agent's token may not run cycles or collect garbage: use the operator token"
                    ]})),
                )
                    .into_response();
            }
            let mut request = request;
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(why) => unauthorized(why),
    }
}

/// Every answer names the server that gave it (see `advert::SERVER_HEADER`).
async fn name_server(Extract(state): Extract<Shared>, mut response: Response) -> Response {
    if let Ok(id) = HeaderValue::from_str(&state.server_id) {
        response
            .headers_mut()
            .insert(crate::advert::SERVER_HEADER, id);
    }
    response
}

/// The dashboard page, embedded: no other server, no CDN.
const DASHBOARD: &str = include_str!("dashboard.html");

#[derive(Deserialize)]
struct PageQuery {
    token: Option<String>,
}

/// The dashboard. A browser cannot send a header when it opens a page, so the token may come as
/// `?token=`; the page then sends it as a header to the API.
async fn dashboard(
    Extract(state): Extract<Shared>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let presented = match (&q.token, headers.get(header::AUTHORIZATION)) {
        (Some(t), _) => Some(format!("Bearer {t}")),
        (None, h) => h.and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    if let Err(why) = state.principal(presented.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            format!("{why}; open this page as /?token=TOKEN\n"),
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// 200 while spans can be stored; 503 with the reason once the log refuses writes.
async fn healthz(Extract(state): Extract<Shared>) -> Response {
    match state.metrics.log_failure.lock().clone() {
        // Spans are still stored, so the server is alive; but nothing is being placed or merged.
        None => match state.metrics.cycle_failure.lock().clone() {
            None => "ok\n".into_response(),
            Some(why) => format!(
                "ok: spans are stored; but the last coordination cycle failed ({}), so nothing is placed or merged until one succeeds\n",
                crate::render::one_line(&why)
            )
            .into_response(),
        },
        // Without the log's path: this answer needs no token.
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the coordination log could not be written ({why}); nothing more is accepted until spanfold restarts. {}, then restart\n",
                crate::store::remedy(&why)
            ),
        )
            .into_response(),
    }
}

async fn traces(
    Extract(state): Extract<Shared>,
    axum::Extension(principal): axum::Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoding = match Encoding::from_content_type(content_type) {
        Ok(e) => e,
        Err(e) => {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()).into_response();
        }
    };
    let fail = |status: StatusCode, grpc_code: i32, message: String| {
        (
            status,
            [(header::CONTENT_TYPE, encoding.content_type())],
            otlp::encode_error(encoding, grpc_code, &message),
        )
            .into_response()
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let content_encoding = content_encoding.map(str::to_owned);
    // The body counts against the budget of bodies in flight until it is decoded (see
    // `inflight`); the compressed body may not exceed what the decompressed one may be.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let (body, held) =
        match crate::inflight::read(body, declared, otlp::MAX_HTTP_BODY, &state.bodies).await {
            Ok(read) => read,
            Err(e) => {
                let (status, code) = match e {
                    BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 8),
                    BodyError::Busy => (StatusCode::SERVICE_UNAVAILABLE, 8),
                    BodyError::TooSlow(_) => (StatusCode::REQUEST_TIMEOUT, 14),
                    BodyError::Broken(_) => (StatusCode::BAD_REQUEST, 3),
                };
                let mut r = fail(status, code, e.to_string());
                if e == BodyError::Busy {
                    let delay = crate::inflight::RETRY_AFTER.as_secs().to_string();
                    if let Ok(v) = HeaderValue::from_str(&delay) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                return r;
            }
        };
    // Decompressing and decoding up to 20 MiB is CPU work: the ingest runs it off the async
    // workers.
    let decode = move || {
        let _held = held;
        otlp::decompress(content_encoding.as_deref(), &body)
            .and_then(|plain| otlp::decode_http(encoding, &plain))
    };
    match state.ingest.submit(Origin::Client, principal, decode).await {
        Ok(reply) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            otlp::encode_response(encoding, reply.rejected, &reply.message),
        )
            .into_response(),
        Err(ExportError::Decode(e)) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            // INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a body over the limit.
            let code = if e.http_status() == 413 { 8 } else { 3 };
            fail(status, code, e.to_string())
        }
        Err(ExportError::Sink(SinkError::Busy)) => {
            let mut r = fail(
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                "spanfold is busy writing earlier exports; retry after the delay".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(ExportError::Sink(SinkError::Unavailable(why))) => {
            fail(StatusCode::SERVICE_UNAVAILABLE, 14, why)
        }
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    agent: Option<String>,
    #[serde(default)]
    details: bool,
    /// A POINT (seq, RFC 3339 time, or -5m): the status as of then.
    at: Option<String>,
    /// At most this many features of each status (the dashboard's board).
    per_status: Option<usize>,
    /// Only features in these statuses, comma-separated.
    status: Option<String>,
    /// Refuse an `at` outside the log instead of answering with its nearest end.
    #[serde(default)]
    strict: bool,
}

async fn api_status(
    Extract(state): Extract<Shared>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Response {
    let statuses = match status::parse_statuses(q.status.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return envelope_or("agents agent-status", Err(e), StatusCode::BAD_REQUEST),
    };
    let options = StatusOptions {
        agent: q.agent,
        details: q.details,
        per_status: q.per_status,
        statuses,
    };
    let Some(at) = q.at else {
        let mut st = status::build(&state.view.read(), &options);
        if let Some(why) = state.metrics.cycle_failure.lock().clone() {
            st.health_notes.push(format!(
                "the last coordination cycle failed: {why}; nothing is placed or merged until one succeeds"
            ));
        }
        // Refusals happen at the door, before the log: only the server knows them, and says
        // so for the agents that had any (otherwise its status is the fold's, as the CLI's is).
        let refusals = state.metrics.refusals.lock();
        for a in &mut st.agents {
            a.rejected_spans = refusals.per_agent().get(&a.agent_id).copied();
        }
        drop(refusals);
        return envelope(
            "agents agent-status",
            serde_json::to_value(&st).map_err(|e| e.to_string()),
        );
    };
    let result = blocking(move || {
        let reader = &state.log;
        // The CLI's --at refuses a point outside the log; the dashboard's scrubber, which may
        // point left of the first event, is answered with the nearest end.
        let point = parse_point(&at)?;
        let now = crate::emit::now();
        let seq = match q.strict {
            true => point.resolve_at(reader, now).map(|(seq, _)| seq),
            false => point.resolve(reader, now),
        }
        .map_err(|e| e.to_string())?;
        let st = match state.scrubber.try_lock() {
            Some(mut scrubber) => status::build(
                scrubber.view_at(reader, seq).map_err(|e| e.to_string())?,
                &options,
            ),
            // Someone else is scrubbing: answer from a checkpoint rather than wait or take
            // their place.
            None => status::build(
                &timetravel::view_at(reader, seq).map_err(|e| e.to_string())?,
                &options,
            ),
        };
        serde_json::to_value(st).map_err(|e| e.to_string())
    })
    .await;
    envelope_or("agents agent-status", result, StatusCode::BAD_REQUEST)
}

fn parse_point(s: &str) -> Result<Point, String> {
    s.parse::<Point>().map_err(|e| e.to_string())
}

/// Runs log reads off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())?
}

#[derive(Deserialize)]
struct HistoryQuery {
    agent: Option<String>,
    feature: Option<String>,
}

async fn api_history(
    Extract(state): Extract<Shared>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Response {
    let subject = match (q.agent, q.feature) {
        (Some(a), None) => Subject::Agent(a),
        (None, Some(f)) => Subject::Feature(f),
        _ => {
            return envelope_or(
                "history",
                Err("give exactly one of agent=ID or feature=NAME".into()),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let reader = state.log.clone();
    let result = blocking(move || {
        let entries = timetravel::history(&reader, subject).map_err(|e| e.to_string())?;
        serde_json::to_value(entries).map_err(|e| e.to_string())
    })
    .await;
    envelope_or("history", result, StatusCode::BAD_REQUEST)
}

#[derive(Deserialize)]
struct DiffQuery {
    from: String,
    to: String,
}

async fn api_diff(Extract(state): Extract<Shared>, ApiQuery(q): ApiQuery<DiffQuery>) -> Response {
    let reader = state.log.clone();
    let result = blocking(move || {
        let now = crate::emit::now();
        let from = parse_point(&q.from)?
            .resolve(&reader, now)
            .map_err(|e| e.to_string())?;
        let to = parse_point(&q.to)?
            .resolve(&reader, now)
            .map_err(|e| e.to_string())?;
        if let Some(why) = timetravel::reversed(from, to) {
            return Err(why);
        }
        let report = timetravel::diff(&reader, from, to).map_err(|e| e.to_string())?;
        serde_json::to_value(report).map_err(|e| e.to_string())
    })
    .await;
    envelope_or("diff", result, StatusCode::BAD_REQUEST)
}

#[derive(Deserialize)]
struct TimelineQuery {
    /// A POINT; default: the beginning of the log.
    from: Option<String>,
    /// A POINT; default: now.
    to: Option<String>,
    /// The most time steps the range is drawn in (bounds the payload).
    resolution: Option<usize>,
}

async fn api_timeline(
    Extract(state): Extract<Shared>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Response {
    let result = blocking(move || {
        let reader = &state.log;
        let now = crate::emit::now();
        let point = |p: Option<&str>, default: u64| -> Result<u64, String> {
            match p {
                None => Ok(default),
                Some(p) => parse_point(p)?
                    .resolve(reader, now)
                    .map_err(|e| e.to_string()),
            }
        };
        let from = point(q.from.as_deref(), 0)?;
        let to = point(q.to.as_deref(), u64::MAX)?;
        let resolution = q.resolution.unwrap_or(crate::timeline::DEFAULT_RESOLUTION);
        // From the start of the log, the kept timeline is extended rather than folded again
        // (unless another request is extending it right now).
        let live = (from == 0)
            .then(|| state.live_timeline.try_lock())
            .flatten();
        let timeline = match live {
            Some(mut live) => live.timeline(reader, to, resolution),
            None => timetravel::timeline(reader, from, to, resolution),
        }
        .map_err(|e| e.to_string())?;
        serde_json::to_value(timeline).map_err(|e| e.to_string())
    })
    .await;
    envelope_or("timeline", result, StatusCode::BAD_REQUEST)
}

#[derive(Deserialize)]
struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    /// json (default) or protobuf.
    format: Option<String>,
}

/// The log as OTLP/JSON lines, streamed as it is read.
async fn api_export(
    Extract(state): Extract<Shared>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Response {
    let reader = state.log.clone();
    let range = (|| {
        let from = q.from.as_deref().map(parse_point).transpose()?;
        let to = q.to.as_deref().map(parse_point).transpose()?;
        timetravel::range(&reader, from, to, crate::emit::now()).map_err(|e| e.to_string())
    })();
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => return envelope_or("export", Err(e), StatusCode::BAD_REQUEST),
    };
    let (format, content_type) = match q.format.as_deref() {
        None | Some("json") => (Format::Json, "application/x-ndjson"),
        Some("protobuf") => (Format::Protobuf, "application/octet-stream"),
        Some(other) => {
            return envelope_or(
                "export",
                Err(format!("unknown format {other:?}; use json or protobuf")),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let sink = ChannelWriter(tx.clone());
        if let Err(e) = timetravel::export(&reader, from, to, format, sink) {
            // The client sees a cut-off body and an error instead of a clean end.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}

/// A blocking writer feeding a streamed response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn api_agent(Extract(state): Extract<Shared>, Path(id): Path<String>) -> Response {
    let options = StatusOptions {
        agent: Some(id.clone()),
        details: true,
        ..StatusOptions::default()
    };
    let st = status::build(&state.view.read(), &options);
    // The agent, and the features it holds with every reason they carry (conflict paths, a
    // gate's output, why a merge waits).
    let result = match st.agents.into_iter().next() {
        Some(agent) => serde_json::to_value(agent)
            .and_then(|mut doc| {
                doc["features"] = serde_json::to_value(&st.features)?;
                Ok(doc)
            })
            .map_err(|e| e.to_string()),
        None => Err(format!("agent {id} is not registered")),
    };
    envelope("agents agent-status", result)
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// Events from a sequence number, one JSON object per line.
async fn api_events(
    Extract(state): Extract<Shared>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(10_000).min(100_000);
    let from = q.from.max(1);
    let reader = state.log.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let mut n = 0;
        for batch in reader.batches_from(from) {
            let batch = batch.map_err(|e| e.to_string())?;
            for ev in batch.events().filter(|e| e.seq >= from) {
                if n == limit {
                    return Ok(out);
                }
                out.push_str(&status::event_json(&ev).to_string());
                out.push('\n');
                n += 1;
            }
        }
        Ok::<_, String>(out)
    })
    .await;
    match lines {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn api_cycle(Extract(state): Extract<Shared>) -> Response {
    let result = state
        .ingest
        .cycle()
        .await
        .and_then(|report| serde_json::to_value(report).map_err(|e| e.to_string()));
    // A cycle that could not run is the server's failure, not a missing page.
    envelope_or(
        "agents coordination-cycle",
        result,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

/// A person's command from the CLI: its spans (an OTLP/protobuf export) validated, checked
/// against the fold and appended all together, or refused with nothing written.
async fn api_submit(
    Extract(state): Extract<Shared>,
    axum::Extension(principal): axum::Extension<Principal>,
    body: Bytes,
) -> Response {
    let spans = match otlp::decode_http(Encoding::Protobuf, &body) {
        Ok(mut decoded) => {
            if let Principal::Agent(agent) = &principal {
                let registry = crate::registry::Registry::builtin();
                let refused = crate::credentials::retain_agents_own(
                    &mut decoded.resource_spans,
                    agent,
                    registry,
                );
                if !refused.is_empty() {
                    let why = refused.iter().map(ToString::to_string).collect::<Vec<_>>();
                    return envelope_or("submit", Err(why.join("; ")), StatusCode::FORBIDDEN);
                }
            }
            decoded
                .resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .collect::<Vec<_>>()
        }
        Err(e) => {
            return envelope_or(
                "submit",
                Err(format!("the body is not an OTLP/protobuf export: {e}")),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let result = state
        .ingest
        .run_as(Work::Wakes, move |coord| coord.submit_client(spans))
        .await
        .map(|done| {
            let metrics = &state.metrics;
            metrics
                .spans_accepted
                .fetch_add(done.accepted as u64, Ordering::Relaxed);
            json!({"accepted": done.accepted, "duplicates": done.duplicates})
        });
    envelope_or("submit", result, StatusCode::UNPROCESSABLE_ENTITY)
}

#[derive(Deserialize)]
struct GcQuery {
    #[serde(default)]
    older_than_secs: u64,
    #[serde(default)]
    force: bool,
}

async fn api_gc(Extract(state): Extract<Shared>, ApiQuery(q): ApiQuery<GcQuery>) -> Response {
    let older = std::time::Duration::from_secs(q.older_than_secs);
    let result = state
        .ingest
        .run(move |coord| coord.gc(older, q.force))
        .await
        .and_then(|report| serde_json::to_value(report).map_err(|e| e.to_string()));
    envelope_or("gc", result, StatusCode::INTERNAL_SERVER_ERROR)
}

async fn metrics(Extract(state): Extract<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::prometheus::text(&state),
    )
        .into_response()
}
