//! Resource exhaustion, rows of TESTING.md's catalogue, against a real `spanfold serve` on
//! loopback: clients that send bodies that explode when decoded, stall half-sent bodies, drip
//! headers, or abuse gRPC's framing get a clear refusal, the server's memory stays bounded (its
//! peak resident size, read from /proc, not its timing), and honest clients are still served.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::otlp::{kv, request, s, span};
use common::wire::{JSON, PROTOBUF, frame, grpc_raw, gzip, post, post_proto};
use common::{Sandbox, Served};
use prost::Message;

const MIB: u64 = 1024 * 1024;

fn initialised() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "honest"]);
    sb
}

/// A line of the server's /proc status, in MiB (VmHWM: the peak resident size so far).
fn proc_mib(served: &Served, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.pid()))
        .expect("the server's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a size in kB");
    kib / 1024
}

/// An export of one span with `n` empty attributes (two bytes each on the wire).
fn empty_attributes(n: usize) -> Vec<u8> {
    let mut one = span(0x31, "tool.call", vec![]).encode_to_vec();
    one.extend(std::iter::repeat_n([0x4a, 0x00], n).flatten());
    let wrap = |tag: u8, inner: Vec<u8>| {
        let mut out = vec![tag];
        prost::encoding::encode_varint(inner.len() as u64, &mut out);
        out.extend(inner);
        out
    };
    wrap(0x0a, wrap(0x12, wrap(0x12, one)))
}

/// The honest agent's span is taken while the attack goes on.
fn honest_is_served(served: &Served) {
    let (code, body) = served.agent_span("honest", "tool.call", &[]);
    assert_eq!(code, 200, "{body}");
}

/// The budget for bodies in flight that no body holds now.
fn budget_free(served: &Served) -> u64 {
    served.metric("spanfold_body_budget_free_bytes")
}

/// Waits (bounded) until every body's share of the budget is given back.
fn budget_all_free(served: &Served) {
    let full = spanfold::inflight::BODY_BUDGET as u64;
    for _ in 0..100 {
        if budget_free(served) == full {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the budget was not given back: {} free",
        budget_free(served)
    );
}

#[test]
fn decode_bombs_are_refused_in_a_small_multiple_of_their_size() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // 19 MB of empty spans, 20 KB gzipped: parsed whole, 2.7 GB.
    let spans = vec!["{}"; 6_300_000].join(",");
    let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let (code, body) = post(
        &sb,
        &served,
        &gzip(json.as_bytes()),
        &[JSON, "Content-Encoding: gzip"],
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("smaller batches"), "{body}");
    // 19 MB of empty attributes in one span: decoded whole, 1.5 GB.
    let (code, _, message) = post_proto(&sb, &served, &empty_attributes(9_500_000));
    assert_eq!(code, 413, "{message}");
    assert!(message.contains("attributes"), "{message}");
    // The same over gRPC, in a 4 MiB message.
    let bomb = empty_attributes(2_000_000);
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(false, bomb.len(), &bomb),
        &[],
    );
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    let peak = proc_mib(&served, "VmHWM:");
    assert!(peak < 300, "the server's memory peaked at {peak} MiB");
    honest_is_served(&served);
}

/// An HTTP/1.1 export that declares `declared` bytes and sends `sent` of them, then waits.
/// Returns the connection (kept open) and the status line if the server answered at once.
fn stalled_http(addr: SocketAddr, declared: usize, sent: usize) -> (TcpStream, Option<String>) {
    let mut conn = TcpStream::connect(addr).expect("connects");
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {declared}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).expect("headers");
    // A refused body is not read: the write stops when the server closes or stops reading.
    let _ = conn.write_all(&vec![0x0a; sent]);
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut answer = [0u8; 512];
    let status = match conn.read(&mut answer) {
        Ok(n) if n > 0 => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        _ => None,
    };
    (conn, status)
}

#[test]
fn stalled_bodies_cannot_pin_memory_and_give_their_share_back() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let addr: SocketAddr = served
        .http
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let size = 20 * MIB as usize;
    let attackers: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || stalled_http(addr, size, size - 1)))
        .map(|t| t.join().expect("attacker"))
        .collect();
    let refused: Vec<&String> = attackers.iter().filter_map(|(_, s)| s.as_ref()).collect();
    assert!(
        refused.len() >= 12,
        "bodies beyond the budget are refused at once; {} were",
        refused.len()
    );
    assert_eq!(
        served.metric("spanfold_bodies_over_budget_total"),
        refused.len() as u64
    );
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("retry-after: 1"),
            "{answer}"
        );
    }
    honest_is_served(&served);
    let peak = proc_mib(&served, "VmHWM:");
    assert!(peak < 250, "the server's memory peaked at {peak} MiB");
    assert!(budget_free(&served) < spanfold::inflight::BODY_BUDGET as u64 / 2);
    drop(attackers);
    budget_all_free(&served);
    honest_is_served(&served);
}

/// A gRPC Export through curl that declares a message of `declared` bytes and sends `sent` of
/// them. curl streams its standard input: the stream stays open until the returned writer's
/// pipe is closed (the curl then answers with the status it got).
fn stalled_grpc(
    served: &Served,
    declared: usize,
    sent: usize,
) -> (Child, std::thread::JoinHandle<std::process::ChildStdin>) {
    let mut child = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-X", "POST", "-T", "-"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-o", "/dev/null", "-D", "-"])
        .arg(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            served.grpc
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut message = frame(false, declared, &[]);
    message.extend(vec![0x0a; sent]);
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
        stdin
    });
    (child, writer)
}

#[test]
fn stalled_grpc_messages_are_bounded_by_the_same_budget() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let size = 4 * MIB as usize;
    let (children, writers): (Vec<Child>, Vec<_>) = (0..48)
        .map(|_| stalled_grpc(&served, size, size - 1))
        .unzip();
    let pipes: Vec<_> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    // Every message is sent but its last byte, and waits.
    for _ in 0..100 {
        if budget_free(&served) < size as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(budget_free(&served) < size as u64, "the budget is taken");
    honest_is_served(&served);
    let peak = proc_mib(&served, "VmHWM:");
    assert!(peak < 250, "the server's memory peaked at {peak} MiB");
    // The streams end: the ones the budget held see their message cut short, the others were
    // answered RESOURCE_EXHAUSTED (with a delay to retry after) as soon as they passed it.
    drop(pipes);
    let answers: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("curl ends");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    // (A curl whose stream the server reset after its answer says nothing.)
    for answer in answers.iter().filter(|a| !a.is_empty()) {
        let exhausted =
            answer.contains("grpc-status: 8") && answer.contains("grpc-status-details-bin");
        assert!(exhausted || answer.contains("grpc-status: 3"), "{answer}");
    }
    let refused = served.metric("spanfold_bodies_over_budget_total");
    assert!(refused >= 30, "{refused} of 48 refused");
    budget_all_free(&served);
    honest_is_served(&served);
}

#[test]
fn headers_dripped_a_byte_at_a_time_are_cut_off() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let addr: SocketAddr = served
        .http
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut conn = TcpStream::connect(addr).expect("connects");
    conn.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    // Far slower than the idle timeout allows for in total, never idle long enough for it.
    let drip =
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = false;
    for byte in drip {
        if conn.write_all(&[*byte]).is_err() {
            cut_off = true;
            break;
        }
        let mut buf = [0u8; 256];
        match conn.read(&mut buf) {
            Ok(0) => {
                cut_off = true;
                break;
            }
            Ok(_) => {
                cut_off = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "a request whose headers never end is still open");
    honest_is_served(&served);
}

#[test]
fn grpc_framing_abuse_gets_the_codes_grpc_gives() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = request(vec![span(
        0x41,
        "tool.call",
        vec![kv("agent.id", s("honest"))],
    )])
    .encode_to_vec();
    let one = frame(false, good.len(), &good);
    let events = || sb.status()["counters"]["events"].as_u64().expect("events");
    let before = events();
    // Two messages on a unary call: refused, not half taken.
    let mut two = one.clone();
    two.extend(frame(false, good.len(), &good));
    let (status, message) = grpc_raw(&served, sb.tmp.path(), &two, &[]);
    assert_eq!(status, "12", "UNIMPLEMENTED: {message}");
    assert!(message.contains("exactly one"), "{message}");
    // A call whose deadline passes while its message is still arriving: DEADLINE_EXCEEDED.
    let mut call = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-T",
            "-",
            "-o",
            "/dev/null",
        ])
        .args(["-D", "-", "-H", "content-type: application/grpc"])
        .args(["-H", "te: trailers", "-H", "grpc-timeout: 100m"])
        .arg(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            served.grpc
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut stdin = call.stdin.take().expect("stdin");
    stdin
        .write_all(&one[..one.len() / 2])
        .expect("half a message");
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let answer = call.wait_with_output().expect("curl ends");
    let answer = String::from_utf8_lossy(&answer.stdout);
    assert!(
        answer.contains("grpc-status: 4"),
        "DEADLINE_EXCEEDED: {answer}"
    );
    // A compressed flag without grpc-encoding: INTERNAL, as gRPC's protocol says.
    let (status, message) = grpc_raw(&served, sb.tmp.path(), &frame(true, good.len(), &good), &[]);
    assert_eq!(status, "13", "{message}");
    assert!(message.contains("grpc-encoding"), "{message}");
    // None of them stored a span; the one good call does.
    assert_eq!(events(), before);
    let (status, message) = grpc_raw(&served, sb.tmp.path(), &one, &[]);
    assert_eq!(status, "0", "{message}");
    assert_eq!(events(), before + 1);
    let (code, body) = post(&sb, &served, &good, &[PROTOBUF]);
    assert_eq!(code, 200, "a duplicate is acknowledged: {body}");
    assert_eq!(events(), before + 1);
}
