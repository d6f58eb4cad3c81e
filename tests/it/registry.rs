//! The span registry (spans/*.yaml) and the code agree: the reducer handles exactly the spans the
//! registry names, every span spanfold writes passes validation, and `spanfold spans` lists them.

use crate::common;

use std::collections::BTreeSet;

use spanfold::emit::{self, IdGen};
use spanfold::fact::{MergeKind, MergeResult, WorktreeAction};
use spanfold::model::Resource;
use spanfold::reducer::{AgentState, Complexity, HANDLED_SPANS, Priority};
use spanfold::registry::{Origin, Registry};

#[test]
fn the_reducer_handles_exactly_the_registered_spans() {
    let registered: BTreeSet<&str> = Registry::builtin()
        .specs()
        .map(|s| s.name.as_str())
        .collect();
    let handled: BTreeSet<&str> = HANDLED_SPANS.iter().copied().collect();
    assert_eq!(registered, handled);
}

#[test]
fn every_span_spanfold_writes_is_valid_and_named_in_the_registry() {
    let mut ids = IdGen::default();
    let reasons = vec!["has language python".to_string()];
    let client = vec![
        emit::registration(
            &mut ids,
            1,
            &emit::Registration {
                agent_id: "a1".into(),
                languages: vec!["python".into()],
                frameworks: vec![],
                expertise_areas: vec![],
                max_concurrent_features: 2,
                preferred_complexity: Some(Complexity::High),
                lease_seconds: Some(900),
                budget_usd_per_day: Some(20.0),
                remote: true,
            },
        ),
        emit::reopen(&mut ids, 1, "f1", Some("again")),
        spanfold::fact::Fact::Review(spanfold::fact::Review {
            feature_name: "f1",
            verdict: spanfold::fact::ReviewVerdict::Rejected,
            reason: Some("say what it is for"),
        })
        .to_span([1; 16], [12; 8], 1),
        emit::budget(&mut ids, 1, "f1", Some(5.0), Some(2_000_000)),
        emit::token_issued(&mut ids, 1, "a1", &"ab".repeat(32)),
        emit::acknowledge(&mut ids, 1, Some(3)),
        emit::acknowledge(&mut ids, 1, None),
        emit::feature_request(
            &mut ids,
            1,
            &emit::FeatureRequest {
                name: "f1".into(),
                priority: Some(Priority::Critical),
                estimated_effort: 5,
                requirements: vec!["r".into()],
                ..Default::default()
            },
        ),
        emit::progress(
            &mut ids,
            1,
            &emit::ProgressReport {
                agent_id: "a1".into(),
                state: Some(AgentState::Working),
                feature: Some("f1".into()),
                percentage: Some(50.0),
                files_modified: Some(1),
                lines_added: Some(2),
                duration_ms: Some(3),
            },
        ),
        emit::validation(&mut ids, 1, "a1", Some("f1"), true, Some(0)),
        emit::process(
            &mut ids,
            1,
            &spanfold::fact::Process {
                agent_id: "a1",
                event: spanfold::fact::ProcessEvent::Exited,
                feature_name: Some("f1"),
                command: Some("claude -p 'do f1'"),
                pid: Some(42),
                exit_code: Some(0),
                signal: None,
                duration_ms: Some(1500),
                outcome: Some("submitted"),
            },
        ),
        emit::reset(&mut ids, 1, "a1", Some("why")),
        emit::cancel(&mut ids, 1, "f1", Some("why")),
    ];
    let coordinator = vec![
        emit::init(&mut ids, 1, "/r", "main", "/w", 600),
        emit::lease_expired(&mut ids, 1, "a1", 700),
        emit::cycle(&mut ids, 1, 1, 1, 0),
        emit::assignment(
            &mut ids,
            1,
            &emit::AssignmentSpan {
                agent_id: "a1",
                feature: "f1",
                priority: Priority::High,
                score: 0.5,
                reasons: &reasons,
                worktree_path: "/w/f1",
                branch: "spanfold/f1",
            },
        ),
        emit::worktree(
            &mut ids,
            1,
            &emit::WorktreeSpan {
                action: WorktreeAction::CreateFailed,
                agent_id: "a1",
                feature: "f1",
                path: "/w/f1",
                branch: "spanfold/f1",
                error: Some("disk full"),
                remote_url: None,
            },
        ),
        emit::merge(
            &mut ids,
            1,
            &emit::MergeSpan {
                result: MergeResult::Conflicted,
                agent_id: "a1",
                feature: "f1",
                branch: "spanfold/f1",
                base: "main",
                kind: Some(MergeKind::MergeCommit),
                commit: Some("abc"),
                conflicts: &reasons,
                reason: Some("why"),
                from: Some("abc"),
            },
        ),
        emit::configure(
            &mut ids,
            1,
            spanfold::fact::Configure {
                lease_seconds: Some(900),
                default_budget: spanfold::fact::DefaultBudget {
                    usd: Some(5.0),
                    tokens: Some(1000),
                },
                barrier_paths: Some(vec!["Cargo.lock".into(), ".github/**".into()]),
            },
        ),
        emit::prices(
            &mut ids,
            1,
            &spanfold::usage::PriceTable::builtin(),
            "built-in",
        ),
        spanfold::fact::Fact::BudgetVerdict(spanfold::fact::BudgetVerdict {
            feature_name: "f1",
            verdict: spanfold::fact::Word::Member(spanfold::fact::BudgetVerdictKind::Exceeded),
            spent_usd: 5.12,
            spent_tokens: 10,
            usd: Some(5.0),
            tokens: None,
            agent_id: Some("a1"),
        })
        .to_span([1; 16], [9; 8], 1),
        spanfold::fact::Fact::AgentBudgetVerdict(spanfold::fact::AgentBudgetVerdict {
            agent_id: "a1",
            verdict: spanfold::fact::Word::Member(spanfold::fact::DayVerdict::Exceeded),
            day: "2026-12-05",
            spent_usd: 20.4,
            usd: 20.0,
        })
        .to_span([1; 16], [10; 8], 1),
        spanfold::fact::Fact::ConflictForecast(spanfold::fact::ConflictForecast {
            feature_name: "f1",
            other_feature: Some("f2"),
            kind: spanfold::fact::ForecastKind::Conflict,
            paths: vec!["src/auth.rs"],
            hunks: vec!["src/auth.rs:3-7"],
            commit: "3f2a9c1d0e4b5a6978877665544332211009988a",
            other_commit: "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
        })
        .to_span([1; 16], [11; 8], 1),
        emit::health(
            &mut ids,
            1,
            &emit::Health {
                total_agents: 1,
                active_agents: 1,
                health_score: 1.0,
                features_completed: 0,
                features_in_queue: 0,
            },
        ),
    ];
    let registry = Registry::builtin();
    let resource = Resource::default();
    let mut written = BTreeSet::new();
    for (spans, origin) in [(client, Origin::Client), (coordinator, Origin::Coordinator)] {
        for span in spans {
            let spec = registry
                .get(&span.name)
                .unwrap_or_else(|| panic!("{} is not in the registry", span.name));
            // A person's commands write client spans, some of which only the operator may send.
            let declared = match spec.origin {
                Origin::Operator => Origin::Client,
                other => other,
            };
            assert_eq!(declared, origin, "{}", span.name);
            registry
                .validate(&span, &resource, origin)
                .unwrap_or_else(|v| panic!("{v}"));
            // Every attribute written is declared.
            for kv in &span.attributes {
                assert!(
                    spec.attribute(&kv.key).is_some(),
                    "{} writes undeclared {}",
                    span.name,
                    kv.key
                );
            }
            written.insert(span.name.to_string());
        }
    }
    // agent.communication is only ever received; everything else is written by spanfold too.
    let all: BTreeSet<String> = registry.specs().map(|s| s.name.clone()).collect();
    let only_received: Vec<&String> = all.difference(&written).collect();
    assert_eq!(only_received, ["agent.communication"]);
}

#[test]
fn the_spans_command_lists_every_type_with_its_attributes() {
    let sb = common::Sandbox::new("main");
    let data = sb.ok(&["spans"]);
    let listed: BTreeSet<String> = data["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    let registered: BTreeSet<String> = Registry::builtin()
        .specs()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(listed, registered);
    let text = sb.run(&["spans"]);
    assert_eq!(text.code, 0);
    for name in &registered {
        assert!(
            text.stdout.contains(name.as_str()),
            "{name} missing from the text listing"
        );
    }
    assert!(text.stdout.contains("agent.max_concurrent_features"));
    assert!(text.stdout.contains("written by spanfold only"));
}

#[test]
fn the_readme_catalogue_is_the_registry() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let generated = spanfold::cli::spans_markdown();
    assert!(
        readme.contains(&generated),
        "README.md's span catalogue is out of date: replace it with the output of `spanfold spans --markdown`"
    );
    for spec in Registry::builtin().specs() {
        assert!(generated.contains(&format!("### `{}`", spec.name)));
    }
}
