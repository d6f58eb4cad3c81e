//! The JSON API on the present: the status, an agent, the events, and what an operator or a
//! person's command asks of the coordinator (a cycle, gc, spans to submit). What reads the past
//! (`?at=`, history, diff, timeline, export) is `api_past`; how failures answer is `api_error`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_error::{Answer, ApiError, answer, to_json};
use super::{State, Work, api_past};
use crate::credentials::Principal;
use crate::otlp::{self, Encoding};
use crate::review::ReviewError;
use crate::status::{self, StatusOptions};

/// A query string read into `T`, or the envelope (400) saying what was wrong with it: an API
/// client gets JSON for every failure, not axum's plain text.
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            // Before the handler runs, so no command is known yet: the envelope says "request".
            Err(e) => Err(ApiError::bad_request(format!(
                "the query string could not be read: {}",
                e.body_text()
            ))
            .of("request")),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StatusQuery {
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

pub(super) async fn status(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Answer {
    answer("agents agent-status", status_of(state, q).await)
}

async fn status_of(state: Arc<State>, q: StatusQuery) -> Result<Value, ApiError> {
    let statuses =
        status::parse_statuses(q.status.as_deref().unwrap_or("")).map_err(ApiError::bad_request)?;
    let options = StatusOptions {
        agent: q.agent,
        details: q.details,
        per_status: q.per_status,
        statuses,
    };
    match q.at {
        None => live_status(&state, &options),
        Some(at) => api_past::status_at(state, at, q.strict, options).await,
    }
}

/// The status now: the fold's, with what only the server knows.
fn live_status(state: &State, options: &StatusOptions) -> Result<Value, ApiError> {
    let mut st = status::build(&state.view.read(), options);
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
    to_json(&st)
}

pub(super) async fn agent(Extract(state): Extract<Arc<State>>, Path(id): Path<String>) -> Answer {
    let options = StatusOptions {
        agent: Some(id.clone()),
        details: true,
        ..StatusOptions::default()
    };
    let st = status::build(&state.view.read(), &options);
    // The agent, and the features it holds with every reason they carry (conflict paths, a
    // gate's output, why a merge waits).
    let result = match st.agents.into_iter().next() {
        Some(agent) => to_json(agent).and_then(|mut doc| {
            doc["features"] = to_json(&st.features)?;
            Ok(doc)
        }),
        None => Err(ApiError::not_found(format!("agent {id} is not registered"))),
    };
    answer("agents agent-status", result)
}

#[derive(Deserialize)]
pub(super) struct ChangesQuery {
    #[serde(default)]
    diff: bool,
}

/// What a feature's branch would bring to the base branch (`agents show-feature`'s answer): the
/// dashboard shows its diffstat.
pub(super) async fn feature_changes(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Answer {
    let result = async {
        crate::names::feature_name(&name).map_err(ApiError::bad_request)?;
        let st = status::build(&state.view.read(), &StatusOptions::default());
        // git runs as a process: off the async workers.
        let changes =
            tokio::task::spawn_blocking(move || crate::review::feature_changes(&st, &name, q.diff))
                .await
                .map_err(ApiError::internal)?;
        match changes {
            Ok(c) => to_json(c),
            Err(e @ ReviewError::UnknownFeature(_)) => Err(ApiError::not_found(e)),
            Err(
                e @ (ReviewError::NoBranch(_)
                | ReviewError::NotSetUp
                | ReviewError::BranchGone { .. }),
            ) => Err(ApiError::refused(e)),
            Err(e) => Err(ApiError::internal(e)),
        }
    };
    answer("agents show-feature", result.await)
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// Events from a sequence number, one JSON object per line; a failure is said in text, as the
/// answer is not one JSON document.
pub(super) async fn events(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(10_000).min(100_000);
    let from = q.from.max(1);
    let reader = state.log.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let mut n = 0;
        for batch in reader.batches_from(from) {
            let batch = batch.map_err(ApiError::internal)?;
            for ev in batch.events().filter(|e| e.seq >= from) {
                if n == limit {
                    return Ok(out);
                }
                out.push_str(&status::event_json(&ev).to_string());
                out.push('\n');
                n += 1;
            }
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)
    .flatten()
    .map_err(ApiError::in_text)?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}

/// Who this server is and where its other port listens: an agent launched on another host
/// sends its gRPC telemetry to that port on the host it reached this one by.
pub(super) async fn server(Extract(state): Extract<Arc<State>>) -> Answer {
    let data = json!({
        "server_id": state.server_id,
        "version": env!("CARGO_PKG_VERSION"),
        "grpc_port": state.grpc_port,
        "repo": state.ingest.repo.as_deref(),
    });
    answer("server", Ok(data))
}

/// A cycle now. One that could not run (the writer busy or stopped, or the cycle failed) is the
/// server's failure, not a missing page.
pub(super) async fn cycle(Extract(state): Extract<Arc<State>>) -> Answer {
    let result = state
        .ingest
        .cycle()
        .await
        .map_err(ApiError::internal)
        .and_then(to_json);
    answer("agents coordination-cycle", result)
}

/// A person's command from the CLI: its spans (an OTLP/protobuf export) validated, checked
/// against the fold and appended all together, or refused with nothing written.
pub(super) async fn submit(
    Extract(state): Extract<Arc<State>>,
    axum::Extension(principal): axum::Extension<Principal>,
    body: Bytes,
) -> Answer {
    answer("submit", submitted(&state, &principal, &body).await)
}

async fn submitted(
    state: &Arc<State>,
    principal: &Principal,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut decoded = otlp::decode_http(Encoding::Protobuf, body).map_err(|e| {
        ApiError::bad_request(format!("the body is not an OTLP/protobuf export: {e}"))
    })?;
    if let Principal::Agent(agent) = principal {
        let registry = crate::registry::Registry::builtin();
        let refused =
            crate::credentials::retain_agents_own(&mut decoded.resource_spans, agent, registry);
        if !refused.is_empty() {
            let why = refused.iter().map(ToString::to_string).collect::<Vec<_>>();
            return Err(ApiError::forbidden(why.join("; ")));
        }
    }
    let spans = decoded
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect::<Vec<_>>();
    // Whether the coordinator refused the spans or the writer could not take them, nothing was
    // written: the command was not applied (and the CLI says why).
    let done = state
        .ingest
        .run_as(Work::Wakes, move |coord| coord.submit_client(spans))
        .await
        .map_err(ApiError::refused)?;
    state
        .metrics
        .spans_accepted
        .fetch_add(done.accepted as u64, Ordering::Relaxed);
    Ok(json!({"accepted": done.accepted, "duplicates": done.duplicates}))
}

#[derive(Deserialize)]
pub(super) struct GcQuery {
    #[serde(default)]
    older_than_secs: u64,
    #[serde(default)]
    force: bool,
}

/// Garbage collection now; like a cycle, one that could not run is the server's failure.
pub(super) async fn gc(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<GcQuery>,
) -> Answer {
    let older = std::time::Duration::from_secs(q.older_than_secs);
    let result = state
        .ingest
        .run(move |coord| coord.gc(older, q.force))
        .await
        .map_err(ApiError::internal)
        .and_then(to_json);
    answer("gc", result)
}
