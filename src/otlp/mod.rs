//! OTLP: the wire format. The only module that knows opentelemetry-proto, prost and tonic.
//! It converts between OTLP messages and the project's own [`crate::model`] types, decodes
//! OTLP/HTTP bodies (protobuf or JSON, optionally gzip), and serves and calls the gRPC
//! TraceService.
//!
//! Profiles-only dictionary references (`string_value_strindex`, `key_strindex`) carry no meaning
//! in traces; they are not kept.

mod convert;
pub mod file;
pub mod grpc;
pub mod grpc_body;
pub mod ingest;
pub mod json;
pub mod json_native;
#[cfg(test)]
mod json_native_tests;
pub mod logs;
pub mod metrics;
pub mod native;
mod native_logs;
mod native_metrics;

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use thiserror::Error;

pub(crate) use convert::id;
pub use convert::{from_proto, to_proto};

use crate::model::hex;
use crate::model::{Batch, ResourceLogs, ResourceMetrics, ResourceSpans, Span};

/// Largest decompressed OTLP/HTTP body accepted (the Collector's default).
pub const MAX_HTTP_BODY: usize = 20 * 1024 * 1024;
/// Largest gRPC message accepted (the Collector's and tonic's default).
pub const MAX_GRPC_MESSAGE: usize = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("the body is not a valid OTLP export request in protobuf: {0}")]
    Protobuf(String),
    #[error("the body is not valid OTLP/JSON: {0}")]
    Json(String),
    #[error("the gzip body could not be decompressed: {0}")]
    Gzip(String),
    #[error("the decompressed body is larger than {MAX_HTTP_BODY} bytes")]
    TooLarge,
    #[error("unsupported content type {0:?}; send application/x-protobuf or application/json")]
    ContentType(String),
    #[error("unsupported content encoding {0:?}; send the body plain or with gzip")]
    ContentEncoding(String),
    #[error(
        "the export holds more than {MAX_SPANS_PER_EXPORT} spans (or log records, or metrics); send smaller batches"
    )]
    TooManySpans,
    #[error(
        "the export holds more than {MAX_ITEMS_PER_EXPORT} spans, log records, data points, attributes, events, links and values; send smaller batches"
    )]
    TooManyItems,
    #[error(
        "the OTLP/JSON export holds more than {} objects or {} values; send smaller batches, or protobuf",
        json::MAX_OBJECTS,
        json::MAX_VALUES
    )]
    TooManyJsonValues,
}

impl DecodeError {
    /// The HTTP status the OTLP specification gives this error.
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::TooLarge
            | DecodeError::TooManySpans
            | DecodeError::TooManyItems
            | DecodeError::TooManyJsonValues => 413,
            DecodeError::ContentType(_) => 415,
            _ => 400,
        }
    }
}

/// The two encodings of OTLP/HTTP; replies go back in the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(value: &str) -> Result<Encoding, DecodeError> {
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(DecodeError::ContentType(value.to_owned())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Most spans one export may carry. Each span costs a few hundred bytes once decoded however
/// few it took on the wire, so a small (compressed) body must not become gigabytes.
pub const MAX_SPANS_PER_EXPORT: usize = 100_000;
/// Most items (spans, attributes, events, links, values in lists) one export may carry,
/// counted while it is decoded, so that the memory a body takes stays a small multiple of its
/// size whatever it holds: an empty attribute takes two bytes on the wire and sixty in memory.
/// SDKs send batches of 512 spans, collectors of a few thousand, ten or so items each; at the
/// bound a decode takes about 60 MB.
pub const MAX_ITEMS_PER_EXPORT: usize = 500_000;
/// Reasons kept per export; the rest are counted.
pub const MAX_REASONS: usize = 20;

/// Spans refused from one export: how many, and the first reasons.
#[derive(Debug, Default, Clone)]
pub struct Rejections {
    pub count: usize,
    pub reasons: Vec<String>,
    /// The reasons past [`MAX_REASONS`], counted, not kept.
    pub unlisted: usize,
}

impl Rejections {
    pub fn push(&mut self, reason: String) {
        self.push_counted(1, reason);
    }

    /// `count` items refused for one `reason` (a whole resource of them).
    pub fn push_counted(&mut self, count: usize, reason: String) {
        self.count += count;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason);
        } else {
            self.unlisted += 1;
        }
    }

    /// One message naming the refused spans (the first [`MAX_REASONS`], then a count).
    pub fn message(&self) -> String {
        self.message_of(Signal::Traces)
    }

    /// One message naming the refused items of an export of `signal`.
    pub fn message_of(&self, signal: Signal) -> String {
        if self.count == 0 {
            return String::new();
        }
        let mut msg = format!(
            "{} {}(s) rejected: {}",
            self.count,
            signal.noun(),
            self.reasons.join("; ")
        );
        if self.unlisted > 0 {
            msg.push_str(&format!("; and {} more reasons", self.unlisted));
        }
        msg
    }
}

/// A decoded export: what is well formed (spans, log records or metrics, by the signal of the
/// export), and why the rest was refused.
#[derive(Debug, Default)]
pub struct Decoded {
    pub resource_spans: Vec<ResourceSpans>,
    pub resource_logs: Vec<ResourceLogs>,
    pub resource_metrics: Vec<ResourceMetrics>,
    pub rejected: Rejections,
    /// The log records' identities, once [`Decoded::digest_logs`] computed them.
    pub log_keys: Vec<crate::model::SpanKey>,
}

impl Decoded {
    /// The export's events (spans, log records, metrics) as a batch still without its place.
    pub fn into_batch(self) -> (Batch, Rejections) {
        let batch = Batch {
            resource_spans: self.resource_spans,
            resource_logs: self.resource_logs,
            resource_metrics: self.resource_metrics,
            log_keys: self.log_keys,
            ..Batch::default()
        };
        (batch, self.rejected)
    }

    /// Computes the log records' identities (what de-duplicates a retried export) here, on the
    /// thread that decoded them, so that the single writer does not: call it last, once no
    /// record will be dropped.
    pub fn digest_logs(&mut self) {
        self.log_keys = self
            .resource_logs
            .iter()
            .flat_map(|rl| {
                rl.scope_logs.iter().flat_map(move |sl| {
                    sl.log_records
                        .iter()
                        .map(move |r| crate::digest::log_key(&rl.resource, &sl.scope, r))
                })
            })
            .collect();
    }

    /// The export as decoded, or `TooManySpans` when it holds more log records or metrics than
    /// one export may (spans are counted before they are decoded: `count_spans`).
    pub fn within_limit(self) -> Result<Decoded, DecodeError> {
        let logs: usize = self
            .resource_logs
            .iter()
            .map(ResourceLogs::record_count)
            .sum();
        let metrics: usize = self
            .resource_metrics
            .iter()
            .map(ResourceMetrics::metric_count)
            .sum();
        match logs.max(metrics) > MAX_SPANS_PER_EXPORT {
            true => Err(DecodeError::TooManySpans),
            false => Ok(self),
        }
    }

    /// Spans, log records and metrics together: what a group commit counts.
    pub fn event_count(&self) -> usize {
        let spans: usize = self
            .resource_spans
            .iter()
            .map(ResourceSpans::span_count)
            .sum();
        let logs: usize = self
            .resource_logs
            .iter()
            .map(ResourceLogs::record_count)
            .sum();
        let metrics: usize = self
            .resource_metrics
            .iter()
            .map(ResourceMetrics::metric_count)
            .sum();
        spans + logs + metrics
    }
}

/// The three OTLP signals, each with its own service, path and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    /// The gRPC method an exporter of this signal calls.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    /// What one item of the signal is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Signal::Traces => "span",
            Signal::Logs => "log record",
            Signal::Metrics => "metric",
        }
    }

    /// The request message, as error messages name it.
    pub fn request(self) -> &'static str {
        match self {
            Signal::Traces => "ExportTraceServiceRequest",
            Signal::Logs => "ExportLogsServiceRequest",
            Signal::Metrics => "ExportMetricsServiceRequest",
        }
    }

    /// The count of refused items in an OTLP/JSON partial success.
    pub fn rejected_field(self) -> &'static str {
        match self {
            Signal::Traces => "rejectedSpans",
            Signal::Logs => "rejectedLogRecords",
            Signal::Metrics => "rejectedDataPoints",
        }
    }

    /// Decodes an export of this signal as it came off the wire (protobuf).
    pub fn decode(self, body: &[u8]) -> Result<Decoded, DecodeError> {
        match self {
            Signal::Traces => ingest::decode_export(body),
            Signal::Logs => native_logs::decode_request(body),
            Signal::Metrics => native_metrics::decode_request(body),
        }
    }
}

/// Undoes `Content-Encoding: gzip` with a bound on the output, so a small bomb cannot take
/// memory.
pub fn decompress(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(body.to_vec()),
        Some(e) if e.is_empty() || e == "identity" => Ok(body.to_vec()),
        Some(e) if e == "gzip" => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body)
                .take(MAX_HTTP_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Gzip(e.to_string()))?;
            if out.len() > MAX_HTTP_BODY {
                return Err(DecodeError::TooLarge);
            }
            Ok(out)
        }
        Some(other) => Err(DecodeError::ContentEncoding(other)),
    }
}

/// Decodes an OTLP/HTTP export of `signal` whose body is already decompressed.
pub fn decode_signal(
    encoding: Encoding,
    signal: Signal,
    body: &[u8],
) -> Result<Decoded, DecodeError> {
    if body.len() > MAX_HTTP_BODY {
        return Err(DecodeError::TooLarge);
    }
    match (encoding, signal) {
        (_, Signal::Traces) => decode_http(encoding, body),
        (Encoding::Protobuf, _) => signal.decode(body),
        (Encoding::Json, Signal::Logs) => logs::decode_json(body),
        (Encoding::Json, Signal::Metrics) => metrics::decode_json(body),
    }
}

/// Decodes an OTLP/HTTP trace export whose body is already decompressed.
pub fn decode_http(encoding: Encoding, body: &[u8]) -> Result<Decoded, DecodeError> {
    if body.len() > MAX_HTTP_BODY {
        return Err(DecodeError::TooLarge);
    }
    match encoding {
        Encoding::Protobuf => ingest::decode_export(body),
        Encoding::Json => {
            json::check_size(body)?;
            if let Some(fast) = json_native::decode(body) {
                if fast.spans > MAX_SPANS_PER_EXPORT {
                    return Err(DecodeError::TooManySpans);
                }
                return Ok(fast.decoded);
            }
            let request = json::decode_request(body)?;
            if request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>()
                > MAX_SPANS_PER_EXPORT
            {
                return Err(DecodeError::TooManySpans);
            }
            Ok(from_proto(request))
        }
    }
}

/// Calls `visit` with each length-delimited field of a protobuf message (tag, bytes), checking
/// the framing of the others.
pub(crate) fn fields(
    mut buf: &[u8],
    mut visit: impl FnMut(u32, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let bad = |e: prost::DecodeError| DecodeError::Protobuf(e.to_string());
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(bad)?;
        match wire {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(bad)?;
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let n = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                if buf.len() < n {
                    return Err(DecodeError::Protobuf("truncated fixed-width field".into()));
                }
                buf = &buf[n..];
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(bad)? as usize;
                if buf.len() < len {
                    return Err(DecodeError::Protobuf(
                        "truncated length-delimited field".into(),
                    ));
                }
                visit(tag, &buf[..len])?;
                buf = &buf[len..];
            }
            _ => return Err(DecodeError::Protobuf("groups are not used by OTLP".into())),
        }
    }
    Ok(())
}

/// Counts the spans of an encoded ExportTraceServiceRequest without decoding them: walks the
/// length-delimited fields resource_spans (1) → scope_spans (2) → spans (2).
pub fn count_spans(body: &[u8]) -> Result<usize, DecodeError> {
    let mut count = 0;
    fields(body, |tag, rs| {
        if tag == 1 {
            fields(rs, |tag, ss| {
                if tag == 2 {
                    fields(ss, |tag, _| {
                        count += usize::from(tag == 2);
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(count)
}

/// The reply to an export, in the request's encoding.
/// The answer to an export of `signal`. In protobuf the three signals' responses are the same
/// bytes (partial success: count 1, message 2); in JSON the count is named by signal.
pub fn encode_response(
    encoding: Encoding,
    signal: Signal,
    rejected: usize,
    message: &str,
) -> Vec<u8> {
    let response = response(rejected, message);
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            let body = match response.partial_success {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    signal.rejected_field(): p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// OTLP's partial success: present only when something was refused.
pub fn response(rejected: usize, message: &str) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected > 0 || !message.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: message.to_owned(),
        }),
    }
}

/// The error body OTLP/HTTP sends with a 4xx/5xx: a google.rpc.Status.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

pub fn encode_error(encoding: Encoding, grpc_code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code: grpc_code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": grpc_code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

/// Reads an export reply (for clients of a spanfold server): rejected count and message.
pub fn decode_response(encoding: Encoding, body: &[u8]) -> Result<(i64, String), DecodeError> {
    match encoding {
        Encoding::Protobuf => {
            let r = ExportTraceServiceResponse::decode(body)
                .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
            Ok(r.partial_success
                .map(|p| (p.rejected_spans, p.error_message))
                .unwrap_or_default())
        }
        Encoding::Json => {
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
            let p = &v["partialSuccess"];
            let rejected = match &p["rejectedSpans"] {
                serde_json::Value::String(s) => s.parse().unwrap_or(0),
                other => other.as_i64().unwrap_or(0),
            };
            Ok((
                rejected,
                p["errorMessage"].as_str().unwrap_or("").to_owned(),
            ))
        }
    }
}

/// Encodes spans as an OTLP protobuf export request.
pub fn encode_request(resource_spans: &[ResourceSpans]) -> Vec<u8> {
    to_proto(resource_spans).encode_to_vec()
}

/// Short description of a span for messages: its name and ids.
pub fn describe(span: &Span) -> String {
    format!(
        "{} (trace {} span {})",
        span.name,
        hex(&span.trace_id),
        hex(&span.span_id)
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1 as pt;

    use super::*;
    use crate::model::{AnyValue, EntityRef, KeyValue, Resource, Scope, string_array};

    fn sample() -> Vec<ResourceSpans> {
        let span = Span::new([1; 16], [2; 8], "agent.registration", 7)
            .with("agent.id", AnyValue::String("a1".into()))
            .with("agent.languages", string_array(["python"]))
            .with("n", AnyValue::Int(-3))
            .with("b", AnyValue::Bytes(vec![1, 2]))
            .with(
                "kv",
                AnyValue::KvList(vec![KeyValue::new("x", AnyValue::Bool(true))]),
            )
            .with("e", AnyValue::Empty);
        vec![ResourceSpans::single(
            Resource {
                attributes: vec![KeyValue::new("service.name", AnyValue::String("s".into()))],
                dropped_attributes_count: 1,
                entity_refs: vec![EntityRef {
                    schema_url: "u".into(),
                    kind: "service".into(),
                    id_keys: vec!["service.name".into()],
                    description_keys: vec![],
                }],
            },
            Scope {
                name: "sc".into(),
                ..Scope::default()
            },
            vec![span],
        )]
    }

    #[test]
    fn protobuf_round_trip_is_lossless() {
        let rs = sample();
        let bytes = encode_request(&rs);
        let decoded = decode_http(Encoding::Protobuf, &bytes).expect("decodes");
        assert_eq!(decoded.rejected.count, 0);
        assert_eq!(decoded.resource_spans, rs);
    }

    #[test]
    fn wrong_id_lengths_are_refused_span_by_span() {
        let mut req = to_proto(&sample());
        let mut bad = req.resource_spans[0].scope_spans[0].spans[0].clone();
        bad.span_id = vec![1, 2, 3];
        bad.name = "short".into();
        req.resource_spans[0].scope_spans[0].spans.push(bad);
        let decoded = from_proto(req);
        assert_eq!(decoded.resource_spans[0].span_count(), 1);
        assert_eq!(decoded.rejected.count, 1);
        assert!(
            decoded.rejected.reasons[0].contains("span_id must be 8 bytes"),
            "{:?}",
            decoded.rejected
        );
    }

    #[test]
    fn spans_are_counted_on_the_wire_and_too_many_are_refused_before_decoding() {
        let rs = sample();
        assert_eq!(count_spans(&encode_request(&rs)).ok(), Some(1));
        // 2 bytes per empty span on the wire: 200,001 of them fit in 400 KB.
        let mut body = Vec::new();
        let mut scope = Vec::new();
        for _ in 0..=MAX_SPANS_PER_EXPORT {
            scope.extend([0x12, 0x00]);
        }
        let mut rs = vec![0x12];
        prost::encoding::encode_varint(scope.len() as u64, &mut rs);
        rs.extend(scope);
        body.push(0x0a);
        prost::encoding::encode_varint(rs.len() as u64, &mut body);
        body.extend(rs);
        assert_eq!(count_spans(&body).ok(), Some(MAX_SPANS_PER_EXPORT + 1));
        assert!(matches!(
            decode_http(Encoding::Protobuf, &body),
            Err(DecodeError::TooManySpans)
        ));
    }

    #[test]
    fn garbage_and_bombs_are_errors_not_panics() {
        assert!(decode_http(Encoding::Protobuf, b"\xff\xff\xff\xff garbage").is_err());
        let zeros = vec![0u8; MAX_HTTP_BODY + 10];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &zeros).expect("compress");
        let bomb = gz.finish().expect("finish");
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decompress(Some("gzip"), &bomb),
            Err(DecodeError::TooLarge)
        ));
        assert!(matches!(
            decompress(Some("gzip"), b"not gzip"),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decompress(Some("br"), b"x"),
            Err(DecodeError::ContentEncoding(_))
        ));
        assert_eq!(
            Encoding::from_content_type("text/plain").map_err(|e| e.http_status()),
            Err(415)
        );
    }

    /// Items are counted while they are decoded: a body of empty attributes (two bytes each on
    /// the wire) is refused once it passes the bound, in both encodings.
    #[test]
    fn too_many_items_are_refused_while_decoding() {
        let span = |attributes: usize| {
            let one = pt::Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                ..Default::default()
            };
            let mut bytes = one.encode_to_vec();
            for _ in 0..attributes {
                bytes.extend([0x4a, 0x00]);
            }
            bytes
        };
        let wrap = |tag: u8, inner: Vec<u8>| {
            let mut out = vec![tag];
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend(inner);
            out
        };
        let request = |attributes| wrap(0x0a, wrap(0x12, wrap(0x12, span(attributes))));
        let fits = decode_http(Encoding::Protobuf, &request(MAX_ITEMS_PER_EXPORT - 1))
            .expect("within the bound");
        assert_eq!(
            fits.resource_spans[0].scope_spans[0].spans[0]
                .attributes
                .len(),
            MAX_ITEMS_PER_EXPORT - 1
        );
        let refused = decode_http(Encoding::Protobuf, &request(MAX_ITEMS_PER_EXPORT));
        assert!(
            matches!(refused, Err(DecodeError::TooManyItems)),
            "{refused:?}"
        );
        assert_eq!(DecodeError::TooManyItems.http_status(), 413);

        let spans = vec!["{}"; json::MAX_OBJECTS].join(",");
        let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
        let refused = decode_http(Encoding::Json, body.as_bytes());
        assert!(
            matches!(refused, Err(DecodeError::TooManyJsonValues)),
            "{refused:?}"
        );
    }
}
