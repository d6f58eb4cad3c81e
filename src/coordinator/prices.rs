//! The price table in force, recorded in the log when it changes (`coordination.prices`): the
//! built-in table with the repository's own (`git config spanfold.pricesFile FILE`, a path
//! relative to the main checkout or absolute) laid over it. The fold prices each LLM request
//! with the table recorded before it, so a replay gives the same dollars whatever this build's
//! table says.

use std::path::Path;

use crate::reducer::Config;
use crate::usage::PriceTable;

use super::{CoordError, Coordinator};

impl Coordinator {
    /// Records the price table in force when it differs from the one the log has. A price file
    /// that cannot be read or parsed is said once per reason, and the table in force stays.
    pub(super) fn record_prices(&mut self, config: &Config) -> Result<(), CoordError> {
        let workspace = self.workspace(config);
        let builtin = PriceTable::builtin();
        let (table, source) = match workspace.config_value("spanfold.pricesFile")? {
            None => {
                let source = format!("built-in {}", builtin.date);
                (builtin, source)
            }
            Some(file) => match own_prices(Path::new(&config.repo), &file) {
                Ok(own) => {
                    let source = format!("built-in {}, with {file}", builtin.date);
                    (builtin.overlaid(own), source)
                }
                Err(why) => {
                    if self.prices_problem.as_deref() != Some(why.as_str()) {
                        tracing::warn!("{why}; the prices in force stay");
                        self.prices_problem = Some(why);
                    }
                    return Ok(());
                }
            },
        };
        self.prices_problem = None;
        if self.view.read().usage.prices.as_ref() == Some(&table) {
            return Ok(());
        }
        let span = crate::emit::prices(&mut self.ids, self.clock.now(), &table, &source);
        self.record(vec![span])
    }
}

/// The repository's own price table, `file` relative to its main checkout `repo`.
fn own_prices(repo: &Path, file: &str) -> Result<PriceTable, String> {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "git config spanfold.pricesFile names {}, which cannot be read ({e}); fix the path or `git config --unset spanfold.pricesFile`",
            path.display()
        )
    })?;
    PriceTable::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())
}
