//! Usage as people and programs read it: the JSON of one figure (`UsageJson`, in the status and
//! in `spanfold usage`), and the table of `spanfold usage` by feature, agent, model or day,
//! over the whole log or between two of its points.

use serde::{Deserialize, Serialize};

use super::{CostSource, Ledger, Usage, day_name};

/// One figure of usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageJson {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
    /// US dollars (summed exactly in billionths, then written as dollars).
    pub cost_usd: f64,
    /// `reported`, `priced` or `unpriced`: the least sure way any part of it is known.
    pub cost_source: Option<CostSource>,
    pub llm_requests: u64,
}

impl From<&Usage> for UsageJson {
    fn from(u: &Usage) -> UsageJson {
        UsageJson {
            input_tokens: u.tokens.input,
            output_tokens: u.tokens.output,
            cache_read_tokens: u.tokens.cache_read,
            cache_creation_tokens: u.tokens.cache_creation,
            reasoning_tokens: u.tokens.reasoning,
            cost_usd: u.cost_usd(),
            cost_source: u.cost_source(),
            llm_requests: u.llm_requests,
        }
    }
}

/// How `spanfold usage` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Feature,
    Agent,
    Model,
    Day,
    /// By agent session (the session's id, and its agent), of one feature or of all.
    Session,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Feature => "feature",
            By::Agent => "agent",
            By::Model => "model",
            By::Day => "day",
            By::Session => "session",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The feature, agent, model or day (YYYY-MM-DD).
    pub name: String,
    #[serde(flatten)]
    pub usage: UsageJson,
}

/// `spanfold usage`: rows by `by`, most expensive first (then by name), and the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub by: By,
    pub rows: Vec<Row>,
    pub total: UsageJson,
    /// Models whose requests could not be priced: their tokens count, their dollars do not.
    pub unpriced_models: Vec<String>,
    /// When the price table in force was written (None: no table recorded yet).
    pub prices_date: Option<String>,
}

/// The report of `to` less `from` (None: from the start of the log), grouped `by`; by session,
/// only what was spent on `feature` when one is given.
pub fn report(
    to: &Ledger,
    from: Option<&Ledger>,
    (by, feature): (By, Option<&str>),
    prices_date: Option<String>,
) -> Report {
    let mut rows: Vec<(String, Usage)> = match by {
        By::Session => sessions(to, from, feature),
        By::Feature => named(&to.features, from.map(|f| &f.features)),
        By::Agent => named(&to.agents, from.map(|f| &f.agents)),
        By::Model => named(&to.models, from.map(|f| &f.models)),
        By::Day => to
            .days
            .iter()
            .map(|(day, u)| {
                let mut u = *u;
                if let Some(before) = from.and_then(|f| f.days.get(day)) {
                    u.sub(before);
                }
                (day_name(*day), u)
            })
            .collect(),
    };
    rows.retain(|(_, u)| !u.is_empty());
    if by != By::Day {
        rows.sort_by(|a, b| b.1.cost_nanos.cmp(&a.1.cost_nanos).then(a.0.cmp(&b.0)));
    }
    let mut total = to.total;
    if let Some(f) = from {
        total.sub(&f.total);
    }
    let mut unpriced_models: Vec<String> = named(&to.models, from.map(|f| &f.models))
        .into_iter()
        .filter(|(_, u)| u.unpriced > 0)
        .map(|(name, _)| name)
        .collect();
    unpriced_models.sort();
    Report {
        by,
        rows: rows
            .iter()
            .map(|(name, u)| Row {
                name: name.clone(),
                usage: u.into(),
            })
            .collect(),
        total: (&total).into(),
        unpriced_models,
        prices_date,
    }
}

/// Each session's spending (on `feature`, when given), named "SESSION (AGENT)".
fn sessions(to: &Ledger, from: Option<&Ledger>, feature: Option<&str>) -> Vec<(String, Usage)> {
    let spent = |l: &Ledger, session: &str| {
        let s = l.sessions.get(session)?;
        match feature {
            Some(f) => s.features.get(f).copied(),
            None => Some(s.total),
        }
    };
    to.sessions
        .iter()
        .filter_map(|(id, s)| {
            let mut u = spent(to, id)?;
            if let Some(before) = from.and_then(|f| spent(f, id)) {
                u.sub(&before);
            }
            Some((format!("{id} ({})", s.agent), u))
        })
        .collect()
}

fn named<V: AsRef<Usage>>(
    to: &std::collections::BTreeMap<String, V>,
    from: Option<&std::collections::BTreeMap<String, V>>,
) -> Vec<(String, Usage)> {
    to.iter()
        .map(|(name, u)| {
            let mut u = *u.as_ref();
            if let Some(before) = from.and_then(|f| f.get(name)) {
                u.sub(before.as_ref());
            }
            (name.clone(), u)
        })
        .collect()
}

/// The report as a table for a person: one row per name, the total, then the unpriced models.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>10} {:>11} {:>11} {:>10} {:>9} {:>11}  {}\n",
        r.by.as_str(),
        "input",
        "output",
        "cache read",
        "cache write",
        "reasoning",
        "requests",
        "cost (USD)",
        "cost is"
    );
    let line = |name: &str, u: &UsageJson| {
        format!(
            "{:<28} {:>10} {:>10} {:>11} {:>11} {:>10} {:>9} {:>11.4}  {}\n",
            name,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_creation_tokens,
            u.reasoning_tokens,
            u.llm_requests,
            u.cost_usd,
            u.cost_source.map_or("–", CostSource::as_str)
        )
    };
    for row in &r.rows {
        out.push_str(&line(&row.name, &row.usage));
    }
    out.push_str(&line("total", &r.total));
    if !r.unpriced_models.is_empty() {
        out.push_str(&format!(
            "warning: no price for {}: their tokens are counted, their cost is not (add them to a price file: git config spanfold.pricesFile FILE)\n",
            r.unpriced_models.join(", ")
        ));
    }
    out
}
