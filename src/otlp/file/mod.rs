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

use prost::Message;
use thiserror::Error;

use super::json::{self, LineMeta};
use crate::model::Batch;

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

mod json_line;
mod json_signals;
mod place;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_signals;

pub use json_line::encode_line;
pub use place::Placer;

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

/// Appends one batch as length-prefixed export requests carrying their placement: one per
/// signal it holds (a record of the log holds one), each with its own first seq. The placement
/// of a log or metric export also names its signal (field 3: 1 logs, 2 metrics), which the
/// message's bytes alone do not tell.
pub fn encode_message(batch: &Batch, out: &mut Vec<u8>) {
    let (spans, logs) = (batch.span_count() as u64, batch.log_count() as u64);
    if spans > 0 || batch.event_count() == 0 {
        let msg = super::to_proto(&batch.resource_spans).encode_to_vec();
        framed(msg, batch.first_seq, batch.received_at, None, out);
    }
    if logs > 0 {
        let msg = super::logs::encode_request(&batch.resource_logs);
        framed(
            msg,
            batch.first_seq + spans,
            batch.received_at,
            Some(1),
            out,
        );
    }
    if batch.metric_count() > 0 {
        let msg = super::metrics::encode_request(&batch.resource_metrics);
        let first = batch.first_seq + spans + logs;
        framed(msg, first, batch.received_at, Some(2), out);
    }
}

fn framed(
    mut msg: Vec<u8>,
    first_seq: u64,
    received_at: u64,
    signal: Option<u64>,
    out: &mut Vec<u8>,
) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut meta = Vec::with_capacity(24);
    encode_key(1, WireType::Varint, &mut meta);
    encode_varint(first_seq, &mut meta);
    encode_key(2, WireType::Varint, &mut meta);
    encode_varint(received_at, &mut meta);
    if let Some(signal) = signal {
        encode_key(3, WireType::Varint, &mut meta);
        encode_varint(signal, &mut meta);
    }
    encode_key(META_FIELD, WireType::LengthDelimited, &mut msg);
    encode_varint(meta.len() as u64, &mut msg);
    msg.extend_from_slice(&meta);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
}

/// The placement a protobuf message carries, if it has one, and the signal it names.
fn message_meta(bytes: &[u8]) -> Result<(Option<LineMeta>, super::Signal), String> {
    let mut found = None;
    let mut signal = super::Signal::Traces;
    super::fields(bytes, |tag, value| {
        if tag == META_FIELD {
            let mut buf = value;
            let (mut first_seq, mut received_at) = (None, None);
            let mut kind = 0;
            while !buf.is_empty() {
                let (tag, _) = prost::encoding::decode_key(&mut buf)
                    .map_err(|e| super::DecodeError::Protobuf(e.to_string()))?;
                let v = prost::encoding::decode_varint(&mut buf)
                    .map_err(|e| super::DecodeError::Protobuf(e.to_string()))?;
                match tag {
                    1 => first_seq = Some(v),
                    2 => received_at = Some(v),
                    3 => kind = v,
                    _ => {}
                }
            }
            if let (Some(first_seq), Some(received_at)) = (first_seq, received_at) {
                found = Some(LineMeta {
                    first_seq,
                    received_at,
                });
            }
            signal = match kind {
                1 => super::Signal::Logs,
                2 => super::Signal::Metrics,
                _ => super::Signal::Traces,
            };
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok((found, signal))
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

/// One decoded unit of input (a line, or a protobuf message), before it has a place in the log:
/// spans, log records or metrics (a batch whose seq and time are not set yet).
pub struct Unit {
    pub events: Batch,
    pub meta: Option<LineMeta>,
    /// Spans or log records refused while decoding (ids of the wrong length), with why.
    pub rejected: Vec<String>,
}

impl Unit {
    fn of(decoded: super::Decoded, meta: Option<LineMeta>) -> Unit {
        let (events, rejected) = decoded.into_batch();
        Unit {
            events,
            meta,
            rejected: rejected.reasons,
        }
    }
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
                // Bytes: the JSON reader checks the text's UTF-8 where it reads strings, so
                // the reading thread need not check it first.
                let mut text = spare;
                loop {
                    *line += 1;
                    text.clear();
                    // A line is read up to its bound, never whole whatever its length.
                    let mut bounded = std::io::Read::take(&mut *reader, MAX_LINE_BYTES + 1);
                    match bounded.read_until(b'\n', &mut text) {
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
                    if text.trim_ascii().is_empty() {
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
        text: Vec<u8>,
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
                decode_json_line(text)
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
            RawUnit::Json { text, .. } => text,
            RawUnit::Protobuf { bytes, .. } => bytes,
            RawUnit::Failed(_) => Vec::new(),
        }
    }
}

/// Decodes one OTLP protobuf export request (with spanfold's placement, if any, which also says
/// its signal; a message without one is an ExportTraceServiceRequest, as a Collector's trace
/// file holds).
pub fn decode_protobuf(bytes: &[u8]) -> Result<Unit, String> {
    let (meta, signal) = message_meta(bytes)?;
    let d = signal.decode(bytes).map_err(|e| e.to_string())?;
    Ok(Unit::of(d, meta))
}

/// Decodes one OTLP/JSON line: an export of spans (`resourceSpans`), log records
/// (`resourceLogs`) or metrics (`resourceMetrics`).
pub fn decode_json_line(line: &[u8]) -> Result<Unit, String> {
    let (d, meta) = json::decode_line(line).map_err(|e| e.to_string())?;
    Ok(Unit::of(d, meta))
}
