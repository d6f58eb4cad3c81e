//! Usage folded from agents' own telemetry: each recognised LLM request (Claude Code's
//! `api_request`, Codex's `sse_event` once the response completed, Gemini CLI's `api_response`,
//! a GenAI `chat` span) adds its tokens and cost to its agent, the feature it was about, its
//! model and its day. A reported cost is used as reported; otherwise the tokens are priced with
//! the price table the log recorded last; a model the table does not list is unpriced.
//!
//! Token and cost metrics (`claude_code.token.usage`, …) count only for a session that sent no
//! request events, so that nothing is counted twice: what a session's metrics added is taken
//! back when its first request event arrives. A metric that names no session always counts.
//! Cumulative metrics count what they grew by since their last point.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use budget::{Due, FeatureBudget};
pub use day_budget::{DayBudget, DayDue};

use super::telemetry::feature_held;
use super::view::View;
use crate::model::{AnyValue, MetricData, MetricEvent, NumberPoint, UnixNanos, as_str, find_attr};
use crate::profiles::{Kind, Profile, Profiles, RecordSpec};
use crate::usage::{At, Key, Ledger, NANOS_PER_USD, PriceTable, Tokens, Usage, day_of};

/// Most cumulative series remembered (their last point): the names come from senders.
const MAX_SERIES: usize = 100_000;

/// The fold's accounts of usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageState {
    pub ledger: Ledger,
    /// The price table in force: the last `coordination.prices` of the log.
    pub prices: Option<PriceTable>,
    /// Sessions seen in usage: whether they sent request events, and what their metrics added
    /// meanwhile (taken back when they do).
    pub sessions: BTreeMap<String, SessionUsage>,
    /// The last point of each cumulative series (its start time and value).
    pub cumulative: BTreeMap<String, (UnixNanos, u64)>,
    /// Features' budgets, by feature.
    pub budgets: BTreeMap<String, FeatureBudget>,
    /// The budget a feature requested from now on gets when it sets none (`agents init`).
    #[serde(default)]
    pub default_budget: FeatureBudget,
    /// Agents' daily budgets, by agent.
    #[serde(default)]
    pub agent_budgets: BTreeMap<String, DayBudget>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUsage {
    pub requests: bool,
    pub from_metrics: BTreeMap<Key, Usage>,
}

/// One record's place: whose, about which feature (as named), in which session, when.
#[derive(Clone, Copy)]
pub(super) struct Origin<'a> {
    pub agent: &'a str,
    pub feature: Option<&'a str>,
    pub session: Option<&'a str>,
    pub time: UnixNanos,
}

impl View {
    /// `coordination.prices`: the table in force from now on.
    pub(super) fn prices(&mut self, p: crate::fact::Prices<'_>) -> Result<(), String> {
        let table = PriceTable::parse(p.table, "prices.table").map_err(|e| e.to_string())?;
        self.usage.prices = Some(table);
        Ok(())
    }

    /// An LLM request event or span, read through its profile's fields by `read`.
    pub(super) fn usage_request<'v>(
        &mut self,
        at: &Origin<'_>,
        profile: &Profile,
        spec: &RecordSpec,
        read: &dyn Fn(&str) -> Option<&'v AnyValue>,
    ) {
        let f = &spec.fields;
        let count = |field: &Option<String>| {
            field
                .as_deref()
                .and_then(read)
                .and_then(number)
                .map_or(0, |n| n.max(0.0).round() as u64)
        };
        let mut tokens = Tokens {
            input: count(&f.input_tokens),
            output: count(&f.output_tokens),
            cache_read: count(&f.cache_read_tokens),
            cache_creation: count(&f.cache_creation_tokens),
            reasoning: count(&f.reasoning_tokens),
        };
        // Counted as Claude Code counts them: input without the cache read, output without
        // the reasoning (which is priced as output).
        if profile.tokens.input_includes_cache_read {
            tokens.input = tokens.input.saturating_sub(tokens.cache_read);
        }
        if profile.tokens.output_includes_reasoning {
            tokens.output = tokens.output.saturating_sub(tokens.reasoning);
        }
        let model = f.model.as_deref().and_then(read).and_then(as_str);
        let reported = f.cost_usd.as_deref().and_then(read).and_then(number);
        let mut usage = Usage {
            tokens,
            llm_requests: 1,
            ..Usage::default()
        };
        self.cost(&mut usage, model, reported, true);
        if let Some(session) = at.session {
            self.session_sent_requests(session);
        }
        let key = At {
            agent: at.agent,
            feature: feature_held(&self.agents, at.agent, at.feature),
            model,
            day: day_of(at.time),
            session: at.session,
        };
        self.usage.ledger.post(key, &usage, false);
    }

    /// A token or cost metric of a session that sent no request events (so far).
    pub(super) fn usage_metric(
        &mut self,
        at: &Origin<'_>,
        spec: &RecordSpec,
        ev: &MetricEvent<'_>,
    ) {
        let (points, temporality) = match &ev.metric.data {
            MetricData::Sum {
                points,
                temporality,
                ..
            } => (points, *temporality),
            _ => return,
        };
        let profile = Profiles::builtin().metric(&ev.metric.name).map(|(p, _)| p);
        // A profile whose metrics carry dollars (Claude Code's cost.usage): its token metrics
        // add no dollars of their own.
        let dollars_elsewhere =
            profile.is_some_and(|p| p.metrics.values().any(|s| s.kind == Kind::Cost));
        for point in points {
            let session = session_of_point(point).or(at.session);
            if session.is_some_and(|s| self.usage.sessions.get(s).is_some_and(|u| u.requests)) {
                continue;
            }
            let Some(value) = self.point_value(ev, point, temporality) else {
                continue;
            };
            let model = point_text(
                point,
                &["model", "gen_ai.request.model", "gen_ai.response.model"],
            );
            let mut usage = Usage::default();
            if spec.kind == Kind::Cost {
                usage.cost_nanos = value;
                usage.reported = 1;
            } else {
                let kind = point_text(point, &["type", "token_type", "gen_ai.token.type"]);
                add_tokens(&mut usage.tokens, kind.as_deref(), value);
                if !dollars_elsewhere {
                    self.cost(&mut usage, model.as_deref(), None, false);
                }
            }
            let key = Key {
                agent: at.agent.to_owned(),
                feature: feature_held(&self.agents, at.agent, at.feature).map(str::to_owned),
                model,
                day: day_of(at.time),
                session: session.map(str::to_owned),
            };
            self.usage.ledger.post(key.at(), &usage, false);
            if let Some(s) = session {
                let book = self.usage.sessions.entry(s.to_owned()).or_default();
                book.from_metrics.entry(key).or_default().add(&usage);
            }
        }
    }

    /// Fills in the cost of `usage`: as reported, else priced (when `price_it`), else
    /// unpriced.
    fn cost(&self, usage: &mut Usage, model: Option<&str>, reported: Option<f64>, price_it: bool) {
        if let Some(usd) = reported.filter(|c| c.is_finite() && *c >= 0.0) {
            usage.cost_nanos = (usd * NANOS_PER_USD as f64).round() as u64;
            usage.reported = 1;
            return;
        }
        let price = model.and_then(|m| self.usage.prices.as_ref()?.price(m));
        match price {
            Some(p) => {
                usage.cost_nanos = p.cost_nanos(&usage.tokens);
                usage.priced = 1;
            }
            None if price_it || usage.tokens.total() > 0 => usage.unpriced = 1,
            None => {}
        }
    }

    /// A session's first request event: what its metrics added is taken back.
    fn session_sent_requests(&mut self, session: &str) {
        if self.usage.sessions.get(session).is_some_and(|s| s.requests) {
            return;
        }
        let book = self.usage.sessions.entry(session.to_owned()).or_default();
        book.requests = true;
        let added = std::mem::take(&mut book.from_metrics);
        for (key, usage) in &added {
            self.usage.ledger.post(key.at(), usage, true);
        }
    }

    /// A point's value as a count (tokens, or billionths of a dollar for a cost): a delta as
    /// it is; a cumulative point less the series' last point (all of it after a restart).
    fn point_value(
        &mut self,
        ev: &MetricEvent<'_>,
        point: &NumberPoint,
        temporality: i32,
    ) -> Option<u64> {
        let raw = point
            .value
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)?;
        let scale = match Profiles::builtin()
            .metric(&ev.metric.name)
            .map(|(_, s)| s.kind)
        {
            Some(Kind::Cost) => NANOS_PER_USD as f64,
            _ => 1.0,
        };
        let value = (raw * scale).round() as u64;
        if temporality != 2 {
            return Some(value);
        }
        let mut series = format!(
            "{}|{}",
            ev.metric.name,
            ev.str_attr(crate::vocab::attr::AGENT_ID).unwrap_or("")
        );
        for kv in &point.attributes {
            series.push('|');
            series.push_str(&kv.key);
            series.push('=');
            series.push_str(&text(&kv.value).unwrap_or_default());
        }
        let last = self.usage.cumulative.get(&series).copied();
        let grew = match last {
            Some((start, before)) if start == point.start_time_unix_nano && value >= before => {
                value - before
            }
            _ => value,
        };
        if last.is_some() || self.usage.cumulative.len() < MAX_SERIES {
            self.usage
                .cumulative
                .insert(series, (point.start_time_unix_nano, value));
        }
        Some(grew)
    }
}

/// Adds `n` tokens of the kind a metric point names (`input`, `output`, `cacheRead`, …).
fn add_tokens(t: &mut Tokens, kind: Option<&str>, n: u64) {
    match kind.unwrap_or("") {
        "input" | "prompt" => t.input += n,
        "output" | "completion" => t.output += n,
        "cacheRead" | "cache_read" | "cache" | "cached" => t.cache_read += n,
        "cacheCreation" | "cache_creation" | "cache_write" => t.cache_creation += n,
        "thought" | "thoughts" | "reasoning" => t.reasoning += n,
        // An unnamed or unknown kind is taken as input: counted, not lost.
        _ => t.input += n,
    }
}

fn session_of_point(point: &NumberPoint) -> Option<&str> {
    let keys = Profiles::builtin().session_keys();
    keys.iter()
        .find_map(|k| find_attr(&point.attributes, k).and_then(crate::model::as_str))
}

fn point_text(point: &NumberPoint, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| find_attr(&point.attributes, k))
        .and_then(text)
}

/// An attribute as a number: an integer, a double, or a string of one.
fn number(value: &AnyValue) -> Option<f64> {
    match value {
        AnyValue::Int(i) => Some(*i as f64),
        AnyValue::Double(d) => Some(*d),
        AnyValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::String(s) if !s.is_empty() => Some(s.to_string()),
        AnyValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

mod budget;
mod day_budget;
#[cfg(test)]
mod tests;
