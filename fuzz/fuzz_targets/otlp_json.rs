//! OTLP/JSON bodies through the decoders and validation.
//!
//! The input is one body (or one line of a trace file), tried the three ways spanfold reads
//! OTLP/JSON: `decode_http(Encoding::Json, ..)` (OTLP/HTTP), `json::decode_request`, and
//! `json::decode_line` / `file::decode_json_line` (`spanfold replay`, with spanfold's placement
//! field). Checked:
//! - the readers agree: a line `decode_line` reads is the request `decode_request` reads, and
//!   `decode_http` is `from_proto` of it, refusals and their words too (or refuses it for
//!   having too many spans). `decode_line` and `decode_http` read the plain case with the fast
//!   reader (`json_native`), `decode_request` never does: this is where the two are compared;
//! - what validation keeps exports and reads back the same (protobuf, JSON lines, protobuf
//!   messages), and folds into a view whose status document renders;
//! - a line with a placement is placed where it says.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use spanfold::otlp::{self, DecodeError, Encoding, MAX_SPANS_PER_EXPORT, file, json};
use spanfold::registry::Origin;
use spanfold_fuzz::{accept, assert_same, span_count};

fuzz_target!(|data: &[u8]| {
    let request = json::decode_request(data);
    let line = json::decode_line(data);
    if let Ok((from_line, meta)) = &line {
        let Ok(request) = &request else {
            panic!("decode_line read a line decode_request refuses");
        };
        // A line of log records or metrics is read as that signal; a trace request reader
        // sees none of it.
        let other_signal = serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| {
            ["resourceLogs", "resource_logs", "resourceMetrics", "resource_metrics"]
                .iter()
                .any(|k| v.get(k).is_some())
        });
        if !other_signal {
            let reference = otlp::from_proto(request.clone());
            assert_same(
                &from_line.resource_spans,
                &reference.resource_spans,
                "decode_line and decode_request disagree",
            );
        }
        if let Some(meta) = meta {
            let unit = file::decode_json_line(data).expect("decode_line read it");
            let spans = unit.events.event_count() as u64;
            let unique = unit
                .events
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.key())
                .collect::<BTreeSet<_>>()
                .len() as u64;
            match file::Placer::default().place(unit) {
                Ok(Some(batch)) => {
                    assert_eq!(batch.first_seq, meta.first_seq);
                    assert_eq!(batch.received_at, meta.received_at);
                    assert_eq!(batch.event_count() as u64, spans);
                }
                Ok(None) => assert_eq!(spans, 0),
                // A line repeating a span is refused (an export never does), as is one running
                // past the last sequence number.
                Err(e) => assert!(
                    unique < spans
                        || other_signal
                        || meta.first_seq.checked_add(spans).is_none(),
                    "placing a well-formed line failed: {e}"
                ),
            }
        }
    }
    let http = otlp::decode_http(Encoding::Json, data);
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            assert!(
                http.is_err(),
                "decode_http read what decode_request refuses: {e}"
            );
            return;
        }
    };
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let decoded = match http {
        Ok(d) => d,
        Err(DecodeError::TooManySpans) if spans > MAX_SPANS_PER_EXPORT => return,
        Err(e) => panic!("decode_http refused what decode_request read: {e}"),
    };
    let reference = otlp::from_proto(request);
    assert_same(
        &decoded.resource_spans,
        &reference.resource_spans,
        "decode_http is not from_proto of decode_request",
    );
    assert_eq!(decoded.rejected.count, reference.rejected.count);
    assert_eq!(decoded.rejected.reasons, reference.rejected.reasons);
    assert_eq!(
        span_count(&decoded.resource_spans) + decoded.rejected.count,
        spans
    );
    // Client validation for bodies that look like an agent's, coordinator's for the others.
    let origin = if data.len() % 2 == 0 {
        Origin::Client
    } else {
        Origin::Coordinator
    };
    accept(decoded, origin);
});
