//! The span registry: `spans/*.yaml`, compiled into the binary. It is the contract between
//! agents and spanfold — every span is checked against it before it is appended, the `spans`
//! command lists it, and a test checks that the code handles exactly the spans it names.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{AnyValue, KeyValue, Resource, Span, find_attr, hex, list_items};
use crate::names;

/// The registry files, embedded so that the binary and its contract cannot drift apart.
pub const SOURCES: &[(&str, &str)] = &[
    ("spans/agent.yaml", include_str!("../../../spans/agent.yaml")),
    (
        "spans/feature.yaml",
        include_str!("../../../spans/feature.yaml"),
    ),
    (
        "spans/coordination.yaml",
        include_str!("../../../spans/coordination.yaml"),
    ),
    (
        "spans/worktree.yaml",
        include_str!("../../../spans/worktree.yaml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Agents and operators may send it.
    Client,
    /// As a span's origin in the registry: a client span only the operator may send (an agent's
    /// own token may not). Never the origin of an arriving span, which is a client's or
    /// spanfold's own.
    Operator,
    /// A decision or outcome: only spanfold writes it.
    Coordinator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    String,
    Int,
    Double,
    Boolean,
    StringArray,
    Enum(Vec<String>),
}

/// Serialised as the registry writes it: `"string[]"`, or `{"members": [...]}` for an enum.
impl Serialize for AttrType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrType::Enum(members) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("members", members)?;
                map.end()
            }
            other => serializer.serialize_str(&other.describe()),
        }
    }
}

impl AttrType {
    pub fn describe(&self) -> String {
        match self {
            AttrType::String => "string".into(),
            AttrType::Int => "int".into(),
            AttrType::Double => "double".into(),
            AttrType::Boolean => "boolean".into(),
            AttrType::StringArray => "string[]".into(),
            AttrType::Enum(members) => format!("enum({})", members.join("|")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Required,
    Recommended,
    OptIn,
    ConditionallyRequired(String),
}

impl Requirement {
    pub fn describe(&self) -> String {
        match self {
            Requirement::Required => "required".into(),
            Requirement::Recommended => "recommended".into(),
            Requirement::OptIn => "opt_in".into(),
            Requirement::ConditionallyRequired(when) => format!("conditionally_required: {when}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttrSpec {
    pub id: String,
    #[serde(rename = "type")]
    pub ty: AttrType,
    pub requirement_level: Requirement,
    pub brief: String,
    pub examples: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpanSpec {
    pub name: String,
    pub brief: String,
    pub origin: Origin,
    pub source: String,
    pub attributes: Vec<AttrSpec>,
}

impl SpanSpec {
    pub fn attribute(&self, id: &str) -> Option<&AttrSpec> {
        self.attributes.iter().find(|a| a.id == id)
    }
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{file}: {source}")]
    Yaml {
        file: String,
        source: serde_yaml_ng::Error,
    },
    #[error("{file}: group {group}: {message}")]
    Invalid {
        file: String,
        group: String,
        message: String,
    },
}

/// Checks attributes against the depth and size limits; returns how many values they hold.
fn measure<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Result<usize, String> {
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
fn longest_text<'a>(texts: impl Iterator<Item = (&'a str, &'a str)>) -> Result<(), String> {
    match texts.into_iter().find(|(_, t)| t.len() > MAX_VALUE_BYTES) {
        Some((what, t)) => Err(format!(
            "its {what} is {} bytes; the limit is {MAX_VALUE_BYTES}",
            t.len()
        )),
        None => Ok(()),
    }
}

/// Checks what every span of a group shares (a resource, a scope) once for the group.
fn shared(attributes: &[KeyValue], texts: &[(&str, &str)]) -> Result<(), String> {
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
fn truncated(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_owned(),
    }
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

#[derive(Debug, Clone)]
pub struct Registry {
    spans: BTreeMap<String, SpanSpec>,
}

// The YAML as written, before it is checked and turned into `SpanSpec`.
#[derive(Deserialize)]
struct RawFile {
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawGroup {
    id: String,
    #[serde(rename = "type")]
    ty: String,
    brief: String,
    origin: Origin,
    #[serde(default)]
    attributes: Vec<RawAttr>,
}

#[derive(Deserialize)]
struct RawAttr {
    id: String,
    #[serde(rename = "type")]
    ty: serde_yaml_ng::Value,
    requirement_level: serde_yaml_ng::Value,
    brief: String,
    #[serde(default)]
    examples: Vec<serde_json::Value>,
}

impl Registry {
    /// The registry compiled into this binary.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The sources are part of the binary and a unit test parses them, so a failure here
            // is a build defect, not bad input.
            Registry::parse(SOURCES).expect("the embedded span registry is valid")
        })
    }

    pub fn parse(sources: &[(&str, &str)]) -> Result<Registry, RegistryError> {
        let mut spans = BTreeMap::new();
        for (file, text) in sources {
            let raw: RawFile =
                serde_yaml_ng::from_str(text).map_err(|source| RegistryError::Yaml {
                    file: file.to_string(),
                    source,
                })?;
            for group in raw.groups {
                let invalid = |message: String| RegistryError::Invalid {
                    file: file.to_string(),
                    group: group.id.clone(),
                    message,
                };
                if group.ty != "span" {
                    return Err(invalid(format!("type is {:?}, expected span", group.ty)));
                }
                let mut attributes = Vec::new();
                for attr in &group.attributes {
                    let ty = parse_type(&attr.ty)
                        .ok_or_else(|| invalid(format!("attribute {}: unknown type", attr.id)))?;
                    let requirement_level =
                        parse_requirement(&attr.requirement_level).ok_or_else(|| {
                            invalid(format!("attribute {}: unknown requirement_level", attr.id))
                        })?;
                    attributes.push(AttrSpec {
                        id: attr.id.clone(),
                        ty,
                        requirement_level,
                        brief: attr.brief.clone(),
                        examples: attr.examples.clone(),
                    });
                }
                let spec = SpanSpec {
                    name: group.id.clone(),
                    brief: group.brief.clone(),
                    origin: group.origin,
                    source: file.to_string(),
                    attributes,
                };
                if spans.insert(group.id.clone(), spec).is_some() {
                    return Err(invalid("defined twice".into()));
                }
            }
        }
        Ok(Registry { spans })
    }

    pub fn get(&self, name: &str) -> Option<&SpanSpec> {
        self.spans.get(name)
    }

    /// All span types, sorted by name.
    pub fn specs(&self) -> impl Iterator<Item = &SpanSpec> {
        self.spans.values()
    }

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
        // OTLP says attribute keys are unique; readers disagree on which of two wins (the fold
        // took the first, the events API showed the last), so a span with a repeated key, on
        // the span or its resource, is refused rather than read two ways.
        for (whose, attrs) in [
            ("span", &span.attributes),
            ("resource", &resource.attributes),
        ] {
            if let Some(key) = repeated_key(attrs) {
                return Err(violation(format!(
                    "attribute {key} appears more than once on the {whose}; OTLP keys are unique: send it once"
                )));
            }
        }
        // Any span, named or not: values nested past MAX_VALUE_DEPTH would make an export that
        // OTLP/JSON readers refuse (they limit nesting), and the size limits keep one span from
        // filling the log, so neither ever enters it.
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
        longest_text(texts).map_err(violation)?;
        let items = measure(
            span.attributes
                .iter()
                .chain(span.events.iter().flat_map(|e| &e.attributes))
                .chain(span.links.iter().flat_map(|l| &l.attributes)),
        )
        .map_err(violation)?
            + span.events.len()
            + span.links.len();
        if items > MAX_ITEMS_PER_SPAN {
            return Err(violation(format!(
                "the span carries {items} attributes, events, links and nested values; the limit is {MAX_ITEMS_PER_SPAN}"
            )));
        }
        // Every span may name its agent through the resource, so check that value whatever the span.
        if let Some(AnyValue::String(id)) = find_attr(&resource.attributes, "agent.id") {
            names::agent_id(id)
                .map_err(|e| violation(format!("resource attribute agent.id: {e}")))?;
        }
        let Some(spec) = self.get(&span.name) else {
            return Ok(());
        };
        if spec.origin == Origin::Coordinator && origin == Origin::Client {
            return Err(violation(format!(
                "{} is a coordinator decision and only spanfold writes it; agents report with agent.work_progress, agent.validation or agent.communication",
                spec.name
            )));
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
                    return Err(violation(format!(
                        "required attribute {} ({}) is missing",
                        attr.id,
                        attr.ty.describe()
                    )));
                }
                continue;
            };
            check_type(&attr.ty, value).map_err(|got| {
                violation(format!(
                    "attribute {} must be {}, got {}",
                    attr.id,
                    attr.ty.describe(),
                    got
                ))
            })?;
            if let AnyValue::String(s) = value {
                if s.len() > MAX_KEPT_VALUE_BYTES {
                    return Err(violation(format!(
                        "attribute {} is {} bytes; spanfold keeps at most {MAX_KEPT_VALUE_BYTES} of an attribute it tracks: shorten it or send the path of a file",
                        attr.id,
                        s.len()
                    )));
                }
                let named = match attr.id.as_str() {
                    "agent.id" => names::agent_id(s),
                    "feature.name" => names::feature_name(s),
                    _ => Ok(()),
                };
                named.map_err(|e| violation(format!("attribute {}: {e}", attr.id)))?;
            }
            // The 64 KiB kept per attribute counts an array's items together: a list of 1 MiB
            // items is as large in the view as one 1 MiB string.
            if let AnyValue::Array(items) = value {
                let total: usize = items.iter().map(text_bytes).sum();
                if total > MAX_KEPT_VALUE_BYTES {
                    return Err(violation(format!(
                        "attribute {} holds {total} bytes in its items; spanfold keeps at most {MAX_KEPT_VALUE_BYTES} of an attribute it tracks",
                        attr.id
                    )));
                }
            }
            if CAPABILITY_ATTRIBUTES.contains(&attr.id.as_str()) {
                for item in crate::model::list_items(value) {
                    names::capability(&item)
                        .map_err(|why| violation(format!("attribute {}: {why}", attr.id)))?;
                }
            }
        }
        Ok(())
    }
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

fn parse_type(value: &serde_yaml_ng::Value) -> Option<AttrType> {
    match value {
        serde_yaml_ng::Value::String(s) => match s.as_str() {
            "string" => Some(AttrType::String),
            "int" => Some(AttrType::Int),
            "double" => Some(AttrType::Double),
            "boolean" => Some(AttrType::Boolean),
            "string[]" => Some(AttrType::StringArray),
            _ => None,
        },
        serde_yaml_ng::Value::Mapping(map) => {
            let members = map.get("members")?.as_sequence()?;
            let values = members
                .iter()
                .map(|m| m.get("value")?.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            Some(AttrType::Enum(values))
        }
        _ => None,
    }
}

fn parse_requirement(value: &serde_yaml_ng::Value) -> Option<Requirement> {
    match value {
        serde_yaml_ng::Value::String(s) => match s.as_str() {
            "required" => Some(Requirement::Required),
            "recommended" => Some(Requirement::Recommended),
            "opt_in" => Some(Requirement::OptIn),
            _ => None,
        },
        serde_yaml_ng::Value::Mapping(map) => map
            .get("conditionally_required")?
            .as_str()
            .map(|when| Requirement::ConditionallyRequired(when.to_owned())),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, Span};

    fn span(name: &str) -> Span {
        Span::new([1; 16], [2; 8], name, 1)
    }

    #[test]
    fn embedded_registry_parses() {
        let reg = Registry::parse(SOURCES).expect("valid");
        assert!(reg.get("agent.registration").is_some());
        assert_eq!(
            reg.get("agent.feature_assignment").map(|s| s.origin),
            Some(Origin::Coordinator)
        );
    }

    #[test]
    fn missing_required_attribute_is_named() {
        let err = Registry::builtin()
            .validate(
                &span("agent.registration"),
                &Resource::default(),
                Origin::Client,
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("required attribute agent.id"),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("span agent.registration"),
            "{err}"
        );
    }

    #[test]
    fn agent_id_may_come_from_the_resource() {
        let resource = Resource {
            attributes: vec![crate::model::KeyValue::new(
                "agent.id",
                AnyValue::String("agent-1".into()),
            )],
            dropped_attributes_count: 0,
            entity_refs: vec![],
        };
        let s = span("agent.work_progress").with("agent.state", AnyValue::String("working".into()));
        assert_eq!(
            Registry::builtin().validate(&s, &resource, Origin::Client),
            Ok(())
        );
    }

    #[test]
    fn wrong_type_enum_and_names_are_refused() {
        let reg = Registry::builtin();
        let r = Resource::default();
        let s = span("agent.registration")
            .with("agent.id", AnyValue::String("a".into()))
            .with(
                "agent.max_concurrent_features",
                AnyValue::String("two".into()),
            );
        assert!(
            reg.validate(&s, &r, Origin::Client)
                .unwrap_err()
                .rule
                .contains("must be int")
        );
        let s = span("agent.work_progress")
            .with("agent.id", AnyValue::String("a".into()))
            .with("agent.state", AnyValue::String("sleeping".into()));
        assert!(
            reg.validate(&s, &r, Origin::Client)
                .unwrap_err()
                .rule
                .contains("\"sleeping\"")
        );
        let s = span("agent.reset").with("agent.id", AnyValue::String("../etc".into()));
        assert!(
            reg.validate(&s, &r, Origin::Client)
                .unwrap_err()
                .rule
                .contains("invalid agent id")
        );
    }

    #[test]
    fn oversized_spans_are_refused_with_the_limit_they_broke() {
        let reg = Registry::builtin();
        let r = Resource::default();
        let rule = |s: &Span| reg.validate(s, &r, Origin::Client).map_err(|v| v.rule);
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        // Any span, registered or not: one value over the limit.
        let s = span("tool.call").with("tool.output", AnyValue::String(big.as_str().into()));
        let e = rule(&s).unwrap_err();
        assert!(
            e.contains("tool.output") && e.contains(&(MAX_VALUE_BYTES + 1).to_string()),
            "{e}"
        );
        // Hidden inside an array, or in a key: the same.
        let s = span("tool.call").with(
            "nested",
            AnyValue::Array(vec![AnyValue::Bytes(vec![0; MAX_VALUE_BYTES + 1])]),
        );
        assert!(rule(&s).unwrap_err().contains("nested"));
        let s = span("tool.call").with(&big, AnyValue::Empty);
        let e = rule(&s).unwrap_err();
        assert!(e.len() < 400, "the message quotes a long key cut short");
        // At the limit is fine.
        let s = span("tool.call").with("ok", AnyValue::String("x".repeat(MAX_VALUE_BYTES).into()));
        assert_eq!(rule(&s), Ok(()));
        // Many attributes: 100,000 empty ones.
        let mut s = span("tool.call");
        for i in 0..100_000 {
            s = s.with(&format!("k{i}"), AnyValue::Empty);
        }
        let e = rule(&s).unwrap_err();
        assert!(
            e.contains("100000") && e.contains(&MAX_ITEMS_PER_SPAN.to_string()),
            "{e}"
        );
        // Or few attributes holding many values.
        let s = span("tool.call").with(
            "list",
            AnyValue::Array(vec![AnyValue::Int(1); MAX_ITEMS_PER_SPAN]),
        );
        assert!(rule(&s).is_err());
        // Every text a span carries, not only its attributes.
        let mut s = span("tool.call");
        s.status.message = big.clone();
        assert!(rule(&s).unwrap_err().contains("status message"));
        let mut s = span("tool.call");
        s.trace_state = big.clone();
        assert!(rule(&s).unwrap_err().contains("trace_state"));
        // What spans share (resource, scope) is checked once, for all of them.
        let mut request = vec![crate::model::ResourceSpans {
            resource: Resource {
                attributes: vec![KeyValue::new("r", AnyValue::String(big.as_str().into()))],
                ..Default::default()
            },
            scope_spans: vec![crate::model::ScopeSpans {
                spans: vec![span("tool.call"), span("tool.call")],
                ..Default::default()
            }],
            ..Default::default()
        }];
        let refused = reg.retain_valid(&mut request, Origin::Client);
        assert_eq!(refused.len(), 2);
        assert!(
            refused[0]
                .rule
                .starts_with("its resource: attribute r holds"),
            "{}",
            refused[0].rule
        );
        let mut request = vec![crate::model::ResourceSpans {
            scope_spans: vec![crate::model::ScopeSpans {
                spans: vec![span("tool.call")],
                ..Default::default()
            }],
            ..Default::default()
        }];
        request[0].scope_spans[0].scope.version = big.clone();
        let refused = reg.retain_valid(&mut request, Origin::Client);
        assert!(
            refused[0].rule.contains("its scope: its version"),
            "{}",
            refused[0].rule
        );
        // A tracked attribute is kept in the view: 64 KiB at most.
        let s = span("feature.request")
            .with("feature.name", AnyValue::String("f".into()))
            .with(
                "feature.description",
                AnyValue::String("d".repeat(MAX_KEPT_VALUE_BYTES + 1).into()),
            );
        let e = rule(&s).unwrap_err();
        assert!(e.contains("feature.description"), "{e}");
    }

    #[test]
    fn decisions_are_refused_from_clients_only() {
        let reg = Registry::builtin();
        let s = span("coordination.cycle")
            .with("coordination.cycle_number", AnyValue::Int(1))
            .with("coordination.assignments", AnyValue::Int(0))
            .with("coordination.features_waiting", AnyValue::Int(0));
        assert!(
            reg.validate(&s, &Resource::default(), Origin::Client)
                .is_err()
        );
        assert!(
            reg.validate(&s, &Resource::default(), Origin::Coordinator)
                .is_ok()
        );
    }

    #[test]
    fn values_nested_too_deeply_are_refused_in_any_span() {
        let nested = |levels: usize| {
            let mut v = AnyValue::Int(1);
            for _ in 0..levels {
                v = AnyValue::Array(vec![v]);
            }
            v
        };
        let reg = Registry::builtin();
        let ok = span("tool.call").with("deep", nested(MAX_VALUE_DEPTH));
        assert!(
            reg.validate(&ok, &Resource::default(), Origin::Client)
                .is_ok()
        );
        let deep = span("tool.call").with("deep", nested(MAX_VALUE_DEPTH + 1));
        let why = reg
            .validate(&deep, &Resource::default(), Origin::Client)
            .unwrap_err()
            .rule;
        assert!(
            why.contains("deep") && why.contains(&MAX_VALUE_DEPTH.to_string()),
            "{why}"
        );
    }

    #[test]
    fn unknown_spans_pass() {
        assert!(
            Registry::builtin()
                .validate(&span("http.request"), &Resource::default(), Origin::Client)
                .is_ok()
        );
    }
}
