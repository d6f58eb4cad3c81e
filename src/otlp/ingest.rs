//! The ingest port: what both receivers (OTLP/gRPC and OTLP/HTTP) hand an export to, and the
//! answers they turn into their protocol's own. Protocol-neutral: no tonic, no axum here.

use std::future::Future;

use bytes::Bytes;

use super::{DecodeError, Decoded, Signal};
use crate::credentials::Principal;

/// What the receiver hands exports to, as the bytes of an export request of `signal`: the sink
/// decodes them (with [`Signal::decode`]) where it does its other CPU work.
pub trait ExportSink: Clone + Send + Sync + 'static {
    /// Takes an export from `principal` (what its token showed).
    fn export(
        &self,
        body: Bytes,
        signal: Signal,
        principal: Principal,
    ) -> impl Future<Output = Result<ExportReply, ExportError>> + Send;
}

/// Who a request's `authorization` value (if any) shows is speaking, or why it is refused.
pub type Authenticate =
    std::sync::Arc<dyn Fn(Option<&str>) -> Result<Principal, String> + Send + Sync>;

/// Why an export was not taken.
#[derive(Debug)]
pub enum ExportError {
    Decode(DecodeError),
    Sink(SinkError),
}

/// The answer to one export, after its spans are durable.
#[derive(Debug, Clone, Default)]
pub struct ExportReply {
    pub rejected: usize,
    pub message: String,
}

impl From<&super::Rejections> for ExportReply {
    fn from(r: &super::Rejections) -> Self {
        ExportReply {
            rejected: r.count,
            message: r.message(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum SinkError {
    /// Too much in flight: the client should retry after a pause.
    Busy,
    /// The log could not take the spans (shutting down, disk trouble).
    Unavailable(String),
}

/// Decodes an export as it came off the wire: spans counted before anything is allocated for
/// them, then decoded straight into the model.
pub fn decode_export(body: &[u8]) -> Result<Decoded, DecodeError> {
    if super::count_spans(body)? > super::MAX_SPANS_PER_EXPORT {
        return Err(DecodeError::TooManySpans);
    }
    super::native::decode_request(body)
}
