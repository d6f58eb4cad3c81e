//! The soak: `spanfold serve` on loopback under mixed load for SOAK_SECS (default 600) —
//! honest agents at half the server's measured peak ingest (`spanfold-load --journal
//! --keep-going`), while attackers drip headers (slowloris), stall half-sent bodies on both
//! ports, flood it with idle connections and send decode bombs. Passes when every honest export
//! was acknowledged within its 10 s deadline or answered UNAVAILABLE / RESOURCE_EXHAUSTED, the
//! server's resident memory stayed under 400 MB (sampled every 250 ms, and its peak as the
//! kernel counts it), and after it every acknowledged span is in the log exactly once.
//!
//! `cargo bench --bench soak` (SOAK_SECS=60 for a short run). Loopback only; every attacker
//! stops at the deadline; prints one JSON object and exits non-zero on a failed check.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spanfold");
const LOAD: &str = env!("CARGO_BIN_EXE_spanfold-load");
const RSS_LIMIT_MB: u64 = 400;
const BATCH: u64 = 512;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A field of /proc/PID/status, in MB.
fn proc_mb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

struct Server {
    child: Child,
    http: SocketAddr,
    grpc: SocketAddr,
}

fn start(repo: &Path) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--manual",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let advert = repo.join(".git/spanfold/server.json");
    for _ in 0..200 {
        if let Some(v) = std::fs::read_to_string(&advert)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        {
            let http = v["http"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("http://");
            let grpc = v["grpc"].as_str().unwrap_or("");
            if let (Ok(http), Ok(grpc)) = (http.parse(), grpc.parse()) {
                return Server { child, http, grpc };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not advertise itself");
}

/// The server's peak ingest on this machine now (acknowledged spans/s, 4 connections).
fn peak(server: &Server) -> f64 {
    let out = run(Command::new(LOAD).args([
        "--endpoint",
        &server.grpc.to_string(),
        "--duration",
        "5",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("load summary");
    v["spans_per_second"].as_f64().expect("spans_per_second")
}

/// Runs `attack` in a loop on its own thread until `stop`.
fn attacker(
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
    attack: impl Fn() + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let (stop, count) = (Arc::clone(stop), Arc::clone(count));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            attack();
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// A request whose headers come one byte every second, for 20 s.
fn slowloris(addr: SocketAddr) {
    let Ok(mut conn) = TcpStream::connect(addr) else {
        return std::thread::sleep(Duration::from_millis(200));
    };
    for b in b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaa" {
        if conn.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A body that declares 20 MiB, sends all but a byte, and waits 20 s.
fn stalled_body(addr: SocketAddr) {
    let Ok(mut conn) = TcpStream::connect(addr) else {
        return std::thread::sleep(Duration::from_millis(200));
    };
    let size = 20 << 20;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {size}\r\n\r\n"
    );
    let _ = conn.set_write_timeout(Some(Duration::from_secs(20)));
    if conn.write_all(head.as_bytes()).is_ok() {
        let _ = conn.write_all(&vec![0x0a; size - 1]);
    }
    std::thread::sleep(Duration::from_secs(20));
}

/// A gRPC message that declares 4 MiB and stalls one byte short, for 20 s (through curl).
fn stalled_grpc(addr: SocketAddr) {
    let Ok(mut child) = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-X", "POST", "-T", "-"])
        .args(["-H", "content-type: application/grpc", "-o", "/dev/null"])
        .arg(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return std::thread::sleep(Duration::from_secs(1));
    };
    if let Some(mut stdin) = child.stdin.take() {
        let size = 4usize << 20;
        let mut message = vec![0u8];
        message.extend((size as u32).to_be_bytes());
        message.extend(vec![0x0a; size - 1]);
        let _ = stdin.write_all(&message);
        std::thread::sleep(Duration::from_secs(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// 200 connections that send nothing, held 40 s (the server closes them after 30 s).
fn idle_flood(addrs: [SocketAddr; 2]) {
    let held: Vec<TcpStream> = (0..200)
        .filter_map(|i| TcpStream::connect_timeout(&addrs[i % 2], Duration::from_secs(1)).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(40));
    drop(held);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// The two decode bombs, gzipped: 19 MB of empty OTLP/JSON spans, and 19 MB of empty
/// protobuf attributes.
fn bombs() -> [(Vec<u8>, &'static str); 2] {
    let spans = vec!["{}"; 6_300_000].join(",");
    let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let mut span = vec![0x0a, 16];
    span.extend([1u8; 16]);
    span.extend([0x12, 8]);
    span.extend([2u8; 8]);
    span.extend(std::iter::repeat_n([0x4a, 0x00], 9_500_000).flatten());
    let wrap = |tag: u8, inner: Vec<u8>| {
        let mut out = vec![tag];
        let mut n = inner.len() as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend(inner);
        out
    };
    let proto = wrap(0x0a, wrap(0x12, wrap(0x12, span)));
    [
        (gzip(json.as_bytes()), "application/json"),
        (gzip(&proto), "application/x-protobuf"),
    ]
}

/// POSTs a bomb; returns the status code.
fn bomb(addr: SocketAddr, body: &[u8], content_type: &str) -> u16 {
    let Ok(mut conn) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body).is_err() {
        return 0;
    }
    let mut answer = [0u8; 16];
    match conn.read(&mut answer) {
        Ok(n) if n >= 12 => std::str::from_utf8(&answer[9..12])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Every acknowledged export's spans, once each: request numbers from the journal, spans
/// counted in the log by (request, span id).
fn check_log(coord: &Path, journal: &Path) -> (u64, u64, u64) {
    let acked: std::collections::BTreeSet<u64> = std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("a "))
        .filter_map(|n| n.parse().ok())
        .collect();
    let mut stored: BTreeMap<u64, BTreeMap<[u8; 8], u32>> = BTreeMap::new();
    let mut log = spanfold::store::Log::open(coord, false).expect("the log opens");
    log.scan(|batch| {
        for ev in batch.events() {
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
    .expect("the log reads back");
    let twice = stored
        .values()
        .flat_map(|spans| spans.values())
        .filter(|&&c| c > 1)
        .count() as u64;
    let missing = acked
        .iter()
        .filter(|n| stored.get(n).map_or(0, BTreeMap::len) as u64 != BATCH)
        .count() as u64;
    (acked.len() as u64, twice, missing)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too; the soak is ten minutes of load and
    // runs only when asked for with `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: run it with `cargo bench --bench soak` (SOAK_SECS=N for a shorter run)");
        return;
    }
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    run(Command::new("git").args(["init", "-q"]).current_dir(&repo));
    run(Command::new(BIN)
        .args(["agents", "init"])
        .current_dir(&repo));
    let server = start(&repo);
    let pid = server.child.id();
    let peak = peak(&server);
    let rate = peak / 2.0;

    let journal = dir.path().join("journal");
    let honest = Command::new(LOAD)
        .args(["--endpoint", &server.grpc.to_string(), "--keep-going"])
        .args([
            "--rate",
            &format!("{rate:.0}"),
            "--batch",
            &BATCH.to_string(),
        ])
        .args([
            "--duration",
            &secs.to_string(),
            "--deadline",
            "10",
            "--journal",
        ])
        .arg(&journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the honest load starts");

    let stop = Arc::new(AtomicBool::new(false));
    let counts: BTreeMap<&str, Arc<AtomicU64>> = [
        "slowloris",
        "stalled_bodies",
        "stalled_grpc",
        "idle_floods",
        "bombs",
        "bombs_refused_413",
    ]
    .into_iter()
    .map(|k| (k, Arc::new(AtomicU64::new(0))))
    .collect();
    let (http, grpc) = (server.http, server.grpc);
    let mut threads = Vec::new();
    for _ in 0..20 {
        threads.push(attacker(&stop, &counts["slowloris"], move || {
            slowloris(http)
        }));
    }
    for _ in 0..6 {
        threads.push(attacker(&stop, &counts["stalled_bodies"], move || {
            stalled_body(http)
        }));
    }
    for _ in 0..12 {
        threads.push(attacker(&stop, &counts["stalled_grpc"], move || {
            stalled_grpc(grpc)
        }));
    }
    threads.push(attacker(&stop, &counts["idle_floods"], move || {
        idle_flood([http, grpc])
    }));
    let bombs = Arc::new(bombs());
    let refused = Arc::clone(&counts["bombs_refused_413"]);
    threads.push(attacker(&stop, &counts["bombs"], move || {
        for (body, content_type) in bombs.iter() {
            if bomb(http, body, content_type) == 413 {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }));

    // Resident memory, sampled until the honest load ends.
    let started = Instant::now();
    let mut max_rss = 0;
    let mut honest = honest;
    while honest.try_wait().ok().flatten().is_none()
        && started.elapsed() < Duration::from_secs(secs + 60)
    {
        max_rss = max_rss.max(proc_mb(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    let mut summary = String::new();
    if let Some(mut out) = honest.stdout.take() {
        let _ = out.read_to_string(&mut summary);
    }
    let _ = honest.wait();
    let peak_rss = proc_mb(pid, "VmHWM:");
    for t in threads {
        let _ = t.join();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut server = server;
    let _ = server.child.wait();
    let (acked, twice, missing) = check_log(&repo.join(".git/spanfold"), &journal);
    let honest: serde_json::Value = serde_json::from_str(summary.trim()).unwrap_or_default();
    let attacks: BTreeMap<&str, u64> = counts
        .iter()
        .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
        .collect();
    let late = honest["late"].as_u64().unwrap_or(u64::MAX);
    let failed = honest["failed"].as_u64().unwrap_or(u64::MAX);
    let passed = max_rss < RSS_LIMIT_MB
        && peak_rss < RSS_LIMIT_MB
        && late == 0
        && failed == 0
        && acked > 0
        && twice == 0
        && missing == 0;
    let report = serde_json::json!({
        "seconds": secs,
        "peak_spans_per_second": peak.round(),
        "offered_spans_per_second": rate.round(),
        "acknowledged_spans_per_second": (acked * BATCH) as f64 / secs as f64,
        "honest": honest,
        "attacks": attacks,
        "max_rss_mb_sampled": max_rss,
        "peak_rss_mb": peak_rss,
        "acknowledged_exports_checked": acked,
        "spans_stored_twice": twice,
        "acknowledged_exports_incomplete": missing,
        "passed": passed,
    });
    println!("{report}");
    if !passed {
        std::process::exit(1);
    }
}
