//! The limits every span must meet, named in the registry or not: how deeply its values nest,
//! how long one key or value is, and how many values it carries. They keep one span from
//! filling the log and every export readable by OTLP/JSON readers.

use crate::model::{AnyValue, KeyValue, Span};

/// Deepest nesting of arrays and key-value lists accepted in an attribute value. An exported
/// OTLP/JSON line spends up to four JSON levels per nesting (a key-value list: the value, the
/// list, its values, the pair) plus about ten around the attribute, and JSON readers commonly
/// stop at 128.
pub const MAX_VALUE_DEPTH: usize = 24;

/// Largest single key or value, in bytes, in any span. Bigger content belongs in a file whose
/// path the span names: every byte of a span is kept in the log, and some in the view.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest string a registered attribute may hold: those values are kept in the view, its
/// checkpoints and every status answer.
pub const MAX_KEPT_VALUE_BYTES: usize = 64 << 10;
/// Most attributes, events, links and nested values in one span. An empty attribute is two bytes
/// on the wire and tens in memory, so a count, not the body size, bounds what a span costs.
pub const MAX_ITEMS_PER_SPAN: usize = 10_000;

/// A whole span against the limits: its texts, and the count of its attributes, events, links
/// and nested values.
pub(super) fn span_within_limits(span: &Span) -> Result<(), String> {
    let texts = [
        ("name", span.name.as_str()),
        ("trace_state", &span.trace_state),
        ("status message", &span.status.message),
    ]
    .into_iter()
    .chain(span.events.iter().map(|e| ("event name", e.name.as_str())))
    .chain(
        span.links
            .iter()
            .map(|l| ("link trace_state", l.trace_state.as_str())),
    );
    longest_text(texts)?;
    let items = measure(
        span.attributes
            .iter()
            .chain(span.events.iter().flat_map(|e| &e.attributes))
            .chain(span.links.iter().flat_map(|l| &l.attributes)),
    )? + span.events.len()
        + span.links.len();
    if items > MAX_ITEMS_PER_SPAN {
        return Err(format!(
            "the span carries {items} attributes, events, links and nested values; the limit is {MAX_ITEMS_PER_SPAN}"
        ));
    }
    Ok(())
}

/// Checks attributes against the depth and size limits; returns how many values they hold.
pub(super) fn measure<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Result<usize, String> {
    let mut items = 0;
    for kv in attributes {
        let shape = Shape::of(kv);
        if shape.depth > MAX_VALUE_DEPTH {
            return Err(format!(
                "attribute {} nests arrays or key-value lists more than {MAX_VALUE_DEPTH} deep; flatten it",
                truncated(&kv.key)
            ));
        }
        if shape.largest > MAX_VALUE_BYTES {
            return Err(format!(
                "attribute {} holds {} bytes in one key or value; the limit is {MAX_VALUE_BYTES}: write large content to a file and send its path",
                truncated(&kv.key),
                shape.largest
            ));
        }
        items += shape.items;
    }
    Ok(items)
}

/// Refuses the first text longer than [`MAX_VALUE_BYTES`], naming which.
pub(super) fn longest_text<'a>(
    texts: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    match texts.into_iter().find(|(_, t)| t.len() > MAX_VALUE_BYTES) {
        Some((what, t)) => Err(format!(
            "its {what} is {} bytes; the limit is {MAX_VALUE_BYTES}",
            t.len()
        )),
        None => Ok(()),
    }
}

/// Checks what every span of a group shares (a resource, a scope) once for the group.
pub(super) fn shared(attributes: &[KeyValue], texts: &[(&str, &str)]) -> Result<(), String> {
    longest_text(texts.iter().copied())?;
    let items = measure(attributes.iter())?;
    if items > MAX_ITEMS_PER_SPAN {
        return Err(format!(
            "it carries {items} attributes and nested values; the limit is {MAX_ITEMS_PER_SPAN}"
        ));
    }
    Ok(())
}

/// A key as it can be quoted in a message: a refused key may itself be megabytes long.
pub(super) fn truncated(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_owned(),
    }
}

/// What one attribute adds up to: values counted (itself included), the longest key or value in
/// bytes, and how deeply it nests arrays and key-value lists (a scalar is 0).
#[derive(Debug, Default, Clone, Copy)]
struct Shape {
    items: usize,
    largest: usize,
    depth: usize,
}

impl Shape {
    fn of(kv: &KeyValue) -> Shape {
        let mut shape = Shape::of_value(&kv.value);
        shape.largest = shape.largest.max(kv.key.len());
        shape
    }

    fn of_value(value: &AnyValue) -> Shape {
        let nested = |shapes: &mut dyn Iterator<Item = Shape>| {
            shapes.fold(Shape::default(), |a, b| Shape {
                items: a.items + b.items,
                largest: a.largest.max(b.largest),
                depth: a.depth.max(b.depth),
            })
        };
        let (inner, largest) = match value {
            AnyValue::Array(items) => (nested(&mut items.iter().map(Shape::of_value)), 0),
            AnyValue::KvList(kvs) => (nested(&mut kvs.iter().map(Shape::of)), 0),
            AnyValue::String(s) => return Shape::scalar(s.len()),
            AnyValue::Bytes(b) => return Shape::scalar(b.len()),
            _ => return Shape::scalar(0),
        };
        Shape {
            items: inner.items + 1,
            largest: inner.largest.max(largest),
            depth: inner.depth + 1,
        }
    }

    fn scalar(len: usize) -> Shape {
        Shape {
            items: 1,
            largest: len,
            depth: 0,
        }
    }
}
