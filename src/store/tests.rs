use super::*;
use crate::model::{Resource, ResourceSpans, Scope, Span};

fn spans(ids: &[u8]) -> Vec<ResourceSpans> {
    vec![ResourceSpans::single(
        Resource::default(),
        Scope::default(),
        ids.iter()
            .map(|&i| Span::new([i; 16], [i; 8], "x", 0))
            .collect(),
    )]
}

fn all(log: &mut Log) -> Vec<Batch> {
    let mut out = Vec::new();
    log.scan(|b| out.push(b.clone())).expect("scan");
    out
}

#[test]
fn appends_number_spans_and_survive_reopening() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = Log::open(dir.path(), true).expect("open");
    let a = log.append(spans(&[1, 2]), 100).expect("append");
    assert_eq!(a.batch.as_ref().map(|b| b.first_seq), Some(1));
    // The log's clock never goes backwards, whatever the caller's did.
    let b = log.append(spans(&[3]), 50).expect("append");
    assert_eq!(
        b.batch.as_ref().map(|b| (b.first_seq, b.received_at)),
        Some((3, 100))
    );
    drop(log);
    let mut log = Log::open(dir.path(), false).expect("reopen");
    assert_eq!(log.next_seq(), 4);
    let batches = all(&mut log);
    assert_eq!(batches.len(), 2);
    let seqs: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.events().map(|e| e.seq))
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn a_large_batch_is_stored_as_several_records_and_read_back_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = Log::open(dir.path(), true).expect("open");
    // Two resources, the second with two scopes: splits must keep the grouping.
    let span = |i: u32| {
        let mut id = [0u8; 8];
        id[..4].copy_from_slice(&i.to_be_bytes());
        Span::new([3; 16], id, "x", 0)
    };
    let rs = vec![
        ResourceSpans::single(
            Resource::default(),
            Scope::default(),
            (1..=1500).map(span).collect(),
        ),
        ResourceSpans {
            resource: Resource::default(),
            schema_url: "b".into(),
            scope_spans: vec![
                crate::model::ScopeSpans {
                    scope: Scope {
                        name: "s1".into(),
                        ..Scope::default()
                    },
                    schema_url: String::new(),
                    spans: (1501..=2000).map(span).collect(),
                },
                crate::model::ScopeSpans {
                    scope: Scope {
                        name: "s2".into(),
                        ..Scope::default()
                    },
                    schema_url: String::new(),
                    spans: (2001..=2100).map(span).collect(),
                },
            ],
        },
    ];
    log.append(rs, 1).expect("append");
    assert_eq!(
        log.tree.len(),
        3,
        "2100 spans in records of at most {RECORD_SPANS}"
    );
    drop(log);
    let mut log = Log::open(dir.path(), false).expect("reopen");
    assert_eq!(log.next_seq(), 2101);
    let batches = all(&mut log);
    let ids: Vec<u32> = batches
        .iter()
        .flat_map(|b| {
            b.events().map(|e| {
                u32::from_be_bytes([
                    e.span.span_id[0],
                    e.span.span_id[1],
                    e.span.span_id[2],
                    e.span.span_id[3],
                ])
            })
        })
        .collect();
    assert_eq!(ids, (1..=2100).collect::<Vec<_>>());
    let scopes: Vec<String> = batches
        .iter()
        .flat_map(|b| b.resource_spans.iter())
        .flat_map(|r| r.scope_spans.iter().map(|s| s.scope.name.clone()))
        .collect();
    // Each record repeats the resource and scope of the spans it holds.
    assert_eq!(scopes, ["", "", "s1", "s2", "s2"]);
}

#[test]
fn a_span_already_in_the_log_is_not_appended_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = Log::open(dir.path(), true).expect("open");
    log.append(spans(&[1, 2]), 1).expect("append");
    drop(log);
    let mut log = Log::open(dir.path(), false).expect("reopen");
    let again = log.append(spans(&[2, 3, 3]), 2).expect("append");
    assert_eq!(again.duplicates, 2);
    let batch = again.batch.expect("one new span");
    assert_eq!(batch.span_count(), 1);
    assert_eq!(batch.first_seq, 3);
    let only_dups = log.append(spans(&[1]), 3).expect("append");
    assert!(only_dups.batch.is_none());
    assert_eq!(log.next_seq(), 4);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 40, ..Default::default() })]

    /// Retries mixed in anywhere, in any batches, even across a restart: the log holds each
    /// span once, in the order of its first arrival, with no gap in its sequence numbers.
    #[test]
    fn any_interleaving_of_duplicates_stores_each_span_once(
        sends in proptest::collection::vec((0u8..60, 1usize..6, proptest::bool::ANY), 1..80),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = Log::open(dir.path(), true).expect("open");
        let mut first_seen = Vec::new();
        let mut pending = Vec::new();
        for (i, &(id, batch, restart)) in sends.iter().enumerate() {
            pending.push(id);
            if !first_seen.contains(&id) {
                first_seen.push(id);
            }
            if pending.len() >= batch || i + 1 == sends.len() {
                log.append(spans(&pending), i as u64).expect("append");
                pending.clear();
                if restart {
                    drop(log);
                    log = Log::open(dir.path(), false).expect("reopen");
                }
            }
        }
        let stored: Vec<u8> = all(&mut log)
            .iter()
            .flat_map(|b| b.events().map(|ev| ev.span.span_id[0]).collect::<Vec<_>>())
            .collect();
        proptest::prop_assert_eq!(stored, first_seen.clone());
        proptest::prop_assert_eq!(log.next_seq(), first_seen.len() as u64 + 1);
    }
}

#[test]
fn duplicates_are_caught_within_the_window_which_is_read_back_from_the_log_end() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = Log::open(dir.path(), true).expect("open");
    log.set_dedup_window(4);
    log.append(spans(&[1, 2, 3]), 1).expect("append");
    log.append(spans(&[4, 5, 6]), 2).expect("append");
    // The window holds 3..=6: a retry of 5 is caught, 1 and 2 have left it.
    let again = log.append(spans(&[5, 1]), 3).expect("append");
    assert_eq!(again.duplicates, 1);
    assert_eq!(again.batch.map(|b| b.span_count()), Some(1));
    drop(log);
    // After a restart the window is the last four spans of the log: 4, 5, 6 and 1.
    let mut log = Log::open(dir.path(), false).expect("reopen");
    log.set_dedup_window(4);
    let retried = log.append(spans(&[4, 6, 1, 3]), 4).expect("append");
    assert_eq!(retried.duplicates, 3);
    let batch = retried.batch.expect("3 left the window, so it is new");
    assert_eq!(batch.first_seq, 8);
    assert_eq!(batch.span_count(), 1);
    assert_eq!(log.next_seq(), 9);
}

#[test]
fn lossless_round_trip_of_every_field() {
    use crate::model::{AnyValue, KeyValue, Link, SpanEvent, Status};
    let dir = tempfile::tempdir().expect("tmp");
    let mut span = Span::new([7; 16], [8; 8], "rich", 5);
    span.parent_span_id = vec![9; 8];
    span.trace_state = "k=v".into();
    span.flags = 257;
    span.kind = 3;
    span.end_time_unix_nano = 6;
    span.attributes = vec![
        KeyValue::new("b", AnyValue::Bool(true)),
        KeyValue::new("d", AnyValue::Double(1.5)),
        KeyValue::new("bytes", AnyValue::Bytes(vec![0, 255])),
        KeyValue::new(
            "kv",
            AnyValue::KvList(vec![KeyValue::new("i", AnyValue::Int(-1))]),
        ),
        KeyValue::new("arr", AnyValue::Array(vec![AnyValue::Empty])),
    ];
    span.events = vec![SpanEvent {
        time_unix_nano: 5,
        name: "e".into(),
        attributes: vec![],
        dropped_attributes_count: 1,
    }];
    span.links = vec![Link {
        trace_id: [1; 16],
        span_id: [2; 8],
        trace_state: String::new(),
        attributes: vec![],
        dropped_attributes_count: 0,
        flags: 1,
    }];
    span.status = Status {
        message: "bad".into(),
        code: 2,
    };
    let rs = vec![ResourceSpans {
        resource: Resource {
            attributes: vec![KeyValue::new("service.name", AnyValue::String("s".into()))],
            dropped_attributes_count: 2,
            entity_refs: vec![],
        },
        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        scope_spans: vec![crate::model::ScopeSpans {
            scope: Scope {
                name: "lib".into(),
                version: "1".into(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
            schema_url: "x".into(),
            spans: vec![span],
        }],
    }];
    let mut log = Log::open(dir.path(), true).expect("open");
    log.append(rs.clone(), 9).expect("append");
    drop(log);
    let mut log = Log::open(dir.path(), false).expect("reopen");
    assert_eq!(all(&mut log)[0].resource_spans, rs);
}

#[test]
fn a_missing_log_says_how_to_create_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = Log::open(dir.path(), false).err().expect("missing");
    assert!(err.to_string().contains("spanfold agents init"), "{err}");
}

#[test]
fn a_damaged_record_is_a_clear_error_not_a_reset() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut log = Log::open(dir.path(), true).expect("open");
    log.append(spans(&[1]), 1).expect("append");
    // Damage it through sled itself: a record whose body does not decode.
    log.tree
        .insert(2u64.to_be_bytes(), vec![FORMAT_V1, 0xff, 0xff])
        .expect("insert");
    log.db.flush().expect("flush");
    drop(log);
    // Opening reads the last record, so the damage is found before anything can be appended.
    let err = Log::open(dir.path(), false)
        .err()
        .expect("a damaged log must not open")
        .to_string();
    assert!(err.contains("damaged at record seq 2"), "{err}");
    assert!(err.contains("spanfold wrote nothing"), "{err}");
}

/// A view with everything the merge queue and the radar keep reads back from its checkpoint
/// as it was written (a field left out when empty, as JSON may, cannot be read back from
/// postcard: the fuzzer found a view whose every checkpoint failed so).
#[test]
fn a_view_with_the_queue_and_the_radar_reads_back_from_its_checkpoint() {
    use crate::reducer::{AsOf, Config, Feature, Priority, Risk, View};
    let dir = tempfile::tempdir().expect("tmp");
    let log = Log::open(dir.path(), true).expect("open");
    let mut view = View {
        config: Some(Config {
            repo: "/r".into(),
            base_branch: "main".into(),
            worktrees_dir: "/w".into(),
            lease_seconds: 60,
        }),
        ..View::default()
    };
    let mut f = Feature::queued("f1", Priority::High, 3, 1);
    f.scopes = vec!["src/**".into()];
    f.approved = true;
    view.features.insert("f1".into(), f);
    view.risks.push(Risk {
        feature: "f1".into(),
        other: None,
        conflict: true,
        paths: vec!["a.rs".into()],
        hunks: vec!["a.rs:1-5".into()],
        commit: "a".repeat(40),
        other_commit: "b".repeat(40),
        at: AsOf { seq: 2, time: 3 },
    });
    for barriers in [Vec::new(), vec!["Cargo.lock".to_owned()]] {
        view.barrier_paths = barriers;
        log.put_checkpoint(1, 1, 99, &view).expect("written");
        let (_, back) = log
            .reader()
            .checkpoint_at_or_before::<View>(1, 99, |_, _| true)
            .expect("read")
            .expect("found");
        assert_eq!(
            serde_json::to_string(&back).ok(),
            serde_json::to_string(&view).ok()
        );
    }
}
