//! `spans`: the span registry — each span type and its attributes — and the agent profiles, as
//! text tables, or the registry as the Markdown of the README's span catalogue.

use serde_json::json;

use super::Output;
use crate::profiles::{Profile, Profiles};
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
    let profiles: Vec<_> = Profiles::builtin().iter().collect();
    text.push_str(&profiles_text(&profiles));
    Output::new(json!({"spans": specs, "profiles": profiles}), text)
}

/// The agent profiles: what each coding agent's events, metrics and spans mean.
fn profiles_text(profiles: &[&Profile]) -> String {
    let mut text = String::from(
        "Agent profiles: the telemetry coding agents already send (OTLP log records, metrics, spans), and what spanfold reads in it\n\n",
    );
    for p in profiles {
        text.push_str(&format!(
            "{} ({}; service.name {})\n",
            p.title,
            p.name,
            p.service_names.join(", ")
        ));
        let rows: Vec<Vec<String>> = [
            ("event", &p.events),
            ("metric", &p.metrics),
            ("span", &p.spans),
        ]
        .into_iter()
        .flat_map(|(what, specs)| {
            specs.iter().map(move |(name, spec)| {
                let when: Vec<String> = spec.when.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![
                    format!("  {name}"),
                    what.to_owned(),
                    spec.kind.as_str().to_owned(),
                    when.join(", "),
                ]
            })
        })
        .collect();
        text.push_str(&table(&["  NAME", "SIGNAL", "MEANS", "WHEN"], &rows));
        text.push('\n');
    }
    text
}
