//! The OTLP/gRPC services — traces, logs and metrics — (server) and an exporter to an
//! upstream OTLP/gRPC endpoint.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::grpc_body::Metered;
use super::ingest::{Authenticate, ExportError, ExportSink, SinkError};
use super::{DecodeError, MAX_GRPC_MESSAGE, Signal, response, to_proto};
use crate::credentials::Principal;
use crate::model::ResourceSpans;

/// The OTLP services (traces, logs, metrics), written out by hand rather than generated: the
/// message arrives as bytes (already decompressed by tonic, and within the size limit) and is
/// decoded straight into the model off the async workers, without prost's intermediate
/// structs. One service answers the three paths, so that one port serves every signal.
#[derive(Clone)]
struct OtlpServer<S> {
    sink: S,
}

impl<S> tonic::server::NamedService for OtlpServer<S> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<S, B> tower::Service<http::Request<B>> for OtlpServer<S>
where
    S: ExportSink,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let signal = [Signal::Traces, Signal::Logs, Signal::Metrics]
            .into_iter()
            .find(|s| s.grpc_path() == path);
        let Some(signal) = signal else {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        };
        let method = ExportMethod {
            sink: self.sink.clone(),
            signal,
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_GRPC_MESSAGE);
            Ok(grpc.unary(method, request).await)
        })
    }
}

struct ExportMethod<S> {
    sink: S,
    signal: Signal,
}

impl<S: ExportSink> tonic::server::UnaryService<Bytes> for ExportMethod<S> {
    type Response = Vec<u8>;
    type Future = tonic::codegen::BoxFuture<Response<Vec<u8>>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (sink, signal) = (self.sink.clone(), self.signal);
        // Put there by the interceptor, from the headers; a request without it is refused.
        let principal = request.extensions().get::<Principal>().cloned();
        Box::pin(async move {
            let Some(principal) = principal else {
                return Err(Status::unauthenticated("no credentials were checked"));
            };
            let body = request.into_inner();
            match sink.export(body, signal, principal).await {
                Ok(reply) => Ok(Response::new(
                    response(reply.rejected, &reply.message).encode_to_vec(),
                )),
                Err(ExportError::Decode(
                    e @ (DecodeError::TooManySpans | DecodeError::TooManyItems),
                )) => Err(Status::resource_exhausted(e.to_string())),
                Err(ExportError::Decode(e)) => Err(Status::invalid_argument(format!(
                    "the export is not a valid OTLP {}: {e}",
                    signal.request()
                ))),
                Err(ExportError::Sink(SinkError::Busy)) => Err(Status::with_error_details(
                    tonic::Code::Unavailable,
                    "spanfold is busy writing earlier exports; retry after the delay",
                    ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                )),
                Err(ExportError::Sink(SinkError::Unavailable(why))) => {
                    Err(Status::unavailable(why))
                }
            }
        })
    }
}

/// Serves the TraceService on `listener` until `shutdown` completes; in-flight exports are
/// answered before it returns.
pub async fn serve<S: ExportSink>(
    listener: tokio::net::TcpListener,
    gate: crate::conn::Gate,
    tls: Option<crate::tls::Acceptor>,
    bodies: crate::inflight::Budget,
    sink: S,
    authenticate: Authenticate,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // The token is checked on the headers, before the message is read and decoded.
    let check = move |mut request: Request<()>| -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let principal = authenticate(presented).map_err(Status::unauthenticated)?;
        request.extensions_mut().insert(principal);
        Ok(request)
    };
    let service = tonic::service::interceptor::InterceptedService::new(OtlpServer { sink }, check);
    let service = tower::ServiceBuilder::new()
        .map_response(otlp_status_codes)
        .layer_fn(|inner| Deadline { inner })
        // Every message's bytes count against the budget of bodies in flight (see `grpc_body`).
        .map_request(move |request: http::Request<hyper::body::Incoming>| {
            request.map(|body| tonic::body::Body::new(Metered::new(body, &bodies)))
        })
        .map_response(
            |response: http::Response<
                tonic::service::interceptor::ResponseBody<tonic::body::Body>,
            >| response.map(tonic::body::Body::new),
        )
        .service(service);
    // Connections come through the gate shared with the HTTP port: bounded, closed when idle,
    // accept errors backed off (see `conn`).
    crate::conn::serve_h2(listener, gate, tls, service, shutdown).await;
    Ok(())
}

/// Answers DEADLINE_EXCEEDED once a call's `grpc-timeout` has passed, as gRPC servers do
/// (tonic's own server said CANCELLED, which a client reads as its own doing).
#[derive(Clone)]
struct Deadline<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Some(deadline) = deadline else {
                return answer.await;
            };
            match tokio::time::timeout(deadline, answer).await {
                Ok(answered) => answered,
                Err(_) => Ok(Status::deadline_exceeded(
                    "the call's deadline (grpc-timeout) passed before it was answered",
                )
                .into_http()),
            }
        })
    }
}

/// A `grpc-timeout` value: at most eight digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// tonic answers an over-size message with OUT_OF_RANGE and an undecodable one with INTERNAL;
/// OTLP (and the Collector, on grpc-go) say RESOURCE_EXHAUSTED (without RetryInfo) and
/// INVALID_ARGUMENT, so clients neither retry what cannot succeed nor report a server fault.
/// The receiver itself never answers with either code, so only tonic's own answers are
/// rewritten. (A compressed flag without `grpc-encoding` stays INTERNAL, as gRPC's protocol and
/// grpc-go have it.)
fn otlp_status_codes(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let decode_failure = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(str::to_ascii_lowercase)
        // "decode", "decoding" (a frame cut short), "decompress", "decompressing".
        .is_some_and(|m| m.contains("decod") || m.contains("decompress"));
    match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some("11") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
        Some("13") if decode_failure => {
            headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        }
        _ => {}
    }
    response
}

/// Sends spans to an upstream OTLP/gRPC endpoint, reconnecting when needed.
pub struct Upstream {
    endpoint: String,
    client: Option<TraceServiceClient<tonic::transport::Channel>>,
}

impl Upstream {
    pub fn new(endpoint: &str) -> Upstream {
        Upstream {
            endpoint: endpoint.to_owned(),
            client: None,
        }
    }

    pub async fn export(&mut self, resource_spans: &[ResourceSpans]) -> Result<(), String> {
        if self.client.is_none() {
            let client = TraceServiceClient::connect(self.endpoint.clone())
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.endpoint))?;
            self.client = Some(client);
        }
        let Some(client) = self.client.as_mut() else {
            return Err("no connection".into());
        };
        match client.export(to_proto(resource_spans)).await {
            Ok(_) => Ok(()),
            Err(status) => {
                self.client = None;
                Err(format!("exporting to {}: {status}", self.endpoint))
            }
        }
    }
}

/// A gRPC codec that sends bytes exactly as given and returns the received bytes: the receiver
/// decodes exports itself, the load generator sends pre-encoded ones, and tests put malformed
/// messages on the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use bytes::Buf;
        let n = src.remaining();
        // The receive buffer's bytes themselves, not a copy.
        Ok(Some(src.copy_to_bytes(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_protocol_writes_them() {
        assert_eq!(grpc_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("3H"), Some(Duration::from_secs(3 * 3600)));
        for bad in ["", "S", "123456789S", "1x", "-1S", "1.5S", "é"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
