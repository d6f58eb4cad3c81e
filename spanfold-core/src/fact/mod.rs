//! One typed vocabulary for the spans the reducer gives meaning to: a [`Fact`] per span name,
//! each carrying a struct of its attributes, read by one function ([`Fact::parse`]) and written
//! by one ([`Fact::to_attributes`]). The fold matches on facts and spanfold's own span builders
//! (`emit` in the root crate) build them, so what is written and what is read share one
//! definition; a round-trip test holds them together.
//!
//! The submodules follow `spans/*.yaml`: `agent`, `coordination`, `feature`, `worktree`;
//! `words` holds the closed sets the view keeps too (agent state, priority, complexity). The
//! reducer uses this module, never the other way round.
//!
//! How a span is read, which is how the reducer has always read it:
//! - `parse` refuses a span (with the anomaly's reason) only where the reducer refuses it before
//!   it looks at the view: a required attribute missing, a name the name rule refuses, an
//!   unknown agent state. A check whose reason comes after one on the view stays in the rule, so
//!   that the first reason that applies is still the one recorded: the fact then keeps the raw
//!   value (a [`Word::Other`], a percentage not yet checked).
//! - A value of the wrong type reads as absent, as does one the reducer ignores (a lease of 0,
//!   an unknown preferred complexity). Defaults ("1 when absent") are the rules'; a field is an
//!   `Option` wherever the span may leave the attribute out.
//! - Strings are borrowed from the span: parsing a progress report allocates nothing.

mod agent;
mod coordination;
mod feature;
mod words;
mod worktree;

pub use agent::{
    Communication, Process, ProcessEvent, Registration, Reset, TokenIssued, Validation,
    ValidationResult, WorkProgress,
};
pub use coordination::{
    Acknowledge, AgentBudgetVerdict, Assignment, BudgetVerdict, BudgetVerdictKind, Configure,
    ConflictForecast, Cycle, DayVerdict, DefaultBudget, ForecastKind, Init, LeaseExpired, Merge,
    MergeKind, MergeResult, Prices, SystemHealth,
};
pub use feature::{Budget, Cancel, FeatureRequest, Reopen, Review, ReviewVerdict};
pub use words::{AgentState, Complexity, Priority};
pub use worktree::{WorktreeAction, WorktreeLifecycle};

use crate::model::{AnyValue, Event, KeyValue, Span, UnixNanos, as_int, list_strs};
use crate::vocab::span;

/// One span the reducer gives meaning to, with its attributes typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact<'a> {
    Registration(Registration<'a>),
    WorkProgress(WorkProgress<'a>),
    Validation(Validation<'a>),
    Reset(Reset<'a>),
    Communication(Communication<'a>),
    Process(Process<'a>),
    TokenIssued(TokenIssued<'a>),
    Init(Init<'a>),
    Configure(Configure),
    Prices(Prices<'a>),
    BudgetVerdict(BudgetVerdict<'a>),
    AgentBudgetVerdict(AgentBudgetVerdict<'a>),
    ConflictForecast(ConflictForecast<'a>),
    Cycle(Cycle),
    Assignment(Assignment<'a>),
    SystemHealth(SystemHealth),
    Merge(Merge<'a>),
    LeaseExpired(LeaseExpired<'a>),
    Acknowledge(Acknowledge),
    FeatureRequest(FeatureRequest<'a>),
    Cancel(Cancel<'a>),
    Reopen(Reopen<'a>),
    Review(Review<'a>),
    Budget(Budget<'a>),
    Worktree(WorktreeLifecycle<'a>),
}

impl<'a> Fact<'a> {
    /// The span name of every variant.
    pub const NAMES: [&'static str; 25] = [
        span::AGENT_COMMUNICATION,
        span::ANOMALY_ACKNOWLEDGE,
        span::AGENT_FEATURE_ASSIGNMENT,
        span::AGENT_LEASE_EXPIRED,
        span::AGENT_PROCESS,
        span::AGENT_REGISTRATION,
        span::AGENT_RESET,
        span::AGENT_TOKEN_ISSUED,
        span::AGENT_VALIDATION,
        span::AGENT_WORK_PROGRESS,
        span::COORDINATION_AGENT_BUDGET,
        span::COORDINATION_BUDGET,
        span::COORDINATION_CONFIGURE,
        span::COORDINATION_CONFLICT_FORECAST,
        span::COORDINATION_CYCLE,
        span::COORDINATION_FEATURE_MERGE,
        span::COORDINATION_INIT,
        span::COORDINATION_PRICES,
        span::COORDINATION_SYSTEM_HEALTH,
        span::FEATURE_BUDGET,
        span::FEATURE_CANCEL,
        span::FEATURE_REOPEN,
        span::FEATURE_REQUEST,
        span::FEATURE_REVIEW,
        span::WORKTREE_LIFECYCLE,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Fact::Registration(_) => span::AGENT_REGISTRATION,
            Fact::WorkProgress(_) => span::AGENT_WORK_PROGRESS,
            Fact::Validation(_) => span::AGENT_VALIDATION,
            Fact::Reset(_) => span::AGENT_RESET,
            Fact::Communication(_) => span::AGENT_COMMUNICATION,
            Fact::Process(_) => span::AGENT_PROCESS,
            Fact::TokenIssued(_) => span::AGENT_TOKEN_ISSUED,
            Fact::Init(_) => span::COORDINATION_INIT,
            Fact::Configure(_) => span::COORDINATION_CONFIGURE,
            Fact::Prices(_) => span::COORDINATION_PRICES,
            Fact::BudgetVerdict(_) => span::COORDINATION_BUDGET,
            Fact::AgentBudgetVerdict(_) => span::COORDINATION_AGENT_BUDGET,
            Fact::ConflictForecast(_) => span::COORDINATION_CONFLICT_FORECAST,
            Fact::Budget(_) => span::FEATURE_BUDGET,
            Fact::Cycle(_) => span::COORDINATION_CYCLE,
            Fact::Assignment(_) => span::AGENT_FEATURE_ASSIGNMENT,
            Fact::SystemHealth(_) => span::COORDINATION_SYSTEM_HEALTH,
            Fact::Merge(_) => span::COORDINATION_FEATURE_MERGE,
            Fact::LeaseExpired(_) => span::AGENT_LEASE_EXPIRED,
            Fact::Acknowledge(_) => span::ANOMALY_ACKNOWLEDGE,
            Fact::FeatureRequest(_) => span::FEATURE_REQUEST,
            Fact::Cancel(_) => span::FEATURE_CANCEL,
            Fact::Reopen(_) => span::FEATURE_REOPEN,
            Fact::Review(_) => span::FEATURE_REVIEW,
            Fact::Worktree(_) => span::WORKTREE_LIFECYCLE,
        }
    }

    /// The fact a span states: None for a span name the reducer ignores, the reason the span
    /// is an anomaly when its attributes say nothing the reducer can apply.
    pub fn parse(ev: &Event<'a>) -> Option<Result<Fact<'a>, String>> {
        let fact = match ev.span.name.as_str() {
            span::AGENT_REGISTRATION => Registration::read(ev).map(Fact::Registration),
            span::AGENT_WORK_PROGRESS => WorkProgress::read(ev).map(Fact::WorkProgress),
            span::AGENT_VALIDATION => Validation::read(ev).map(Fact::Validation),
            span::AGENT_RESET => Reset::read(ev).map(Fact::Reset),
            span::AGENT_COMMUNICATION => Communication::read(ev).map(Fact::Communication),
            span::AGENT_PROCESS => Process::read(ev).map(Fact::Process),
            span::AGENT_TOKEN_ISSUED => TokenIssued::read(ev).map(Fact::TokenIssued),
            span::COORDINATION_INIT => Init::read(ev).map(Fact::Init),
            span::COORDINATION_CONFIGURE => Configure::read(ev).map(Fact::Configure),
            span::COORDINATION_PRICES => Prices::read(ev).map(Fact::Prices),
            span::COORDINATION_BUDGET => BudgetVerdict::read(ev).map(Fact::BudgetVerdict),
            span::COORDINATION_AGENT_BUDGET => {
                AgentBudgetVerdict::read(ev).map(Fact::AgentBudgetVerdict)
            }
            span::COORDINATION_CONFLICT_FORECAST => {
                ConflictForecast::read(ev).map(Fact::ConflictForecast)
            }
            span::FEATURE_BUDGET => Budget::read(ev).map(Fact::Budget),
            span::COORDINATION_CYCLE => Ok(Fact::Cycle(Cycle::read(ev))),
            span::AGENT_FEATURE_ASSIGNMENT => Assignment::read(ev).map(Fact::Assignment),
            span::COORDINATION_SYSTEM_HEALTH => Ok(Fact::SystemHealth(SystemHealth::read(ev))),
            span::COORDINATION_FEATURE_MERGE => Merge::read(ev).map(Fact::Merge),
            span::AGENT_LEASE_EXPIRED => LeaseExpired::read(ev).map(Fact::LeaseExpired),
            span::ANOMALY_ACKNOWLEDGE => Acknowledge::read(ev).map(Fact::Acknowledge),
            span::FEATURE_REQUEST => FeatureRequest::read(ev).map(Fact::FeatureRequest),
            span::FEATURE_CANCEL => Cancel::read(ev).map(Fact::Cancel),
            span::FEATURE_REOPEN => Reopen::read(ev).map(Fact::Reopen),
            span::FEATURE_REVIEW => Review::read(ev).map(Fact::Review),
            span::WORKTREE_LIFECYCLE => WorktreeLifecycle::read(ev).map(Fact::Worktree),
            _ => return None,
        };
        Some(fact)
    }

    /// The span's attributes, in the order spanfold has always written them.
    pub fn to_attributes(&self) -> Vec<KeyValue> {
        let mut out = Out::default();
        match self {
            Fact::Registration(f) => f.write(&mut out),
            Fact::WorkProgress(f) => f.write(&mut out),
            Fact::Validation(f) => f.write(&mut out),
            Fact::Reset(f) => f.write(&mut out),
            Fact::Communication(f) => f.write(&mut out),
            Fact::Process(f) => f.write(&mut out),
            Fact::TokenIssued(f) => f.write(&mut out),
            Fact::Init(f) => f.write(&mut out),
            Fact::Configure(f) => f.write(&mut out),
            Fact::Prices(f) => f.write(&mut out),
            Fact::BudgetVerdict(f) => f.write(&mut out),
            Fact::AgentBudgetVerdict(f) => f.write(&mut out),
            Fact::ConflictForecast(f) => f.write(&mut out),
            Fact::Budget(f) => f.write(&mut out),
            Fact::Cycle(f) => f.write(&mut out),
            Fact::Assignment(f) => f.write(&mut out),
            Fact::SystemHealth(f) => f.write(&mut out),
            Fact::Merge(f) => f.write(&mut out),
            Fact::LeaseExpired(f) => f.write(&mut out),
            Fact::Acknowledge(f) => f.write(&mut out),
            Fact::FeatureRequest(f) => f.write(&mut out),
            Fact::Cancel(f) => f.write(&mut out),
            Fact::Reopen(f) => f.write(&mut out),
            Fact::Review(f) => f.write(&mut out),
            Fact::Worktree(f) => f.write(&mut out),
        }
        out.0
    }

    /// The fact as a span with these ids at `time`.
    pub fn to_span(&self, trace_id: [u8; 16], span_id: [u8; 8], time: UnixNanos) -> Span {
        let mut span = Span::new(trace_id, span_id, self.name(), time);
        span.attributes = self.to_attributes();
        span
    }
}

/// A closed set of words an attribute takes (its `members` in `spans/*.yaml`), each with its
/// exact wire string.
pub trait Closed: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn parse(wire: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.as_str() == wire)
    }
}

/// Declares a closed set of words and its wire strings.
macro_rules! closed_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $crate::fact::Closed for $name {
            const ALL: &'static [$name] = &[$($name::$variant,)+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl $name {
            /// The word as a span carries it.
            pub fn as_str(self) -> &'static str {
                $crate::fact::Closed::as_str(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // In JSON (reports, status) a word is its wire string, as in the span.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::fact::Closed::as_str(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let wire = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$name as $crate::fact::Closed>::parse(&wire).ok_or_else(|| {
                    let words: Vec<&str> = <$name as $crate::fact::Closed>::ALL
                        .iter()
                        .map(|m| $crate::fact::Closed::as_str(*m))
                        .collect();
                    serde::de::Error::custom(format!(
                        "unknown word {wire:?}: expected one of {}",
                        words.join(", ")
                    ))
                })
            }
        }
    };
}
use closed_set;

/// A word of a closed set as a span carried it: a member, or another word kept as sent. The
/// reducer refuses another word only after checks on the view (whose reasons come first), and
/// spanfold's own writers pass words as text, so the fact must be able to hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word<'a, T> {
    Member(T),
    Other(&'a str),
}

impl<'a, T: Closed> Word<'a, T> {
    pub fn read(wire: &'a str) -> Self {
        T::parse(wire).map_or(Word::Other(wire), Word::Member)
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Word::Member(m) => m.as_str(),
            Word::Other(w) => w,
        }
    }
}

/// The attributes of a span being written, in the order they are pushed.
#[derive(Default)]
struct Out(Vec<KeyValue>);

impl Out {
    fn str(&mut self, key: &str, value: &str) {
        self.0
            .push(KeyValue::new(key, AnyValue::String(value.into())));
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn int(&mut self, key: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.0.push(KeyValue::new(key, AnyValue::Int(v)));
        }
    }

    /// An unsigned number as OTLP's signed integer: the largest one past its range.
    fn uint(&mut self, key: &str, value: Option<u64>) {
        self.int(key, value.map(|v| v.min(i64::MAX as u64) as i64));
    }

    fn double(&mut self, key: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.0.push(KeyValue::new(key, AnyValue::Double(v)));
        }
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.0.push(KeyValue::new(key, AnyValue::Bool(value)));
    }

    /// A list, written even when empty.
    fn list(&mut self, key: &str, items: &[&str]) {
        let items = items
            .iter()
            .map(|s| AnyValue::String((*s).into()))
            .collect();
        self.0.push(KeyValue::new(key, AnyValue::Array(items)));
    }

    /// A list, left out when empty.
    fn list_if_any(&mut self, key: &str, items: &[&str]) {
        if !items.is_empty() {
            self.list(key, items);
        }
    }
}

/// A required string attribute, or the reason the span is refused without it.
fn required<'a>(
    ev: &Event<'a>,
    key: &str,
    why: impl FnOnce() -> String,
) -> Result<&'a str, String> {
    ev.str_attr(key).ok_or_else(why)
}

/// An integer attribute that must fit `u64`; a negative one reads as absent.
fn uint(ev: &Event<'_>, key: &str) -> Option<u64> {
    ev.int_attr(key).and_then(|n| u64::try_from(n).ok())
}

/// A positive number of seconds; absent when missing, not a number, or not above 0.
fn seconds(ev: &Event<'_>, key: &str) -> Option<u64> {
    uint(ev, key).filter(|s| *s > 0)
}

/// A list attribute, borrowed: items trimmed, empties dropped.
fn list<'a>(ev: &Event<'a>, key: &str) -> Vec<&'a str> {
    ev.attr(key).map(list_strs).unwrap_or_default()
}

/// An integer clamped into `lo..=hi`, as the reducer bounds one.
fn clamped(value: Option<&AnyValue>, lo: i64, hi: i64) -> Option<u32> {
    value.and_then(as_int).map(|n| n.clamp(lo, hi) as u32)
}

#[cfg(test)]
mod tests;
