//! Spans that spanfold itself writes: the CLI's requests on behalf of an operator (client spans)
//! and the coordinator's decisions and outcomes. Built here, in one place, so the registry test
//! can check every one of them.

use std::hash::BuildHasher;

use crate::vocab::{attr, span};

use crate::model::{
    AnyValue, KeyValue, Resource, ResourceSpans, Scope, Span, UnixNanos, string_array,
};
use crate::reducer::{AgentState, Complexity, Priority};

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
}

pub fn registration(ids: &mut IdGen, time: UnixNanos, r: &Registration) -> Span {
    let mut span = ids
        .span(span::AGENT_REGISTRATION, time)
        .with(attr::AGENT_ID, s(&r.agent_id))
        .with(attr::AGENT_LANGUAGES, string_array(r.languages.clone()))
        .with(attr::AGENT_FRAMEWORKS, string_array(r.frameworks.clone()))
        .with(
            attr::AGENT_EXPERTISE_AREAS,
            string_array(r.expertise_areas.clone()),
        )
        .with(
            attr::AGENT_MAX_CONCURRENT_FEATURES,
            AnyValue::Int(r.max_concurrent_features.into()),
        );
    if let Some(c) = r.preferred_complexity {
        span = span.with(attr::AGENT_PREFERRED_COMPLEXITY, s(c.as_str()));
    }
    if let Some(lease) = r.lease_seconds {
        span = span.with(
            attr::AGENT_LEASE_SECONDS,
            AnyValue::Int(lease.min(i64::MAX as u64) as i64),
        );
    }
    span
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
}

pub fn feature_request(ids: &mut IdGen, time: UnixNanos, f: &FeatureRequest) -> Span {
    let mut span = ids
        .span(span::FEATURE_REQUEST, time)
        .with(attr::FEATURE_NAME, s(&f.name))
        .with(attr::FEATURE_DESCRIPTION, s(&f.description))
        .with(
            attr::FEATURE_ESTIMATED_EFFORT,
            AnyValue::Int(f.estimated_effort.into()),
        );
    if let Some(p) = f.priority {
        span = span.with(attr::FEATURE_PRIORITY, s(p.as_str()));
    }
    for (key, items) in [
        (attr::FEATURE_LANGUAGES, &f.languages),
        (attr::FEATURE_FRAMEWORKS, &f.frameworks),
        (attr::FEATURE_EXPERTISE_AREAS, &f.expertise_areas),
        (attr::FEATURE_REQUIREMENTS, &f.requirements),
        (attr::FEATURE_ACCEPTANCE_CRITERIA, &f.acceptance_criteria),
    ] {
        if !items.is_empty() {
            span = span.with(key, string_array(items.clone()));
        }
    }
    span
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
    let mut span = ids
        .span(span::AGENT_WORK_PROGRESS, time)
        .with(attr::AGENT_ID, s(&p.agent_id));
    if let Some(state) = p.state {
        span = span.with(attr::AGENT_STATE, s(state.as_str()));
    }
    if let Some(f) = &p.feature {
        span = span.with(attr::FEATURE_NAME, s(f));
    }
    if let Some(v) = p.percentage {
        span = span.with(attr::WORK_PROGRESS_PERCENTAGE, AnyValue::Double(v));
    }
    for (key, value) in [
        (attr::WORK_FILES_MODIFIED, p.files_modified),
        (attr::WORK_LINES_ADDED, p.lines_added),
        (attr::WORK_DURATION_MS, p.duration_ms),
    ] {
        if let Some(v) = value {
            span = span.with(key, AnyValue::Int(v));
        }
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
    let mut span = ids
        .span(span::AGENT_VALIDATION, time)
        .with(attr::AGENT_ID, s(agent_id))
        .with(
            attr::VALIDATION_RESULT,
            s(if passed { "passed" } else { "failed" }),
        );
    if let Some(f) = feature {
        span = span.with(attr::FEATURE_NAME, s(f));
    }
    if let Some(n) = issues {
        span = span.with(attr::VALIDATION_ISSUES_FOUND, AnyValue::Int(n));
    }
    span
}

pub fn reset(ids: &mut IdGen, time: UnixNanos, agent_id: &str, reason: Option<&str>) -> Span {
    let mut span = ids
        .span(span::AGENT_RESET, time)
        .with(attr::AGENT_ID, s(agent_id));
    if let Some(r) = reason {
        span = span.with(attr::RESET_REASON, s(r));
    }
    span
}

pub fn init(
    ids: &mut IdGen,
    time: UnixNanos,
    repo: &str,
    base: &str,
    worktrees_dir: &str,
    lease_seconds: u64,
) -> Span {
    ids.span(span::COORDINATION_INIT, time)
        .with(attr::COORDINATION_REPO, s(repo))
        .with(attr::COORDINATION_BASE_BRANCH, s(base))
        .with(attr::COORDINATION_WORKTREES_DIR, s(worktrees_dir))
        .with(
            attr::COORDINATION_LEASE_SECONDS,
            AnyValue::Int(lease_seconds.min(i64::MAX as u64) as i64),
        )
}

/// A changed setting (`agents init` run again): the lease.
pub fn configure(ids: &mut IdGen, time: UnixNanos, lease_seconds: u64) -> Span {
    ids.span(span::COORDINATION_CONFIGURE, time).with(
        attr::COORDINATION_LEASE_SECONDS,
        AnyValue::Int(lease_seconds.min(i64::MAX as u64) as i64),
    )
}

pub fn cycle(
    ids: &mut IdGen,
    time: UnixNanos,
    number: u64,
    assignments: usize,
    waiting: usize,
) -> Span {
    ids.span(span::COORDINATION_CYCLE, time)
        .with(
            attr::COORDINATION_CYCLE_NUMBER,
            AnyValue::Int(number as i64),
        )
        .with(
            attr::COORDINATION_ASSIGNMENTS,
            AnyValue::Int(assignments as i64),
        )
        .with(
            attr::COORDINATION_FEATURES_WAITING,
            AnyValue::Int(waiting as i64),
        )
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
    ids.span(span::AGENT_FEATURE_ASSIGNMENT, time)
        .with(attr::AGENT_ID, s(a.agent_id))
        .with(attr::FEATURE_NAME, s(a.feature))
        .with(attr::FEATURE_PRIORITY, s(a.priority.as_str()))
        .with(attr::ASSIGNMENT_MATCH_SCORE, AnyValue::Double(a.score))
        .with(
            attr::ASSIGNMENT_REASONS,
            string_array(a.reasons.iter().cloned()),
        )
        .with(attr::ASSIGNMENT_TIMESTAMP, s(&crate::status::rfc3339(time)))
        .with(attr::WORKTREE_PATH, s(a.worktree_path))
        .with(attr::WORKTREE_BRANCH, s(a.branch))
}

pub struct WorktreeSpan<'a> {
    pub action: &'a str,
    pub agent_id: &'a str,
    pub feature: &'a str,
    pub path: &'a str,
    pub branch: &'a str,
    pub error: Option<&'a str>,
}

pub fn worktree(ids: &mut IdGen, time: UnixNanos, w: &WorktreeSpan<'_>) -> Span {
    let mut span = ids
        .span(span::WORKTREE_LIFECYCLE, time)
        .with(attr::WORKTREE_ACTION, s(w.action));
    if !w.agent_id.is_empty() {
        span = span.with(attr::AGENT_ID, s(w.agent_id));
    }
    span = span
        .with(attr::FEATURE_NAME, s(w.feature))
        .with(attr::WORKTREE_PATH, s(w.path))
        .with(attr::WORKTREE_BRANCH, s(w.branch));
    if let Some(e) = w.error {
        span = span.with(attr::WORKTREE_ERROR, s(e));
    }
    span
}

pub struct Health {
    pub total_agents: usize,
    pub active_agents: usize,
    pub health_score: f64,
    pub features_completed: usize,
    pub features_in_queue: usize,
}

pub fn health(ids: &mut IdGen, time: UnixNanos, h: &Health) -> Span {
    ids.span(span::COORDINATION_SYSTEM_HEALTH, time)
        .with(
            attr::COORDINATION_TOTAL_AGENTS,
            AnyValue::Int(h.total_agents as i64),
        )
        .with(
            attr::COORDINATION_ACTIVE_AGENTS,
            AnyValue::Int(h.active_agents as i64),
        )
        .with(
            attr::COORDINATION_HEALTH_SCORE,
            AnyValue::Double(h.health_score),
        )
        .with(
            attr::COORDINATION_FEATURES_COMPLETED,
            AnyValue::Int(h.features_completed as i64),
        )
        .with(
            attr::COORDINATION_FEATURES_IN_QUEUE,
            AnyValue::Int(h.features_in_queue as i64),
        )
}

pub struct MergeSpan<'a> {
    pub result: &'a str,
    pub agent_id: &'a str,
    pub feature: &'a str,
    pub branch: &'a str,
    pub base: &'a str,
    pub kind: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub conflicts: &'a [String],
    pub reason: Option<&'a str>,
    /// The base branch's tip before the merge (on `started`).
    pub from: Option<&'a str>,
}

pub fn merge(ids: &mut IdGen, time: UnixNanos, m: &MergeSpan<'_>) -> Span {
    let mut span = ids
        .span(span::COORDINATION_FEATURE_MERGE, time)
        .with(attr::MERGE_RESULT, s(m.result))
        .with(attr::AGENT_ID, s(m.agent_id))
        .with(attr::FEATURE_NAME, s(m.feature))
        .with(attr::WORKTREE_BRANCH, s(m.branch))
        .with(attr::MERGE_BASE_BRANCH, s(m.base));
    if let Some(k) = m.kind {
        span = span.with(attr::MERGE_KIND, s(k));
    }
    if let Some(c) = m.commit {
        span = span.with(attr::MERGE_COMMIT, s(c));
    }
    if !m.conflicts.is_empty() {
        span = span.with(
            attr::MERGE_CONFLICTS,
            string_array(m.conflicts.iter().cloned()),
        );
    }
    if let Some(r) = m.reason {
        span = span.with(attr::MERGE_REASON, s(r));
    }
    if let Some(f) = m.from {
        span = span.with(attr::MERGE_FROM, s(f));
    }
    span
}

pub fn lease_expired(
    ids: &mut IdGen,
    time: UnixNanos,
    agent_id: &str,
    silent_seconds: u64,
) -> Span {
    ids.span(span::AGENT_LEASE_EXPIRED, time)
        .with(attr::AGENT_ID, s(agent_id))
        .with(
            attr::LEASE_SILENT_SECONDS,
            AnyValue::Int(silent_seconds.min(i64::MAX as u64) as i64),
        )
}

pub fn cancel(ids: &mut IdGen, time: UnixNanos, feature: &str, reason: Option<&str>) -> Span {
    let mut span = ids
        .span(span::FEATURE_CANCEL, time)
        .with(attr::FEATURE_NAME, s(feature));
    if let Some(r) = reason {
        span = span.with(attr::CANCEL_REASON, s(r));
    }
    span
}

pub fn reopen(ids: &mut IdGen, time: UnixNanos, feature: &str, reason: Option<&str>) -> Span {
    let mut span = ids
        .span(span::FEATURE_REOPEN, time)
        .with(attr::FEATURE_NAME, s(feature));
    if let Some(r) = reason {
        span = span.with(attr::REOPEN_REASON, s(r));
    }
    span
}

/// Binds a token (by its SHA-256: the token itself is never written) to `agent`.
pub fn token_issued(ids: &mut IdGen, time: UnixNanos, agent: &str, sha256: &str) -> Span {
    ids.span(span::AGENT_TOKEN_ISSUED, time)
        .with(attr::AGENT_ID, s(agent))
        .with(attr::AGENT_TOKEN_SHA256, s(sha256))
}

/// Acknowledges the anomaly caused by the span at `seq`, or all of them.
pub fn acknowledge(ids: &mut IdGen, time: UnixNanos, seq: Option<u64>) -> Span {
    let span = ids.span(span::ANOMALY_ACKNOWLEDGE, time);
    match seq {
        Some(seq) => span.with(
            attr::ANOMALY_SEQ,
            AnyValue::Int(seq.min(i64::MAX as u64) as i64),
        ),
        None => span.with(attr::ANOMALY_ALL, AnyValue::Bool(true)),
    }
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
                result: "conflicted",
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
