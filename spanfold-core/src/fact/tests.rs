//! Facts written and read back: every variant survives `to_attributes` → `parse` unchanged,
//! the closed sets are the registry's members, and parse refuses with the reducer's reasons.

use proptest::prelude::*;

use super::*;
use crate::model::{Resource, Span};
use crate::registry::{AttrType, Registry};
use crate::vocab::attr;

/// The values facts are built from, drawn from what `parse` gives back: names that pass the
/// name rule, list items trimmed and not empty, numbers in the range the reducer reads.
#[derive(Debug, Clone)]
struct Seed {
    id: String,
    texts: Vec<String>,
    items: Vec<String>,
    /// Which optional attributes are present, bit by bit.
    present: u32,
    int: i64,
    uint: u64,
    positive: u64,
    effort: u32,
    max: u32,
    double: f64,
    pick: usize,
    other: String,
    hex: String,
}

fn seed() -> impl Strategy<Value = Seed> {
    let texts = proptest::collection::vec(any::<String>(), 6);
    let items = proptest::collection::vec("[A-Za-z0-9]([A-Za-z0-9 ,./-]{0,8}[A-Za-z0-9])?", 0..4);
    (
        ("[a-z0-9][a-z0-9_-]{0,20}", texts, items, any::<u32>()),
        (any::<i64>(), 0..=i64::MAX as u64, 1..=i64::MAX as u64),
        (1u32..=100, 1u32..=1024, -1e12f64..1e12, any::<usize>()),
        ("x[a-z_]{0,8}", "[0-9a-fA-F]{64}"),
    )
        .prop_map(
            |(
                (id, texts, items, present),
                (int, uint, positive),
                (effort, max, double, pick),
                (other, hex),
            )| Seed {
                id,
                texts,
                items,
                present,
                int,
                uint,
                positive,
                effort,
                max,
                double,
                pick,
                other,
                hex,
            },
        )
}

impl Seed {
    fn has(&self, bit: u32) -> bool {
        self.present & (1 << bit) != 0
    }
    fn opt<T>(&self, bit: u32, value: T) -> Option<T> {
        self.has(bit).then_some(value)
    }
    fn text(&self, i: usize) -> &str {
        &self.texts[i % self.texts.len()]
    }
    fn opt_text(&self, bit: u32) -> Option<&str> {
        self.opt(bit, self.text(bit as usize))
    }
    fn items(&self) -> Vec<&str> {
        self.items.iter().map(String::as_str).collect()
    }
    fn one_of<T: Copy>(&self, all: &[T]) -> T {
        all[self.pick % all.len()]
    }
    /// A member of a closed set, or (when bit 31 is set) a word that is none.
    fn word<T: Closed>(&self) -> Word<'_, T> {
        if self.has(31) {
            Word::Other(&self.other)
        } else {
            Word::Member(self.one_of(T::ALL))
        }
    }
}

/// The `i`th variant of [`Fact`], built from `s`.
fn fact(i: usize, s: &Seed) -> Fact<'_> {
    match i {
        0..=5 | 18 => agent_fact(i, s),
        6..=13 | 19 | 20 | 22 | 23 => coordination_fact(i, s),
        24 => Fact::Review(Review {
            feature_name: &s.id,
            verdict: s.one_of(ReviewVerdict::ALL),
            reason: Some(s.text(0))
                .filter(|t| !t.trim().is_empty())
                .or(Some("why")),
        }),
        _ => feature_or_worktree_fact(i, s),
    }
}

/// The facts of `spans/agent.yaml`.
fn agent_fact(i: usize, s: &Seed) -> Fact<'_> {
    match i {
        0 => Fact::Registration(Registration {
            agent_id: &s.id,
            languages: s.items(),
            frameworks: s.items().into_iter().rev().collect(),
            expertise_areas: Vec::new(),
            max_concurrent_features: s.opt(0, s.max),
            preferred_complexity: s.opt(1, s.one_of(&Complexity::ALL)),
            lease_seconds: s.opt(2, s.positive),
            budget_usd_per_day: s.opt(3, s.double.abs() + 0.5),
            remote: s.has(4),
        }),
        1 => Fact::WorkProgress(WorkProgress {
            agent_id: s.text(0),
            state: s.one_of(&AgentState::ALL),
            feature_name: s.opt_text(1),
            percentage: s.opt(2, s.double),
            files_modified: s.opt(3, s.int),
            lines_added: s.opt(4, s.int.wrapping_neg()),
            duration_ms: s.opt(5, s.int / 2),
        }),
        2 => Fact::Validation(Validation {
            agent_id: s.text(0),
            result: s.one_of(ValidationResult::ALL),
            feature_name: s.opt_text(1),
            issues_found: s.opt(2, s.int),
            kind: s.opt_text(3),
        }),
        3 => Fact::Reset(Reset {
            agent_id: s.text(0),
            reason: s.opt_text(1),
        }),
        4 => Fact::Communication(Communication {
            agent_id: s.text(0),
            target: s.opt_text(1),
            message: s.opt_text(2),
        }),
        5 => Fact::TokenIssued(TokenIssued {
            agent_id: &s.id,
            token_sha256: &s.hex,
        }),
        _ => Fact::Process(Process {
            agent_id: s.text(0),
            event: s.one_of(ProcessEvent::ALL),
            feature_name: s.opt_text(1),
            command: s.opt_text(2),
            pid: s.opt(3, s.int),
            exit_code: s.opt(4, s.int / 3),
            signal: s.opt_text(5),
            duration_ms: s.opt(6, s.int / 5),
            outcome: s.opt_text(7),
        }),
    }
}

/// The facts of `spans/coordination.yaml`.
fn coordination_fact(i: usize, s: &Seed) -> Fact<'_> {
    match i {
        6 => Fact::Init(Init {
            repo: s.text(0),
            base_branch: s.text(1),
            worktrees_dir: s.text(2),
            lease_seconds: s.opt(3, s.positive),
        }),
        // A configure carries at least one setting: the lease when nothing else.
        7 => Fact::Configure(Configure {
            lease_seconds: s.opt(0, s.positive).or((!s.has(1)).then_some(s.positive)),
            default_budget: DefaultBudget {
                usd: s.opt(1, s.double),
                tokens: s.opt(2, s.int),
            },
            barrier_paths: s
                .has(4)
                .then(|| s.items().into_iter().map(str::to_owned).collect()),
        }),
        8 => Fact::Cycle(Cycle {
            number: s.opt(0, s.uint),
            assignments: s.opt(1, s.uint / 3),
            features_waiting: s.opt(2, s.uint / 5),
        }),
        9 => Fact::Assignment(Assignment {
            agent_id: s.text(0),
            feature_name: s.text(1),
            priority: s.opt(2, s.one_of(&Priority::ALL)),
            match_score: s.opt(3, s.double),
            reasons: s.items(),
            timestamp: s.opt_text(4),
            worktree_path: s.opt_text(5),
            branch: s.opt_text(6),
        }),
        10 => Fact::SystemHealth(SystemHealth {
            total_agents: s.opt(0, s.uint),
            active_agents: s.opt(1, s.uint / 2),
            health_score: s.opt(2, s.double),
            features_completed: s.opt(3, s.uint / 3),
            features_in_queue: s.opt(4, s.uint / 5),
        }),
        11 => Fact::Merge(Merge {
            result: s.word(),
            agent_id: s.text(0),
            feature_name: s.text(1),
            branch: s.opt_text(2),
            base_branch: s.opt_text(3),
            kind: s.opt(4, s.word()),
            commit: s.opt_text(5),
            conflicts: s.items(),
            reason: s.opt_text(6),
            from: s.opt_text(7),
        }),
        20 => Fact::BudgetVerdict(BudgetVerdict {
            feature_name: s.text(0),
            verdict: s.word(),
            spent_usd: s.double,
            spent_tokens: s.uint,
            usd: s.opt(1, s.double),
            tokens: s.opt(2, s.int),
            agent_id: s.opt_text(3),
        }),
        22 => Fact::AgentBudgetVerdict(AgentBudgetVerdict {
            agent_id: s.text(0),
            verdict: s.word(),
            day: s.text(1),
            spent_usd: s.double,
            usd: s.double / 2.0,
        }),
        23 => Fact::ConflictForecast(ConflictForecast {
            feature_name: s.text(0),
            other_feature: s.opt_text(1),
            kind: s.one_of(ForecastKind::ALL),
            paths: s.items(),
            hunks: s.items().into_iter().rev().collect(),
            commit: s.text(2),
            other_commit: s.text(3),
        }),
        19 => Fact::Prices(Prices {
            date: s.text(0),
            table: s.text(1),
            source: s.opt_text(2),
        }),
        12 => Fact::LeaseExpired(LeaseExpired {
            agent_id: s.text(0),
            silent_seconds: s.opt(1, s.int),
        }),
        _ => Fact::Acknowledge(if s.has(0) {
            Acknowledge::All
        } else {
            Acknowledge::Seq(s.uint)
        }),
    }
}

/// The facts of `spans/feature.yaml` and `spans/worktree.yaml`.
fn feature_or_worktree_fact(i: usize, s: &Seed) -> Fact<'_> {
    match i {
        14 => Fact::FeatureRequest(FeatureRequest {
            name: &s.id,
            description: s.opt_text(0),
            priority: s.opt(1, s.one_of(&Priority::ALL)),
            estimated_effort: s.opt(2, s.effort),
            languages: s.items(),
            frameworks: Vec::new(),
            expertise_areas: s.items(),
            requirements: s.items().into_iter().rev().collect(),
            acceptance_criteria: s.items(),
            paths: s.items(),
            allow_overlap: s.has(3),
        }),
        21 => Fact::Budget(Budget {
            feature_name: s.text(0),
            usd: s.opt(1, s.double),
            tokens: s.opt(2, s.int),
        }),
        15 => Fact::Cancel(Cancel {
            feature_name: s.text(0),
            reason: s.opt_text(1),
        }),
        16 => Fact::Reopen(Reopen {
            feature_name: s.text(0),
            reason: s.opt_text(1),
        }),
        _ => {
            let action: Word<'_, WorktreeAction> = s.word();
            // Only an action about nobody's worktree may leave out its agent.
            let places = !matches!(action, Word::Member(a) if !a.places());
            Fact::Worktree(WorktreeLifecycle {
                action,
                agent_id: if places {
                    Some(s.text(0))
                } else {
                    s.opt_text(0)
                },
                feature_name: s.text(1),
                path: s.text(2),
                branch: s.text(3),
                error: s.opt_text(4),
                remote_url: s.opt_text(5),
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every variant, built from any seed: written as a span and parsed back, the same fact.
    #[test]
    fn every_fact_survives_writing_and_reading(s in seed()) {
        for i in 0..Fact::NAMES.len() {
            let fact = fact(i, &s);
            let span = fact.to_span([1; 16], [2; 8], 7);
            prop_assert_eq!(span.name.as_str(), fact.name());
            let resource = Resource::default();
            let ev = Event { seq: 1, time: 7, span: &span, resource: &resource };
            match Fact::parse(&ev) {
                Some(Ok(read)) => prop_assert_eq!(read, fact),
                other => prop_assert!(false, "{fact:?} read back as {other:?}"),
            }
        }
    }
}

#[test]
fn the_variants_built_are_every_name_once() {
    let s = Seed {
        id: "a1".into(),
        texts: vec!["t".into()],
        items: Vec::new(),
        present: 0,
        int: 0,
        uint: 0,
        positive: 1,
        effort: 1,
        max: 1,
        double: 0.0,
        pick: 0,
        other: "x".into(),
        hex: "0".repeat(64),
    };
    let mut names: Vec<&str> = (0..Fact::NAMES.len()).map(|i| fact(i, &s).name()).collect();
    names.sort_unstable();
    let mut sorted = Fact::NAMES;
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[test]
fn a_span_the_reducer_ignores_is_no_fact() {
    let span = Span::new([1; 16], [2; 8], "agent.heartbeat", 1);
    let resource = Resource::default();
    let ev = Event {
        seq: 1,
        time: 1,
        span: &span,
        resource: &resource,
    };
    assert_eq!(Fact::parse(&ev), None);
}

/// The members a closed set maps to its wire strings are exactly the ones `spans/*.yaml`
/// declares for the attribute.
#[test]
fn closed_sets_are_the_registrys_members() {
    fn wires<T: Closed>() -> Vec<String> {
        T::ALL.iter().map(|m| m.as_str().to_owned()).collect()
    }
    let strs = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let cases = [
        (
            span::COORDINATION_FEATURE_MERGE,
            attr::MERGE_RESULT,
            wires::<MergeResult>(),
        ),
        (
            span::COORDINATION_FEATURE_MERGE,
            attr::MERGE_KIND,
            wires::<MergeKind>(),
        ),
        (
            span::COORDINATION_CONFLICT_FORECAST,
            attr::FORECAST_KIND,
            wires::<ForecastKind>(),
        ),
        (
            span::FEATURE_REVIEW,
            attr::REVIEW_VERDICT,
            wires::<ReviewVerdict>(),
        ),
        (
            span::WORKTREE_LIFECYCLE,
            attr::WORKTREE_ACTION,
            wires::<WorktreeAction>(),
        ),
        (
            span::AGENT_VALIDATION,
            attr::VALIDATION_RESULT,
            wires::<ValidationResult>(),
        ),
        (
            span::AGENT_WORK_PROGRESS,
            attr::AGENT_STATE,
            strs(&AgentState::ALL.map(AgentState::as_str)),
        ),
        (
            span::AGENT_REGISTRATION,
            attr::AGENT_PREFERRED_COMPLEXITY,
            strs(&Complexity::ALL.map(Complexity::as_str)),
        ),
        (
            span::FEATURE_REQUEST,
            attr::FEATURE_PRIORITY,
            strs(&Priority::ALL.map(Priority::as_str)),
        ),
    ];
    let registry = Registry::builtin();
    for (name, key, ours) in cases {
        let declared = registry
            .get(name)
            .and_then(|spec| spec.attribute(key))
            .map(|a| a.ty.clone());
        assert_eq!(declared, Some(AttrType::Enum(ours)), "{name} {key}");
    }
}

/// Parse refuses exactly as the reducer did before it looked at the view, with its reasons.
#[test]
fn parse_refuses_with_the_reducers_reasons() {
    /// A span name, its string attributes, and the reason parse gives.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (span::AGENT_REGISTRATION, &[], "the span has no agent.id"),
        (
            span::AGENT_WORK_PROGRESS,
            &[(attr::AGENT_ID, "a1"), (attr::AGENT_STATE, "sleeping")],
            "agent.state is missing or not a lifecycle state",
        ),
        (
            span::AGENT_WORK_PROGRESS,
            &[(attr::AGENT_STATE, "working")],
            "the span has no agent.id",
        ),
        (
            span::AGENT_VALIDATION,
            &[(attr::VALIDATION_RESULT, "maybe")],
            "validation.result must be passed or failed",
        ),
        (
            span::FEATURE_REQUEST,
            &[
                (attr::FEATURE_NAME, "f1"),
                (attr::FEATURE_PRIORITY, "urgent"),
            ],
            "unknown priority \"urgent\"",
        ),
        (
            span::FEATURE_CANCEL,
            &[],
            "feature.cancel needs feature.name",
        ),
        (
            span::FEATURE_REOPEN,
            &[],
            "feature.reopen needs feature.name",
        ),
        (
            span::COORDINATION_INIT,
            &[(attr::COORDINATION_REPO, "/r")],
            "coordination.base_branch is missing",
        ),
        (
            span::COORDINATION_FEATURE_MERGE,
            &[(attr::MERGE_RESULT, "merged"), (attr::AGENT_ID, "a1")],
            "coordination.feature_merge needs feature.name",
        ),
        (
            span::WORKTREE_LIFECYCLE,
            &[
                (attr::WORKTREE_ACTION, "bogus"),
                (attr::FEATURE_NAME, "f1"),
                (attr::WORKTREE_PATH, "/w/f1"),
                (attr::WORKTREE_BRANCH, "spanfold/f1"),
            ],
            "worktree.lifecycle needs agent.id",
        ),
        (
            span::ANOMALY_ACKNOWLEDGE,
            &[],
            "anomaly.acknowledge needs anomaly.seq or anomaly.all",
        ),
    ];
    for (name, attrs, reason) in cases {
        let mut span = Span::new([1; 16], [2; 8], *name, 1);
        for (k, v) in *attrs {
            span = span.with(k, AnyValue::String((*v).into()));
        }
        let resource = Resource::default();
        let ev = Event {
            seq: 1,
            time: 1,
            span: &span,
            resource: &resource,
        };
        assert_eq!(Fact::parse(&ev), Some(Err((*reason).to_owned())), "{name}");
    }
}

/// A word outside a closed set is kept, not refused, where the reducer's reason for it comes
/// after its checks on the view.
#[test]
fn an_unknown_outcome_is_kept_for_the_rule() {
    let span = Span::new([1; 16], [2; 8], span::COORDINATION_FEATURE_MERGE, 1)
        .with(attr::MERGE_RESULT, AnyValue::String("exploded".into()))
        .with(attr::AGENT_ID, AnyValue::String("a1".into()))
        .with(attr::FEATURE_NAME, AnyValue::String("f1".into()));
    let resource = Resource::default();
    let ev = Event {
        seq: 1,
        time: 1,
        span: &span,
        resource: &resource,
    };
    let Some(Ok(Fact::Merge(m))) = Fact::parse(&ev) else {
        panic!("not a merge fact");
    };
    assert_eq!(m.result, Word::Other("exploded"));
}
