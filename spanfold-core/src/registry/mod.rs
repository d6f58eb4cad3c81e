//! The span registry: `spans/*.yaml`, compiled into the binary. It is the contract between
//! agents and spanfold — every span is checked against it before it is appended, the `spans`
//! command lists it, and a test checks that the code handles exactly the spans it names.
//!
//! - `spec`: what the registry says of a span and of each of its attributes.
//! - `parse`: the YAML files read and checked into specs.
//! - `limits`: the size and depth limits every span must meet, named in the registry or not.
//! - `validate`: an arriving span checked against its spec, and a request's bad spans removed.

mod limits;
mod parse;
mod spec;
mod telemetry;
mod validate;

pub use limits::{MAX_ITEMS_PER_SPAN, MAX_KEPT_VALUE_BYTES, MAX_VALUE_BYTES, MAX_VALUE_DEPTH};
pub use parse::RegistryError;
pub use spec::{AttrSpec, AttrType, Origin, Requirement, SpanSpec};
pub use telemetry::{
    describe_log, log_within_limits, metric_within_limits, retain_valid_logs, retain_valid_metrics,
};
pub use validate::Violation;

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The registry files, embedded so that the binary and its contract cannot drift apart.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "spans/agent.yaml",
        include_str!("../../../spans/agent.yaml"),
    ),
    (
        "spans/feature.yaml",
        include_str!("../../../spans/feature.yaml"),
    ),
    (
        "spans/coordination.yaml",
        include_str!("../../../spans/coordination.yaml"),
    ),
    (
        "spans/worktree.yaml",
        include_str!("../../../spans/worktree.yaml"),
    ),
];

#[derive(Debug, Clone)]
pub struct Registry {
    spans: BTreeMap<String, SpanSpec>,
}

impl Registry {
    /// The registry compiled into this binary.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The sources are part of the binary and a unit test parses them, so a failure here
            // is a build defect, not bad input.
            Registry::parse(SOURCES).expect("the embedded span registry is valid")
        })
    }

    pub fn get(&self, name: &str) -> Option<&SpanSpec> {
        self.spans.get(name)
    }

    /// All span types, sorted by name.
    pub fn specs(&self) -> impl Iterator<Item = &SpanSpec> {
        self.spans.values()
    }
}

#[cfg(test)]
mod tests;
