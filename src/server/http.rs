//! The HTTP port's front: the router (which path goes to which handler, behind which checks),
//! the token check, the `spanfold-server` header on every answer, and the pages outside the
//! JSON API (the dashboard, `/healthz`, `/metrics`). The OTLP/HTTP receiver is `otlp_http`, the
//! JSON API `api` and `api_past`, its failures `api_error`; only these files know axum.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::api_error::ApiError;
use super::{State, api, api_past, otlp_http};
use crate::credentials::Principal;
use crate::otlp;

type Shared = Arc<State>;

pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: crate::conn::Gate,
    tls: Option<crate::tls::Acceptor>,
    state: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve_http1(listener, gate, tls, router(state), shutdown).await;
    Ok(())
}

/// Every route of the HTTP port, over `state` alone: no socket, so that tests can call it
/// in-process.
pub fn router(state: Shared) -> Router {
    let protected = Router::new()
        .route("/v1/traces", post(otlp_http::traces))
        .route("/v1/logs", post(otlp_http::logs))
        .route("/v1/metrics", post(otlp_http::metrics))
        .route("/api/status", get(api::status))
        .route("/api/agents/{id}", get(api::agent))
        .route("/api/features/{name}/changes", get(api::feature_changes))
        .route("/api/events", get(api::events))
        .route("/api/history", get(api_past::history))
        .route("/api/diff", get(api_past::diff))
        .route("/api/usage", get(api_past::usage))
        .route("/api/timeline", get(api_past::timeline))
        .route("/api/export", get(api_past::export))
        .route("/api/server", get(api::server))
        .route("/api/cycle", post(api::cycle))
        .route("/api/submit", post(api::submit))
        .route("/api/gc", post(api::gc))
        .route("/metrics", get(metrics))
        // Checked on the headers, before any body is read.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    Router::new()
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
        .with_state(state)
}

/// Who is speaking, from the `authorization` header; the request goes on with the
/// [`Principal`] in its extensions, or is answered 401 (no token, or an unknown one) or 403.
async fn require_token(
    Extract(state): Extract<Shared>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.principal(presented) {
        Ok(principal) => principal,
        Err(why) => return ApiError::unauthorized(why).into_response(),
    };
    // Reading is open to agents; changing what the coordinator does is the operator's.
    let operators_only = matches!(request.uri().path(), "/api/cycle" | "/api/gc");
    if operators_only && principal != Principal::Operator {
        return ApiError::forbidden(
            "an agent's token may not run cycles or collect garbage: use the operator token",
        )
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
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

async fn metrics(Extract(state): Extract<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::prometheus::text(&state),
    )
        .into_response()
}
