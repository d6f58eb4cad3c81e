//! The kept timeline index against the fold: random logs of coordination spans and agents' own
//! telemetry (tool calls, priced and reported requests), received over a random spread of time
//! (the clock moves between appends by anything from nothing to minutes), written through the
//! coordinator into a real sled log. Folded into an index, the whole log's timeline it draws at
//! any resolution, at many points of the log, is exactly what folding the log from the start
//! draws; and it can be drawn at every resolution coarse enough.

use std::sync::Arc;

use proptest::prelude::*;
use spanfold::clock::ManualClock;
use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::model::{
    AnyValue, Batch, KeyValue, LogRecord, Resource, ResourceLogs, Scope, ScopeLogs,
};
use spanfold::reducer::View;
use spanfold::registry::Origin;
use spanfold::store::LogReader;
use spanfold::timeline::Index;
use spanfold::timeline_keeper::{Keeper, Kept};
use spanfold::timetravel;

use crate::timetravel::{AGENTS, Op, op, span};

/// One append: coordination spans, or an agent's telemetry records (tool calls, requests with
/// a reported cost in millionths of a dollar), then the clock moves on by `advance` ns.
#[derive(Debug, Clone)]
enum Append {
    Spans(Vec<Op>),
    Telemetry(usize, Vec<(bool, u32)>),
}

fn append() -> impl Strategy<Value = (Append, u64)> {
    let append = prop_oneof![
        3 => prop::collection::vec(op(), 1..12).prop_map(Append::Spans),
        2 => (0..AGENTS, prop::collection::vec((any::<bool>(), 0u32..5_000), 1..6))
            .prop_map(|(a, r)| Append::Telemetry(a, r)),
    ];
    // Mostly within a step or a few; now and then a long pause.
    let advance = prop_oneof![
        2 => Just(0u64),
        6 => 0u64..(1 << 24),
        3 => 0u64..(1 << 30),
        1 => 0u64..(1 << 37),
    ];
    (append, advance)
}

fn telemetry(agent: usize, records: &[(bool, u32)], n: &mut usize) -> Batch {
    let kv = |k: &str, v: AnyValue| KeyValue::new(k, v);
    let s = |v: &str| AnyValue::String(v.into());
    let log_records = records
        .iter()
        .map(|&(tool, micros)| {
            *n += 1;
            let mut attributes = vec![kv("prompt.id", s(&format!("p-{n}")))];
            if tool {
                attributes.extend([
                    kv("event.name", s("claude_code.tool_result")),
                    kv("tool_name", s("Edit")),
                    kv("success", s("true")),
                ]);
            } else {
                attributes.extend([
                    kv("event.name", s("claude_code.api_request")),
                    kv("model", s("claude-sonnet-4-5")),
                    kv("input_tokens", AnyValue::Int(10)),
                    kv("output_tokens", AnyValue::Int(20)),
                    kv("cost_usd", AnyValue::Double(f64::from(micros) / 1e6)),
                ]);
            }
            LogRecord {
                time_unix_nano: *n as u64,
                attributes,
                ..LogRecord::empty()
            }
        })
        .collect();
    Batch {
        resource_logs: vec![ResourceLogs {
            resource: Resource {
                attributes: vec![
                    kv("agent.id", s(&format!("agent-{agent}"))),
                    kv("service.name", s("claude-code")),
                ],
                ..Resource::default()
            },
            schema_url: String::new(),
            scope_logs: vec![ScopeLogs {
                scope: Scope::default(),
                schema_url: String::new(),
                log_records,
            }],
        }],
        ..Batch::default()
    }
}

fn write(coord: &mut Coordinator, clock: &ManualClock, appends: &[(Append, u64)]) {
    let mut ids = IdGen::default();
    let mut n = 0;
    for (append, advance) in appends {
        match append {
            Append::Spans(ops) => {
                let spans = ops
                    .iter()
                    .map(|op| span(&mut ids, op, 1_000 + n as u64))
                    .collect();
                n += ops.len();
                coord
                    .submit(
                        vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)],
                        Origin::Coordinator,
                    )
                    .expect("append spans");
            }
            Append::Telemetry(agent, records) => {
                let batch = telemetry(*agent, records, &mut n);
                coord
                    .append_exports(vec![(batch, Vec::new())])
                    .expect("append telemetry");
            }
        }
        clock.advance(std::time::Duration::from_nanos(*advance));
    }
}

const RESOLUTIONS: [usize; 5] = [1, 7, 100, 800, 10_000];

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_index_draws_what_the_fold_draws_at_every_resolution(
        appends in prop::collection::vec(append(), 20..160),
        stops in prop::collection::vec(0u64..1000, 1..6),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        let clock = ManualClock::at(1_700_000_000_000_000_000);
        coord.set_clock(Arc::new(clock.clone()));
        write(&mut coord, &clock, &appends);
        let reader = coord.log().reader();
        let last = reader.last_seq().expect("last");
        let mut stops: Vec<u64> = stops.iter().map(|s| 1 + (last - 1) * s / 1000).collect();
        stops.push(last);
        stops.sort_unstable();
        stops.dedup();
        let (mut view, mut index) = (View::default(), Index::default());
        let mut drawn = 0;
        for batch in reader.batches_from(1) {
            for ev in batch.expect("readable").all_events() {
                index.apply_any(&mut view, &ev);
                if stops.binary_search(&ev.seq()).is_err() {
                    continue;
                }
                for resolution in RESOLUTIONS {
                    let Some(kept) = index.timeline(&view, resolution) else {
                        continue;
                    };
                    drawn += 1;
                    let fresh = timetravel::timeline(&reader, 0, ev.seq(), resolution)
                        .expect("fold");
                    prop_assert!(
                        kept == fresh,
                        "seq {} resolution {}:\nindex {:?}\nfold  {:?}",
                        ev.seq(), resolution, kept, fresh
                    );
                }
            }
        }
        prop_assert_eq!(view.as_of.seq, last);
        // At the end, with the clock moved by at least a few steps' worth, the coarsest
        // drawing is always possible from the index.
        let span = view.as_of.time - 1_700_000_000_000_000_000;
        if span >= 1 << 20 {
            prop_assert!(index.timeline(&view, 1).is_some(), "span {} ns not drawn", span);
        }
        prop_assert!(drawn > 0 || span < 1 << 20, "nothing drawn from the index");
    }
}

/// The keeper's timeline against the fold of the log up to where it is.
fn same_as_fold(kept: &Kept, reader: &LogReader) -> Result<(), TestCaseError> {
    let seq = kept.as_of().seq;
    prop_assert_eq!(seq, reader.last_seq().expect("last"), "not caught up");
    for resolution in RESOLUTIONS {
        if let Some(drawn) = kept.timeline(resolution) {
            let fresh = timetravel::timeline(reader, 0, seq, resolution).expect("fold");
            prop_assert!(drawn == fresh, "resolution {}", resolution);
        }
    }
    prop_assert!(kept.timeline(1).is_some(), "not drawn at resolution 1");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// A server's timeline keeper: reading the log in pieces (it stops whenever the writer
    /// has work), it draws what the fold draws; it stores its index and, opened again on the
    /// grown log, reads it back and folds only what follows. One stored for another reducer
    /// version is never used.
    #[test]
    fn the_keeper_folds_the_log_in_pieces_and_reads_back_what_it_stored(
        first in prop::collection::vec(append(), 40..120),
        second in prop::collection::vec(append(), 20..80),
        pieces in prop::collection::vec(1usize..6, 1..8),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        let clock = ManualClock::at(1_700_000_000_000_000_000);
        coord.set_clock(Arc::new(clock.clone()));
        // A second between two appends: the log spans more than the finest step kept.
        let (early, late) = first.split_at(first.len() / 2);
        write(&mut coord, &clock, early);
        clock.advance(std::time::Duration::from_secs(1));
        write(&mut coord, &clock, late);
        let reader = coord.log().reader();
        let always = || true;

        let mut keeper = Keeper::open(coord.log().reader());
        prop_assert_eq!(keeper.stored(), 0);
        // Each piece: a few records, then the writer has work again.
        for piece in &pieces {
            let left = std::cell::Cell::new(*piece);
            let before = keeper.shared().read().as_of().seq;
            keeper
                .catch_up(&|| left.replace(left.get().saturating_sub(1)) > 0)
                .expect("piece");
            let after = keeper.shared().read().as_of().seq;
            prop_assert!(after > before || after == reader.last_seq().expect("last"));
        }
        keeper.catch_up(&always).expect("catch up");
        same_as_fold(&keeper.shared().read(), &reader)?;
        keeper.store(true);
        let stored = keeper.stored();
        prop_assert_eq!(stored, reader.last_seq().expect("last"));
        drop(keeper);

        write(&mut coord, &clock, &second);
        let mut keeper = Keeper::open(coord.log().reader());
        prop_assert_eq!(keeper.stored(), stored, "not read back");
        prop_assert_eq!(keeper.shared().read().as_of().seq, stored);
        keeper.catch_up(&always).expect("catch up");
        same_as_fold(&keeper.shared().read(), &reader)?;
        drop(keeper);

        // Stored as another reducer version would have: ignored, folded again from the start.
        let last = reader.last_seq().expect("last");
        reader
            .put_timeline_index(last, spanfold::reducer::REDUCER_VERSION + 1, &Index::default())
            .expect("put");
        let mut keeper = Keeper::open(coord.log().reader());
        prop_assert_eq!(keeper.stored(), 0);
        keeper.catch_up(&always).expect("catch up");
        same_as_fold(&keeper.shared().read(), &reader)?;
    }
}
