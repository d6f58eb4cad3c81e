//! Usage totals are the sum over the records, whatever the batching, the retried exports and the
//! restarts: random Claude Code requests (reported cost) and Codex requests (priced), written
//! through the coordinator into a real sled log in random batches, some batches sent twice (a
//! retry after a lost answer), the coordinator reopened between batches now and then (from its
//! checkpoint and the rest); the ledger equals the plain sum over the distinct requests.

use proptest::prelude::*;
use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::model::{
    AnyValue, Batch, KeyValue, LogRecord, Resource, ResourceLogs, Scope, ScopeLogs,
};
use spanfold::registry::Origin;
use spanfold::usage::{PriceTable, Tokens, Usage};

const AGENTS: usize = 3;

/// One request: its agent, input and output tokens, and either Claude's reported cost in
/// millionths of a dollar or (None) a Codex request to be priced.
type Request = (usize, u64, u64, Option<u32>);

fn record(i: usize, r: &Request) -> LogRecord {
    let (_, input, output, cost) = *r;
    let kv = |k: &str, v: AnyValue| KeyValue::new(k, v);
    let s = |v: &str| AnyValue::String(v.into());
    let n = |v: u64| AnyValue::Int(v as i64);
    // Distinct records, as an agent's are (its own prompt ids and times): identical content
    // is what a retry repeats.
    let mut attributes = vec![kv("prompt.id", s(&format!("p-{i}")))];
    let body = match cost {
        Some(micros) => {
            attributes.extend([
                kv("event.name", s("api_request")),
                kv("model", s("claude-sonnet-4-5")),
                kv("input_tokens", n(input)),
                kv("output_tokens", n(output)),
                kv("cost_usd", AnyValue::Double(f64::from(micros) / 1e6)),
            ]);
            s("claude_code.api_request")
        }
        None => {
            attributes.extend([
                kv("event.name", s("codex.sse_event")),
                kv("event.kind", s("response.completed")),
                kv("model", s("gpt-5-codex")),
                kv("input_token_count", n(input)),
                kv("output_token_count", n(output)),
            ]);
            s("")
        }
    };
    LogRecord {
        time_unix_nano: i as u64,
        attributes,
        body,
        ..LogRecord::empty()
    }
}

fn batch(requests: &[(usize, Request)]) -> Batch {
    let resource_logs = requests
        .iter()
        .map(|(i, r)| ResourceLogs {
            resource: Resource {
                attributes: vec![KeyValue::new(
                    "agent.id",
                    AnyValue::String(format!("agent-{}", r.0).into()),
                )],
                ..Resource::default()
            },
            schema_url: String::new(),
            scope_logs: vec![ScopeLogs {
                scope: Scope::default(),
                schema_url: String::new(),
                log_records: vec![record(*i, r)],
            }],
        })
        .collect();
    Batch {
        resource_logs,
        ..Batch::default()
    }
}

/// The plain sum: each request's tokens, its reported cost or its price.
fn expected(requests: &[Request]) -> Usage {
    let table = PriceTable::builtin();
    let codex = table.price("gpt-5-codex").expect("priced");
    let mut total = Usage::default();
    for &(_, input, output, cost) in requests {
        let tokens = Tokens {
            input,
            output,
            ..Tokens::default()
        };
        let mut u = Usage {
            tokens,
            llm_requests: 1,
            ..Usage::default()
        };
        match cost {
            Some(micros) => {
                u.cost_nanos = u64::from(micros) * 1000;
                u.reported = 1;
            }
            None => {
                u.cost_nanos = codex.cost_nanos(&tokens);
                u.priced = 1;
            }
        }
        total.add(&u);
    }
    total
}

fn setup(coord: &mut Coordinator) {
    let mut ids = IdGen::default();
    let mut spans: Vec<_> = (0..AGENTS)
        .map(|a| {
            let r = emit::Registration {
                agent_id: format!("agent-{a}"),
                languages: Vec::new(),
                frameworks: Vec::new(),
                expertise_areas: Vec::new(),
                max_concurrent_features: 1,
                preferred_complexity: None,
                lease_seconds: None,
                budget_usd_per_day: None,
                remote: false,
            };
            emit::registration(&mut ids, 1, &r)
        })
        .collect();
    spans.push(emit::prices(
        &mut ids,
        1,
        &PriceTable::builtin(),
        "built-in",
    ));
    coord
        .submit(
            vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)],
            Origin::Coordinator,
        )
        .expect("append");
}

fn request() -> impl Strategy<Value = Request> {
    (
        0..AGENTS,
        0u64..50_000,
        0u64..8_000,
        prop_oneof![Just(None), (0u32..100_000).prop_map(Some)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn usage_totals_are_the_sum_of_the_distinct_requests(
        requests in prop::collection::vec(request(), 1..300),
        sizes in prop::collection::vec(1usize..40, 1..10),
        retried in prop::collection::vec(any::<bool>(), 1..10),
        restarted in prop::collection::vec(any::<bool>(), 1..10),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut coord = Coordinator::create(dir.path()).expect("create");
        coord.set_checkpoint_every(16);
        setup(&mut coord);
        let numbered: Vec<(usize, Request)> = requests.iter().copied().enumerate().collect();
        let (mut at, mut k) = (0, 0);
        while at < numbered.len() {
            let n = sizes[k % sizes.len()].min(numbered.len() - at);
            let b = batch(&numbered[at..at + n]);
            let sends = if retried[k % retried.len()] { 2 } else { 1 };
            for _ in 0..sends {
                coord.append_exports(vec![(b.clone(), Vec::new())]).expect("append");
            }
            if restarted[k % restarted.len()] {
                drop(coord);
                coord = Coordinator::open(dir.path()).expect("reopen");
                coord.set_checkpoint_every(16);
            }
            at += n;
            k += 1;
        }
        let view = coord.view();
        prop_assert_eq!(view.usage.ledger.total, expected(&requests));
        for a in 0..AGENTS {
            let own: Vec<Request> = requests.iter().copied().filter(|r| r.0 == a).collect();
            let got = view.usage.ledger.agents.get(&format!("agent-{a}")).map(|u| u.total).unwrap_or_default();
            prop_assert_eq!(got, expected(&own), "agent-{}", a);
        }
    }
}
