//! OTLP protobuf decoded straight into the project's span types, without prost's intermediate
//! messages: one allocation per string and per list instead of two, and no conversion pass.
//! Gives exactly what `from_proto(ExportTraceServiceRequest::decode(..))` gives (a test checks
//! it), at about twice the speed; replay reads its files with it.
//!
//! Field numbers are those of opentelemetry-proto's trace, common and resource messages.

use super::{DecodeError, Decoded, id};
use crate::model::{
    AnyValue, EntityRef, KeyValue, Link, Resource, ResourceSpans, Scope, ScopeSpans, Span,
    SpanEvent, Status, Str,
};

/// What went wrong, and in which field: small and allocation-free, so that the hot path
/// returns in registers; turned into a [`DecodeError`] once, at the top.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bad {
    what: &'static str,
    field: &'static str,
}

pub(super) type R<T> = Result<T, Bad>;

/// What an export may still allocate, in items (spans, attributes, events, links, list
/// values, entity references), counted while decoding: an item can take two bytes on the wire
/// and sixty in memory, so without a bound a 20 MiB body of empty attributes would take more
/// than a gigabyte before any limit saw it.
pub(super) struct Budget(pub(super) usize);

pub(super) const TOO_MANY_ITEMS: &str = "too many items";

impl Budget {
    #[inline(always)]
    pub(super) fn take(&mut self) -> R<()> {
        match self.0.checked_sub(1) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => Err(bad(TOO_MANY_ITEMS, "")),
        }
    }
}

/// Deepest nesting of arrays and key-value lists in one attribute value. prost stops at 100
/// nested messages; a key-value list costs three (value, list, pair) and a span's attribute
/// starts five deep, so 30 levels stay within it: anything this decoder accepts, prost accepts
/// too. (Validation accepts only 24: `registry::MAX_VALUE_DEPTH`.)
const MAX_DEPTH: u32 = 29;

#[cold]
#[inline(never)]
pub(super) fn bad(what: &'static str, field: &'static str) -> Bad {
    Bad { what, field }
}

/// A cursor over one message's bytes.
pub(super) struct Fields<'a> {
    buf: &'a [u8],
}

/// One field's value.
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Fields<'a> {
    #[inline(always)]
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    /// A varint; the one-byte case (tags, small lengths) first, as it is most of them.
    #[inline(always)]
    pub(super) fn varint(&mut self) -> R<u64> {
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> R<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(bad("invalid varint", ""))
    }

    #[inline(always)]
    pub(super) fn next_field(&mut self) -> R<Option<(u32, Value<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = (key >> 3) as u32;
        if key > u64::from(u32::MAX) || tag == 0 {
            return Err(bad("invalid field key", ""));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let Some((head, rest)) = self.buf.split_first_chunk::<8>() else {
                    return Err(bad("truncated 64-bit field", ""));
                };
                self.buf = rest;
                Value::Fixed64(u64::from_le_bytes(*head))
            }
            5 => {
                let Some((head, rest)) = self.buf.split_first_chunk::<4>() else {
                    return Err(bad("truncated 32-bit field", ""));
                };
                self.buf = rest;
                Value::Fixed32(u32::from_le_bytes(*head))
            }
            2 => {
                let len = self.varint()?;
                if (self.buf.len() as u64) < len {
                    return Err(bad("truncated length-delimited field", ""));
                }
                let (head, rest) = self.buf.split_at(len as usize);
                self.buf = rest;
                Value::Bytes(head)
            }
            3 | 4 => return Err(bad("groups are not used by OTLP", "")),
            _ => return Err(bad("invalid wire type", "")),
        };
        Ok(Some((tag, value)))
    }
}

impl<'a> Value<'a> {
    #[inline(always)]
    pub(super) fn bytes(self, field: &'static str) -> R<&'a [u8]> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(bad("wrong wire type", field)),
        }
    }

    pub(super) fn string(self, field: &'static str) -> R<String> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| bad("invalid UTF-8", field))
    }

    /// A short string without a heap allocation.
    #[inline(always)]
    pub(super) fn str(self, field: &'static str) -> R<Str> {
        let b = self.bytes(field)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Str::from(s)),
            Err(_) => Err(bad("invalid UTF-8", field)),
        }
    }

    #[inline(always)]
    pub(super) fn varint(self, field: &'static str) -> R<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(bad("wrong wire type", field)),
        }
    }

    pub(super) fn u32(self, field: &'static str) -> R<u32> {
        // proto3 uint32 is a varint truncated to 32 bits, as prost reads it.
        self.varint(field).map(|v| v as u32)
    }

    #[inline(always)]
    pub(super) fn fixed64(self, field: &'static str) -> R<u64> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(bad("wrong wire type", field)),
        }
    }

    pub(super) fn fixed32(self, field: &'static str) -> R<u32> {
        match self {
            Value::Fixed32(v) => Ok(v),
            _ => Err(bad("wrong wire type", field)),
        }
    }
}

/// Decodes an ExportTraceServiceRequest into model spans, refusing spans with malformed ids
/// one by one, as [`super::from_proto`] does.
pub fn decode_request(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Decoded::default();
    let mut budget = Budget(super::MAX_ITEMS_PER_EXPORT);
    request(body, &mut out, &mut budget).map_err(Bad::into_error)?;
    Ok(out)
}

/// Walks an export request's repeated field 1 (its resource groups, whatever the signal),
/// handing each group's bytes to `group` with the request's one budget of items.
pub(super) fn resource_groups(
    body: &[u8],
    what: &'static str,
    mut group: impl FnMut(&[u8], &mut Budget) -> R<()>,
) -> Result<(), DecodeError> {
    let mut budget = Budget(super::MAX_ITEMS_PER_EXPORT);
    let mut f = Fields::new(body);
    let walk = (|| -> R<()> {
        while let Some((tag, v)) = f.next_field()? {
            if tag == 1 {
                group(v.bytes(what)?, &mut budget)?;
            }
        }
        Ok(())
    })();
    walk.map_err(Bad::into_error)
}

impl Bad {
    pub(super) fn into_error(self) -> DecodeError {
        if self.what == TOO_MANY_ITEMS {
            return DecodeError::TooManyItems;
        }
        DecodeError::Protobuf(if self.field.is_empty() {
            self.what.to_owned()
        } else {
            format!("{}: {}", self.field, self.what)
        })
    }
}

fn request(body: &[u8], out: &mut Decoded, b: &mut Budget) -> R<()> {
    let mut f = Fields::new(body);
    while let Some((tag, v)) = f.next_field()? {
        if tag == 1 {
            let rs = resource_spans(v.bytes("resource_spans")?, out, b)?;
            if !rs.scope_spans.is_empty() {
                out.resource_spans.push(rs);
            }
        }
    }
    Ok(())
}

fn resource_spans(buf: &[u8], out: &mut Decoded, b: &mut Budget) -> R<ResourceSpans> {
    let mut rs = ResourceSpans::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => resource(v.bytes("resource")?, &mut rs.resource, b)?,
            2 => {
                let ss = scope_spans(v.bytes("scope_spans")?, out, b)?;
                if !ss.spans.is_empty() {
                    rs.scope_spans.push(ss);
                }
            }
            3 => rs.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(rs)
}

pub(super) fn resource(buf: &[u8], r: &mut Resource, b: &mut Budget) -> R<()> {
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => r.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            2 => r.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            3 => r.entity_refs.push(entity_ref(v.bytes("entity_refs")?, b)?),
            _ => {}
        }
    }
    Ok(())
}

fn entity_ref(buf: &[u8], b: &mut Budget) -> R<EntityRef> {
    b.take()?;
    let mut e = EntityRef::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => e.schema_url = v.string("schema_url")?,
            2 => e.kind = v.string("type")?,
            3 => {
                b.take()?;
                e.id_keys.push(v.string("id_keys")?)
            }
            4 => {
                b.take()?;
                e.description_keys.push(v.string("description_keys")?)
            }
            _ => {}
        }
    }
    Ok(e)
}

fn scope_spans(buf: &[u8], out: &mut Decoded, b: &mut Budget) -> R<ScopeSpans> {
    let mut ss = ScopeSpans::default();
    // Sized once: a batch holds hundreds of spans, and each is large to move when a list grows.
    let mut count = Fields::new(buf);
    let mut n = 0;
    while let Some((tag, _)) = count.next_field()? {
        n += usize::from(tag == 2);
    }
    ss.spans.reserve_exact(n);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => scope(v.bytes("scope")?, &mut ss.scope, b)?,
            2 => match span(v.bytes("spans")?, b)? {
                Ok(s) => ss.spans.push(s),
                Err(why) => out.rejected.push(why),
            },
            3 => ss.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(ss)
}

pub(super) fn scope(buf: &[u8], s: &mut Scope, b: &mut Budget) -> R<()> {
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => s.name = v.string("name")?,
            2 => s.version = v.string("version")?,
            3 => s.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            4 => s.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            _ => {}
        }
    }
    Ok(())
}

/// A span, or why it is refused (the outer error is a malformed message).
fn span(buf: &[u8], b: &mut Budget) -> R<Result<Span, String>> {
    b.take()?;
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut parent: &[u8] = &[];
    let mut raw_links: Vec<(&[u8], &[u8], Link)> = Vec::new();
    let mut s = Span::new([0; 16], [0; 8], String::new(), 0);
    s.kind = 0;
    // Sized from the message: an attribute takes 40 bytes or so on the wire, and growing the
    // list one push at a time cost more than guessing.
    s.attributes = Vec::with_capacity((buf.len() / 40).min(64));
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => trace_id = v.bytes("trace_id")?,
            2 => span_id = v.bytes("span_id")?,
            3 => s.trace_state = v.string("trace_state")?,
            4 => parent = v.bytes("parent_span_id")?,
            5 => s.name = v.str("name")?,
            6 => s.kind = v.varint("kind")? as i32,
            7 => s.start_time_unix_nano = v.fixed64("start_time_unix_nano")?,
            8 => s.end_time_unix_nano = v.fixed64("end_time_unix_nano")?,
            9 => s.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            10 => s.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            11 => s.events.push(event(v.bytes("events")?, b)?),
            12 => s.dropped_events_count = v.u32("dropped_events_count")?,
            13 => raw_links.push(link(v.bytes("links")?, b)?),
            14 => s.dropped_links_count = v.u32("dropped_links_count")?,
            15 => status(v.bytes("status")?, &mut s.status)?,
            16 => s.flags = v.fixed32("flags")?,
            _ => {}
        }
    }
    let checked = (|| {
        s.trace_id = id(trace_id, "trace_id", &s.name)?;
        s.span_id = id(span_id, "span_id", &s.name)?;
        if s.trace_id == [0; 16] || s.span_id == [0; 8] {
            return Err(format!(
                "span {:?}: trace_id and span_id must not be all zeros",
                s.name
            ));
        }
        if !parent.is_empty() && parent.len() != 8 {
            return Err(format!(
                "span {:?}: parent_span_id must be empty or 8 bytes, got {} bytes",
                s.name,
                parent.len()
            ));
        }
        s.parent_span_id = parent.to_vec();
        for (trace_id, span_id, mut l) in raw_links.drain(..) {
            l.trace_id = id(trace_id, "a link's trace_id", &s.name)?;
            l.span_id = id(span_id, "a link's span_id", &s.name)?;
            s.links.push(l);
        }
        Ok(())
    })();
    Ok(checked.map(|()| s))
}

fn event(buf: &[u8], b: &mut Budget) -> R<SpanEvent> {
    b.take()?;
    let mut e = SpanEvent {
        time_unix_nano: 0,
        name: String::new(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => e.time_unix_nano = v.fixed64("time_unix_nano")?,
            2 => e.name = v.string("name")?,
            3 => e.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            4 => e.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            _ => {}
        }
    }
    Ok(e)
}

fn link<'a>(buf: &'a [u8], b: &mut Budget) -> R<(&'a [u8], &'a [u8], Link)> {
    b.take()?;
    let mut l = Link {
        trace_id: [0; 16],
        span_id: [0; 8],
        trace_state: String::new(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        flags: 0,
    };
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => trace_id = v.bytes("trace_id")?,
            2 => span_id = v.bytes("span_id")?,
            3 => l.trace_state = v.string("trace_state")?,
            4 => l.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            5 => l.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            6 => l.flags = v.fixed32("flags")?,
            _ => {}
        }
    }
    Ok((trace_id, span_id, l))
}

fn status(buf: &[u8], s: &mut Status) -> R<()> {
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            2 => s.message = v.string("message")?,
            3 => s.code = v.varint("code")? as i32,
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn key_value(buf: &[u8], depth: u32, b: &mut Budget) -> R<KeyValue> {
    b.take()?;
    let mut kv = KeyValue {
        key: Str::default(),
        value: AnyValue::Empty,
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => kv.key = v.str("key")?,
            // A message field sent twice is merged, as protobuf says (and prost does).
            2 => any_value_into(v.bytes("value")?, depth, &mut kv.value, b)?,
            _ => {}
        }
    }
    Ok(kv)
}

pub(super) fn any_value(buf: &[u8], depth: u32, b: &mut Budget) -> R<AnyValue> {
    b.take()?;
    let mut value = AnyValue::Empty;
    any_value_into(buf, depth, &mut value, b)?;
    Ok(value)
}

/// Decodes an AnyValue onto `value`: a later member of the oneof replaces an earlier one, and
/// the same list member twice is merged (its values appended), as protobuf merges messages.
pub(super) fn any_value_into(
    buf: &[u8],
    depth: u32,
    value: &mut AnyValue,
    b: &mut Budget,
) -> R<()> {
    if depth > MAX_DEPTH {
        return Err(bad("attribute values are nested too deeply", "value"));
    }
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        *value = match tag {
            1 => AnyValue::String(v.str("string_value")?),
            2 => AnyValue::Bool(v.varint("bool_value")? != 0),
            3 => AnyValue::Int(v.varint("int_value")? as i64),
            4 => AnyValue::Double(f64::from_bits(v.fixed64("double_value")?)),
            5 => {
                let items = list(v.bytes("array_value")?, depth, b, |x, d, b| {
                    any_value(x, d + 1, b)
                })?;
                match value {
                    AnyValue::Array(earlier) => {
                        earlier.extend(items);
                        continue;
                    }
                    _ => AnyValue::Array(items),
                }
            }
            6 => {
                let pairs = list(v.bytes("kvlist_value")?, depth, b, |x, d, b| {
                    key_value(x, d + 1, b)
                })?;
                match value {
                    AnyValue::KvList(earlier) => {
                        earlier.extend(pairs);
                        continue;
                    }
                    _ => AnyValue::KvList(pairs),
                }
            }
            7 => AnyValue::Bytes(v.bytes("bytes_value")?.to_vec()),
            // string_value_strindex (profiles only) carries no meaning in traces.
            8 => AnyValue::Empty,
            _ => continue,
        };
    }
    Ok(())
}

/// The repeated field 1 of an ArrayValue or KeyValueList.
fn list<T>(
    buf: &[u8],
    depth: u32,
    b: &mut Budget,
    item: impl Fn(&[u8], u32, &mut Budget) -> R<T>,
) -> R<Vec<T>> {
    let mut out = Vec::new();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        if tag == 1 {
            out.push(item(v.bytes("values")?, depth, b)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Gives what prost plus `from_proto` gives, for everything the model holds.
    fn same_as_prost(body: &[u8]) {
        let native = decode_request(body).expect("native decodes");
        let reference = super::super::from_proto(
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                body,
            )
            .expect("prost decodes"),
        );
        assert_eq!(native.resource_spans, reference.resource_spans);
        assert_eq!(native.rejected.count, reference.rejected.count);
        assert_eq!(native.rejected.reasons, reference.rejected.reasons);
    }

    #[test]
    fn decodes_like_prost_and_from_proto() {
        use opentelemetry_proto::tonic::common::v1 as pc;
        use opentelemetry_proto::tonic::trace::v1 as pt;
        let s = |v: &str| pc::AnyValue {
            value: Some(pc::any_value::Value::StringValue(v.into())),
        };
        let kv = |k: &str, v: pc::AnyValue| pc::KeyValue {
            key: k.into(),
            value: Some(v),
            key_strindex: 0,
        };
        let nested = pc::AnyValue {
            value: Some(pc::any_value::Value::ArrayValue(pc::ArrayValue {
                values: vec![
                    s("x"),
                    pc::AnyValue { value: None },
                    pc::AnyValue {
                        value: Some(pc::any_value::Value::KvlistValue(pc::KeyValueList {
                            values: vec![kv(
                                "d",
                                pc::AnyValue {
                                    value: Some(pc::any_value::Value::DoubleValue(-0.5)),
                                },
                            )],
                        })),
                    },
                ],
            })),
        };
        let good = pt::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "a=b".into(),
            name: "agent.work_progress".into(),
            kind: 2,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            attributes: vec![
                kv("a", s("é")),
                kv(
                    "i",
                    pc::AnyValue {
                        value: Some(pc::any_value::Value::IntValue(-7)),
                    },
                ),
                kv("n", nested),
                pc::KeyValue {
                    key: "none".into(),
                    value: None,
                    key_strindex: 0,
                },
            ],
            dropped_attributes_count: 1,
            events: vec![pt::span::Event {
                time_unix_nano: 9,
                name: "e".into(),
                attributes: vec![kv("k", s("v"))],
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![pt::span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                trace_state: "t".into(),
                attributes: vec![],
                dropped_attributes_count: 4,
                flags: 7,
            }],
            dropped_links_count: 8,
            status: Some(pt::Status {
                message: "m".into(),
                code: 2,
            }),
            flags: 257,
        };
        let short_id = pt::Span {
            span_id: vec![1; 4],
            ..good.clone()
        };
        let bad_link = pt::Span {
            links: vec![pt::span::Link {
                trace_id: vec![1; 3],
                ..good.links[0].clone()
            }],
            ..good.clone()
        };
        let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("service.name", s("svc"))],
                    dropped_attributes_count: 3,
                    entity_refs: vec![pc::EntityRef {
                        schema_url: "u".into(),
                        r#type: "service".into(),
                        id_keys: vec!["service.name".into()],
                        description_keys: vec!["d".into()],
                    }],
                }),
                scope_spans: vec![
                    pt::ScopeSpans {
                        scope: Some(pc::InstrumentationScope {
                            name: "sc".into(),
                            version: "1".into(),
                            attributes: vec![kv("x", s("y"))],
                            dropped_attributes_count: 1,
                        }),
                        spans: vec![good, short_id, bad_link],
                        schema_url: "s".into(),
                    },
                    pt::ScopeSpans::default(),
                ],
                schema_url: "r".into(),
            }],
        };
        same_as_prost(&request.encode_to_vec());
        same_as_prost(&[]);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn a_value_sent_twice_is_merged_as_prost_merges_it() {
        // Found by fuzzing: an AnyValue with array_value twice (prost appends the second
        // array's values), and a KeyValue whose value comes twice, the second empty (prost
        // keeps the first).
        for body in [
            "0a38123612340a1001010101010101010101010101010101120802020202020202022a01784a130a016b120e2a050a030a01612a050a030a0162",
            "0a2f122d122b0a1001010101010101010101010101010101120802020202020202022a01784a0a0a016b12030a01761200",
        ] {
            same_as_prost(&unhex(body));
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for body in [
            &[0x0a, 0x05, 0x01][..],
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[0x0b],
        ] {
            assert!(decode_request(body).is_err());
        }
        // Arrays nested past the limit.
        let mut value = vec![];
        for _ in 0..200 {
            let mut outer = vec![0x2a];
            let mut list = vec![0x0a];
            prost::encoding::encode_varint(value.len() as u64, &mut list);
            list.extend_from_slice(&value);
            prost::encoding::encode_varint(list.len() as u64, &mut outer);
            outer.extend_from_slice(&list);
            value = outer;
        }
        let mut kv = vec![0x0a, 0x01, b'k', 0x12];
        prost::encoding::encode_varint(value.len() as u64, &mut kv);
        kv.extend_from_slice(&value);
        let mut span = vec![0x4a];
        prost::encoding::encode_varint(kv.len() as u64, &mut span);
        span.extend_from_slice(&kv);
        let mut ss = vec![0x12];
        prost::encoding::encode_varint(span.len() as u64, &mut ss);
        ss.extend_from_slice(&span);
        let mut rs = vec![0x12];
        prost::encoding::encode_varint(ss.len() as u64, &mut rs);
        rs.extend_from_slice(&ss);
        let mut req = vec![0x0a];
        prost::encoding::encode_varint(rs.len() as u64, &mut req);
        req.extend_from_slice(&rs);
        let err = decode_request(&req).expect_err("too deep");
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }
}
