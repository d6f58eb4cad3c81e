//! The registry's YAML files read and checked into span specs: a file that does not parse, or
//! names an unknown type or requirement level, or a span twice, is refused with where.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use super::{AttrSpec, AttrType, Origin, Registry, Requirement, SpanSpec};

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
