//! Load generator: pre-encoded OTLP export batches over gRPC, on N concurrent connections, for a
//! bounded time, to a loopback receiver. Reports acknowledged spans/s and latency percentiles.
//!
//! Every request gets fresh trace ids (written into the pre-encoded bytes), so a de-duplicating
//! receiver really stores every span. Usage: `spanfold-load --help`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
mod templates;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spanfold::otlp::grpc::RawCodec;
use templates::{Signal, log_template, marker_offsets, registrations, template};

#[derive(Parser, Debug)]
#[command(
    name = "spanfold-load",
    about = "Drive an OTLP/gRPC receiver on loopback with pre-encoded batches"
)]
struct Args {
    /// Receiver address (host:port). Only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:4317")]
    endpoint: String,
    /// What the exports carry: spans (`agent.work_progress`), or log records shaped as Claude
    /// Code's `api_request` events (to the LogsService). Rates and counts are then of records.
    #[arg(long, value_enum, default_value = "traces")]
    signal: Signal,
    /// Concurrent connections, each with one export in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Spans per export.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Seconds to send for (after a one-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Distinct agents the spans come from.
    #[arg(long, default_value_t = 8)]
    agents: usize,
    /// Register the agents first (so progress reports are applied, not anomalies).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    register: bool,
    /// Bearer token, if the receiver wants one.
    #[arg(long, env = "SPANFOLD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Offered load in spans per second over all connections (exports sent on a fixed
    /// schedule); without it every connection sends its next export as soon as the last is
    /// answered. With a rate, latency counts from when an export was due, so a receiver that
    /// falls behind its schedule is not flattered (no coordinated omission).
    #[arg(long, value_name = "SPANS_PER_SECOND")]
    rate: Option<f64>,
    /// With --offline: stop after this many spans instead of after --duration.
    #[arg(long, value_name = "N", requires = "offline")]
    spans: Option<u64>,
    /// Linux: the receiver's process id, to report the CPU time it used during the measured
    /// window and its peak resident memory.
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Peer measurement instead of load: append the same batches straight into a fresh log in
    /// this directory (no network, no decoding, no validation) — the store's ceiling.
    #[arg(long, value_name = "DIR")]
    offline: Option<std::path::PathBuf>,
    /// Crash-test mode: journal every export to FILE before sending it (`s N`) and after it is
    /// acknowledged (`a N`), N being the request number in the first 8 bytes of its trace ids.
    /// Exports journalled as sent but never acknowledged are sent again first, as a retrying
    /// exporter would. A connection stops at its first failure; the run ends when all have
    /// stopped or --duration has passed, and prints a JSON summary.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["offline", "watch_pid"])]
    journal: Option<std::path::PathBuf>,
    /// Soak mode, with --journal: an export answered UNAVAILABLE or RESOURCE_EXHAUSTED, or
    /// not answered within --deadline, is counted and sent again after a pause, as a retrying
    /// exporter would, instead of stopping its connection; the summary says how many of each.
    #[arg(long, requires = "journal")]
    keep_going: bool,
    /// Soak mode: seconds an export may take before it counts as late.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    deadline: f64,
}

/// What a soak's exports met besides acknowledgements.
#[derive(Default)]
struct Setbacks {
    /// Answers a retrying exporter expects under load, by code.
    refused: std::collections::BTreeMap<String, u64>,
    /// Exports not answered within the deadline.
    late: u64,
    /// Any other failure, with the first few messages.
    failed: u64,
    first_failures: Vec<String>,
}

impl Setbacks {
    /// One export that did not go through: late (no answer by the deadline), refused (come back
    /// later) or failed.
    fn count(&mut self, outcome: Result<Result<(), tonic::Status>, tokio::time::error::Elapsed>) {
        match outcome {
            Err(_) => self.late += 1,
            Ok(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                ) =>
            {
                *self
                    .refused
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
            Ok(Err(status)) => {
                self.failed += 1;
                if self.first_failures.len() < 5 {
                    self.first_failures.push(status.to_string());
                }
            }
            Ok(Ok(())) => {}
        }
    }
}

async fn connect(endpoint: &str) -> Result<tonic::client::Grpc<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    Ok(tonic::client::Grpc::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

async fn export(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    body: Vec<u8>,
    token: Option<&str>,
    signal: Signal,
) -> Result<(), tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(body);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        request.metadata_mut().insert("authorization", v);
    }
    let answer = grpc
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(signal.path()),
            RawCodec,
        )
        .await?
        .into_inner();
    // The three signals' answers are the same message on the wire.
    let response = ExportTraceServiceResponse::decode(&answer[..])
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    match response.partial_success {
        Some(p) if p.rejected_spans > 0 => Err(tonic::Status::invalid_argument(p.error_message)),
        _ => Ok(()),
    }
}

/// The store alone: one append and flush per batch, as the server's writer does per group.
fn offline(args: &Args, dir: &std::path::Path) -> Result<()> {
    let mut log = spanfold::store::Log::open(dir, true)?;
    if args.register {
        log.append(
            spanfold::otlp::from_proto(registrations(args.agents)).resource_spans,
            spanfold::emit::now(),
        )?;
    }
    let template = spanfold::otlp::from_proto(template(args.batch, args.agents)).resource_spans;
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut latencies = Vec::new();
    let done = |n: u64| match args.spans {
        Some(limit) => n * args.batch as u64 >= limit,
        None => started.elapsed().as_secs_f64() >= args.duration,
    };
    while !done(n) {
        let mut batch = template.clone();
        for span in batch
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
            .flat_map(|ss| ss.spans.iter_mut())
        {
            span.trace_id[..8].copy_from_slice(&n.to_be_bytes());
        }
        n += 1;
        let t = Instant::now();
        log.append(batch, spanfold::emit::now())?;
        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = Report::new(
        format!("offline:{}", dir.display()),
        1,
        args.batch,
        seconds,
        n,
        latencies,
        0,
    );
    print_report(&report, args.json)
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!(
            "{} spans/s acknowledged ({} exports of {} spans in {:.1}s, {} connections); latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors",
            report.spans_per_second.round(),
            report.exports,
            report.batch,
            report.seconds,
            report.concurrency,
            report.latency_ms_p50,
            report.latency_ms_p90,
            report.latency_ms_p99,
            report.latency_ms_max,
            report.errors
        );
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Report {
    endpoint: String,
    concurrency: usize,
    batch: usize,
    seconds: f64,
    exports: u64,
    spans_acknowledged: u64,
    spans_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p90: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    errors: u64,
    /// CPU seconds the receiver (--watch-pid) used during the measured window.
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver_cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver_cpu_seconds_per_million_spans: Option<f64>,
    /// The receiver's peak resident memory (VmHWM) when the window closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver_peak_rss_mb: Option<f64>,
}

/// User plus system CPU time of a process, all its threads (Linux, 100 ticks per second).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields that follow start after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of a process in MiB (VmHWM).
fn process_peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Report {
    /// Adds what the receiver used (CPU seconds in the window, peak memory).
    fn with_receiver(mut self, cpu_seconds: Option<f64>, peak_rss_mb: Option<f64>) -> Report {
        self.receiver_cpu_seconds = cpu_seconds;
        self.receiver_cpu_seconds_per_million_spans = cpu_seconds
            .filter(|_| self.spans_acknowledged > 0)
            .map(|c| c / (self.spans_acknowledged as f64 / 1e6));
        self.receiver_peak_rss_mb = peak_rss_mb;
        self
    }

    /// Throughput and latency percentiles from per-export latencies in microseconds.
    fn new(
        endpoint: String,
        concurrency: usize,
        batch: usize,
        seconds: f64,
        exports: u64,
        mut latencies: Vec<u32>,
        errors: u64,
    ) -> Report {
        latencies.sort_unstable();
        let spans = exports * batch as u64;
        Report {
            endpoint,
            concurrency,
            batch,
            seconds,
            exports,
            spans_acknowledged: spans,
            spans_per_second: spans as f64 / seconds,
            latency_ms_p50: percentile(&latencies, 0.50),
            latency_ms_p90: percentile(&latencies, 0.90),
            latency_ms_p99: percentile(&latencies, 0.99),
            latency_ms_max: percentile(&latencies, 1.0),
            errors,
            receiver_cpu_seconds: None,
            receiver_cpu_seconds_per_million_spans: None,
            receiver_peak_rss_mb: None,
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let addr: std::net::SocketAddr = args
        .endpoint
        .parse()
        .with_context(|| format!("--endpoint {} is not host:port", args.endpoint))?;
    if !addr.ip().is_loopback() {
        bail!("--endpoint must be a loopback address: load is only ever sent to this machine");
    }
    if args.batch == 0 || args.batch > 65_535 || args.concurrency == 0 {
        bail!("--batch must be 1..65535 and --concurrency at least 1");
    }
    if args.signal != Signal::Traces && (args.offline.is_some() || args.journal.is_some()) {
        bail!("--offline and --journal send spans only; leave out --signal logs");
    }
    if let Some(dir) = &args.offline {
        return offline(&args, dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match args.journal.clone() {
        Some(file) => runtime.block_on(journalled(args, file)),
        None => runtime.block_on(run(args)),
    }
}

/// Exports journalled as sent (`s N`) and never acknowledged (`a N`), by request number.
fn unacknowledged(file: &std::path::Path) -> Result<Vec<u64>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let mut sent = std::collections::BTreeSet::new();
    for line in text.lines() {
        // Every line is written whole by one write; one that does not parse is skipped.
        match line.split_once(' ').map(|(tag, n)| (tag, n.parse::<u64>())) {
            Some(("s", Ok(n))) => {
                sent.insert(n);
            }
            Some(("a", Ok(n))) => {
                sent.remove(&n);
            }
            _ => {}
        }
    }
    Ok(sent.into_iter().collect())
}

/// The journal: "s N" before export N is sent, "a N" once it is acknowledged.
struct Journal(std::sync::Mutex<std::fs::File>);

impl Journal {
    fn open(file: &std::path::Path) -> Result<Journal> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("opening {}", file.display()))?;
        Ok(Journal(std::sync::Mutex::new(f)))
    }

    /// One write per line, unbuffered: a line in the file is a fact this process already knew.
    fn note(&self, tag: &str, n: u64) -> Result<()> {
        use std::io::Write;
        let mut f = self.0.lock().map_err(|_| anyhow::anyhow!("journal lock"))?;
        f.write_all(format!("{tag} {n}\n").as_bytes())
            .context("writing the journal")
    }
}

/// The crash-test load: every export journalled before it is sent and after it is acknowledged,
/// unacknowledged ones from earlier runs sent again first.
async fn journalled(args: Args, file: std::path::PathBuf) -> Result<()> {
    let pending = unacknowledged(&file)?;
    let resent = pending.len();
    let journal = Arc::new(Journal::open(&file)?);
    let token = args.token.clone();
    register(&args).await?;
    let encoded = template(args.batch, args.agents).encode_to_vec();
    let offsets = marker_offsets(&encoded);
    anyhow::ensure!(
        offsets.len() == args.batch,
        "trace id markers not found in the encoded batch"
    );
    let body_for = move |n: u64| {
        let mut body = encoded.clone();
        for &o in &offsets {
            body[o..o + 8].copy_from_slice(&n.to_be_bytes());
        }
        body
    };
    let queue = Arc::new(std::sync::Mutex::new(pending));
    let counter = Arc::new(AtomicU64::new(request_base()));
    // Counted as they happen: at the deadline most connections are still sending, and what
    // they had acknowledged by then counts as much as what a finished one did.
    let acked = Arc::new(AtomicU64::new(0));
    let setbacks = Arc::new(std::sync::Mutex::new(Setbacks::default()));
    let (keep_going, deadline_per) = (args.keep_going, Duration::from_secs_f64(args.deadline));
    let period = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.concurrency as f64 * args.batch as f64 / rate));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let mut grpc = connect(&args.endpoint).await?;
        let (queue, counter, acked, setbacks, journal, token, body_for) = (
            Arc::clone(&queue),
            Arc::clone(&counter),
            Arc::clone(&acked),
            Arc::clone(&setbacks),
            Arc::clone(&journal),
            token.clone(),
            body_for.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let retry = queue.lock().ok().and_then(|mut q| q.pop());
                let n = match retry {
                    Some(n) => n,
                    None => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        journal.note("s", n)?;
                        n
                    }
                };
                let sent = export(&mut grpc, body_for(n), token.as_deref(), Signal::Traces);
                let outcome = if keep_going {
                    tokio::time::timeout(deadline_per, sent).await
                } else {
                    Ok(sent.await)
                };
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) if !keep_going => return Ok::<(), anyhow::Error>(()),
                    failure => {
                        if let Ok(mut s) = setbacks.lock() {
                            s.count(failure);
                        }
                        // Sent again after a pause, as a retrying exporter would.
                        if let Ok(mut q) = queue.lock() {
                            q.push(n);
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                journal.note("a", n)?;
                acked.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = period {
                    tokio::time::sleep(p).await;
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.duration);
    stop_at(deadline, tasks).await?;
    let acked = acked.load(Ordering::Relaxed);
    let mut summary =
        serde_json::json!({ "exports_acknowledged": acked, "resent": resent, "batch": args.batch });
    if keep_going && let Ok(s) = setbacks.lock() {
        summary["refused"] = serde_json::json!(s.refused);
        summary["late"] = serde_json::json!(s.late);
        summary["failed"] = serde_json::json!(s.failed);
        summary["first_failures"] = serde_json::json!(s.first_failures);
    }
    println!("{summary}");
    Ok(())
}

/// Waits for the connections until `deadline`, then stops those still sending; what they
/// acknowledged by then is already counted.
async fn stop_at(
    deadline: tokio::time::Instant,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
) -> Result<()> {
    let mut tasks = tasks.into_iter();
    let mut running = Vec::new();
    for mut t in tasks.by_ref() {
        match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(joined) => joined??,
            Err(_) => {
                running.push(t);
                break;
            }
        }
    }
    running.extend(tasks);
    for t in running {
        // Stopped at its next await: none is between its journal line and its count.
        t.abort();
        let _ = t.await;
    }
    Ok(())
}

/// Request numbers unique across connections and runs of this process.
fn request_base() -> u64 {
    (std::process::id() as u64) << 40
        | (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            & 0xff_ffff)
            << 16
}

/// Registers the load's agents first (unless told not to), so that their reports are applied.
async fn register(args: &Args) -> Result<()> {
    if args.register {
        let mut grpc = connect(&args.endpoint).await?;
        export(
            &mut grpc,
            registrations(args.agents).encode_to_vec(),
            args.token.as_deref(),
            Signal::Traces,
        )
        .await
        .map_err(|e| anyhow::anyhow!("registering the load agents: {e}"))?;
    }
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let token = args.token.clone();
    register(&args).await?;
    let encoded = match args.signal {
        Signal::Traces => template(args.batch, args.agents).encode_to_vec(),
        Signal::Logs => log_template(args.batch, args.agents).encode_to_vec(),
    };
    let signal = args.signal;
    let offsets = Arc::new(marker_offsets(&encoded));
    anyhow::ensure!(
        offsets.len() == args.batch,
        "trace id markers not found in the encoded batch"
    );
    let encoded = Arc::new(encoded);
    let counter = Arc::new(AtomicU64::new(request_base()));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // With a rate, connection i sends at start + (i / concurrency + k) * period.
    let period = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.concurrency as f64 * args.batch as f64 / rate));
    let schedule_start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..args.concurrency {
        let mut grpc = connect(&args.endpoint).await?;
        let (encoded, offsets, counter, measuring, stop, token) = (
            Arc::clone(&encoded),
            Arc::clone(&offsets),
            Arc::clone(&counter),
            Arc::clone(&measuring),
            Arc::clone(&stop),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let (mut exports, mut errors) = (0u64, 0u64);
            let mut due = period
                .map(|p| schedule_start + p.mul_f64(connection as f64 / args.concurrency as f64));
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut body = encoded.as_ref().clone();
                for &o in offsets.iter() {
                    body[o..o + 8].copy_from_slice(&n.to_be_bytes());
                }
                let started = match (due, period) {
                    (Some(at), Some(p)) => {
                        tokio::time::sleep_until(at).await;
                        due = Some(at + p);
                        at.into_std()
                    }
                    _ => Instant::now(),
                };
                let result = export(&mut grpc, body, token.as_deref(), signal).await;
                if measuring.load(Ordering::Relaxed) {
                    match result {
                        Ok(()) => {
                            exports += 1;
                            latencies
                                .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            (latencies, exports, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = args.watch_pid.and_then(process_cpu_seconds);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu_after = args.watch_pid.and_then(process_cpu_seconds);
    let peak_rss = args.watch_pid.and_then(process_peak_rss_mb);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut exports, mut errors) = (0, 0);
    for t in tasks {
        let (l, e, r) = t.await?;
        latencies.extend(l);
        exports += e;
        errors += r;
    }
    let report = Report::new(
        args.endpoint.clone(),
        args.concurrency,
        args.batch,
        seconds,
        exports,
        latencies,
        errors,
    )
    .with_receiver(cpu_after.zip(cpu_before).map(|(a, b)| a - b), peak_rss);
    print_report(&report, args.json)
}
