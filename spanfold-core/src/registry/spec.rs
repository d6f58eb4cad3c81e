//! What the registry says of a span — its name, who may send it, what it means — and of each
//! of its attributes: type, requirement level, meaning and examples.

use serde::{Deserialize, Serialize};

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
