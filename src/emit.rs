//! Spans that spanfold itself writes: the CLI's requests on behalf of an operator (client spans)
//! and the coordinator's decisions and outcomes. Built here, in one place, so the registry test
//! can check every one of them. Each is a [`Fact`] written by `Fact::to_attributes`, the
//! builder that shares its definition with the fold's reading (`Fact::parse`); this module adds
//! the ids and the time.

use std::hash::BuildHasher;

use crate::fact::{
    self, Acknowledge, Fact, MergeKind, MergeResult, ValidationResult, Word, WorktreeAction,
};
use crate::model::{AnyValue, KeyValue, Resource, ResourceSpans, Scope, Span, UnixNanos};
use crate::reducer::{AgentState, Complexity, Priority};
use crate::vocab::attr;

/// Trace and span ids nobody can predict: a keyed SipHash (std's hasher, keyed from the
/// operating system's randomness) of a counter. One id shows nothing of the next, so a client
/// that reads the log cannot send spans carrying the coordinator's future ids first.
pub struct IdGen {
    keys: std::hash::RandomState,
    counter: u64,
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen {
            keys: std::hash::RandomState::new(),
            counter: 0,
        }
    }
}

impl IdGen {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.keys.hash_one(self.counter)
    }

    pub fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }

    pub fn span_id(&mut self) -> [u8; 8] {
        // OTLP treats an all-zero id as invalid.
        loop {
            let id = self.next();
            if id != 0 {
                return id.to_be_bytes();
            }
        }
    }

    /// A span in a fresh trace.
    pub fn span(&mut self, name: &str, time: UnixNanos) -> Span {
        let trace = self.trace_id();
        let span = self.span_id();
        Span::new(trace, span, name, time)
    }
}

pub fn now() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as UnixNanos)
        .unwrap_or(0)
}

fn s(v: &str) -> AnyValue {
    AnyValue::String(v.into())
}

/// Most items a list the coordinator writes holds: the first ones, then one that counts the
/// rest. A merge of 10,001 conflicting files must still be recorded.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Bounds what the coordinator writes so that its own spans always validate, whatever the
/// input that led to them: every text at most the 64 KiB kept per attribute (cut at a character
/// boundary, with a marker saying how long it was), every list at most [`MAX_LIST_ITEMS`] items
/// and the same number of bytes in all.
pub fn bounded(mut span: Span) -> Span {
    const KEEP: usize = crate::registry::MAX_KEPT_VALUE_BYTES - 64;
    fn cut(text: &str, keep: usize) -> String {
        let mut end = keep.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… (cut: {} bytes in all)", &text[..end], text.len())
    }
    for kv in &mut span.attributes {
        match &mut kv.value {
            AnyValue::String(t) if t.len() > KEEP => *t = cut(t, KEEP).into(),
            AnyValue::Array(items) => {
                let total = items.len();
                let mut budget = KEEP;
                let mut kept = Vec::with_capacity(total.min(MAX_LIST_ITEMS));
                for item in items.drain(..) {
                    let size = match &item {
                        AnyValue::String(t) => t.len(),
                        _ => 8,
                    };
                    if kept.len() + 1 >= MAX_LIST_ITEMS || size > budget {
                        break;
                    }
                    budget -= size;
                    kept.push(item);
                }
                if kept.len() < total {
                    let more = format!("… and {} more", total - kept.len());
                    kept.push(AnyValue::String(more.into()));
                }
                *items = kept;
            }
            _ => {}
        }
    }
    span
}

/// Wraps spans written by `service` (spanfold itself, or its CLI acting for an operator).
pub fn wrap(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans::single(
        Resource {
            attributes: vec![
                KeyValue::new("service.name", s(service)),
                KeyValue::new("service.version", s(env!("CARGO_PKG_VERSION"))),
            ],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        },
        Scope {
            name: "spanfold".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Scope::default()
        },
        spans,
    )
}

pub const CLI_SERVICE: &str = "spanfold-cli";
pub const COORDINATOR_SERVICE: &str = "spanfold";

/// A fact as a span in a fresh trace, written by the one builder the fold's reading shares.
fn fact_span(ids: &mut IdGen, time: UnixNanos, fact: Fact<'_>) -> Span {
    let trace = ids.trace_id();
    let span = ids.span_id();
    fact.to_span(trace, span, time)
}

fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub agent_id: String,
    pub languages: Vec<String>,
    pub frameworks: Vec<String>,
    pub expertise_areas: Vec<String>,
    pub max_concurrent_features: u32,
    pub preferred_complexity: Option<Complexity>,
    /// Its own lease, when it differs from the log's.
    pub lease_seconds: Option<u64>,
    /// What its LLM requests may cost a day, in dollars.
    pub budget_usd_per_day: Option<f64>,
    /// It works on another host, through the remote.
    pub remote: bool,
}

pub fn registration(ids: &mut IdGen, time: UnixNanos, r: &Registration) -> Span {
    let fact = fact::Registration {
        agent_id: &r.agent_id,
        languages: strs(&r.languages),
        frameworks: strs(&r.frameworks),
        expertise_areas: strs(&r.expertise_areas),
        max_concurrent_features: Some(r.max_concurrent_features),
        preferred_complexity: r.preferred_complexity,
        lease_seconds: r.lease_seconds,
        budget_usd_per_day: r.budget_usd_per_day,
        remote: r.remote,
    };
    fact_span(ids, time, Fact::Registration(fact))
}

#[derive(Debug, Clone, Default)]
pub struct FeatureRequest {
    pub name: String,
    pub description: String,
    pub priority: Option<Priority>,
    pub estimated_effort: u32,
    pub languages: Vec<String>,
    pub frameworks: Vec<String>,
    pub expertise_areas: Vec<String>,
    pub requirements: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    /// Its scope: the paths (globs) it will change.
    pub paths: Vec<String>,
    pub allow_overlap: bool,
}

pub fn feature_request(ids: &mut IdGen, time: UnixNanos, f: &FeatureRequest) -> Span {
    let fact = fact::FeatureRequest {
        name: &f.name,
        description: Some(&f.description),
        priority: f.priority,
        estimated_effort: Some(f.estimated_effort),
        languages: strs(&f.languages),
        frameworks: strs(&f.frameworks),
        expertise_areas: strs(&f.expertise_areas),
        requirements: strs(&f.requirements),
        acceptance_criteria: strs(&f.acceptance_criteria),
        paths: strs(&f.paths),
        allow_overlap: f.allow_overlap,
    };
    fact_span(ids, time, Fact::FeatureRequest(fact))
}

#[derive(Debug, Clone, Default)]
pub struct ProgressReport {
    pub agent_id: String,
    pub state: Option<AgentState>,
    pub feature: Option<String>,
    pub percentage: Option<f64>,
    pub files_modified: Option<i64>,
    pub lines_added: Option<i64>,
    pub duration_ms: Option<i64>,
}

pub fn progress(ids: &mut IdGen, time: UnixNanos, p: &ProgressReport) -> Span {
    let fact = fact::WorkProgress {
        agent_id: &p.agent_id,
        state: p.state.unwrap_or(AgentState::Idle),
        feature_name: p.feature.as_deref(),
        percentage: p.percentage,
        files_modified: p.files_modified,
        lines_added: p.lines_added,
        duration_ms: p.duration_ms,
    };
    let mut span = fact_span(ids, time, Fact::WorkProgress(fact));
    if p.state.is_none() {
        // Every caller names a state (the field is optional so the struct has a Default); a
        // report without one is written as asked, and the fold refuses it.
        span.attributes.retain(|kv| kv.key != attr::AGENT_STATE);
    }
    span
}

pub fn validation(
    ids: &mut IdGen,
    time: UnixNanos,
    agent_id: &str,
    feature: Option<&str>,
    passed: bool,
    issues: Option<i64>,
) -> Span {
    let fact = fact::Validation {
        agent_id,
        result: if passed {
            ValidationResult::Passed
        } else {
            ValidationResult::Failed
        },
        feature_name: feature,
        issues_found: issues,
        kind: None,
    };
    fact_span(ids, time, Fact::Validation(fact))
}

pub fn reset(ids: &mut IdGen, time: UnixNanos, agent_id: &str, reason: Option<&str>) -> Span {
    fact_span(ids, time, Fact::Reset(fact::Reset { agent_id, reason }))
}

pub fn init(
    ids: &mut IdGen,
    time: UnixNanos,
    repo: &str,
    base: &str,
    worktrees_dir: &str,
    lease_seconds: u64,
) -> Span {
    let fact = fact::Init {
        repo,
        base_branch: base,
        worktrees_dir,
        lease_seconds: Some(lease_seconds),
    };
    fact_span(ids, time, Fact::Init(fact))
}

/// Changed settings (`agents init`): the lease, the default feature budget.
pub fn configure(ids: &mut IdGen, time: UnixNanos, settings: fact::Configure) -> Span {
    fact_span(ids, time, Fact::Configure(settings))
}

/// `coordination.prices`: `table` in force from now on, from `source`.
pub fn prices(
    ids: &mut IdGen,
    time: UnixNanos,
    table: &crate::usage::PriceTable,
    source: &str,
) -> Span {
    // A table of names and finite numbers (its parse refuses others) always serialises.
    let json = serde_json::to_string(table).unwrap_or_default();
    let fact = fact::Prices {
        date: &table.date,
        table: &json,
        source: Some(source),
    };
    fact_span(ids, time, Fact::Prices(fact))
}

pub fn cycle(
    ids: &mut IdGen,
    time: UnixNanos,
    number: u64,
    assignments: usize,
    waiting: usize,
) -> Span {
    let fact = fact::Cycle {
        number: Some(number),
        assignments: Some(assignments as u64),
        features_waiting: Some(waiting as u64),
    };
    fact_span(ids, time, Fact::Cycle(fact))
}

pub struct AssignmentSpan<'a> {
    pub agent_id: &'a str,
    pub feature: &'a str,
    pub priority: Priority,
    pub score: f64,
    pub reasons: &'a [String],
    pub worktree_path: &'a str,
    pub branch: &'a str,
}

pub fn assignment(ids: &mut IdGen, time: UnixNanos, a: &AssignmentSpan<'_>) -> Span {
    let timestamp = crate::status::rfc3339(time);
    let fact = fact::Assignment {
        agent_id: a.agent_id,
        feature_name: a.feature,
        priority: Some(a.priority),
        match_score: Some(a.score),
        reasons: strs(a.reasons),
        timestamp: Some(&timestamp),
        worktree_path: Some(a.worktree_path),
        branch: Some(a.branch),
    };
    fact_span(ids, time, Fact::Assignment(fact))
}

pub struct WorktreeSpan<'a> {
    pub action: WorktreeAction,
    /// Empty when the worktree is nobody's (left out of the span).
    pub agent_id: &'a str,
    pub feature: &'a str,
    pub path: &'a str,
    pub branch: &'a str,
    pub error: Option<&'a str>,
    /// Where the branch was pushed, for a remote agent.
    pub remote_url: Option<&'a str>,
}

pub fn worktree(ids: &mut IdGen, time: UnixNanos, w: &WorktreeSpan<'_>) -> Span {
    let fact = fact::WorktreeLifecycle {
        action: Word::Member(w.action),
        agent_id: Some(w.agent_id).filter(|a| !a.is_empty()),
        feature_name: w.feature,
        path: w.path,
        branch: w.branch,
        error: w.error,
        remote_url: w.remote_url,
    };
    fact_span(ids, time, Fact::Worktree(fact))
}

pub struct Health {
    pub total_agents: usize,
    pub active_agents: usize,
    pub health_score: f64,
    pub features_completed: usize,
    pub features_in_queue: usize,
}

pub fn health(ids: &mut IdGen, time: UnixNanos, h: &Health) -> Span {
    let fact = fact::SystemHealth {
        total_agents: Some(h.total_agents as u64),
        active_agents: Some(h.active_agents as u64),
        health_score: Some(h.health_score),
        features_completed: Some(h.features_completed as u64),
        features_in_queue: Some(h.features_in_queue as u64),
    };
    fact_span(ids, time, Fact::SystemHealth(fact))
}

pub struct MergeSpan<'a> {
    pub result: MergeResult,
    pub agent_id: &'a str,
    pub feature: &'a str,
    pub branch: &'a str,
    pub base: &'a str,
    pub kind: Option<MergeKind>,
    pub commit: Option<&'a str>,
    pub conflicts: &'a [String],
    pub reason: Option<&'a str>,
    /// The base branch's tip before the merge (on `started`).
    pub from: Option<&'a str>,
}

pub fn merge(ids: &mut IdGen, time: UnixNanos, m: &MergeSpan<'_>) -> Span {
    let fact = fact::Merge {
        result: Word::Member(m.result),
        agent_id: m.agent_id,
        feature_name: m.feature,
        branch: Some(m.branch),
        base_branch: Some(m.base),
        kind: m.kind.map(Word::Member),
        commit: m.commit,
        conflicts: strs(m.conflicts),
        reason: m.reason,
        from: m.from,
    };
    fact_span(ids, time, Fact::Merge(fact))
}

/// `agent.process`: what `agents run` saw of an agent's process.
pub fn process(ids: &mut IdGen, time: UnixNanos, p: &fact::Process<'_>) -> Span {
    fact_span(ids, time, Fact::Process(p.clone()))
}

pub fn lease_expired(
    ids: &mut IdGen,
    time: UnixNanos,
    agent_id: &str,
    silent_seconds: u64,
) -> Span {
    let fact = fact::LeaseExpired {
        agent_id,
        // The log holds a signed integer: the largest one past its range.
        silent_seconds: Some(silent_seconds.min(i64::MAX as u64) as i64),
    };
    fact_span(ids, time, Fact::LeaseExpired(fact))
}

pub fn cancel(ids: &mut IdGen, time: UnixNanos, feature: &str, reason: Option<&str>) -> Span {
    let fact = fact::Cancel {
        feature_name: feature,
        reason,
    };
    fact_span(ids, time, Fact::Cancel(fact))
}

/// `feature.budget`: what `feature` may spend from now on.
pub fn budget(
    ids: &mut IdGen,
    time: UnixNanos,
    feature: &str,
    usd: Option<f64>,
    tokens: Option<u64>,
) -> Span {
    let fact = fact::Budget {
        feature_name: feature,
        usd,
        tokens: tokens.map(|t| t.min(i64::MAX as u64) as i64),
    };
    fact_span(ids, time, Fact::Budget(fact))
}

pub fn reopen(ids: &mut IdGen, time: UnixNanos, feature: &str, reason: Option<&str>) -> Span {
    let fact = fact::Reopen {
        feature_name: feature,
        reason,
    };
    fact_span(ids, time, Fact::Reopen(fact))
}

/// Binds a token (by its SHA-256: the token itself is never written) to `agent`.
pub fn token_issued(ids: &mut IdGen, time: UnixNanos, agent: &str, sha256: &str) -> Span {
    let fact = fact::TokenIssued {
        agent_id: agent,
        token_sha256: sha256,
    };
    fact_span(ids, time, Fact::TokenIssued(fact))
}

/// Acknowledges the anomaly caused by the span at `seq`, or all of them.
pub fn acknowledge(ids: &mut IdGen, time: UnixNanos, seq: Option<u64>) -> Span {
    let fact = seq.map_or(Acknowledge::All, Acknowledge::Seq);
    fact_span(ids, time, Fact::Acknowledge(fact))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator spanfold used before: one output revealed its state (splitmix64 is
    /// invertible), so the next ids could be computed from one read in the log.
    fn splitmix_successor(output: u64) -> u64 {
        let unmix = |mut z: u64| {
            z ^= z >> 31 ^ z >> 62;
            z = z.wrapping_mul(0x3196_42b2_d24d_8ec3);
            z ^= z >> 27 ^ z >> 54;
            z = z.wrapping_mul(0x96de_1b17_3f11_9089);
            z ^ (z >> 30) ^ (z >> 60)
        };
        let state = unmix(output).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn the_coordinators_spans_validate_whatever_led_to_them() {
        let conflicts: Vec<String> = (0..10_001).map(|i| format!("src/file{i}.rs")).collect();
        let reason = "é".repeat(1 << 20);
        let merge = merge(
            &mut IdGen::default(),
            1,
            &MergeSpan {
                result: MergeResult::Conflicted,
                agent_id: "a1",
                feature: "f1",
                branch: "spanfold/f1",
                base: "main",
                kind: None,
                commit: None,
                conflicts: &conflicts,
                reason: Some(&reason),
                from: None,
            },
        );
        let registry = crate::registry::Registry::builtin();
        let resource = crate::model::Resource::default();
        let origin = crate::registry::Origin::Coordinator;
        assert!(
            registry.validate(&merge, &resource, origin).is_err(),
            "unbounded, it breaks"
        );
        let merge = bounded(merge);
        registry
            .validate(&merge, &resource, origin)
            .unwrap_or_else(|v| panic!("{v}"));
        let listed = merge
            .attr("merge.conflicts")
            .map(crate::model::list_items)
            .unwrap_or_default();
        assert!(listed.len() <= MAX_LIST_ITEMS, "{}", listed.len());
        assert_eq!(listed[0], "src/file0.rs");
        let more = listed.last().expect("a count");
        assert!(
            more.starts_with("… and ") && more.ends_with(" more"),
            "{more}"
        );
        let shown = listed.len() - 1;
        assert_eq!(more, &format!("… and {} more", 10_001 - shown));
        let reason = merge
            .attr("merge.reason")
            .and_then(crate::model::as_str)
            .unwrap_or("");
        assert!(
            reason.ends_with("(cut: 2097152 bytes in all)"),
            "{}",
            &reason[reason.len() - 40..]
        );
    }

    #[test]
    fn the_next_id_cannot_be_computed_from_the_last() {
        let mut ids = IdGen::default();
        let mut predicted = 0;
        let mut last = u64::from_be_bytes(ids.span_id());
        for _ in 0..1000 {
            let next = u64::from_be_bytes(ids.span_id());
            predicted += usize::from(splitmix_successor(last) == next);
            last = next;
        }
        assert_eq!(predicted, 0, "ids follow from each other");
        // Two generators (two processes, two threads) share nothing.
        let (mut a, mut b) = (IdGen::default(), IdGen::default());
        assert_ne!(a.span_id(), b.span_id());
    }
}
