//! The OTLP/HTTP receiver, `POST /v1/traces`, `/v1/logs` and `/v1/metrics`: the body read against the budget of bodies in
//! flight (`inflight`), decoded and stored through the ingest, and answered as OTLP answers —
//! an `ExportTraceServiceResponse`, or a `Status` in the request's encoding — never the
//! API's envelope, since OTLP exporters are its clients.

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::State;
use crate::credentials::Principal;
use crate::inflight::BodyError;
use crate::otlp::ingest::{ExportError, SinkError};
use crate::otlp::{self, Encoding, Signal};
use crate::registry::Origin;

/// gRPC status codes an OTLP `Status` carries (OTLP/HTTP reuses them).
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

pub(super) async fn traces(
    state: Extract<Arc<State>>,
    principal: axum::Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    export(Signal::Traces, state, principal, headers, body).await
}

pub(super) async fn logs(
    state: Extract<Arc<State>>,
    principal: axum::Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    export(Signal::Logs, state, principal, headers, body).await
}

pub(super) async fn metrics(
    state: Extract<Arc<State>>,
    principal: axum::Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    export(Signal::Metrics, state, principal, headers, body).await
}

/// One export of `signal`, read, decoded, stored and answered.
async fn export(
    signal: Signal,
    Extract(state): Extract<Arc<State>>,
    axum::Extension(principal): axum::Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let encoding = match Encoding::from_content_type(text(header::CONTENT_TYPE).unwrap_or("")) {
        Ok(e) => e,
        Err(e) => {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()).into_response();
        }
    };
    let content_encoding = text(header::CONTENT_ENCODING).map(str::to_owned);
    // The body counts against the budget of bodies in flight until it is decoded (see
    // `inflight`); the compressed body may not exceed what the decompressed one may be.
    let declared = text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let (body, held) =
        match crate::inflight::read(body, declared, otlp::MAX_HTTP_BODY, &state.bodies).await {
            Ok(read) => read,
            Err(e) => return body_refused(encoding, e),
        };
    // Decompressing and decoding up to 20 MiB is CPU work: the ingest runs it off the async
    // workers.
    let decode = move || {
        let _held = held;
        otlp::decompress(content_encoding.as_deref(), &body)
            .and_then(|plain| otlp::decode_signal(encoding, signal, &plain))
    };
    match state
        .ingest
        .submit(Origin::Client, principal, signal, decode)
        .await
    {
        Ok(reply) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            otlp::encode_response(encoding, signal, reply.rejected, &reply.message),
        )
            .into_response(),
        Err(e) => export_failed(encoding, e),
    }
}

/// An OTLP `Status` in the request's encoding.
fn failure(encoding: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        otlp::encode_error(encoding, grpc_code, &message),
    )
        .into_response()
}

/// A body that was not read whole: too large, too slow, broken, or no room for it now.
fn body_refused(encoding: Encoding, e: BodyError) -> Response {
    let (status, code) = match e {
        BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED),
        BodyError::Busy => (StatusCode::SERVICE_UNAVAILABLE, RESOURCE_EXHAUSTED),
        BodyError::TooSlow(_) => (StatusCode::REQUEST_TIMEOUT, UNAVAILABLE),
        BodyError::Broken(_) => (StatusCode::BAD_REQUEST, INVALID_ARGUMENT),
    };
    let mut r = failure(encoding, status, code, e.to_string());
    if e == BodyError::Busy {
        let delay = crate::inflight::RETRY_AFTER.as_secs().to_string();
        if let Ok(v) = HeaderValue::from_str(&delay) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// An export read whole but not stored: not decodable, or the writer could not take it.
fn export_failed(encoding: Encoding, e: ExportError) -> Response {
    match e {
        ExportError::Decode(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let code = if e.http_status() == 413 {
                RESOURCE_EXHAUSTED
            } else {
                INVALID_ARGUMENT
            };
            failure(encoding, status, code, e.to_string())
        }
        ExportError::Sink(SinkError::Busy) => {
            let mut r = failure(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "spanfold is busy writing earlier exports; retry after the delay".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        ExportError::Sink(SinkError::Unavailable(why)) => {
            failure(encoding, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, why)
        }
    }
}
