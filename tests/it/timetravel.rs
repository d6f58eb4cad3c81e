//! Time travel against the fold: for random logs of a few thousand events, written through the
//! coordinator into a real sled log with checkpoints, the view `--at` every seq (checkpoint plus
//! the rest) equals the full fold up to that seq. Also: checkpoints of another reducer version
//! are discarded, and a log reopened from its checkpoint folds to the same view. And replaying an
//! export of a random log, in either format, gives back the same log, record for record.

use proptest::prelude::*;
use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::fact::{MergeKind, MergeResult};
use spanfold::reducer::{AgentState, Priority, REDUCER_VERSION, View};
use spanfold::registry::Origin;
use spanfold::status::{self, StatusOptions};
use spanfold::timetravel;

pub(crate) const AGENTS: usize = 5;
const FEATURES: usize = 12;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Register(usize, u32),
    Request(usize, usize),
    Assign(usize, usize),
    Progress(usize, usize),
    Validate(usize, bool),
    Reset(usize),
    Cancel(usize),
    Merge(usize, usize, usize),
    Lease(usize),
    Cycle,
    Unknown(usize),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..AGENTS, 1u32..3).prop_map(|(a, m)| Op::Register(a, m)),
        1 => (0..FEATURES, 0usize..4).prop_map(|(f, p)| Op::Request(f, p)),
        4 => (0..AGENTS, 0..FEATURES).prop_map(|(a, f)| Op::Assign(a, f)),
        4 => (0..AGENTS, 0usize..7).prop_map(|(a, s)| Op::Progress(a, s)),
        1 => (0..AGENTS, any::<bool>()).prop_map(|(a, p)| Op::Validate(a, p)),
        1 => (0..AGENTS).prop_map(Op::Reset),
        1 => (0..FEATURES).prop_map(Op::Cancel),
        2 => (0..AGENTS, 0..FEATURES, 0usize..4).prop_map(|(a, f, r)| Op::Merge(a, f, r)),
        1 => (0..AGENTS).prop_map(Op::Lease),
        1 => Just(Op::Cycle),
        1 => (0..AGENTS).prop_map(Op::Unknown),
    ]
}

pub(crate) fn span(ids: &mut IdGen, op: &Op, time: u64) -> spanfold::model::Span {
    let agent = |a: usize| format!("agent-{a}");
    let feature = |f: usize| format!("feature-{f:02}");
    match op {
        Op::Register(a, max) => emit::registration(
            ids,
            time,
            &emit::Registration {
                agent_id: agent(*a),
                languages: vec!["rust".into()],
                max_concurrent_features: *max,
                ..Default::default()
            },
        ),
        Op::Request(f, p) => emit::feature_request(
            ids,
            time,
            &emit::FeatureRequest {
                name: feature(*f),
                priority: Some(Priority::ALL[*p]),
                estimated_effort: (*f as u32) % 10 + 1,
                ..Default::default()
            },
        ),
        Op::Assign(a, f) => emit::assignment(
            ids,
            time,
            &emit::AssignmentSpan {
                agent_id: &agent(*a),
                feature: &feature(*f),
                priority: Priority::Medium,
                score: 0.5,
                reasons: &["test".to_owned()],
                worktree_path: &format!("/wt/{}", feature(*f)),
                branch: &format!("spanfold/{}", feature(*f)),
            },
        ),
        Op::Progress(a, s) => emit::progress(
            ids,
            time,
            &emit::ProgressReport {
                agent_id: agent(*a),
                state: Some(AgentState::ALL[*s]),
                percentage: Some(50.0),
                ..Default::default()
            },
        ),
        Op::Validate(a, passed) => emit::validation(ids, time, &agent(*a), None, *passed, None),
        Op::Reset(a) => emit::reset(ids, time, &agent(*a), None),
        Op::Cancel(f) => emit::cancel(ids, time, &feature(*f), None),
        Op::Merge(a, f, r) => emit::merge(
            ids,
            time,
            &emit::MergeSpan {
                result: [
                    MergeResult::Merged,
                    MergeResult::Conflicted,
                    MergeResult::Started,
                    MergeResult::Deferred,
                ][*r],
                agent_id: &agent(*a),
                feature: &feature(*f),
                branch: &format!("spanfold/{}", feature(*f)),
                base: "main",
                kind: Some(MergeKind::FastForward),
                commit: Some("abc"),
                conflicts: &["README.md".to_owned()],
                reason: Some("test"),
                from: None,
            },
        ),
        Op::Lease(a) => emit::lease_expired(ids, time, &agent(*a), 700),
        Op::Cycle => emit::cycle(ids, time, 1, 0, 0),
        Op::Unknown(a) => ids.span("tool.call", time).with(
            "agent.id",
            spanfold::model::AnyValue::String(agent(*a).into()),
        ),
    }
}

/// Writes `ops` as batches of the given sizes.
fn write(coord: &mut Coordinator, ops: &[Op], sizes: &[usize]) {
    let mut ids = IdGen::default();
    let mut i = 0;
    let mut k = 0;
    while i < ops.len() {
        let n = sizes[k % sizes.len()].min(ops.len() - i);
        k += 1;
        let spans = ops[i..i + n]
            .iter()
            .map(|op| span(&mut ids, op, 1_000 + i as u64))
            .collect();
        coord
            .submit(
                vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)],
                Origin::Coordinator,
            )
            .expect("append");
        i += n;
    }
}

/// Calls `check(seq, view)` with the plain fold of the log after every event (seq 0: empty).
fn each_fold(coord: &Coordinator, mut check: impl FnMut(u64, &View)) {
    let mut view = View::default();
    check(0, &view);
    for batch in coord.log().reader().batches_from(1) {
        for ev in batch.expect("readable").events() {
            view.apply(&ev);
            check(ev.seq, &view);
        }
    }
}

fn json(view: &View) -> String {
    serde_json::to_string(&status::build(
        view,
        &StatusOptions {
            details: true,
            ..Default::default()
        },
    ))
    .expect("serialises")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn the_view_at_every_seq_equals_the_fold_up_to_it(
        ops in prop::collection::vec(op(), 2000..3000),
        sizes in prop::collection::vec(1usize..200, 1..20),
        every in 16u64..300,
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        coord.set_checkpoint_every(every);
        write(&mut coord, &ops, &sizes);
        let reader = coord.log().reader();
        let checkpoints = reader.checkpoint_entries().expect("index");
        // Checkpoints exist, and are spaced as asked (they fall on batch boundaries).
        prop_assert!(!checkpoints.is_empty());
        for pair in checkpoints.windows(2) {
            prop_assert!(pair[1].seq - pair[0].seq >= every, "{:?}", pair);
        }
        let mut mismatch = None;
        let mut last = View::default();
        each_fold(&coord, |seq, expected| {
            let at = timetravel::view_at(&reader, seq).expect("view_at");
            // The status document too, now and then: it is what users compare.
            let same = at == *expected && (seq % 97 != 0 || json(&at) == json(expected));
            if !same && mismatch.is_none() {
                mismatch = Some(seq);
            }
            last = expected.clone();
        });
        prop_assert_eq!(mismatch, None, "view_at differs from the fold");
        // A time names the last event received at or before it.
        let last = &last;
        let records: Vec<(u64, u64)> = reader
            .batches_from(1)
            .map(|b| {
                let b = b.expect("readable");
                (b.first_seq + b.span_count() as u64 - 1, b.received_at)
            })
            .collect();
        for &(_, time) in &records {
            for t in [time - 1, time, time + 1] {
                let expected = records
                    .iter()
                    .filter(|r| r.1 <= t)
                    .map(|r| r.0)
                    .max()
                    .unwrap_or(0);
                let seq = timetravel::Point::Time(t).resolve(&reader, 0).expect("resolve");
                prop_assert_eq!(seq, expected, "time {}", t);
            }
        }
        let seq = timetravel::Point::Time(last.as_of.time)
            .resolve(&reader, 0)
            .expect("resolve");
        prop_assert_eq!(seq, last.as_of.seq);
        // Reopened, the coordinator starts from its latest checkpoint and folds the rest.
        drop(reader);
        drop(coord);
        let reopened = Coordinator::open(dir.path()).expect("reopen");
        prop_assert_eq!(&*reopened.view(), last);
    }
}

/// One move of a dashboard's scrubber.
#[derive(Debug, Clone)]
enum Move {
    Forward(u64),
    Back(u64),
    /// To this share (per mille) of the log.
    Jump(u64),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// The scrubber keeps views between questions; whatever the walk, each answer is the plain
    /// fold up to that point. Logs are long enough that jumps outrun its reach and make it go
    /// back to checkpoints, and steps back follow jumps back, so every path is taken.
    #[test]
    fn the_scrubber_answers_what_the_fold_does(
        ops in prop::collection::vec(op(), 10_000..12_000),
        moves in prop::collection::vec(prop_oneof![
            3 => (1u64..40).prop_map(Move::Forward),
            3 => (1u64..40).prop_map(Move::Back),
            1 => (0u64..=1000).prop_map(Move::Jump),
        ], 40..80),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        coord.set_checkpoint_every(1024);
        write(&mut coord, &ops, &[150]);
        let last = coord.log().next_seq() - 1;
        let mut at = 0u64;
        let walk: Vec<u64> = moves
            .iter()
            .map(|m| {
                at = match *m {
                    Move::Forward(n) => (at + n).min(last),
                    Move::Back(n) => at.saturating_sub(n),
                    Move::Jump(share) => last * share / 1000,
                };
                at
            })
            .collect();
        let wanted: std::collections::BTreeSet<u64> = walk.iter().copied().collect();
        let mut expected = std::collections::BTreeMap::new();
        each_fold(&coord, |seq, view| {
            if wanted.contains(&seq) {
                expected.insert(seq, view.clone());
            }
        });
        let reader = coord.log().reader();
        let mut scrubber = timetravel::Scrubber::default();
        for (step, seq) in walk.iter().enumerate() {
            let view = scrubber.view_at(&reader, *seq).expect("view");
            prop_assert!(view == &expected[seq], "step {} to seq {}", step, seq);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The server's kept whole-log timeline, asked again as the log grows (and now and then for
    /// an earlier end), answers exactly what a fresh fold of the same range does.
    #[test]
    fn the_kept_timeline_answers_what_a_fresh_one_does(
        ops in prop::collection::vec(op(), 300..900),
        sizes in prop::collection::vec(1usize..40, 1..10),
        ends in prop::collection::vec(prop_oneof![8 => 1u64..30, 1 => Just(0u64), 1 => 0u64..1000], 5..40),
        resolution in prop_oneof![Just(1usize), Just(7), Just(800), Just(10_000)],
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        write(&mut coord, &ops, &sizes);
        let reader = coord.log().reader();
        let last = reader.last_seq().expect("last");
        let mut live = timetravel::LiveTimeline::default();
        let mut to = 0u64;
        for (i, &e) in ends.iter().enumerate() {
            // Mostly a little further on (0: the same end again); now and then anywhere.
            to = if e < 30 { (to + e).min(last) } else { e.min(last) };
            let kept = live.timeline(&reader, to, resolution).expect("kept");
            let fresh = timetravel::timeline(&reader, 0, to, resolution).expect("fresh");
            prop_assert!(kept == fresh, "question {} (to {}, resolution {})", i, to, resolution);
        }
        prop_assert!(live.reused() > 0, "the kept timeline was never extended");
    }
}

fn fold_until(coord: &Coordinator, seq: u64) -> View {
    let mut out = View::default();
    each_fold(coord, |s, v| {
        if s == seq {
            out = v.clone();
        }
    });
    out
}

#[test]
fn checkpoints_of_another_reducer_version_are_discarded_and_made_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut coord = Coordinator::create(dir.path()).expect("create");
    coord.set_checkpoint_every(50);
    let ops: Vec<Op> = (0..400)
        .map(|i| match i % 4 {
            0 => Op::Register(i % AGENTS, 1),
            1 => Op::Request(i % FEATURES, 1),
            2 => Op::Assign(i % AGENTS, i % FEATURES),
            _ => Op::Progress(i % AGENTS, 2),
        })
        .collect();
    write(&mut coord, &ops, &[7]);
    // A checkpoint claiming another reducer version, holding a wrong view: it must never be used.
    let mut wrong = View::default();
    wrong.counters.events = 999_999;
    coord
        .log()
        .put_checkpoint(390, 0, REDUCER_VERSION + 1, &wrong)
        .expect("put");
    let reader = coord.log().reader();
    assert_eq!(
        timetravel::view_at(&reader, 395).expect("view_at"),
        fold_until(&coord, 395)
    );
    let last = fold_until(&coord, 400);
    drop(reader);
    drop(coord);
    let reopened = Coordinator::open(dir.path()).expect("reopen");
    let entries = reopened.log().reader().checkpoint_entries().expect("index");
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e.version == REDUCER_VERSION),
        "{entries:?}"
    );
    assert_eq!(*reopened.view(), last);
}

/// Any attribute value the log can hold (finite doubles: OTLP/JSON has no NaN or infinity).
fn any_value() -> impl Strategy<Value = spanfold::model::AnyValue> {
    use spanfold::model::{AnyValue, KeyValue};
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| AnyValue::String(s.into())),
        any::<bool>().prop_map(AnyValue::Bool),
        any::<i64>().prop_map(AnyValue::Int),
        (proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL
            | proptest::num::f64::ZERO
            | proptest::num::f64::NEGATIVE
            | proptest::num::f64::POSITIVE)
            .prop_map(AnyValue::Double),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(AnyValue::Bytes),
        Just(AnyValue::Empty),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(AnyValue::Array),
            proptest::collection::vec(("[a-z._]{1,8}", inner), 0..4).prop_map(|kvs| {
                AnyValue::KvList(kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
            }),
        ]
    })
}

fn batches(reader: &spanfold::store::LogReader) -> Vec<spanfold::model::Batch> {
    reader
        .batches_from(1)
        .map(|b| b.expect("readable"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn replaying_an_export_gives_back_the_log(
        ops in proptest::collection::vec(op(), 100..400),
        values in proptest::collection::vec(("[a-z.]{1,12}", any_value(), any::<String>()), 1..40),
        sizes in proptest::collection::vec(1usize..40, 1..6),
        protobuf in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        write(&mut coord, &ops, &sizes);
        // Spans no registry names, carrying whatever values, names and kinds.
        let mut ids = IdGen::default();
        for (i, (key, value, name)) in values.iter().enumerate() {
            let mut span = ids
                .span(if name.is_empty() { "x" } else { name }, 5_000 + i as u64)
                .with(key, value.clone());
            span.kind = (i % 6) as i32;
            span.end_time_unix_nano = i as u64;
            coord
                .submit(vec![emit::wrap("test-client", vec![span])], Origin::Client)
                .expect("append");
        }
        let original = batches(&coord.log().reader());
        let view = coord.view().clone();
        let format = if protobuf {
            spanfold::otlp::file::Format::Protobuf
        } else {
            spanfold::otlp::file::Format::Json
        };
        let file = dir.path().join("export");
        let out = std::fs::File::create(&file).expect("create export");
        timetravel::export(&coord.log().reader(), 1, u64::MAX, format, out).expect("export");
        drop(coord);

        let kept = dir.path().join("replayed");
        let report = spanfold::replay::replay(
            &spanfold::replay::ReplayOptions {
                files: vec![file],
                keep: Some(kept.clone()),
                ..Default::default()
            },
            |_| {},
        )
        .expect("replay");
        prop_assert_eq!(report.duplicates, 0);
        prop_assert_eq!(report.rejected_count, 0, "{:?}", report.rejected);
        prop_assert_eq!(json(&report.view), json(&view));
        let replayed = Coordinator::open(&kept).expect("the kept log opens");
        let again = batches(&replayed.log().reader());
        prop_assert_eq!(again.len(), original.len());
        for (a, b) in again.iter().zip(&original) {
            prop_assert_eq!(a, b);
        }
    }
}
