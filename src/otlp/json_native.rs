//! OTLP/JSON trace exports decoded straight into the model, as `native.rs` does for protobuf:
//! serde visits the text once, keys and most strings are borrowed from the body, and no
//! `serde_json::Value` or prost struct is built on the way.
//!
//! It reads what `json.rs` reads, the same way, and nothing else: whenever the body is not the
//! plain case (malformed, a wrong type, a key given twice or both as `traceId` and `trace_id`,
//! two values in one `AnyValue`, a line of logs or metrics), it answers `None` and the caller
//! decodes with `json.rs`, which names the path of whatever was wrong. So the two can never
//! disagree on what a body means; the `otlp_json` fuzz target checks that they do not.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Decoded;
use super::convert::id;
use super::json::LineMeta;
use crate::model::{
    AnyValue, EntityRef, KeyValue, Link, Resource, ResourceSpans, Scope, ScopeSpans, Span,
    SpanEvent, Status, Str,
};

/// A body read fast: the spans (kept and refused) and a trace-file line's placement.
pub struct Fast {
    pub decoded: Decoded,
    pub meta: Option<LineMeta>,
    /// Spans in the body, kept or refused: what the export-size limit counts.
    pub spans: usize,
}

/// The export in `body`, or `None` when it is not the plain case (see the module's comment).
pub fn decode(body: &[u8]) -> Option<Fast> {
    // The whole text checked as UTF-8 at once (an ASCII run goes fast), as the checked reader
    // checks every string it parses; serde's field names would otherwise be compared as bytes.
    let text = std::str::from_utf8(body).ok()?;
    let root: Root<'_> = serde_json::from_str(text).ok()?;
    if root.logs || root.logs_snake || root.metrics || root.metrics_snake {
        return None;
    }
    let mut out = Fast {
        decoded: Decoded::default(),
        meta: root.meta.map(|Obj(m)| LineMeta {
            first_seq: m.first_seq,
            received_at: m.received_at,
        }),
        spans: 0,
    };
    for Obj(rs) in root.resource_spans {
        let mut scope_spans = Vec::with_capacity(rs.scope_spans.len());
        for Obj(ss) in rs.scope_spans {
            out.spans += ss.spans.len();
            let mut spans = Vec::with_capacity(ss.spans.len());
            for Obj(span) in ss.spans {
                match span.into_model() {
                    Ok(s) => spans.push(s),
                    Err(why) => out.decoded.rejected.push(why),
                }
            }
            if !spans.is_empty() {
                scope_spans.push(ScopeSpans {
                    scope: ss.scope.map(|Obj(s)| s.into_model()).unwrap_or_default(),
                    schema_url: ss.schema_url.into(),
                    spans,
                });
            }
        }
        if !scope_spans.is_empty() {
            out.decoded.resource_spans.push(ResourceSpans {
                resource: rs.resource.map(|Obj(r)| r.into_model()).unwrap_or_default(),
                schema_url: rs.schema_url.into(),
                scope_spans,
            });
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct Root<'a> {
    #[serde(
        rename = "resourceSpans",
        alias = "resource_spans",
        default,
        borrow,
        deserialize_with = "or_empty"
    )]
    resource_spans: Vec<Obj<RawResourceSpans<'a>>>,
    /// A line of another signal (its key present, even as null) is `json.rs`'s to read.
    #[serde(rename = "resourceLogs", default, deserialize_with = "present")]
    logs: bool,
    #[serde(rename = "resource_logs", default, deserialize_with = "present")]
    logs_snake: bool,
    #[serde(rename = "resourceMetrics", default, deserialize_with = "present")]
    metrics: bool,
    #[serde(rename = "resource_metrics", default, deserialize_with = "present")]
    metrics_snake: bool,
    #[serde(rename = "spanfold", default)]
    meta: Option<Obj<RawMeta>>,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(
        rename = "firstSeq",
        alias = "first_seq",
        default,
        deserialize_with = "uint"
    )]
    first_seq: u64,
    #[serde(
        rename = "receivedAt",
        alias = "received_at",
        default,
        deserialize_with = "uint"
    )]
    received_at: u64,
}

#[derive(Deserialize)]
struct RawResourceSpans<'a> {
    #[serde(default, borrow)]
    resource: Option<Obj<RawResource<'a>>>,
    #[serde(
        rename = "scopeSpans",
        alias = "scope_spans",
        default,
        borrow,
        deserialize_with = "or_empty"
    )]
    scope_spans: Vec<Obj<RawScopeSpans<'a>>>,
    #[serde(rename = "schemaUrl", alias = "schema_url", default, borrow)]
    schema_url: Text<'a>,
}

#[derive(Deserialize)]
struct RawScopeSpans<'a> {
    #[serde(default, borrow)]
    scope: Option<Obj<RawScope<'a>>>,
    #[serde(default, borrow, deserialize_with = "or_empty")]
    spans: Vec<Obj<RawSpan<'a>>>,
    #[serde(rename = "schemaUrl", alias = "schema_url", default, borrow)]
    schema_url: Text<'a>,
}

#[derive(Deserialize)]
struct RawResource<'a> {
    #[serde(default)]
    attributes: Kvs,
    #[serde(
        rename = "droppedAttributesCount",
        alias = "dropped_attributes_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_attributes_count: u32,
    #[serde(
        rename = "entityRefs",
        alias = "entity_refs",
        default,
        borrow,
        deserialize_with = "or_empty"
    )]
    entity_refs: Vec<Obj<RawEntityRef<'a>>>,
}

impl RawResource<'_> {
    fn into_model(self) -> Resource {
        Resource {
            attributes: self.attributes.0,
            dropped_attributes_count: self.dropped_attributes_count,
            entity_refs: self
                .entity_refs
                .into_iter()
                .map(|Obj(e)| EntityRef {
                    schema_url: e.schema_url.into(),
                    kind: e.kind.into(),
                    id_keys: e.id_keys.into_iter().map(|Item(t)| t.into()).collect(),
                    description_keys: e
                        .description_keys
                        .into_iter()
                        .map(|Item(t)| t.into())
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct RawEntityRef<'a> {
    #[serde(rename = "schemaUrl", alias = "schema_url", default, borrow)]
    schema_url: Text<'a>,
    #[serde(rename = "type", default, borrow)]
    kind: Text<'a>,
    #[serde(
        rename = "idKeys",
        alias = "id_keys",
        default,
        borrow,
        deserialize_with = "or_empty"
    )]
    id_keys: Vec<Item<'a>>,
    #[serde(
        rename = "descriptionKeys",
        alias = "description_keys",
        default,
        borrow,
        deserialize_with = "or_empty"
    )]
    description_keys: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct RawScope<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    version: Text<'a>,
    #[serde(default)]
    attributes: Kvs,
    #[serde(
        rename = "droppedAttributesCount",
        alias = "dropped_attributes_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_attributes_count: u32,
}

impl RawScope<'_> {
    fn into_model(self) -> Scope {
        Scope {
            name: self.name.into(),
            version: self.version.into(),
            attributes: self.attributes.0,
            dropped_attributes_count: self.dropped_attributes_count,
        }
    }
}

#[derive(Deserialize)]
struct RawSpan<'a> {
    #[serde(rename = "traceId", alias = "trace_id", default, borrow)]
    trace_id: Hex<'a>,
    #[serde(rename = "spanId", alias = "span_id", default, borrow)]
    span_id: Hex<'a>,
    #[serde(rename = "traceState", alias = "trace_state", default, borrow)]
    trace_state: Text<'a>,
    #[serde(rename = "parentSpanId", alias = "parent_span_id", default, borrow)]
    parent_span_id: Hex<'a>,
    #[serde(default, deserialize_with = "uint32")]
    flags: u32,
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, deserialize_with = "span_kind")]
    kind: i32,
    #[serde(
        rename = "startTimeUnixNano",
        alias = "start_time_unix_nano",
        default,
        deserialize_with = "uint"
    )]
    start_time_unix_nano: u64,
    #[serde(
        rename = "endTimeUnixNano",
        alias = "end_time_unix_nano",
        default,
        deserialize_with = "uint"
    )]
    end_time_unix_nano: u64,
    #[serde(default)]
    attributes: Kvs,
    #[serde(
        rename = "droppedAttributesCount",
        alias = "dropped_attributes_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_attributes_count: u32,
    #[serde(default, borrow, deserialize_with = "or_empty")]
    events: Vec<Obj<RawEvent<'a>>>,
    #[serde(
        rename = "droppedEventsCount",
        alias = "dropped_events_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_events_count: u32,
    #[serde(default, borrow, deserialize_with = "or_empty")]
    links: Vec<Obj<RawLink<'a>>>,
    #[serde(
        rename = "droppedLinksCount",
        alias = "dropped_links_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_links_count: u32,
    #[serde(default, borrow)]
    status: Option<Obj<RawStatus<'a>>>,
}

impl RawSpan<'_> {
    /// The model's span, or why it is refused: the rules and words of `convert.rs`.
    fn into_model(self) -> Result<Span, String> {
        let name: &str = &self.name.0;
        let trace_id: [u8; 16] = self.trace_id.id("trace_id", name)?;
        let span_id: [u8; 8] = self.span_id.id("span_id", name)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(format!(
                "span {name:?}: trace_id and span_id must not be all zeros"
            ));
        }
        let parent_span_id = self.parent_span_id.bytes();
        if !parent_span_id.is_empty() && parent_span_id.len() != 8 {
            return Err(format!(
                "span {name:?}: parent_span_id must be empty or 8 bytes, got {} bytes",
                parent_span_id.len()
            ));
        }
        let mut links = Vec::with_capacity(self.links.len());
        for Obj(l) in self.links {
            links.push(Link {
                trace_id: l.trace_id.id("a link's trace_id", name)?,
                span_id: l.span_id.id("a link's span_id", name)?,
                trace_state: l.trace_state.into(),
                attributes: l.attributes.0,
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            });
        }
        Ok(Span {
            trace_id,
            span_id,
            trace_state: self.trace_state.into(),
            parent_span_id,
            flags: self.flags,
            name: Str::from(name),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: self.attributes.0,
            dropped_attributes_count: self.dropped_attributes_count,
            events: self
                .events
                .into_iter()
                .map(|Obj(e)| SpanEvent {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name.into(),
                    attributes: e.attributes.0,
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: self.dropped_events_count,
            links,
            dropped_links_count: self.dropped_links_count,
            status: self
                .status
                .map(|Obj(s)| Status {
                    message: s.message.into(),
                    code: s.code,
                })
                .unwrap_or_default(),
        })
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(
        rename = "timeUnixNano",
        alias = "time_unix_nano",
        default,
        deserialize_with = "uint"
    )]
    time_unix_nano: u64,
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default)]
    attributes: Kvs,
    #[serde(
        rename = "droppedAttributesCount",
        alias = "dropped_attributes_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_attributes_count: u32,
}

#[derive(Deserialize)]
struct RawLink<'a> {
    #[serde(rename = "traceId", alias = "trace_id", default, borrow)]
    trace_id: Hex<'a>,
    #[serde(rename = "spanId", alias = "span_id", default, borrow)]
    span_id: Hex<'a>,
    #[serde(rename = "traceState", alias = "trace_state", default, borrow)]
    trace_state: Text<'a>,
    #[serde(default)]
    attributes: Kvs,
    #[serde(
        rename = "droppedAttributesCount",
        alias = "dropped_attributes_count",
        default,
        deserialize_with = "uint32"
    )]
    dropped_attributes_count: u32,
    #[serde(default, deserialize_with = "uint32")]
    flags: u32,
}

#[derive(Deserialize)]
struct RawStatus<'a> {
    #[serde(default, borrow)]
    message: Text<'a>,
    #[serde(default, deserialize_with = "status_code")]
    code: i32,
}

/// A JSON object deserialized as `T`, and only an object: serde's derive would also take an
/// array of the fields in order, which `json.rs` refuses.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A string, borrowed from the body unless it had escapes; null is the empty string.
#[derive(Default)]
struct Text<'a>(Cow<'a, str>);

impl From<Text<'_>> for String {
    fn from(t: Text<'_>) -> String {
        t.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A string in a list of strings, where null is not one (the checked reader refuses it).
struct Item<'a>(Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<Text<'a>>::deserialize(d)?
            .map(Item)
            .ok_or_else(|| de::Error::custom("null in a list of strings"))
    }
}

/// Hex id digits as written (null: none), checked to be hex; decoded when the span is built.
#[derive(Default)]
struct Hex<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Hex<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(d)?;
        let Cow::Borrowed(s) = s else {
            // An escaped id is so rare that `json.rs` may read it.
            return Err(de::Error::custom("an id with escapes"));
        };
        if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(de::Error::custom("expected a hex string"));
        }
        Ok(Hex(s))
    }
}

impl Hex<'_> {
    fn bytes(&self) -> Vec<u8> {
        super::json::decode_hex(self.0).unwrap_or_default()
    }

    fn id<const N: usize>(&self, what: &str, span: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        if self.0.len() != 2 * N {
            return id(&self.bytes(), what, span);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        for (o, pair) in out.iter_mut().zip(self.0.as_bytes().chunks_exact(2)) {
            *o = digit(pair[0]) << 4 | digit(pair[1]);
        }
        Ok(out)
    }
}

/// Attributes, each built as the model keeps it (null: none).
#[derive(Default)]
struct Kvs(Vec<KeyValue>);

impl<'de> Deserialize<'de> for Kvs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Kvs(or_empty::<D, Obj<RawKv>>(d)?
            .into_iter()
            .map(|Obj(kv)| kv.0)
            .collect()))
    }
}

struct RawKv(KeyValue);

impl<'de> Deserialize<'de> for RawKv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Kv<'a> {
            #[serde(default, borrow)]
            key: Text<'a>,
            #[serde(default)]
            value: Option<Obj<Value>>,
        }
        let kv = Kv::deserialize(d)?;
        Ok(RawKv(KeyValue {
            key: Str::from(&*kv.key.0),
            value: kv.value.map(|Obj(v)| v.0).unwrap_or(AnyValue::Empty),
        }))
    }
}

/// An `AnyValue` object: at most one value key set (more is `json.rs`'s to judge).
struct Value(AnyValue);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AnyValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut found: Option<AnyValue> = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            let value = match key {
                "stringValue" | "string_value" => map
                    .next_value::<Option<Text<'de>>>()?
                    .map(|t| AnyValue::String(Str::from(&*t.0))),
                "boolValue" | "bool_value" => map.next_value::<Option<bool>>()?.map(AnyValue::Bool),
                "intValue" | "int_value" => {
                    map.next_value::<Option<Int>>()?.map(|i| AnyValue::Int(i.0))
                }
                "doubleValue" | "double_value" => map
                    .next_value::<Option<Double>>()?
                    .map(|d| AnyValue::Double(d.0)),
                "arrayValue" | "array_value" => {
                    map.next_value::<Option<Obj<ArrayValue>>>()?.map(|Obj(a)| {
                        AnyValue::Array(a.values.into_iter().map(|Obj(v)| v.0).collect())
                    })
                }
                "kvlistValue" | "kvlist_value" => map
                    .next_value::<Option<Obj<KvList>>>()?
                    .map(|Obj(l)| AnyValue::KvList(l.values.0)),
                "bytesValue" | "bytes_value" => match map.next_value::<Option<Text<'de>>>()? {
                    None => None,
                    Some(t) => Some(AnyValue::Bytes(
                        base64::engine::general_purpose::STANDARD
                            .decode(&*t.0)
                            .map_err(de::Error::custom)?,
                    )),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            if let Some(v) = value
                && found.replace(v).is_some()
            {
                return Err(de::Error::custom("two values in one AnyValue"));
            }
        }
        Ok(Value(found.unwrap_or(AnyValue::Empty)))
    }
}

#[derive(Deserialize)]
struct ArrayValue {
    #[serde(default, deserialize_with = "or_empty")]
    values: Vec<Obj<Value>>,
}

#[derive(Deserialize)]
struct KvList {
    #[serde(default)]
    values: Kvs,
}

/// An unsigned integer as a number or a decimal string; null is 0.
fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned integer")
        }
        fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            s.trim().parse().map_err(E::custom)
        }
        fn visit_unit<E>(self) -> Result<u64, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

fn uint32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    u32::try_from(uint(d)?).map_err(de::Error::custom)
}

/// A signed 64-bit integer as a number or a decimal string.
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 64-bit integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Int, E> {
                s.trim().parse().map(Int).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A double as a number, or a string (`NaN`, `Infinity`, `-Infinity`, or digits).
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Double, E> {
                Ok(Double(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Double, E> {
                super::json::double_of_str(s)
                    .map(Double)
                    .ok_or_else(|| E::custom("not a number"))
            }
        }
        d.deserialize_any(V)
    }
}

/// An enum as its number or its name in `names` (index = number); null is 0.
fn enum_of<'de, D: Deserializer<'de>>(
    d: D,
    names: &'static [&'static str],
) -> Result<i32, D::Error> {
    struct V(&'static [&'static str]);
    impl<'de> Visitor<'de> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an enum value")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<i32, E> {
            self.0
                .iter()
                .position(|n| *n == s)
                .map(|i| i as i32)
                .ok_or_else(|| E::custom("unknown enum name"))
        }
        fn visit_unit<E>(self) -> Result<i32, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V(names))
}

fn span_kind<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_of(d, super::json::SPAN_KINDS)
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enum_of(d, super::json::STATUS_CODES)
}

/// A list, null being an empty one.
fn or_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// True for a key that is there, whatever its value (null too).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}
