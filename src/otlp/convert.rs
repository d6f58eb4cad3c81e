//! Between opentelemetry-proto's messages and the model: spans here, log records in `logs`,
//! metrics in `metrics`, and the resource, scope and attribute values they share.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::Decoded;
use crate::model::{
    AnyValue, EntityRef, KeyValue, Link, Resource, ResourceSpans, Scope, ScopeSpans, Span,
    SpanEvent, Status,
};

/// Converts an export into model spans. A span whose ids have the wrong length is refused (it
/// could not be de-duplicated or referred to); everything else is kept as it came.
pub fn from_proto(request: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for rs in request.resource_spans {
        let mut scope_spans = Vec::with_capacity(rs.scope_spans.len());
        for ss in rs.scope_spans {
            let mut spans = Vec::with_capacity(ss.spans.len());
            for span in ss.spans {
                match span_from_proto(span) {
                    Ok(s) => spans.push(s),
                    Err(why) => out.rejected.push(why),
                }
            }
            if !spans.is_empty() {
                scope_spans.push(ScopeSpans {
                    scope: ss.scope.map(scope_from_proto).unwrap_or_default(),
                    schema_url: ss.schema_url,
                    spans,
                });
            }
        }
        if !scope_spans.is_empty() {
            out.resource_spans.push(ResourceSpans {
                resource: rs.resource.map(resource_from_proto).unwrap_or_default(),
                schema_url: rs.schema_url,
                scope_spans,
            });
        }
    }
    out
}

/// A fixed-size id, or why the span is refused (the message names the span).
pub(crate) fn id<const N: usize>(bytes: &[u8], what: &str, span: &str) -> Result<[u8; N], String> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        format!(
            "span {span:?}: {what} must be {N} bytes ({} hex digits), got {} bytes",
            N * 2,
            bytes.len()
        )
    })
}

fn span_from_proto(s: pt::Span) -> Result<Span, String> {
    let trace_id: [u8; 16] = id(&s.trace_id, "trace_id", &s.name)?;
    let span_id: [u8; 8] = id(&s.span_id, "span_id", &s.name)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return Err(format!(
            "span {:?}: trace_id and span_id must not be all zeros",
            s.name
        ));
    }
    if !s.parent_span_id.is_empty() && s.parent_span_id.len() != 8 {
        return Err(format!(
            "span {:?}: parent_span_id must be empty or 8 bytes, got {} bytes",
            s.name,
            s.parent_span_id.len()
        ));
    }
    let mut links = Vec::with_capacity(s.links.len());
    for l in s.links {
        links.push(Link {
            trace_id: id(&l.trace_id, "a link's trace_id", &s.name)?,
            span_id: id(&l.span_id, "a link's span_id", &s.name)?,
            trace_state: l.trace_state,
            attributes: kvs_from_proto(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        });
    }
    Ok(Span {
        trace_id,
        span_id,
        trace_state: s.trace_state,
        parent_span_id: s.parent_span_id,
        flags: s.flags,
        name: s.name.into(),
        kind: s.kind,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: kvs_from_proto(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .into_iter()
            .map(|e| SpanEvent {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: kvs_from_proto(e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links,
        dropped_links_count: s.dropped_links_count,
        status: s
            .status
            .map(|st| Status {
                message: st.message,
                code: st.code,
            })
            .unwrap_or_default(),
    })
}

pub(super) fn resource_from_proto(r: pr::Resource) -> Resource {
    Resource {
        attributes: kvs_from_proto(r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        entity_refs: r
            .entity_refs
            .into_iter()
            .map(|e| EntityRef {
                schema_url: e.schema_url,
                kind: e.r#type,
                id_keys: e.id_keys,
                description_keys: e.description_keys,
            })
            .collect(),
    }
}

pub(super) fn scope_from_proto(s: pc::InstrumentationScope) -> Scope {
    Scope {
        name: s.name,
        version: s.version,
        attributes: kvs_from_proto(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
    }
}

pub(super) fn kvs_from_proto(kvs: Vec<pc::KeyValue>) -> Vec<KeyValue> {
    kvs.into_iter()
        .map(|kv| KeyValue {
            key: kv.key.into(),
            value: kv.value.map(value_from_proto).unwrap_or(AnyValue::Empty),
        })
        .collect()
}

pub(super) fn value_from_proto(v: pc::AnyValue) -> AnyValue {
    use pc::any_value::Value as V;
    match v.value {
        Some(V::StringValue(s)) => AnyValue::String(s.into()),
        Some(V::BoolValue(b)) => AnyValue::Bool(b),
        Some(V::IntValue(i)) => AnyValue::Int(i),
        Some(V::DoubleValue(d)) => AnyValue::Double(d),
        Some(V::ArrayValue(a)) => {
            AnyValue::Array(a.values.into_iter().map(value_from_proto).collect())
        }
        Some(V::KvlistValue(l)) => AnyValue::KvList(kvs_from_proto(l.values)),
        Some(V::BytesValue(b)) => AnyValue::Bytes(b),
        Some(V::StringValueStrindex(_)) | None => AnyValue::Empty,
    }
}

pub fn to_proto(resource_spans: &[ResourceSpans]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resource_spans
            .iter()
            .map(|rs| pt::ResourceSpans {
                resource: Some(resource_to_proto(&rs.resource)),
                schema_url: rs.schema_url.clone(),
                scope_spans: rs
                    .scope_spans
                    .iter()
                    .map(|ss| pt::ScopeSpans {
                        scope: Some(scope_to_proto(&ss.scope)),
                        schema_url: ss.schema_url.clone(),
                        spans: ss.spans.iter().map(span_to_proto).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(super) fn resource_to_proto(r: &Resource) -> pr::Resource {
    pr::Resource {
        attributes: kvs_to_proto(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        entity_refs: r
            .entity_refs
            .iter()
            .map(|e| pc::EntityRef {
                schema_url: e.schema_url.clone(),
                r#type: e.kind.clone(),
                id_keys: e.id_keys.clone(),
                description_keys: e.description_keys.clone(),
            })
            .collect(),
    }
}

pub(super) fn scope_to_proto(s: &Scope) -> pc::InstrumentationScope {
    pc::InstrumentationScope {
        name: s.name.clone(),
        version: s.version.clone(),
        attributes: kvs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
    }
}

fn span_to_proto(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.clone(),
        flags: s.flags,
        name: s.name.to_string(),
        kind: s.kind,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: kvs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: kvs_to_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pt::span::Link {
                trace_id: l.trace_id.to_vec(),
                span_id: l.span_id.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: kvs_to_proto(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: Some(pt::Status {
            message: s.status.message.clone(),
            code: s.status.code,
        }),
    }
}

pub(super) fn kvs_to_proto(kvs: &[KeyValue]) -> Vec<pc::KeyValue> {
    kvs.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.to_string(),
            value: Some(value_to_proto(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

pub(super) fn value_to_proto(v: &AnyValue) -> pc::AnyValue {
    use pc::any_value::Value as V;
    pc::AnyValue {
        value: match v {
            AnyValue::String(s) => Some(V::StringValue(s.to_string())),
            AnyValue::Bool(b) => Some(V::BoolValue(*b)),
            AnyValue::Int(i) => Some(V::IntValue(*i)),
            AnyValue::Double(d) => Some(V::DoubleValue(*d)),
            AnyValue::Array(a) => Some(V::ArrayValue(pc::ArrayValue {
                values: a.iter().map(value_to_proto).collect(),
            })),
            AnyValue::KvList(l) => Some(V::KvlistValue(pc::KeyValueList {
                values: kvs_to_proto(l),
            })),
            AnyValue::Bytes(b) => Some(V::BytesValue(b.clone())),
            AnyValue::Empty => None,
        },
    }
}
