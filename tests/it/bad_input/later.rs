//! Bad input that reaches further: text meant for a terminal, repeated keys, traces whose time
//! goes backwards, tokens and impossible progress, connections that never close, failing cycles.

use super::*;

/// What an agent sends never reaches the operator's terminal as control codes: capability
/// names over OTLP follow the CLI's rule, a tracked list is bounded in total, and text from the
/// log (a message, a reason) is printed with its control characters written out.
#[test]
fn span_text_cannot_inject_into_the_terminal_or_bypass_the_tracked_limit() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let served = sb.serve(&["--manual"]);
    let post = |name: &str, attrs: Vec<serde_json::Value>| {
        let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": format!("{:016x}", attrs.len() as u64 + name.len() as u64 * 31),
            "name": name, "kind": 1,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": attrs,
        }]}]}]});
        post(
            &sb,
            &served,
            body.to_string().as_bytes(),
            &["Content-Type: application/json"],
        )
    };
    let text = |v: &str| serde_json::json!({"stringValue": v});
    let array = |items: Vec<String>| {
        serde_json::json!({"arrayValue": {"values":
        items.into_iter().map(|i| serde_json::json!({"stringValue": i})).collect::<Vec<_>>()}})
    };
    // A capability with an escape sequence: refused, as the CLI refuses it.
    let (code, body) = post(
        "agent.registration",
        vec![
            serde_json::json!({"key": "agent.id", "value": text("evil")}),
            serde_json::json!({"key": "agent.languages", "value": array(vec!["rust\u{1b}]0;pwned\u{7}".into()])}),
        ],
    );
    assert_eq!(code, 200);
    assert!(body.contains("control character"), "{body}");
    // 40 KiB twice in one tracked list: over the 64 KiB kept per attribute, refused.
    let (code, body) = post(
        "feature.request",
        vec![
            serde_json::json!({"key": "feature.name", "value": text("big")}),
            serde_json::json!({"key": "feature.requirements", "value": array(vec!["r".repeat(40 << 10), "q".repeat(40 << 10)])}),
        ],
    );
    assert_eq!(code, 200);
    assert!(body.contains("in its items"), "{body}");
    // A message with escape codes and a forged line is shown, written out, on one line.
    let (code, _) = served.agent_span(
        "a1",
        "agent.communication",
        &[(
            "communication.message",
            "\u{1b}[2J\u{1b}]0;owned\u{7}hi\nFAKE  working",
        )],
    );
    assert_eq!(code, 200);
    let status = sb.status();
    assert_eq!(
        status["agents"].as_array().map(Vec::len),
        Some(1),
        "evil was refused"
    );
    let out = sb.run(&["agents", "agent-status", "--details"]);
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'),
        "{:?}",
        out.stdout
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("FAKE")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\\u{1b}[2J"),
        "written out: {}",
        out.stdout
    );
}

/// A repeated attribute key is refused with that span (readers disagreed on which one wins);
/// the rest of the export is kept.
#[test]
fn a_repeated_attribute_key_refuses_its_span() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "register-agent", "a2"]);
    let served = sb.serve(&["--manual"]);
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000a1",
         "name": "agent.work_progress", "kind": 1, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [
            {"key": "agent.id", "value": {"stringValue": "a1"}},
            {"key": "agent.state", "value": {"stringValue": "error"}},
            {"key": "agent.id", "value": {"stringValue": "a2"}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000a2",
         "name": "tool.call", "kind": 1, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [{"key": "agent.id", "value": {"stringValue": "a2"}}]}
    ]}]}]});
    let (code, answer) = post(
        &sb,
        &served,
        body.to_string().as_bytes(),
        &["Content-Type: application/json"],
    );
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("agent.id appears more than once"),
        "{answer}"
    );
    let status = sb.status();
    for a in status["agents"].as_array().expect("agents") {
        assert_ne!(a["state"], "error", "the refused span moved no one: {a}");
    }
    assert_eq!(
        status["counters"]["unregistered_spans"], 1,
        "the other span was kept"
    );
}

/// A recorded trace whose receive times go backwards is replayed with time moving forward
/// only, and the replay says it had to.
#[test]
fn a_trace_whose_time_goes_backwards_is_replayed_forwards_and_said() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let export = sb.tmp.path().join("log.jsonl");
    sb.ok(&["export", "--output", export.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(&export).expect("export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 2, "{text}");
    // The last line says it arrived at 1 ns past 1970, before everything else.
    let last = lines.pop().expect("a line");
    let at = last.find("\"receivedAt\":\"").expect("a receive time") + "\"receivedAt\":\"".len();
    let end = at + last[at..].find('"').expect("closing quote");
    lines.push(format!("{}1{}", &last[..at], &last[end..]));
    std::fs::write(&export, lines.join("\n") + "\n").expect("write");

    let kept = sb.tmp.path().join("kept");
    let run = sb.run(&[
        "--json",
        "replay",
        export.to_str().expect("utf-8"),
        "--keep",
        kept.to_str().expect("utf-8"),
    ]);
    let doc = run.json();
    assert_eq!(doc["success"], true, "{}", run.stdout);
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("earlier than the line before"),
        "{doc}"
    );
    assert_eq!(doc["metadata"]["replay"]["times_raised"], 1);
    let again = sb.tmp.path().join("again.jsonl");
    sb.ok(&[
        "--coord-dir",
        kept.to_str().expect("utf-8"),
        "export",
        "--output",
        again.to_str().expect("utf-8"),
    ]);
    let times: Vec<u64> = std::fs::read_to_string(&again)
        .expect("export")
        .lines()
        .filter_map(|l| {
            let at = l.find("\"receivedAt\":\"")? + "\"receivedAt\":\"".len();
            l[at..].split('"').next()?.parse().ok()
        })
        .collect();
    assert_eq!(times.len(), lines.len());
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "monotonic: {times:?}"
    );
}

/// Smaller things the probe found: an empty token, the scheme's case, a gzip body of two
/// members, progress that is no percentage.
#[test]
fn tokens_gzip_members_and_impossible_progress() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let empty = sb.run(&[
        "serve",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--token",
        "",
    ]);
    assert_ne!(empty.code, 0);
    assert!(
        empty
            .stderr
            .contains("--token (or SPANFOLD_TOKEN) is empty"),
        "{}",
        empty.stderr
    );

    let served = sb.serve(&["--manual", "--token", "s3cret"]);
    let (code, _) = curl(
        &served.http,
        "GET",
        "/api/status",
        None,
        None,
        &["Authorization: BEARER s3cret"],
    );
    assert_eq!(code, 200, "the scheme is case-insensitive");

    // One OTLP/JSON body in two gzip members: both are read.
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000b1",
         "name": "tool.call", "kind": 1, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [{"key": "agent.id", "value": {"stringValue": "a1"}}]}]}]}]})
    .to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut gz = Vec::new();
    for part in [first, second] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, part.as_bytes()).expect("gzip");
        gz.extend(e.finish().expect("gzip"));
    }
    let file = sb.tmp.path().join("two-members.gz");
    std::fs::write(&file, gz).expect("write");
    let (code, answer) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        Some("s3cret"),
        Some(&file),
        &["Content-Type: application/json", "Content-Encoding: gzip"],
    );
    assert_eq!(code, 200, "{answer}");

    // Progress that is no percentage, a negative count: anomalies, nothing moves.
    for (n, (key, value)) in [
        (
            "work.progress_percentage",
            serde_json::json!({"doubleValue": "NaN"}),
        ),
        (
            "work.progress_percentage",
            serde_json::json!({"doubleValue": -5.0}),
        ),
        (
            "work.progress_percentage",
            serde_json::json!({"doubleValue": 1e308}),
        ),
        ("work.files_modified", serde_json::json!({"intValue": "-3"})),
    ]
    .into_iter()
    .enumerate()
    {
        let attrs = [
            serde_json::json!({"key": "agent.state", "value": {"stringValue": "idle"}}),
            serde_json::json!({"key": key, "value": value}),
        ];
        let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "agent.id", "value": {"stringValue": "a1"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319d",
            "spanId": format!("{:016x}", 0xc0 + n),
            "name": "agent.work_progress", "kind": 1,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "attributes": attrs,
        }]}]}]});
        let (code, _) = post(
            &sb,
            &served,
            body.to_string().as_bytes(),
            &[
                "Content-Type: application/json",
                "Authorization: Bearer s3cret",
            ],
        );
        assert_eq!(code, 200);
    }
    let (_, status) = curl(
        &served.http,
        "GET",
        "/api/status",
        Some("s3cret"),
        None,
        &[],
    );
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    let reasons: Vec<&str> = status["data"]["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].contains("from 0 to 100") && reasons[3].contains("0 or more"),
        "{reasons:?}"
    );
    assert!(
        status["data"]["agents"][0]
            .get("progress_percentage")
            .is_none()
    );
    assert_eq!(
        status["data"]["counters"]["unregistered_spans"], 1,
        "the two-member body's span"
    );
}

/// SIGTERM ends the server even when clients keep connections open (an idle TCP connection to
/// each port, a request whose body never comes): after the grace period it closes them, the
/// writer finishes, the advert is removed and the process exits.
#[test]
fn sigterm_ends_the_server_whatever_connections_stay_open() {
    use std::io::Write as _;
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual"]);
    let advert = sb.repo.join(".git/spanfold/server.json");
    let http = served.http.trim_start_matches("http://").to_owned();
    let _idle_grpc = std::net::TcpStream::connect(&served.grpc).expect("connect");
    let _idle_http = std::net::TcpStream::connect(&http).expect("connect");
    let mut stalled = std::net::TcpStream::connect(&http).expect("connect");
    stalled
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n0123456789")
        .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = served.pid();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    // Bounded patience for the test only: the grace period is 10 s.
    let status = served.wait_exit(60);
    assert!(status.success(), "{status}");
    assert!(!advert.exists(), "the advert is removed");
}

/// Replay streams its input and bounds what it reads at once: a device, a large sparse file and
/// an endless line are refused with what they are not, without reading them whole.
#[test]
fn replay_refuses_what_is_no_trace_without_reading_it_whole() {
    let sb = Sandbox::new("main");
    let sparse = sb.tmp.path().join("sparse.bin");
    std::fs::File::create(&sparse)
        .and_then(|f| f.set_len(1 << 30))
        .expect("a 1 GiB sparse file");
    let long_line = sb.tmp.path().join("long.jsonl");
    let mut text = String::from("{\"resourceSpans\": [], \"x\": \"");
    text.push_str(&"a".repeat(21 << 20));
    text.push_str("\"}\n");
    std::fs::write(&long_line, text).expect("write");
    for (input, says) in [
        ("/dev/zero", "larger than 64 MiB"),
        (sparse.to_str().expect("utf-8"), "larger than 64 MiB"),
        (long_line.to_str().expect("utf-8"), "longer than 20 MiB"),
    ] {
        let error = sb.fails(&["replay", input]);
        assert!(error.contains(says), "{input}: {error}");
    }
}

/// A coordination cycle that fails is never silent: the operator's terminal, `/healthz` and the
/// status say so until a cycle succeeds again.
#[test]
fn a_failing_cycle_is_said_in_healthz_the_status_and_the_servers_lines() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--interval", "0"]);
    let config = sb.repo.join(".git/config");
    let good = std::fs::read_to_string(&config).expect("git config");
    // The repository can no longer be opened: every cycle fails.
    std::fs::write(&config, "[core\n\tthis is not git config\n").expect("write");
    let dir = sb.repo.join(".git/spanfold");
    let dir = dir.to_str().expect("utf-8");
    sb.ok(&["--coord-dir", dir, "agents", "register-agent", "a1"]);
    sb.ok(&["--coord-dir", dir, "agents", "add-feature", "f1"]);
    let mut said = String::new();
    for _ in 0..200 {
        said = served.get("/healthz", None).1;
        if said.contains("failed") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        said.contains("the last coordination cycle failed"),
        "{said}"
    );
    let status = sb.ok(&["--coord-dir", dir, "agents", "agent-status"]);
    let notes = status["health_notes"].to_string();
    assert!(
        notes.contains("the last coordination cycle failed"),
        "{notes}"
    );
    // Repaired: the next cycle succeeds and the alarm is gone.
    std::fs::write(&config, good).expect("write");
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(served.get("/healthz", None).1, "ok\n");
    let (_, stderr) = served.stop();
    assert!(
        stderr.contains("spanfold: coordination cycle failed:"),
        "{stderr}"
    );
}

/// An export range past the end or backwards is refused (records are exported whole, so it
/// used to write the record around it); a query string the API cannot read gets the envelope.
#[test]
fn export_ranges_outside_the_log_and_bad_query_strings_are_refused_clearly() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let out = sb.tmp.path().join("x.jsonl");
    let out = out.to_str().expect("utf-8");
    let past = sb.fails(&["export", "--from", "50", "--output", out]);
    assert!(
        past.contains("after the last event of the log (seq 2)"),
        "{past}"
    );
    let reversed = sb.fails(&["export", "--from", "2", "--to", "1", "--output", out]);
    assert!(reversed.contains("swap the two points"), "{reversed}");
    let served = sb.serve(&["--manual"]);
    let (code, body) = served.get("/api/export?from=50", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("after the last event"), "{body}");
    let (code, body) = served.get("/api/events?from=minus-one", None);
    assert_eq!(code, 400);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("the envelope, in JSON");
    assert_eq!(doc["success"], false);
    assert!(
        doc["errors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("query string"),
        "{doc}"
    );
}

/// A flood of connections that send nothing cannot exhaust the server: past the bound (the
/// descriptor limit less what the log keeps) they wait in the kernel's backlog, idle ones are
/// closed after 30 s, and then an honest export is stored and the log is healthy.
#[test]
fn idle_connections_are_bounded_and_closed_and_the_log_keeps_its_descriptors() {
    use std::io::Read as _;
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let served = sb.serve_after("ulimit -n 256", &["--manual"]);
    let http = served.http.trim_start_matches("http://").to_owned();
    let addr: std::net::SocketAddr = http.parse().expect("address");
    let grpc: std::net::SocketAddr = served.grpc.parse().expect("address");
    // More than the 256 descriptors the server has, on both ports.
    let mut idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|i| {
            let to = if i % 3 == 0 { grpc } else { addr };
            std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(2)).ok()
        })
        .collect();
    assert!(idle.len() > 128, "connected {}", idle.len());
    // The ones the server took are closed once idle (a gRPC one after the server's own HTTP/2
    // settings); the rest follow as permits free up.
    for conn in idle.iter_mut().take(2) {
        conn.set_read_timeout(Some(std::time::Duration::from_secs(90)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let closed = loop {
            match conn.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) => {
                    break e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut;
                }
            }
        };
        assert!(closed, "an idle connection stays open");
    }
    drop(idle);
    // An honest client is served, and the log never ran out of descriptors.
    let (code, body) = served.agent_span("a1", "tool.call", &[]);
    assert_eq!(code, 200, "{body}");
    let (code, health) = served.get("/healthz", None);
    assert_eq!((code, health.as_str()), (200, "ok\n"));
    assert_eq!(sb.status()["counters"]["unregistered_spans"], 1);
}
