//! What agents' LLM requests used and cost, as the fold counts it: tokens of each kind, dollars
//! (kept in billionths, so that sums are exact and a replay gives the same figure), requests,
//! and how each request's cost is known — reported by the agent (Claude Code's `cost_usd`),
//! priced from the price table recorded in the log (`prices.rs`), or unpriced (a model the
//! table does not list: its tokens still count). Kept per agent, feature, model and day (UTC).

mod prices;
mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use prices::{Price, PriceError, PriceTable};
pub use report::{By, Report, Row, UsageJson, report, table};

use crate::model::UnixNanos;

/// Billionths of a US dollar in one dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Token counts of one request, or of many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
    pub reasoning: u64,
}

impl Tokens {
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_creation + self.reasoning
    }
}

/// How a cost is known. For a sum, the least sure of its parts: one unpriced request makes the
/// whole a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// As the agent reported it.
    Reported,
    /// Its tokens times the price table's prices for its model.
    Priced,
    /// No price for its model: its tokens count, its dollars do not.
    Unpriced,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Reported => "reported",
            CostSource::Priced => "priced",
            CostSource::Unpriced => "unpriced",
        }
    }
}

/// Usage summed: tokens, cost, requests, and how many requests' costs were known each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub tokens: Tokens,
    /// Billionths of a US dollar.
    pub cost_nanos: u64,
    pub llm_requests: u64,
    /// Parts (requests, or metric points) whose cost was reported, priced, unpriced.
    pub reported: u64,
    pub priced: u64,
    pub unpriced: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.combine(other, |a, b| a + b);
    }

    /// `self` less `other` (never below zero): usage between two points of the log.
    pub fn sub(&mut self, other: &Usage) {
        self.combine(other, u64::saturating_sub);
    }

    fn combine(&mut self, o: &Usage, f: impl Fn(u64, u64) -> u64) {
        let (t, ot) = (&mut self.tokens, &o.tokens);
        t.input = f(t.input, ot.input);
        t.output = f(t.output, ot.output);
        t.cache_read = f(t.cache_read, ot.cache_read);
        t.cache_creation = f(t.cache_creation, ot.cache_creation);
        t.reasoning = f(t.reasoning, ot.reasoning);
        self.cost_nanos = f(self.cost_nanos, o.cost_nanos);
        self.llm_requests = f(self.llm_requests, o.llm_requests);
        self.reported = f(self.reported, o.reported);
        self.priced = f(self.priced, o.priced);
        self.unpriced = f(self.unpriced, o.unpriced);
    }

    /// The least sure way any of its cost is known (None: no cost at all yet).
    pub fn cost_source(&self) -> Option<CostSource> {
        [
            (self.unpriced, CostSource::Unpriced),
            (self.priced, CostSource::Priced),
            (self.reported, CostSource::Reported),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0)
        .map(|(_, s)| s)
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_nanos as f64 / NANOS_PER_USD as f64
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// Where a part of usage is counted (kept, for what a session's metrics added).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub agent: String,
    pub feature: Option<String>,
    pub model: Option<String>,
    /// Days since 1970-01-01 (UTC) of the log's receive time.
    pub day: u32,
    pub session: Option<String>,
}

/// Where a part of usage is counted, borrowed: posting allocates only for names not seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At<'a> {
    pub agent: &'a str,
    pub feature: Option<&'a str>,
    pub model: Option<&'a str>,
    pub day: u32,
    pub session: Option<&'a str>,
}

impl Key {
    pub fn at(&self) -> At<'_> {
        At {
            agent: &self.agent,
            feature: self.feature.as_deref(),
            model: self.model.as_deref(),
            day: self.day,
            session: self.session.as_deref(),
        }
    }
}

/// What one agent session (Claude Code's `session.id`, Codex's `conversation.id`, …) spent, in
/// all and on each feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpend {
    pub agent: String,
    pub total: Usage,
    pub features: BTreeMap<String, Usage>,
}

/// All usage in the log, summed each way a report asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub total: Usage,
    pub agents: BTreeMap<String, AgentUsage>,
    pub features: BTreeMap<String, Usage>,
    pub models: BTreeMap<String, Usage>,
    pub days: BTreeMap<u32, Usage>,
    /// By session, for the usage that names one.
    pub sessions: BTreeMap<String, SessionSpend>,
}

/// What an agent spent: in all, and on the latest day it spent (what its daily budget is held
/// to).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUsage {
    pub total: Usage,
    pub today: DaySpend,
}

impl AsRef<Usage> for AgentUsage {
    fn as_ref(&self) -> &Usage {
        &self.total
    }
}

impl AsRef<Usage> for Usage {
    fn as_ref(&self) -> &Usage {
        self
    }
}

/// What an agent spent on one day (UTC), in billionths of a dollar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySpend {
    pub day: u32,
    pub cost_nanos: u64,
}

impl DaySpend {
    /// What was spent on `day`: nothing when the latest day spent is another.
    pub fn on(&self, day: u32) -> u64 {
        if self.day == day { self.cost_nanos } else { 0 }
    }

    /// Posts `nanos` spent on `day`: a later day starts over; an earlier one (a late record)
    /// is in the day totals, not today's.
    fn post(&mut self, day: u32, nanos: u64, sub: bool) {
        if day > self.day {
            *self = DaySpend { day, cost_nanos: 0 };
        }
        if day == self.day {
            self.cost_nanos = match sub {
                true => self.cost_nanos.saturating_sub(nanos),
                false => self.cost_nanos.saturating_add(nanos),
            };
        }
    }
}

impl Ledger {
    /// Counts `usage` under `key` (`sub`: takes it back).
    pub fn post(&mut self, key: At<'_>, usage: &Usage, sub: bool) {
        let apply = |u: &mut Usage| match sub {
            true => u.sub(usage),
            false => u.add(usage),
        };
        apply(&mut self.total);
        // The agent's day rides on its entry: one lookup for both.
        let on_agent = |a: &mut AgentUsage| {
            apply(&mut a.total);
            a.today.post(key.day, usage.cost_nanos, sub);
        };
        match self.agents.get_mut(key.agent) {
            Some(a) => on_agent(a),
            None => {
                let mut a = AgentUsage::default();
                on_agent(&mut a);
                self.agents.insert(key.agent.to_owned(), a);
            }
        }
        if let Some(f) = key.feature {
            bump(&mut self.features, f, apply);
        }
        bump(&mut self.models, key.model.unwrap_or("(unknown)"), apply);
        apply(self.days.entry(key.day).or_default());
        let Some(session) = key.session else {
            return;
        };
        let spend_on = |spend: &mut SessionSpend| {
            apply(&mut spend.total);
            if let Some(f) = key.feature {
                bump(&mut spend.features, f, apply);
            }
        };
        match self.sessions.get_mut(session) {
            Some(spend) => spend_on(spend),
            None => {
                let mut spend = SessionSpend {
                    agent: key.agent.to_owned(),
                    ..SessionSpend::default()
                };
                spend_on(&mut spend);
                self.sessions.insert(session.to_owned(), spend);
            }
        }
    }
}

/// Applies `f` to the entry for `name`, made when new: one lookup for a name seen before (the
/// fold's common case), and no key allocated for it.
fn bump(map: &mut BTreeMap<String, Usage>, name: &str, f: impl Fn(&mut Usage)) {
    match map.get_mut(name) {
        Some(u) => f(u),
        None => {
            let mut u = Usage::default();
            f(&mut u);
            map.insert(name.to_owned(), u);
        }
    }
}

/// The day (days since 1970-01-01, UTC) of `time`.
pub fn day_of(time: UnixNanos) -> u32 {
    (time / 86_400_000_000_000) as u32
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (the proleptic Gregorian calendar).
pub fn day_name(day: u32) -> String {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day a `YYYY-MM-DD` name (as [`day_name`] writes it) counts from 1970-01-01; None for
/// anything else.
pub fn day_number(name: &str) -> Option<u32> {
    let mut parts = name.splitn(3, '-');
    let mut part = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<i64>().ok())
    };
    let (y, m, d) = (part(4)?, part(2)?, part(2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // A day that does not exist (February 30) names another: refused.
    let day = u32::try_from(days).ok()?;
    (day_name(day) == name).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_read_back_to_their_day_and_nothing_else_reads() {
        for day in [0, 11_016, 20_792, 20_793, 40_000] {
            assert_eq!(day_number(&day_name(day)), Some(day));
        }
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-05",
            "2026-12-5",
            "",
            "1969-12-31",
        ] {
            assert_eq!(day_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_are_named_as_the_calendar_does() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(day_of(1_796_492_146_538_107_284)), "2026-12-05");
        assert_eq!(day_name(11_016), "2000-02-29");
    }

    #[test]
    fn a_sum_is_as_sure_as_its_least_sure_part() {
        let mut u = Usage {
            reported: 2,
            ..Usage::default()
        };
        assert_eq!(u.cost_source(), Some(CostSource::Reported));
        u.priced = 1;
        assert_eq!(u.cost_source(), Some(CostSource::Priced));
        u.unpriced = 1;
        assert_eq!(u.cost_source(), Some(CostSource::Unpriced));
        assert_eq!(Usage::default().cost_source(), None);
    }
}
