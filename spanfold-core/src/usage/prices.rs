//! The price table: US dollars per million tokens of each kind, per model, with the date it was
//! written. spanfold ships one (`spans/prices.yaml`); a repository may add or replace models
//! (`git config spanfold.pricesFile FILE`). The table in force is recorded in the log
//! (`coordination.prices`), so that a request is priced with the prices of its time, and a
//! replay tomorrow gives the same dollars.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{NANOS_PER_USD, Tokens};

/// The table compiled into this build.
pub const BUILTIN: &str = include_str!("../../../spans/prices.yaml");

/// One model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    /// Output and reasoning ("thinking") tokens alike.
    pub output: f64,
    pub cache_read: f64,
    /// Writing the prompt cache; a provider that charges none lists its input price or 0.
    pub cache_write: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// When the prices were taken from the providers' lists (YYYY-MM-DD).
    pub date: String,
    /// By model name, or by the start of one: the longest name that begins the request's
    /// model is its price (`claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929`).
    pub models: BTreeMap<String, Price>,
}

#[derive(Debug, Error)]
pub enum PriceError {
    #[error(
        "{origin}: {message}; the table is `date: YYYY-MM-DD` and `models:` with `input`, `output`, `cache_read` and `cache_write` in US dollars per million tokens for each model"
    )]
    Parse { origin: String, message: String },
    #[error(
        "{origin}: the price of {model} must be a number of dollars, 0 or more (it has {value})"
    )]
    Bad {
        origin: String,
        model: String,
        value: f64,
    },
}

impl PriceTable {
    /// The table compiled into this build.
    pub fn builtin() -> PriceTable {
        // Part of the binary and parsed by a unit test: a failure is a build defect.
        PriceTable::parse(BUILTIN, "spans/prices.yaml").expect("the embedded price table is valid")
    }

    /// A table from YAML (or JSON, which YAML reads too); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PriceTable, PriceError> {
        let table: PriceTable = serde_yaml_ng::from_str(text).map_err(|e| PriceError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        for (model, p) in &table.models {
            for value in [p.input, p.output, p.cache_read, p.cache_write] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(PriceError::Bad {
                        origin: origin.to_owned(),
                        model: model.clone(),
                        value,
                    });
                }
            }
        }
        Ok(table)
    }

    /// This table with `other`'s models added or replacing its own, and `other`'s date.
    pub fn overlaid(mut self, other: PriceTable) -> PriceTable {
        self.models.extend(other.models);
        self.date = other.date;
        self
    }

    /// The price of `model`: its own, else that of the longest listed name it begins with.
    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }
}

impl Price {
    /// What `tokens` cost at this price, in billionths of a dollar, rounded to the nearest.
    pub fn cost_nanos(&self, tokens: &Tokens) -> u64 {
        // Each price in billionths of a dollar per million tokens, each part tokens × that,
        // summed exactly in integers, then divided by a million once.
        let per_million = |usd: f64| (usd * NANOS_PER_USD as f64).round() as u128;
        let sum = u128::from(tokens.input) * per_million(self.input)
            + u128::from(tokens.output + tokens.reasoning) * per_million(self.output)
            + u128::from(tokens.cache_read) * per_million(self.cache_read)
            + u128::from(tokens.cache_creation) * per_million(self.cache_write);
        u64::try_from((sum + 500_000) / 1_000_000).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_parses_and_prices_to_the_billionth() {
        let table = PriceTable::builtin();
        let sonnet = table
            .price("claude-sonnet-4-5-20250929")
            .expect("listed by prefix");
        let tokens = Tokens {
            input: 1_000,
            output: 500,
            cache_read: 10_000,
            cache_creation: 2_000,
            reasoning: 0,
        };
        // 1000 × $3 + 500 × $15 + 10000 × $0.30 + 2000 × $3.75, per million tokens.
        assert_eq!(
            sonnet.cost_nanos(&tokens),
            3_000_000 + 7_500_000 + 3_000_000 + 7_500_000
        );
        assert!(table.price("no-such-model").is_none());
        let codex = table.price("gpt-5-codex").expect("listed");
        assert!(
            std::ptr::eq(codex, &table.models["gpt-5-codex"]),
            "the longest name wins"
        );
    }

    #[test]
    fn a_bad_table_says_what_is_wrong() {
        let err = PriceTable::parse(
            "date: x\nmodels: {m: {input: -1, output: 1, cache_read: 0, cache_write: 0}}",
            "mine.yaml",
        )
        .expect_err("negative");
        assert!(
            err.to_string().contains("mine.yaml: the price of m"),
            "{err}"
        );
        let err = PriceTable::parse("models: []", "mine.yaml").expect_err("shape");
        assert!(err.to_string().contains("per million tokens"), "{err}");
    }
}
