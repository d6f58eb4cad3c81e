//! `/metrics`: the server's counters, gauges and cycle durations as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::policy::Matcher;
use crate::reducer::{AgentState, FeatureStatus};
use crate::server::{CYCLE_BUCKETS, State};
use crate::status;

/// The server's counters, gauges and cycle histogram in Prometheus's text format.
pub fn text(state: &State) -> String {
    let mut out = String::new();
    counters(state, &mut out);
    view_gauges(state, &mut out);
    usage_counters(state, &mut out);
    cycle_histogram(state, &mut out);
    out
}

/// One metric with a single value, with its help and type lines.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: String) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The receivers' and the writer's counters, the body budget and the log's size.
fn counters(state: &State, out: &mut String) {
    let m = &state.metrics;
    let mut metric =
        |name: &str, kind: &str, help: &str, value: String| metric(out, name, kind, help, value);
    metric(
        "spanfold_exports_total",
        "counter",
        "OTLP export requests received.",
        load(&m.exports).to_string(),
    );
    metric(
        "spanfold_spans_accepted_total",
        "counter",
        "Spans accepted and durably appended (duplicates included).",
        load(&m.spans_accepted).to_string(),
    );
    metric(
        "spanfold_spans_rejected_total",
        "counter",
        "Spans refused by validation.",
        load(&m.spans_rejected).to_string(),
    );
    metric(
        "spanfold_spans_duplicate_total",
        "counter",
        "Spans already in the log, acknowledged and not appended again.",
        load(&m.spans_duplicate).to_string(),
    );
    metric(
        "spanfold_log_records_accepted_total",
        "counter",
        "OTLP log records (agents' events) accepted and durably appended (duplicates included).",
        load(&m.log_records_accepted).to_string(),
    );
    metric(
        "spanfold_log_records_rejected_total",
        "counter",
        "OTLP log records refused (malformed ids).",
        load(&m.log_records_rejected).to_string(),
    );
    metric(
        "spanfold_metrics_accepted_total",
        "counter",
        "OTLP metrics accepted and durably appended (duplicates included).",
        load(&m.metrics_accepted).to_string(),
    );
    metric(
        "spanfold_metrics_rejected_total",
        "counter",
        "OTLP metrics refused.",
        load(&m.metrics_rejected).to_string(),
    );
    metric(
        "spanfold_body_budget_free_bytes",
        "gauge",
        "Bytes of the budget for export bodies in flight not held by any body now.",
        state.bodies.available().to_string(),
    );
    metric(
        "spanfold_bodies_over_budget_total",
        "counter",
        "Export bodies refused (503 or RESOURCE_EXHAUSTED, retry later) because the budget for bodies in flight was spent.",
        state.bodies.refused().to_string(),
    );
    metric(
        "spanfold_exports_busy_total",
        "counter",
        "Exports answered busy (retry later).",
        load(&m.busy).to_string(),
    );
    metric(
        "spanfold_group_commits_total",
        "counter",
        "Appends with one flush each, shared by concurrent exports.",
        load(&m.group_commits).to_string(),
    );
    metric(
        "spanfold_upstream_failures_total",
        "counter",
        "Decision span forwards that failed.",
        load(&m.upstream_failures).to_string(),
    );
    metric(
        "spanfold_log_bytes",
        "gauge",
        "Size of the log on disk.",
        state.log.size_on_disk().to_string(),
    );
    if let Some(kept) = &state.timeline {
        metric(
            "spanfold_timeline_index_events",
            "gauge",
            "Events the whole log's timeline index holds (it catches up on idle CPU).",
            kept.read().as_of().seq.to_string(),
        );
    }
}

/// What the view holds now: events, the queue, health and agents by state.
fn view_gauges(state: &State, out: &mut String) {
    let view = state.view.read();
    metric(
        out,
        "spanfold_log_events",
        "gauge",
        "Events in the log (the last sequence number).",
        view.as_of.seq.to_string(),
    );
    let queue = view
        .features
        .values()
        .filter(|f| f.status == FeatureStatus::Queued)
        .count();
    metric(
        out,
        "spanfold_features_queued",
        "gauge",
        "Features waiting for an agent.",
        queue.to_string(),
    );
    // Two numbers from the view, not a whole status document built under its lock.
    let health = status::health(&view, &Matcher::new(&view));
    let mut by_state: BTreeMap<AgentState, usize> = BTreeMap::new();
    for agent in view.agents.values() {
        *by_state.entry(agent.state).or_default() += 1;
    }
    drop(view);
    metric(
        out,
        "spanfold_coordination_health",
        "gauge",
        "Coordination health, 0 to 1.",
        health.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP spanfold_agents Agents by lifecycle state.\n# TYPE spanfold_agents gauge"
    );
    for s in AgentState::ALL {
        let n = by_state.get(&s).copied().unwrap_or(0);
        let _ = writeln!(out, "spanfold_agents{{state=\"{}\"}} {n}", s.as_str());
    }
}

/// Most agents and models given a series of their own; the rest are summed as "(other)":
/// model names come from senders.
const MAX_USAGE_SERIES: usize = 100;

/// Tokens and dollars of the agents' LLM requests, by agent and by model.
fn usage_counters(state: &State, out: &mut String) {
    let ledger = state.view.read().usage.ledger.clone();
    let agents: Vec<(&String, &crate::usage::Usage)> =
        ledger.agents.iter().map(|(n, a)| (n, &a.total)).collect();
    let models: Vec<(&String, &crate::usage::Usage)> = ledger.models.iter().collect();
    for (what, label, mut rows) in [("agent", "agent", agents), ("model", "model", models)] {
        rows.sort_by(|a, b| b.1.cost_nanos.cmp(&a.1.cost_nanos).then(a.0.cmp(b.0)));
        let mut kept: BTreeMap<String, crate::usage::Usage> = BTreeMap::new();
        for (n, (name, u)) in rows.into_iter().enumerate() {
            let key = match n < MAX_USAGE_SERIES {
                true => name.clone(),
                false => "(other)".to_owned(),
            };
            kept.entry(key).or_default().add(u);
        }
        let tokens = format!("spanfold_{what}_llm_tokens_total");
        let _ = writeln!(
            out,
            "# HELP {tokens} Tokens of the agents' LLM requests by {what} and kind.\n# TYPE {tokens} counter"
        );
        for (name, u) in &kept {
            let t = &u.tokens;
            for (kind, n) in [
                ("input", t.input),
                ("output", t.output),
                ("cache_read", t.cache_read),
                ("cache_creation", t.cache_creation),
                ("reasoning", t.reasoning),
            ] {
                let _ = writeln!(
                    out,
                    "{tokens}{{{label}=\"{}\",kind=\"{kind}\"}} {n}",
                    escaped(name)
                );
            }
        }
        let cost = format!("spanfold_{what}_llm_cost_usd_total");
        let _ = writeln!(
            out,
            "# HELP {cost} US dollars of the agents' LLM requests by {what} (reported, or priced).\n# TYPE {cost} counter"
        );
        for (name, u) in &kept {
            let _ = writeln!(
                out,
                "{cost}{{{label}=\"{}\"}} {}",
                escaped(name),
                u.cost_usd()
            );
        }
    }
}

/// A label value as Prometheus's text format writes it.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Coordination cycles' durations (gc and other work on the coordinator are not cycles).
fn cycle_histogram(state: &State, out: &mut String) {
    let m = &state.metrics;
    let _ = writeln!(
        out,
        "# HELP spanfold_cycle_duration_seconds Coordination cycle duration.\n# TYPE spanfold_cycle_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, le) in CYCLE_BUCKETS.iter().enumerate() {
        cumulative += load(&m.cycle_buckets[i]);
        let _ = writeln!(
            out,
            "spanfold_cycle_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += load(&m.cycle_buckets[CYCLE_BUCKETS.len()]);
    let _ = writeln!(
        out,
        "spanfold_cycle_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "spanfold_cycle_duration_seconds_sum {}",
        load(&m.cycle_seconds_micros) as f64 / 1e6
    );
    let _ = writeln!(out, "spanfold_cycle_duration_seconds_count {cumulative}");
}
