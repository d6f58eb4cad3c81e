//! Shared by the fuzz targets: what the server does with a decoded export (validation, the log's
//! export formats, the fold), and the checks that go with it.

use std::fmt::Debug;

use spanfold::model::{Batch, ResourceSpans};
use spanfold::otlp::{self, Decoded, file, ingest};
use spanfold::reducer::View;
use spanfold::registry::{Origin, Registry};

/// Equal, or equal but for NaN (`NaN != NaN` for `PartialEq`): compared by their `Debug` text,
/// which prints every f64 exactly.
pub fn same<T: PartialEq + Debug>(a: &T, b: &T) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

#[track_caller]
pub fn assert_same<T: PartialEq + Debug>(a: &T, b: &T, what: &str) {
    if !same(a, b) {
        panic!("{what}\n left: {a:#?}\nright: {b:#?}");
    }
}

pub fn span_count(rs: &[ResourceSpans]) -> usize {
    rs.iter().map(|r| r.span_count()).sum()
}

/// A decoded export as the server takes it: validated (refused spans removed), then checked
/// against the log's export formats and folded into a view with its status document.
pub fn accept(mut decoded: Decoded, origin: Origin) {
    let before = span_count(&decoded.resource_spans);
    let violations = Registry::builtin().retain_valid(&mut decoded.resource_spans, origin);
    let kept = span_count(&decoded.resource_spans);
    assert_eq!(
        before,
        kept + violations.len(),
        "retain_valid lost or made spans"
    );
    for rs in &decoded.resource_spans {
        assert!(!rs.scope_spans.is_empty(), "empty resource kept");
        for ss in &rs.scope_spans {
            assert!(!ss.spans.is_empty(), "empty scope kept");
            for span in &ss.spans {
                // Validation is a property of the span: what passed passes again.
                if let Err(v) = Registry::builtin().validate(span, &rs.resource, origin) {
                    panic!("kept a span that fails validation: {v}");
                }
            }
        }
    }
    for v in &violations {
        // Messages name the span.
        assert!(v.to_string().starts_with("span "), "{v}");
    }
    if kept == 0 {
        return;
    }
    let batch = Batch::of_spans(1, 1_700_000_000_000_000_000, decoded.resource_spans);
    export_round_trip(&batch);
    fold(&batch);
}

/// What was accepted into the log reads back the same from every format it leaves in: OTLP
/// protobuf as sent upstream (`encode_request`), and `spanfold export`'s JSON lines and
/// length-prefixed protobuf messages, which `spanfold replay` reads (model.rs: "exporting it
/// again gives back what was received").
pub fn export_round_trip(batch: &Batch) {
    let proto = otlp::encode_request(&batch.resource_spans);
    match ingest::decode_export(&proto) {
        Ok(again) => {
            assert_eq!(again.rejected.count, 0, "{:?}", again.rejected);
            assert_same(
                &again.resource_spans,
                &batch.resource_spans,
                "protobuf export did not read back the same",
            );
        }
        Err(e) => panic!("protobuf export of accepted spans does not decode: {e}"),
    }

    let mut line = Vec::new();
    file::encode_line(batch, &mut line);
    assert_eq!(line.last(), Some(&b'\n'));
    match file::decode_json_line(&line) {
        Ok(unit) => reads_back(unit, batch, "JSON export"),
        Err(e) => panic!(
            "JSON export of accepted spans does not decode: {e}\nline: {}",
            String::from_utf8_lossy(&line)
        ),
    }

    let mut message = Vec::new();
    file::encode_message(batch, &mut message);
    let len = u32::from_be_bytes([message[0], message[1], message[2], message[3]]) as usize;
    assert_eq!(len + 4, message.len(), "length prefix");
    match file::decode_protobuf(&message[4..]) {
        Ok(unit) => reads_back(unit, batch, "protobuf message export"),
        Err(e) => panic!("protobuf message export does not decode: {e}"),
    }
}

/// Folds the batch and renders what users see of it.
pub fn fold(batch: &Batch) {
    let view = View::fold(batch.events());
    assert_eq!(view.counters.events, batch.span_count() as u64);
    let status = spanfold::status::build(&view, &Default::default());
    let health = status.coordination_status.coordination_health;
    assert!((0.0..=1.0).contains(&health), "health {health}");
    serde_json::to_string(&status).expect("the status document serialises");
    let _ = spanfold::policy::decide(&view, &Default::default());
}

/// Input bytes read as choices; past the end every choice is 0, so any input is a whole program.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        for _ in 0..8 {
            v = (v << 8) | u64::from(self.byte());
        }
        v
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[usize::from(self.byte()) % items.len()]
    }

    /// One of `words` (which must not be empty).
    pub fn word(&mut self, words: &[&'static str]) -> &'static str {
        *self.pick(words)
    }

    /// True about once in `n`.
    pub fn one_in(&mut self, n: u8) -> bool {
        self.byte() % n == 0
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// An exported record read back: nothing refused, its placement kept, the same spans.
fn reads_back(unit: file::Unit, batch: &Batch, what: &str) {
    assert!(unit.rejected.is_empty(), "{what}: {:?}", unit.rejected);
    let meta = unit
        .meta
        .unwrap_or_else(|| panic!("{what}: an exported record carries its placement"));
    assert_eq!(
        (meta.first_seq, meta.received_at),
        (batch.first_seq, batch.received_at)
    );
    assert_same(
        &unit.events.resource_spans,
        &batch.resource_spans,
        &format!("{what} did not read back the same"),
    );
}
