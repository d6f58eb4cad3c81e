//! An arriving span checked against the registry: first what any span must meet, then, for a
//! span the registry names, who may send it and its attributes. A request's bad spans are
//! removed with the reason for each.

use thiserror::Error;

use super::limits::{MAX_KEPT_VALUE_BYTES, shared, span_within_limits, truncated};
use super::{AttrSpec, AttrType, Origin, Registry, Requirement, SpanSpec};
use crate::model::{AnyValue, Resource, Span, find_attr, hex, list_items};
use crate::names;

/// Why a span was refused: names the span and the rule, for the sender to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("span {span} ({ids}): {rule}")]
pub struct Violation {
    pub span: String,
    pub ids: String,
    pub rule: String,
    /// The agent the span names (span or resource `agent.id`), for counting refusals per agent.
    pub agent: Option<String>,
}

/// The agent a span names, if a short valid id: span attribute first, then resource.
fn named_agent(span: &Span, resource: &Resource) -> Option<String> {
    let of = |attrs: &[crate::model::KeyValue]| {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == "agent.id")
            .and_then(|kv| crate::model::as_str(&kv.value).map(str::to_owned))
    };
    of(&span.attributes)
        .or_else(|| of(&resource.attributes))
        .filter(|id| crate::names::agent_id(id).is_ok())
}

impl Registry {
    /// Checks one span as it arrives from `origin`. Spans the registry does not name pass: they
    /// are kept as the record of what an agent did, and change nothing but its liveness.
    pub fn validate(
        &self,
        span: &Span,
        resource: &Resource,
        origin: Origin,
    ) -> Result<(), Violation> {
        let violation = |rule: String| Violation {
            span: truncated(&span.name),
            ids: format!("trace {} span {}", hex(&span.trace_id), hex(&span.span_id)),
            rule,
            agent: named_agent(span, resource),
        };
        check_any_span(span, resource).map_err(violation)?;
        let Some(spec) = self.get(&span.name) else {
            return Ok(());
        };
        check_registered(spec, span, resource, origin).map_err(violation)
    }
}

/// What every span must meet, named in the registry or not: unique keys, the limits, and a
/// valid agent id on its resource.
fn check_any_span(span: &Span, resource: &Resource) -> Result<(), String> {
    // OTLP says attribute keys are unique; readers disagree on which of two wins (the fold
    // took the first, the events API showed the last), so a span with a repeated key, on
    // the span or its resource, is refused rather than read two ways.
    for (whose, attrs) in [
        ("span", &span.attributes),
        ("resource", &resource.attributes),
    ] {
        if let Some(key) = repeated_key(attrs) {
            return Err(format!(
                "attribute {key} appears more than once on the {whose}; OTLP keys are unique: send it once"
            ));
        }
    }
    // Any span, named or not: values nested past MAX_VALUE_DEPTH would make an export that
    // OTLP/JSON readers refuse (they limit nesting), and the size limits keep one span from
    // filling the log, so neither ever enters it.
    span_within_limits(span)?;
    // Every span may name its agent through the resource, so check that value whatever the span.
    if let Some(AnyValue::String(id)) = find_attr(&resource.attributes, "agent.id") {
        names::agent_id(id).map_err(|e| format!("resource attribute agent.id: {e}"))?;
    }
    Ok(())
}

/// What a span the registry names must meet: sent by someone who may send it, with every
/// required attribute and each attribute present as its spec says.
fn check_registered(
    spec: &SpanSpec,
    span: &Span,
    resource: &Resource,
    origin: Origin,
) -> Result<(), String> {
    if spec.origin == Origin::Coordinator && origin == Origin::Client {
        return Err(format!(
            "{} is a coordinator decision and only spanfold writes it; agents report with agent.work_progress, agent.validation or agent.communication",
            spec.name
        ));
    }
    for attr in &spec.attributes {
        let value = span.attr(&attr.id).or_else(|| {
            // Only agent.id may come from the resource: an SDK configured with
            // OTEL_RESOURCE_ATTRIBUTES=agent.id=… names its agent on every span.
            (attr.id == "agent.id")
                .then(|| find_attr(&resource.attributes, "agent.id"))
                .flatten()
        });
        let Some(value) = value else {
            if attr.requirement_level == Requirement::Required {
                return Err(format!(
                    "required attribute {} ({}) is missing",
                    attr.id,
                    attr.ty.describe()
                ));
            }
            continue;
        };
        check_attribute(attr, value)?;
    }
    Ok(())
}

/// One attribute a span carries, against its spec: its type, the size spanfold keeps of it, and
/// the naming rules of agent ids, feature names and capabilities.
fn check_attribute(attr: &AttrSpec, value: &AnyValue) -> Result<(), String> {
    check_type(&attr.ty, value).map_err(|got| {
        format!(
            "attribute {} must be {}, got {}",
            attr.id,
            attr.ty.describe(),
            got
        )
    })?;
    if let AnyValue::String(s) = value {
        if s.len() > MAX_KEPT_VALUE_BYTES {
            return Err(format!(
                "attribute {} is {} bytes; spanfold keeps at most {MAX_KEPT_VALUE_BYTES} of an attribute it tracks: shorten it or send the path of a file",
                attr.id,
                s.len()
            ));
        }
        let named = match attr.id.as_str() {
            "agent.id" => names::agent_id(s),
            "feature.name" => names::feature_name(s),
            _ => Ok(()),
        };
        named.map_err(|e| format!("attribute {}: {e}", attr.id))?;
    }
    // The 64 KiB kept per attribute counts an array's items together: a list of 1 MiB
    // items is as large in the view as one 1 MiB string.
    if let AnyValue::Array(items) = value {
        let total: usize = items.iter().map(text_bytes).sum();
        if total > MAX_KEPT_VALUE_BYTES {
            return Err(format!(
                "attribute {} holds {total} bytes in its items; spanfold keeps at most {MAX_KEPT_VALUE_BYTES} of an attribute it tracks",
                attr.id
            ));
        }
    }
    if CAPABILITY_ATTRIBUTES.contains(&attr.id.as_str()) {
        for item in list_items(value) {
            names::capability(&item).map_err(|why| format!("attribute {}: {why}", attr.id))?;
        }
    }
    Ok(())
}

/// The first key that appears twice, if any.
fn repeated_key(attrs: &[crate::model::KeyValue]) -> Option<&str> {
    if attrs.len() <= 16 {
        return attrs
            .iter()
            .enumerate()
            .find(|(i, kv)| attrs[..*i].iter().any(|o| o.key == kv.key))
            .map(|(_, kv)| kv.key.as_str());
    }
    let mut keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
    keys.sort_unstable();
    keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Attributes whose items are capability names, checked by [`names::capability`] whoever sends
/// them.
const CAPABILITY_ATTRIBUTES: [&str; 6] = [
    "agent.languages",
    "agent.frameworks",
    "agent.expertise_areas",
    "feature.languages",
    "feature.frameworks",
    "feature.expertise_areas",
];

/// Bytes of text in a value (strings, nested ones included).
fn text_bytes(value: &AnyValue) -> usize {
    match value {
        AnyValue::String(s) => s.len(),
        AnyValue::Bytes(b) => b.len(),
        AnyValue::Array(items) => items.iter().map(text_bytes).sum(),
        AnyValue::KvList(kvs) => kvs
            .iter()
            .map(|kv| kv.key.len() + text_bytes(&kv.value))
            .sum(),
        _ => 0,
    }
}

impl Registry {
    /// Removes the spans of a request that fail validation and returns why each failed.
    pub fn retain_valid(
        &self,
        resource_spans: &mut Vec<crate::model::ResourceSpans>,
        origin: Origin,
    ) -> Vec<Violation> {
        let mut rejected = Vec::new();
        // Refuses every span of a group whose shared part breaks a limit, with the reason.
        let refuse_all =
            |spans: &mut Vec<Span>, whose: &str, rule: &str, out: &mut Vec<Violation>| {
                out.extend(spans.drain(..).map(|span| Violation {
                    span: truncated(&span.name),
                    ids: format!("trace {} span {}", hex(&span.trace_id), hex(&span.span_id)),
                    rule: format!("its {whose}: {rule}"),
                    agent: None,
                }));
            };
        for rs in resource_spans.iter_mut() {
            let resource = shared(&rs.resource.attributes, &[("schema_url", &rs.schema_url)])
                .map_err(|rule| ("resource", rule));
            for ss in &mut rs.scope_spans {
                let texts = [
                    ("name", ss.scope.name.as_str()),
                    ("version", &ss.scope.version),
                    ("schema_url", &ss.schema_url),
                ];
                let problem = resource.clone().and_then(|()| {
                    shared(&ss.scope.attributes, &texts).map_err(|rule| ("scope", rule))
                });
                if let Err((whose, rule)) = problem {
                    refuse_all(&mut ss.spans, whose, &rule, &mut rejected);
                    continue;
                }
                let resource = &rs.resource;
                ss.spans
                    .retain(|span| match self.validate(span, resource, origin) {
                        Ok(()) => true,
                        Err(v) => {
                            rejected.push(v);
                            false
                        }
                    });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        rejected
    }
}

/// Ok, or a short description of what the value was instead.
fn check_type(ty: &AttrType, value: &AnyValue) -> Result<(), String> {
    let ok = match (ty, value) {
        (AttrType::String, AnyValue::String(_)) => true,
        (AttrType::Int, AnyValue::Int(_)) => true,
        // SDKs send 75 for 75.0 when the caller wrote an integer literal.
        (AttrType::Double, AnyValue::Double(_) | AnyValue::Int(_)) => true,
        (AttrType::Boolean, AnyValue::Bool(_)) => true,
        (AttrType::StringArray, AnyValue::Array(items)) => {
            items.iter().all(|i| matches!(i, AnyValue::String(_)))
        }
        // A comma-separated string is accepted for a list, as an OTLP array is.
        (AttrType::StringArray, AnyValue::String(_)) => true,
        (AttrType::Enum(members), AnyValue::String(s)) => {
            if members.iter().any(|m| m == s) {
                true
            } else {
                return Err(format!("{s:?}"));
            }
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match value {
        AnyValue::String(_) => "a string".into(),
        AnyValue::Bool(_) => "a boolean".into(),
        AnyValue::Int(_) => "an int".into(),
        AnyValue::Double(_) => "a double".into(),
        AnyValue::Array(items) if list_items(value).len() == items.len() => "a string[]".into(),
        AnyValue::Array(_) => "an array with non-string items".into(),
        AnyValue::KvList(_) => "a key-value list".into(),
        AnyValue::Bytes(_) => "bytes".into(),
        AnyValue::Empty => "an empty value".into(),
    })
}
