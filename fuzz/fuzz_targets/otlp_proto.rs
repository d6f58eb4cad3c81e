//! OTLP protobuf export requests through the server's decode and validation path.
//!
//! The first byte chooses how the rest arrives (the other bits choose the origin validation
//! assumes):
//! - 0: a plain OTLP/HTTP protobuf body (`decompress` with no encoding, then `decode_http`,
//!   which is the gRPC receiver's `decode_export`);
//! - 1: a `Content-Encoding: gzip` body, as sent (arbitrary compressed bytes);
//! - 2: the rest gzipped here, so that valid gzip reaches the decoder; it must decompress to
//!   exactly the rest;
//! - 3: one message of a protobuf trace file as `spanfold replay` reads it
//!   (`file::decode_protobuf`, with spanfold's placement field).
//!
//! Checked, when decoding succeeds (each is a promise of the code's doc comments):
//! - `count_spans` counts what the decoder decodes (kept + refused), and more than
//!   `MAX_SPANS_PER_EXPORT` is refused before decoding;
//! - the native decoder gives exactly what `from_proto(ExportTraceServiceRequest::decode(..))`
//!   gives (native.rs), whenever prost decodes the body too;
//! - what validation keeps exports and reads back the same (protobuf, JSON lines, protobuf
//!   messages), and folds into a view whose status document renders.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanfold::otlp::{self, DecodeError, Encoding, MAX_SPANS_PER_EXPORT, file, native};
use spanfold::registry::Origin;
use spanfold_fuzz::{accept, assert_same, span_count};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let origin = if mode & 0x80 == 0 {
        Origin::Client
    } else {
        Origin::Coordinator
    };
    match mode & 3 {
        0 => {
            let plain = otlp::decompress(None, rest).expect("no encoding is the body itself");
            assert_eq!(plain, rest);
            decode(&plain, origin);
        }
        1 => {
            if let Ok(plain) = otlp::decompress(Some("gzip"), rest) {
                assert!(plain.len() <= otlp::MAX_HTTP_BODY);
                decode(&plain, origin);
            }
        }
        2 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).expect("compress");
            let body = gz.finish().expect("compress");
            // Header values are compared without case or surrounding blanks.
            let plain = otlp::decompress(Some(" GZip "), &body).expect("valid gzip decompresses");
            assert_eq!(plain, rest, "gzip did not give back the body");
            decode(&plain, origin);
        }
        _ => replay_message(rest),
    }
});

fn decode(body: &[u8], origin: Origin) {
    let counted = otlp::count_spans(body);
    let decoded = otlp::decode_http(Encoding::Protobuf, body);
    if let Ok(n) = counted
        && n > MAX_SPANS_PER_EXPORT
    {
        assert!(
            matches!(decoded, Err(DecodeError::TooManySpans)),
            "{n} spans were not refused as too many"
        );
        return;
    }
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            // Errors carry the status OTLP/HTTP gives them.
            assert!(matches!(e.http_status(), 400 | 413), "{e}");
            return;
        }
    };
    let total = span_count(&decoded.resource_spans) + decoded.rejected.count;
    match counted {
        Ok(n) => assert_eq!(n, total, "count_spans disagrees with the decoder"),
        Err(e) => panic!("the decoder took a body count_spans refuses: {e}"),
    }
    assert!(decoded.rejected.reasons.len() <= otlp::MAX_REASONS);
    assert_eq!(
        decoded.rejected.reasons.len(),
        decoded.rejected.count.min(otlp::MAX_REASONS)
    );
    for rs in &decoded.resource_spans {
        assert!(!rs.scope_spans.is_empty());
        for ss in &rs.scope_spans {
            assert!(!ss.spans.is_empty());
        }
    }
    // The reference decoder: prost into opentelemetry-proto's messages, then `from_proto`.
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        let reference = otlp::from_proto(request);
        assert_same(
            &decoded.resource_spans,
            &reference.resource_spans,
            "native decoder and prost + from_proto disagree",
        );
        assert_eq!(decoded.rejected.count, reference.rejected.count);
        assert_eq!(decoded.rejected.reasons, reference.rejected.reasons);
    }
    accept(decoded, origin);
}

/// A message of a protobuf trace file: the native decoder plus spanfold's placement field.
fn replay_message(body: &[u8]) {
    let Ok(unit) = file::decode_protobuf(body) else {
        return;
    };
    let direct = native::decode_request(body).expect("decode_protobuf decoded it");
    assert_same(
        &unit.events.resource_spans,
        &direct.resource_spans,
        "decode_protobuf",
    );
    assert_eq!(unit.rejected, direct.rejected.reasons);
    if let Ok(batch) = file::Placer::default().place(unit)
        && let Some(batch) = batch
    {
        spanfold_fuzz::fold(&batch);
    }
}
