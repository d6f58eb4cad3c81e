//! The demo's bundled coding agent, run by `spanfold agents run --profile claude` as its command
//! (`spanfold demo-agent PROMPT_FILE`, hidden): it does a feature's work in the worktree it was
//! started in — or, when the prompt says its merge conflicted, merges the base branch and keeps
//! both sides — and reports what Claude Code would, as Claude Code does: OTLP log records to
//! the endpoint and with the identity the launcher's environment gives (`OTEL_EXPORTER_OTLP_*`,
//! `OTEL_RESOURCE_ATTRIBUTES`). Nothing of spanfold's own span vocabulary.

use std::path::Path;

use anyhow::{Context, Result};

use crate::client::Client;
use crate::model::{AnyValue, KeyValue, LogRecord, Resource, ResourceLogs, Scope, ScopeLogs};

/// Does the work the prompt in `prompt_file` asks for, then sends the events; returns a line
/// saying what it did.
pub fn run(prompt_file: &Path) -> Result<String> {
    let var = |k: &str| {
        std::env::var(k)
            .with_context(|| format!("{k} is not set: run me under `spanfold agents run`"))
    };
    let (agent, feature) = (var("SPANFOLD_AGENT")?, var("SPANFOLD_FEATURE")?);
    let prompt = std::fs::read_to_string(prompt_file)
        .with_context(|| format!("reading the prompt {}", prompt_file.display()))?;
    let dir = std::env::current_dir().context("finding the worktree")?;
    let conflicted = prompt.contains("conflicted in");
    match conflicted {
        true => crate::demo::resolve_conflict(&dir, &feature, &agent)?,
        false => crate::demo::implement(&dir, &feature, &agent)?,
    }
    let told = report(&agent, conflicted)?;
    let did = if conflicted {
        "resolved the conflict of"
    } else {
        "implemented"
    };
    Ok(format!("{agent} {did} {feature}{told}"))
}

/// Claude Code's events for the work just done (a prompt, a model request with its tokens and
/// cost, an edit), to the launcher's endpoint; says where they went.
fn report(agent: &str, conflicted: bool) -> Result<String> {
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(String::new());
    };
    let token = std::env::var("OTEL_EXPORTER_OTLP_HEADERS")
        .ok()
        .and_then(|h| {
            h.split(',').find_map(|kv| {
                kv.trim()
                    .strip_prefix("authorization=Bearer%20")
                    .map(str::to_owned)
            })
        });
    let resource = Resource {
        attributes: resource_attributes(),
        ..Resource::default()
    };
    let now = crate::emit::now();
    let event = |i: u64, name: &str, attrs: Vec<(&str, AnyValue)>| {
        let mut attributes = vec![
            KeyValue::new("event.name", AnyValue::String(name.into())),
            KeyValue::new(
                "session.id",
                AnyValue::String(format!("demo-{agent}").into()),
            ),
        ];
        attributes.extend(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)));
        LogRecord {
            time_unix_nano: now + i,
            observed_time_unix_nano: now + i,
            body: AnyValue::String(format!("claude_code.{name}").into()),
            attributes,
            ..LogRecord::empty()
        }
    };
    let tool = if conflicted { "Bash" } else { "Edit" };
    let records = vec![
        event(
            0,
            "user_prompt",
            vec![("prompt_length", AnyValue::Int(120))],
        ),
        event(
            1,
            "api_request",
            vec![
                ("model", AnyValue::String("claude-sonnet-4-5".into())),
                ("input_tokens", AnyValue::Int(1800)),
                ("output_tokens", AnyValue::Int(420)),
                ("cost_usd", AnyValue::Double(0.0117)),
            ],
        ),
        event(
            2,
            "tool_result",
            vec![
                ("tool_name", AnyValue::String(tool.into())),
                ("success", AnyValue::String("true".into())),
            ],
        ),
    ];
    let export = ResourceLogs {
        resource,
        schema_url: String::new(),
        scope_logs: vec![ScopeLogs {
            scope: Scope {
                name: "com.anthropic.claude_code.events".into(),
                ..Scope::default()
            },
            schema_url: String::new(),
            log_records: records,
        }],
    };
    let (rejected, message) = Client::new(&endpoint, token).export_logs(&[export])?;
    match rejected {
        0 => Ok(format!("; 3 events sent to {endpoint}")),
        n => anyhow::bail!("{n} events refused: {message}"),
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, values percent-decoded) and the service name.
fn resource_attributes() -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new(
        "service.name",
        AnyValue::String("claude-code".into()),
    )];
    let list = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
        if let Some((k, v)) = pair.split_once('=') {
            attrs.push(KeyValue::new(k.trim(), AnyValue::String(v.trim().into())));
        }
    }
    attrs
}
