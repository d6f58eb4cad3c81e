//! What the log-building benches share: filling a log with progress reports up to a size, and
//! the first open that folds it and writes its checkpoints.

use std::time::Instant;

use spanfold::coordinator::Coordinator;
use spanfold::emit::{self, IdGen};
use spanfold::model::UnixNanos;
use spanfold::reducer::AgentState;
use spanfold::store::Log;

/// Spans per append, as an OTLP exporter sends them.
pub const BATCH: usize = 512;

/// Appends progress reports from `agents` agents (named by `agent`) until the log holds
/// `events` events, then closes it; prints how long the whole build took since `started`.
pub fn fill_with_progress(
    mut log: Log,
    ids: &mut IdGen,
    mut tick: impl FnMut() -> UnixNanos,
    agents: u64,
    agent: impl Fn(u64) -> String,
    events: u64,
    started: Instant,
) {
    let mut written = log.next_seq() - 1;
    let mut i = 0u64;
    while written < events {
        let n = BATCH.min((events - written) as usize);
        let spans = (0..n)
            .map(|_| {
                i += 1;
                emit::progress(
                    ids,
                    0,
                    &emit::ProgressReport {
                        agent_id: agent(i % agents),
                        state: Some(AgentState::Working),
                        percentage: Some((i % 100) as f64),
                        files_modified: Some(3),
                        lines_added: Some(120),
                        duration_ms: Some(42_000),
                        feature: None,
                    },
                )
            })
            .collect();
        log.append(vec![emit::wrap(emit::COORDINATOR_SERVICE, spans)], tick())
            .expect("append");
        written += n as u64;
    }
    drop(log);
    println!(
        "built a log of {written} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// The first open folds the log once and writes its checkpoints.
pub fn first_open(dir: &std::path::Path) {
    let started = Instant::now();
    let coord = Coordinator::open(dir).expect("open");
    let checkpoints = coord.log().reader().checkpoint_entries().expect("index");
    println!(
        "first open folded it and wrote {} checkpoints in {:.1}s",
        checkpoints.len(),
        started.elapsed().as_secs_f64()
    );
}
