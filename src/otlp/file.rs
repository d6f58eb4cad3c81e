//! Recorded traces on disk: `spanfold export` writes OTLP/JSON lines (one
//! ExportTraceServiceRequest per line, the OpenTelemetry Collector file exporter's format), and
//! `spanfold replay` reads them back, or a Collector's file, or OTLP protobuf.
//!
//! Each exported line is one record of the log and carries its place in the log in an extra
//! top-level field, `"spanfold":{"firstSeq":"…","receivedAt":"…"}`, which OTLP/JSON readers
//! ignore by the specification's rule for unknown fields. Lines without it (a Collector's file)
//! are numbered in order and take as receive time the latest end time of their spans, never
//! earlier than the line before.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine;
use prost::Message;
use thiserror::Error;

use super::json::{self, LineMeta, META_KEY};
use crate::dedup::{DEFAULT_WINDOW, Window};
use crate::model::hex;
use crate::model::{AnyValue, Batch, KeyValue, Resource, ResourceSpans, Scope, Span};

#[derive(Debug, Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{path}: not OTLP/JSON lines and not an OTLP protobuf ExportTraceServiceRequest ({reason}); give a file written by `spanfold export` or an OpenTelemetry Collector file exporter"
    )]
    Format { path: String, reason: String },
}

// ---- writing ----------------------------------------------------------------------------

/// Appends one batch as a line of OTLP/JSON (with its newline) to `out`.
pub fn encode_line(batch: &Batch, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"resourceSpans\":[");
    for (i, rs) in batch.resource_spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        resource_spans(rs, out);
    }
    out.extend_from_slice(b"],\"");
    out.extend_from_slice(META_KEY.as_bytes());
    out.extend_from_slice(b"\":{\"firstSeq\":\"");
    out.extend_from_slice(batch.first_seq.to_string().as_bytes());
    out.extend_from_slice(b"\",\"receivedAt\":\"");
    out.extend_from_slice(batch.received_at.to_string().as_bytes());
    out.extend_from_slice(b"\"}}\n");
}

fn string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn key(k: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn uint(k: &str, v: u64, out: &mut Vec<u8>) {
    key(k, out);
    out.extend_from_slice(v.to_string().as_bytes());
}

/// A 64-bit integer as a decimal string, as the protobuf JSON mapping writes them.
fn uint_string(k: &str, v: u64, out: &mut Vec<u8>) {
    key(k, out);
    out.push(b'"');
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'"');
}

fn str_field(k: &str, v: &str, out: &mut Vec<u8>) {
    key(k, out);
    string(v, out);
}

fn list<T>(items: &[T], out: &mut Vec<u8>, mut each: impl FnMut(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(b']');
}

fn attributes(attrs: &[KeyValue], dropped: u32, out: &mut Vec<u8>) {
    key("attributes", out);
    list(attrs, out, key_value);
    out.push(b',');
    uint("droppedAttributesCount", dropped.into(), out);
}

fn key_value(kv: &KeyValue, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("key", &kv.key, out);
    out.push(b',');
    key("value", out);
    any_value(&kv.value, out);
    out.push(b'}');
}

fn any_value(v: &AnyValue, out: &mut Vec<u8>) {
    out.push(b'{');
    match v {
        AnyValue::String(s) => str_field("stringValue", s, out),
        AnyValue::Bool(b) => {
            key("boolValue", out);
            out.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        AnyValue::Int(i) => {
            key("intValue", out);
            out.push(b'"');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'"');
        }
        AnyValue::Double(d) => {
            key("doubleValue", out);
            if d.is_nan() {
                out.extend_from_slice(b"\"NaN\"");
            } else if d.is_infinite() {
                out.extend_from_slice(if *d > 0.0 {
                    b"\"Infinity\"".as_slice()
                } else {
                    b"\"-Infinity\"".as_slice()
                });
            } else {
                // serde_json prints the shortest form that reads back to the same f64.
                let _ = serde_json::to_writer(&mut *out, d);
            }
        }
        AnyValue::Array(items) => {
            key("arrayValue", out);
            out.push(b'{');
            key("values", out);
            list(items, out, any_value);
            out.push(b'}');
        }
        AnyValue::KvList(kvs) => {
            key("kvlistValue", out);
            out.push(b'{');
            key("values", out);
            list(kvs, out, key_value);
            out.push(b'}');
        }
        AnyValue::Bytes(b) => {
            str_field(
                "bytesValue",
                &base64::engine::general_purpose::STANDARD.encode(b),
                out,
            );
        }
        AnyValue::Empty => {}
    }
    out.push(b'}');
}

fn resource(r: &Resource, out: &mut Vec<u8>) {
    out.push(b'{');
    attributes(&r.attributes, r.dropped_attributes_count, out);
    if !r.entity_refs.is_empty() {
        out.push(b',');
        key("entityRefs", out);
        list(&r.entity_refs, out, |e, out| {
            out.push(b'{');
            str_field("schemaUrl", &e.schema_url, out);
            out.push(b',');
            str_field("type", &e.kind, out);
            out.push(b',');
            key("idKeys", out);
            list(&e.id_keys, out, |k, out| string(k, out));
            out.push(b',');
            key("descriptionKeys", out);
            list(&e.description_keys, out, |k, out| string(k, out));
            out.push(b'}');
        });
    }
    out.push(b'}');
}

fn scope(s: &Scope, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("name", &s.name, out);
    out.push(b',');
    str_field("version", &s.version, out);
    out.push(b',');
    attributes(&s.attributes, s.dropped_attributes_count, out);
    out.push(b'}');
}

fn resource_spans(rs: &ResourceSpans, out: &mut Vec<u8>) {
    out.push(b'{');
    key("resource", out);
    resource(&rs.resource, out);
    out.push(b',');
    key("scopeSpans", out);
    list(&rs.scope_spans, out, |ss, out| {
        out.push(b'{');
        key("scope", out);
        scope(&ss.scope, out);
        out.push(b',');
        key("spans", out);
        list(&ss.spans, out, span);
        out.push(b',');
        str_field("schemaUrl", &ss.schema_url, out);
        out.push(b'}');
    });
    out.push(b',');
    str_field("schemaUrl", &rs.schema_url, out);
    out.push(b'}');
}

fn span(s: &Span, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("traceId", &hex(&s.trace_id), out);
    out.push(b',');
    str_field("spanId", &hex(&s.span_id), out);
    out.push(b',');
    str_field("traceState", &s.trace_state, out);
    out.push(b',');
    str_field("parentSpanId", &hex(&s.parent_span_id), out);
    out.push(b',');
    uint("flags", s.flags.into(), out);
    out.push(b',');
    str_field("name", &s.name, out);
    out.push(b',');
    key("kind", out);
    out.extend_from_slice(s.kind.to_string().as_bytes());
    out.push(b',');
    uint_string("startTimeUnixNano", s.start_time_unix_nano, out);
    out.push(b',');
    uint_string("endTimeUnixNano", s.end_time_unix_nano, out);
    out.push(b',');
    attributes(&s.attributes, s.dropped_attributes_count, out);
    out.push(b',');
    key("events", out);
    list(&s.events, out, |e, out| {
        out.push(b'{');
        uint_string("timeUnixNano", e.time_unix_nano, out);
        out.push(b',');
        str_field("name", &e.name, out);
        out.push(b',');
        attributes(&e.attributes, e.dropped_attributes_count, out);
        out.push(b'}');
    });
    out.push(b',');
    uint("droppedEventsCount", s.dropped_events_count.into(), out);
    out.push(b',');
    key("links", out);
    list(&s.links, out, |l, out| {
        out.push(b'{');
        str_field("traceId", &hex(&l.trace_id), out);
        out.push(b',');
        str_field("spanId", &hex(&l.span_id), out);
        out.push(b',');
        str_field("traceState", &l.trace_state, out);
        out.push(b',');
        attributes(&l.attributes, l.dropped_attributes_count, out);
        out.push(b',');
        uint("flags", l.flags.into(), out);
        out.push(b'}');
    });
    out.push(b',');
    uint("droppedLinksCount", s.dropped_links_count.into(), out);
    out.push(b',');
    key("status", out);
    out.push(b'{');
    str_field("message", &s.status.message, out);
    out.push(b',');
    key("code", out);
    out.extend_from_slice(s.status.code.to_string().as_bytes());
    out.push(b'}');
    out.push(b'}');
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OTLP/JSON lines.
    Json,
    /// OTLP protobuf, each ExportTraceServiceRequest prefixed by its length (4-byte big-endian),
    /// as the Collector's file exporter writes `format: proto`.
    Protobuf,
}

/// Field number of spanfold's placement in an exported protobuf message. Protobuf readers skip
/// fields they do not know, so the message stays a plain ExportTraceServiceRequest to them.
const META_FIELD: u32 = 1000;

/// Appends one batch as a length-prefixed ExportTraceServiceRequest carrying its placement.
pub fn encode_message(batch: &Batch, out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut msg = super::to_proto(&batch.resource_spans).encode_to_vec();
    let mut meta = Vec::with_capacity(20);
    encode_key(1, WireType::Varint, &mut meta);
    encode_varint(batch.first_seq, &mut meta);
    encode_key(2, WireType::Varint, &mut meta);
    encode_varint(batch.received_at, &mut meta);
    encode_key(META_FIELD, WireType::LengthDelimited, &mut msg);
    encode_varint(meta.len() as u64, &mut msg);
    msg.extend_from_slice(&meta);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
}

/// The placement a protobuf message carries, if it has one.
fn message_meta(bytes: &[u8]) -> Result<Option<LineMeta>, String> {
    let mut found = None;
    super::fields(bytes, |tag, value| {
        if tag == META_FIELD {
            let mut buf = value;
            let (mut first_seq, mut received_at) = (None, None);
            while !buf.is_empty() {
                let (tag, _) = prost::encoding::decode_key(&mut buf)
                    .map_err(|e| super::DecodeError::Protobuf(e.to_string()))?;
                let v = prost::encoding::decode_varint(&mut buf)
                    .map_err(|e| super::DecodeError::Protobuf(e.to_string()))?;
                match tag {
                    1 => first_seq = Some(v),
                    2 => received_at = Some(v),
                    _ => {}
                }
            }
            if let (Some(first_seq), Some(received_at)) = (first_seq, received_at) {
                found = Some(LineMeta {
                    first_seq,
                    received_at,
                });
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(found)
}

/// Writes batches in an export format to `w`, buffering.
pub struct LineWriter<W: Write> {
    w: W,
    format: Format,
    buf: Vec<u8>,
}

impl<W: Write> LineWriter<W> {
    pub fn new(w: W, format: Format) -> Self {
        LineWriter {
            w,
            format,
            buf: Vec::with_capacity(1 << 20),
        }
    }

    pub fn write(&mut self, batch: &Batch) -> std::io::Result<()> {
        match self.format {
            Format::Json => encode_line(batch, &mut self.buf),
            Format::Protobuf => encode_message(batch, &mut self.buf),
        }
        if self.buf.len() >= 1 << 20 {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

// ---- reading ----------------------------------------------------------------------------

/// One decoded unit of input (a line, or a protobuf message), before it has a place in the log.
pub struct Unit {
    pub resource_spans: Vec<ResourceSpans>,
    pub meta: Option<LineMeta>,
    /// Spans refused while decoding (ids of the wrong length), with why.
    pub rejected: Vec<String>,
}

type Reader = std::io::BufReader<std::fs::File>;

/// Longest line of OTLP/JSON read: what one OTLP/HTTP body may hold.
pub const MAX_LINE_BYTES: u64 = super::MAX_HTTP_BODY as u64;
/// Largest protobuf message read, framed or a whole file: more is no recorded trace (a sparse
/// file, a device), and is refused before it is read into memory.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// Reads at most [`MAX_MESSAGE_BYTES`] of `reader`; more is an error that names the file.
fn read_bounded(reader: &mut Reader, path: &str) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(reader, MAX_MESSAGE_BYTES + 1),
        &mut bytes,
    )
    .map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })?;
    if bytes.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(FileError::Format {
            path: path.to_owned(),
            reason: format!(
                "it is neither OTLP/JSON lines nor length-prefixed protobuf messages, and as one protobuf message it is larger than {} MiB; not a recorded trace",
                MAX_MESSAGE_BYTES >> 20
            ),
        });
    }
    Ok(bytes)
}

/// Recorded traces in any supported format, read one unit at a time.
pub enum Input {
    Lines {
        path: String,
        reader: Reader,
        line: usize,
    },
    /// Length-prefixed protobuf messages, read as they come.
    Messages {
        path: String,
        reader: Reader,
        /// Bytes left in the file.
        left: u64,
    },
    /// One protobuf message: the whole file.
    Message {
        path: String,
        bytes: Option<Vec<u8>>,
    },
}

impl Input {
    /// Opens `path`, telling the format from its first byte: `{` is OTLP/JSON lines, anything
    /// else OTLP protobuf: several messages each prefixed by its length as a 4-byte big-endian
    /// integer (the Collector's file exporter, `spanfold export --format protobuf`) when the
    /// first length fits the file, else one ExportTraceServiceRequest.
    pub fn open(path: &Path) -> Result<Input, FileError> {
        let name = path.display().to_string();
        let io = |source| FileError::Io {
            path: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let head = reader.fill_buf().map_err(io)?;
        let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let lines = |reader| Input::Lines {
            path: name.clone(),
            reader,
            line: 0,
        };
        // A protobuf message starts with 0x0A (field 1), which is also a blank line: such a file
        // is protobuf only if it frames as one message from end to end.
        if head.first() == Some(&b'\n') && first == Some(b'{') {
            let bytes = read_bounded(&mut reader, &name)?;
            if super::fields(&bytes, |_, _| Ok(())).is_ok() {
                return Ok(Input::Message {
                    path: name,
                    bytes: Some(bytes),
                });
            }
            let file = std::fs::File::open(path).map_err(io)?;
            return Ok(lines(std::io::BufReader::with_capacity(1 << 20, file)));
        }
        if first == Some(b'{') || first.is_none() {
            return Ok(lines(reader));
        }
        let framed = head.len() >= 4 && {
            let len = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
            len > 0 && len + 4 <= size && len <= MAX_MESSAGE_BYTES
        };
        if framed {
            return Ok(Input::Messages {
                path: name,
                reader,
                left: size,
            });
        }
        let bytes = read_bounded(&mut reader, &name)?;
        Ok(Input::Message {
            path: name,
            bytes: Some(bytes),
        })
    }

    /// The next unit, read but not decoded, into `spare` (a buffer handed back by
    /// [`RawUnit::into_buffer`], so that reading reuses memory instead of asking for more).
    pub fn next_raw(&mut self, spare: Vec<u8>) -> Option<RawUnit> {
        let mut spare = spare;
        spare.clear();
        match self {
            Input::Lines { path, reader, line } => {
                let mut text = String::from_utf8(spare).unwrap_or_default();
                loop {
                    *line += 1;
                    text.clear();
                    // A line is read up to its bound, never whole whatever its length.
                    let mut bounded = std::io::Read::take(&mut *reader, MAX_LINE_BYTES + 1);
                    match bounded.read_line(&mut text) {
                        Ok(0) => return None,
                        Ok(n) if n as u64 > MAX_LINE_BYTES => {
                            return Some(RawUnit::Failed(FileError::Format {
                                path: path.clone(),
                                reason: format!(
                                    "line {line} is longer than {} MiB, the most one OTLP/HTTP body holds; not an export line",
                                    MAX_LINE_BYTES >> 20
                                ),
                            }));
                        }
                        Ok(_) => {}
                        Err(source) => {
                            return Some(RawUnit::Failed(FileError::Io {
                                path: path.clone(),
                                source,
                            }));
                        }
                    }
                    if text.trim().is_empty() {
                        continue;
                    }
                    return Some(RawUnit::Json {
                        path: path.clone(),
                        line: *line,
                        text,
                    });
                }
            }
            Input::Messages { path, reader, left } => {
                if *left == 0 {
                    return None;
                }
                let failed = |reason: String| {
                    Some(RawUnit::Failed(FileError::Format {
                        path: path.clone(),
                        reason,
                    }))
                };
                let mut len = [0u8; 4];
                if let Err(e) = std::io::Read::read_exact(reader, &mut len) {
                    *left = 0;
                    return failed(format!("truncated length prefix: {e}"));
                }
                let len = u64::from(u32::from_be_bytes(len));
                if len > MAX_MESSAGE_BYTES {
                    *left = 0;
                    return failed(format!(
                        "a message of {len} bytes is announced; more than {} MiB is no recorded export",
                        MAX_MESSAGE_BYTES >> 20
                    ));
                }
                if len + 4 > *left {
                    *left = 0;
                    return failed(format!(
                        "a message of {len} bytes is announced but only {} remain: the file is truncated",
                        left.saturating_sub(4)
                    ));
                }
                *left -= len + 4;
                let mut bytes = spare;
                bytes.resize(len as usize, 0);
                if let Err(e) = std::io::Read::read_exact(reader, &mut bytes) {
                    *left = 0;
                    return failed(e.to_string());
                }
                Some(RawUnit::Protobuf {
                    path: path.clone(),
                    bytes,
                })
            }
            Input::Message { path, bytes } => bytes.take().map(|bytes| RawUnit::Protobuf {
                path: path.clone(),
                bytes,
            }),
        }
    }
}

/// A unit as read, not yet decoded.
pub enum RawUnit {
    Json {
        path: String,
        line: usize,
        text: String,
    },
    Protobuf {
        path: String,
        bytes: Vec<u8>,
    },
    Failed(FileError),
}

impl RawUnit {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            RawUnit::Json { text, .. } => text.len(),
            RawUnit::Protobuf { bytes, .. } => bytes.len(),
            RawUnit::Failed(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The unit decoded, with its size in the input.
    pub fn decode(&mut self) -> Result<(Unit, u64), FileError> {
        match self {
            RawUnit::Json { path, line, text } => {
                let size = text.len() as u64;
                decode_json_line(text.as_bytes())
                    .map(|u| (u, size))
                    .map_err(|reason| FileError::Line {
                        path: path.clone(),
                        line: *line,
                        reason,
                    })
            }
            RawUnit::Protobuf { path, bytes } => {
                let size = bytes.len() as u64 + 4;
                decode_protobuf(bytes)
                    .map(|u| (u, size))
                    .map_err(|reason| FileError::Format {
                        path: path.clone(),
                        reason,
                    })
            }
            RawUnit::Failed(e) => Err(std::mem::replace(
                e,
                FileError::Format {
                    path: String::new(),
                    reason: "reported already".into(),
                },
            )),
        }
    }

    /// Its buffer, for the next read.
    pub fn into_buffer(self) -> Vec<u8> {
        match self {
            RawUnit::Json { text, .. } => text.into_bytes(),
            RawUnit::Protobuf { bytes, .. } => bytes,
            RawUnit::Failed(_) => Vec::new(),
        }
    }
}

/// Decodes one OTLP protobuf ExportTraceServiceRequest (with spanfold's placement, if any).
pub fn decode_protobuf(bytes: &[u8]) -> Result<Unit, String> {
    let d = super::native::decode_request(bytes).map_err(|e| e.to_string())?;
    let meta = message_meta(bytes)?;
    Ok(Unit {
        resource_spans: d.resource_spans,
        meta,
        rejected: d.rejected.reasons,
    })
}

/// Decodes one OTLP/JSON line.
pub fn decode_json_line(line: &[u8]) -> Result<Unit, String> {
    let (req, meta) = json::decode_line(line).map_err(|e| e.to_string())?;
    let d = super::from_proto(req);
    Ok(Unit {
        resource_spans: d.resource_spans,
        meta,
        rejected: d.rejected.reasons,
    })
}

fn unit_spans(resource_spans: &[ResourceSpans]) -> u64 {
    resource_spans.iter().map(|rs| rs.span_count() as u64).sum()
}

/// Gives units their place in a log: seq and receive time, as the store would. Keeps exported
/// placements, numbers the rest in order, and drops spans already seen (as the store does).
pub struct Placer {
    next_seq: u64,
    last_time: u64,
    started: bool,
    /// The store's own rule for repeats (see [`Window`]), so that a recorded trace replays as
    /// the server would have stored it.
    window: Window,
    pub duplicates: usize,
    /// Lines whose recorded receive time was earlier than the line before's: placed at that
    /// earlier time instead, so time never goes backwards along the seqs.
    pub times_raised: usize,
}

impl Default for Placer {
    fn default() -> Self {
        Placer {
            next_seq: 1,
            last_time: 0,
            started: false,
            window: Window::new(DEFAULT_WINDOW),
            duplicates: 0,
            times_raised: 0,
        }
    }
}

impl Placer {
    /// Ready for about `spans` spans without growing its window as it fills.
    pub fn with_capacity(spans: usize) -> Self {
        let mut placer = Placer::default();
        placer.window.reserve(spans);
        placer
    }

    /// The unit as a batch, or None when nothing in it is new. An exported unit (a line with
    /// its placement) holds events of a log: placed where they were, a span the store kept twice
    /// (a retry that came after its window) included; it must follow on from the one before, so
    /// a gap, a repeated line or two joined exports are refused. A recorded trace without
    /// placements loses what the store would have dropped as a retry.
    pub fn place(&mut self, mut unit: Unit) -> Result<Option<Batch>, String> {
        if unit.meta.is_some() {
            let spans = unit.resource_spans.iter().flat_map(|rs| &rs.scope_spans);
            for span in spans.flat_map(|ss| &ss.spans) {
                self.window.insert(span.key());
            }
        } else {
            self.duplicates += self.window.retain_new(&mut unit.resource_spans);
        }
        if unit.resource_spans.is_empty() {
            return Ok(None);
        }
        let (first_seq, time) = match unit.meta {
            Some(meta) => {
                if self.started && meta.first_seq != self.next_seq {
                    return Err(format!(
                        "expected the line for seq {}, found seq {}: lines are missing or out of order",
                        self.next_seq, meta.first_seq
                    ));
                }
                if meta
                    .first_seq
                    .checked_add(unit_spans(&unit.resource_spans))
                    .is_none()
                {
                    return Err(format!(
                        "the line placed at seq {} runs past the largest sequence number",
                        meta.first_seq
                    ));
                }
                if meta.received_at < self.last_time {
                    self.times_raised += 1;
                }
                (meta.first_seq, meta.received_at.max(self.last_time))
            }
            None => {
                let latest = unit
                    .resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .map(|s| s.end_time_unix_nano.max(s.start_time_unix_nano))
                    .max()
                    .unwrap_or(0);
                (self.next_seq, latest.max(self.last_time))
            }
        };
        let batch = Batch {
            first_seq,
            received_at: time,
            resource_spans: unit.resource_spans,
        };
        self.started = true;
        self.next_seq = first_seq + batch.span_count() as u64;
        self.last_time = time;
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntityRef, Link, SpanEvent, Status};

    fn rich_batch() -> Batch {
        let mut span = Span::new(
            [7; 16],
            [9; 8],
            "agent.work_progress",
            1_700_000_000_123_456_789,
        );
        span.parent_span_id = vec![1; 8];
        span.trace_state = "k=v".into();
        span.flags = 257;
        span.kind = 3;
        span.end_time_unix_nano = u64::MAX;
        span.dropped_attributes_count = 2;
        span.attributes = vec![
            KeyValue::new("s", AnyValue::String("é \"quoted\"\n".into())),
            KeyValue::new("b", AnyValue::Bool(true)),
            KeyValue::new("i", AnyValue::Int(i64::MIN)),
            KeyValue::new("d", AnyValue::Double(0.1 + 0.2)),
            KeyValue::new("nan", AnyValue::Double(f64::NEG_INFINITY)),
            KeyValue::new(
                "a",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Empty]),
            ),
            KeyValue::new(
                "kv",
                AnyValue::KvList(vec![KeyValue::new("x", AnyValue::Bytes(vec![0, 255]))]),
            ),
            KeyValue::new("e", AnyValue::Empty),
        ];
        span.events = vec![SpanEvent {
            time_unix_nano: 5,
            name: "ev".into(),
            attributes: vec![KeyValue::new("k", AnyValue::Int(1))],
            dropped_attributes_count: 1,
        }];
        span.dropped_events_count = 3;
        span.links = vec![Link {
            trace_id: [2; 16],
            span_id: [3; 8],
            trace_state: "t".into(),
            attributes: vec![],
            dropped_attributes_count: 4,
            flags: 1,
        }];
        span.dropped_links_count = 5;
        span.status = Status {
            message: "bad".into(),
            code: 2,
        };
        Batch {
            first_seq: 42,
            received_at: 1_700_000_001_000_000_000,
            resource_spans: vec![ResourceSpans {
                resource: Resource {
                    attributes: vec![KeyValue::new("agent.id", AnyValue::String("a1".into()))],
                    dropped_attributes_count: 6,
                    entity_refs: vec![EntityRef {
                        schema_url: "u".into(),
                        kind: "service".into(),
                        id_keys: vec!["service.name".into()],
                        description_keys: vec![],
                    }],
                },
                schema_url: "https://opentelemetry.io/schemas/1.0".into(),
                scope_spans: vec![crate::model::ScopeSpans {
                    scope: Scope {
                        name: "sc".into(),
                        version: "1".into(),
                        attributes: vec![],
                        dropped_attributes_count: 7,
                    },
                    schema_url: "s".into(),
                    spans: vec![span],
                }],
            }],
        }
    }

    #[test]
    fn an_exported_line_reads_back_as_the_same_batch() {
        let batch = rich_batch();
        let mut line = Vec::new();
        encode_line(&batch, &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let unit = decode_json_line(&line).expect("decodes");
        assert!(unit.rejected.is_empty());
        let placed = Placer::default()
            .place(unit)
            .expect("placed")
            .expect("new spans");
        assert_eq!(placed, batch);
    }

    #[test]
    fn an_exported_message_reads_back_as_the_same_batch() {
        let batch = rich_batch();
        let mut out = Vec::new();
        encode_message(&batch, &mut out);
        let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(len + 4, out.len());
        let unit = decode_protobuf(&out[4..]).expect("decodes");
        let placed = Placer::default()
            .place(unit)
            .expect("placed")
            .expect("new spans");
        assert_eq!(placed, batch);
    }

    #[test]
    fn a_gap_between_exported_lines_is_an_error() {
        let mut placer = Placer::default();
        let mut first = rich_batch();
        let mut line = Vec::new();
        encode_line(&first, &mut line);
        placer
            .place(decode_json_line(&line).expect("decodes"))
            .expect("first");
        first.first_seq = 50;
        first.resource_spans[0].scope_spans[0].spans[0].span_id = [4; 8];
        line.clear();
        encode_line(&first, &mut line);
        let err = placer
            .place(decode_json_line(&line).expect("decodes"))
            .expect_err("gap");
        assert!(err.contains("expected the line for seq 43"), "{err}");
    }

    #[test]
    fn the_deepest_accepted_values_survive_a_json_export() {
        use crate::model::{Batch, ResourceSpans, ScopeSpans};
        // Key-value lists are the costliest nesting in OTLP/JSON: four levels each.
        let deepest = |levels: usize| {
            let mut v = AnyValue::Int(1);
            for _ in 0..levels {
                v = AnyValue::KvList(vec![KeyValue::new("k", v)]);
            }
            v
        };
        let reg = crate::registry::Registry::builtin();
        let s = Span::new([1; 16], [2; 8], "tool.call", 1)
            .with("deep", deepest(crate::registry::MAX_VALUE_DEPTH));
        let resource = Resource {
            attributes: vec![KeyValue::new(
                "r",
                deepest(crate::registry::MAX_VALUE_DEPTH),
            )],
            ..Default::default()
        };
        assert_eq!(
            reg.validate(&s, &resource, crate::registry::Origin::Client),
            Ok(())
        );
        let mut request = vec![ResourceSpans {
            resource,
            scope_spans: vec![ScopeSpans {
                spans: vec![s],
                ..Default::default()
            }],
            ..Default::default()
        }];
        request[0].scope_spans[0].scope.attributes = vec![KeyValue::new(
            "s",
            deepest(crate::registry::MAX_VALUE_DEPTH),
        )];
        assert!(
            reg.retain_valid(&mut request, crate::registry::Origin::Client)
                .is_empty()
        );
        let batch = Batch {
            first_seq: 1,
            received_at: 1,
            resource_spans: request,
        };
        let mut line = Vec::new();
        encode_line(&batch, &mut line);
        let back = decode_json_line(&line).expect("the export reads back");
        assert_eq!(back.resource_spans, batch.resource_spans);
        // One level deeper in the scope: its spans are refused, with the reason.
        batch_scope_too_deep(reg, deepest(crate::registry::MAX_VALUE_DEPTH + 1));
    }

    fn batch_scope_too_deep(reg: &crate::registry::Registry, value: AnyValue) {
        use crate::model::{ResourceSpans, ScopeSpans};
        let mut request = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    Span::new([1; 16], [2; 8], "tool.call", 1),
                    Span::new([1; 16], [2; 8], "agent.registration", 1),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }];
        request[0].scope_spans[0].scope.attributes = vec![KeyValue::new("s", value)];
        let refused = reg.retain_valid(&mut request, crate::registry::Origin::Client);
        assert_eq!(refused.len(), 2);
        assert!(refused[0].rule.contains("its scope"), "{}", refused[0].rule);
        assert!(request.is_empty());
    }
}
