//! The crash and full-disk tests' load: `spanfold-load --journal` records each export before it
//! is sent and once it is acknowledged; the log is then checked against that journal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use spanfold::coordinator::Coordinator;
use spanfold::reducer::View;
use spanfold::status::{self, StatusOptions};
use spanfold::store::Log;

/// Spans per export.
pub const BATCH: u64 = 40;

/// Request numbers the load generator journalled as acknowledged.
pub fn acknowledged(journal: &Path) -> BTreeSet<u64> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("a "))
        .filter_map(|n| n.parse().ok())
        .collect()
}

pub fn status_json(view: &View) -> String {
    let options = StatusOptions {
        details: true,
        ..Default::default()
    };
    serde_json::to_string(&status::build(view, &options)).expect("status serializes")
}

/// With no server running: the log has no seq gaps, holds every load span at most once and every
/// acknowledged one exactly once, and the coordinator's view equals a fresh fold. Returns the
/// number of events.
pub fn check_log(coord_dir: &Path, acked: &BTreeSet<u64>) -> u64 {
    let mut log = Log::open(coord_dir, false).expect("the log opens after a SIGKILL");
    // Load spans by request number (the first 8 bytes of the trace id) and span id.
    let mut stored: BTreeMap<u64, BTreeMap<[u8; 8], u32>> = BTreeMap::new();
    let mut fresh = View::default();
    let mut events = 0;
    log.scan(|batch| {
        for ev in batch.events() {
            events += 1;
            assert_eq!(ev.seq, events, "sequence numbers run without gaps");
            fresh.apply(&ev);
            if ev.span.trace_id[8..] == [0xA5; 8] {
                let n = u64::from_be_bytes(ev.span.trace_id[..8].try_into().expect("8 bytes"));
                *stored
                    .entry(n)
                    .or_default()
                    .entry(ev.span.span_id)
                    .or_default() += 1;
            }
        }
    })
    .expect("every batch reads back, in order, without gaps");
    drop(log);
    for (n, spans) in &stored {
        let twice: Vec<_> = spans.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "request {n}: spans stored twice {twice:?}"
        );
    }
    for n in acked {
        let got = stored.get(n).map_or(0, BTreeMap::len) as u64;
        assert_eq!(
            got, BATCH,
            "request {n} was acknowledged: all {BATCH} of its spans must be in the log"
        );
    }
    let coord = Coordinator::open(coord_dir).expect("the coordinator opens");
    assert_eq!(
        status_json(&coord.view()),
        status_json(&fresh),
        "the view the server starts from (checkpoint + rest) equals a fresh fold"
    );
    events
}

/// The load generator's summary: how many exports it sent again from an earlier round.
pub fn resent(child: std::process::Child) -> u64 {
    let out = child
        .wait_with_output()
        .expect("the load generator's output");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["resent"].as_u64())
        .unwrap_or(0)
}

pub fn load(grpc: &str, journal: &Path) -> std::process::Child {
    load_for(grpc, journal, 20)
}

/// The load for `secs` seconds.
pub fn load_for(grpc: &str, journal: &Path, secs: u64) -> std::process::Child {
    let endpoint = grpc.trim_start_matches("http://");
    Command::new(env!("CARGO_BIN_EXE_spanfold-load"))
        .args([
            "--endpoint",
            endpoint,
            "--concurrency",
            "4",
            "--agents",
            "6",
        ])
        .args(["--batch", &BATCH.to_string(), "--rate", "6000"])
        .args(["--duration", &secs.to_string(), "--journal"])
        .arg(journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the load generator starts")
}

pub fn wait_bounded(child: &mut std::process::Child, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the load generator did not stop after its receiver died");
}
