//! `spans`: the span registry — each span type and its attributes — as text tables or as the
//! Markdown of the README's span catalogue.

use serde_json::json;

use super::Output;
use crate::registry::Registry;
use crate::render::table;

/// `spans`, as tables or (`--markdown`) as the Markdown catalogue.
pub(super) fn spans(markdown: bool) -> Output {
    let mut out = spans_output();
    if markdown {
        out.text = spans_markdown();
    }
    out
}

/// The registry as Markdown, one section per span type.
pub fn spans_markdown() -> String {
    let mut out = String::new();
    for spec in Registry::builtin().specs() {
        out.push_str(&format!(
            "### `{}` — {}\n\n{}\n\n| attribute | type | requirement | meaning |\n|---|---|---|---|\n",
            spec.name,
            match spec.origin {
                crate::registry::Origin::Client => "sent by agents and operators",
                crate::registry::Origin::Operator => "sent by operators",
                crate::registry::Origin::Coordinator => "written by spanfold only",
            },
            spec.brief
        ));
        for a in &spec.attributes {
            let ty = match &a.ty {
                crate::registry::AttrType::Enum(members) => format!("enum: {}", members.join(", ")),
                other => other.describe(),
            };
            let req = match &a.requirement_level {
                crate::registry::Requirement::ConditionallyRequired(when) => {
                    format!("conditionally required: {when}")
                }
                other => other.describe(),
            };
            out.push_str(&format!("| `{}` | {ty} | {req} | {} |\n", a.id, a.brief));
        }
        out.push('\n');
    }
    out
}

/// The registry as JSON and as one table of attributes per span type.
fn spans_output() -> Output {
    let registry = Registry::builtin();
    let specs: Vec<_> = registry.specs().collect();
    let mut text = String::new();
    for spec in &specs {
        text.push_str(&format!(
            "{} ({}, {})\n  {}\n",
            spec.name,
            match spec.origin {
                crate::registry::Origin::Client => "sent by agents",
                crate::registry::Origin::Operator => "sent by operators",
                crate::registry::Origin::Coordinator => "written by spanfold only",
            },
            spec.source,
            spec.brief
        ));
        let rows: Vec<Vec<String>> = spec
            .attributes
            .iter()
            .map(|a| {
                vec![
                    format!("  {}", a.id),
                    a.ty.describe(),
                    a.requirement_level.describe(),
                    a.brief.clone(),
                ]
            })
            .collect();
        text.push_str(&table(
            &["  ATTRIBUTE", "TYPE", "REQUIREMENT", "BRIEF"],
            &rows,
        ));
        text.push('\n');
    }
    Output::new(json!({"spans": specs}), text)
}
