//! The registry's unit tests: the embedded files parse, and each rule refuses what it should
//! with a message that names the rule.

use super::*;
use crate::model::{AnyValue, KeyValue, Resource, Span};

fn span(name: &str) -> Span {
    Span::new([1; 16], [2; 8], name, 1)
}

#[test]
fn embedded_registry_parses() {
    let reg = Registry::parse(SOURCES).expect("valid");
    assert!(reg.get("agent.registration").is_some());
    assert_eq!(
        reg.get("agent.feature_assignment").map(|s| s.origin),
        Some(Origin::Coordinator)
    );
}

#[test]
fn missing_required_attribute_is_named() {
    let err = Registry::builtin()
        .validate(
            &span("agent.registration"),
            &Resource::default(),
            Origin::Client,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("required attribute agent.id"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("span agent.registration"),
        "{err}"
    );
}

#[test]
fn agent_id_may_come_from_the_resource() {
    let resource = Resource {
        attributes: vec![crate::model::KeyValue::new(
            "agent.id",
            AnyValue::String("agent-1".into()),
        )],
        dropped_attributes_count: 0,
        entity_refs: vec![],
    };
    let s = span("agent.work_progress").with("agent.state", AnyValue::String("working".into()));
    assert_eq!(
        Registry::builtin().validate(&s, &resource, Origin::Client),
        Ok(())
    );
}

#[test]
fn wrong_type_enum_and_names_are_refused() {
    let reg = Registry::builtin();
    let r = Resource::default();
    let s = span("agent.registration")
        .with("agent.id", AnyValue::String("a".into()))
        .with(
            "agent.max_concurrent_features",
            AnyValue::String("two".into()),
        );
    assert!(
        reg.validate(&s, &r, Origin::Client)
            .unwrap_err()
            .rule
            .contains("must be int")
    );
    let s = span("agent.work_progress")
        .with("agent.id", AnyValue::String("a".into()))
        .with("agent.state", AnyValue::String("sleeping".into()));
    assert!(
        reg.validate(&s, &r, Origin::Client)
            .unwrap_err()
            .rule
            .contains("\"sleeping\"")
    );
    let s = span("agent.reset").with("agent.id", AnyValue::String("../etc".into()));
    assert!(
        reg.validate(&s, &r, Origin::Client)
            .unwrap_err()
            .rule
            .contains("invalid agent id")
    );
}

#[test]
fn oversized_spans_are_refused_with_the_limit_they_broke() {
    let reg = Registry::builtin();
    let r = Resource::default();
    let rule = |s: &Span| reg.validate(s, &r, Origin::Client).map_err(|v| v.rule);
    let big = "x".repeat(MAX_VALUE_BYTES + 1);
    // Any span, registered or not: one value over the limit.
    let s = span("tool.call").with("tool.output", AnyValue::String(big.as_str().into()));
    let e = rule(&s).unwrap_err();
    assert!(
        e.contains("tool.output") && e.contains(&(MAX_VALUE_BYTES + 1).to_string()),
        "{e}"
    );
    // Hidden inside an array, or in a key: the same.
    let s = span("tool.call").with(
        "nested",
        AnyValue::Array(vec![AnyValue::Bytes(vec![0; MAX_VALUE_BYTES + 1])]),
    );
    assert!(rule(&s).unwrap_err().contains("nested"));
    let s = span("tool.call").with(&big, AnyValue::Empty);
    let e = rule(&s).unwrap_err();
    assert!(e.len() < 400, "the message quotes a long key cut short");
    // At the limit is fine.
    let s = span("tool.call").with("ok", AnyValue::String("x".repeat(MAX_VALUE_BYTES).into()));
    assert_eq!(rule(&s), Ok(()));
    // Many attributes: 100,000 empty ones.
    let mut s = span("tool.call");
    for i in 0..100_000 {
        s = s.with(&format!("k{i}"), AnyValue::Empty);
    }
    let e = rule(&s).unwrap_err();
    assert!(
        e.contains("100000") && e.contains(&MAX_ITEMS_PER_SPAN.to_string()),
        "{e}"
    );
    // Or few attributes holding many values.
    let s = span("tool.call").with(
        "list",
        AnyValue::Array(vec![AnyValue::Int(1); MAX_ITEMS_PER_SPAN]),
    );
    assert!(rule(&s).is_err());
    // Every text a span carries, not only its attributes.
    let mut s = span("tool.call");
    s.status.message = big.clone();
    assert!(rule(&s).unwrap_err().contains("status message"));
    let mut s = span("tool.call");
    s.trace_state = big.clone();
    assert!(rule(&s).unwrap_err().contains("trace_state"));
    // What spans share (resource, scope) is checked once, for all of them.
    let mut request = vec![crate::model::ResourceSpans {
        resource: Resource {
            attributes: vec![KeyValue::new("r", AnyValue::String(big.as_str().into()))],
            ..Default::default()
        },
        scope_spans: vec![crate::model::ScopeSpans {
            spans: vec![span("tool.call"), span("tool.call")],
            ..Default::default()
        }],
        ..Default::default()
    }];
    let refused = reg.retain_valid(&mut request, Origin::Client);
    assert_eq!(refused.len(), 2);
    assert!(
        refused[0]
            .rule
            .starts_with("its resource: attribute r holds"),
        "{}",
        refused[0].rule
    );
    let mut request = vec![crate::model::ResourceSpans {
        scope_spans: vec![crate::model::ScopeSpans {
            spans: vec![span("tool.call")],
            ..Default::default()
        }],
        ..Default::default()
    }];
    request[0].scope_spans[0].scope.version = big.clone();
    let refused = reg.retain_valid(&mut request, Origin::Client);
    assert!(
        refused[0].rule.contains("its scope: its version"),
        "{}",
        refused[0].rule
    );
    // A tracked attribute is kept in the view: 64 KiB at most.
    let s = span("feature.request")
        .with("feature.name", AnyValue::String("f".into()))
        .with(
            "feature.description",
            AnyValue::String("d".repeat(MAX_KEPT_VALUE_BYTES + 1).into()),
        );
    let e = rule(&s).unwrap_err();
    assert!(e.contains("feature.description"), "{e}");
}

#[test]
fn decisions_are_refused_from_clients_only() {
    let reg = Registry::builtin();
    let s = span("coordination.cycle")
        .with("coordination.cycle_number", AnyValue::Int(1))
        .with("coordination.assignments", AnyValue::Int(0))
        .with("coordination.features_waiting", AnyValue::Int(0));
    assert!(
        reg.validate(&s, &Resource::default(), Origin::Client)
            .is_err()
    );
    assert!(
        reg.validate(&s, &Resource::default(), Origin::Coordinator)
            .is_ok()
    );
}

#[test]
fn values_nested_too_deeply_are_refused_in_any_span() {
    let nested = |levels: usize| {
        let mut v = AnyValue::Int(1);
        for _ in 0..levels {
            v = AnyValue::Array(vec![v]);
        }
        v
    };
    let reg = Registry::builtin();
    let ok = span("tool.call").with("deep", nested(MAX_VALUE_DEPTH));
    assert!(
        reg.validate(&ok, &Resource::default(), Origin::Client)
            .is_ok()
    );
    let deep = span("tool.call").with("deep", nested(MAX_VALUE_DEPTH + 1));
    let why = reg
        .validate(&deep, &Resource::default(), Origin::Client)
        .unwrap_err()
        .rule;
    assert!(
        why.contains("deep") && why.contains(&MAX_VALUE_DEPTH.to_string()),
        "{why}"
    );
}

#[test]
fn unknown_spans_pass() {
    assert!(
        Registry::builtin()
            .validate(&span("http.request"), &Resource::default(), Origin::Client)
            .is_ok()
    );
}
