//! The bad-input catalogue of TESTING.md, row by row, against a real `spanfold serve` on
//! loopback: each bad input gets a clear answer that says what was wrong, nothing else that was
//! sent is lost, nothing is appended that should not be, and the server keeps serving.

use crate::common;

use std::process::Command;

use common::otlp::{kv, s, span};
use common::wire::{JSON, PROTOBUF, frame, grpc_raw, gzip, post, post_proto};
use common::{Sandbox, Served, curl};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

fn initialised() -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb
}

/// An export request with these spans, encoded.
fn request(spans: Vec<Span>) -> Vec<u8> {
    common::otlp::request(spans).encode_to_vec()
}

/// One Export through tonic with an optional bearer token.
fn grpc_export(served: &Served, body: &[u8], token: Option<&str>) -> Result<(), tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = ExportTraceServiceRequest::decode(body).expect("a valid request");
    runtime.block_on(async {
        let mut client =
            opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
                format!("http://{}", served.grpc),
            )
            .await
            .expect("connects");
        let mut request = tonic::Request::new(request);
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().expect("header value");
            request.metadata_mut().insert("authorization", value);
        }
        client.export(request).await.map(|_| ())
    })
}

/// Events in the log beyond `agents init`'s own.
fn events(sb: &Sandbox) -> u64 {
    let all = sb.status()["counters"]["events"].as_u64();
    all.and_then(|n| n.checked_sub(1))
        .expect("the status counts init's event")
}

/// The server still takes good spans after the bad ones.
fn still_serving(sb: &Sandbox, served: &Served) {
    assert_eq!(served.get("/healthz", None).0, 200);
    let before = events(sb);
    let (code, body) = post(
        sb,
        served,
        &request(vec![span(
            0x77,
            "agent.registration",
            vec![kv("agent.id", s("still-here"))],
        )]),
        &[PROTOBUF],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(events(sb), before + 1);
}

#[test]
fn truncated_gzip_is_refused_whole_over_http_and_grpc() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = request(vec![span(
        1,
        "agent.registration",
        vec![kv("agent.id", s("a1"))],
    )]);
    let zipped = gzip(&good);
    let cut = &zipped[..zipped.len() / 2];
    let (code, body) = post(&sb, &served, cut, &[JSON, "Content-Encoding: gzip"]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("could not be decompressed"), "{body}");
    let (code, _) = post(&sb, &served, cut, &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(code, 400);
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(true, cut.len(), cut),
        &["grpc-encoding: gzip"],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    assert_eq!(events(&sb), 0, "nothing appended");
    still_serving(&sb, &served);
}

#[test]
fn a_truncated_grpc_frame_is_invalid_argument_not_a_server_fault() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = request(vec![span(1, "tool.call", vec![])]);
    // The frame says more bytes follow than do.
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(false, good.len() + 100, &good),
        &[],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn a_gzip_bomb_is_refused_unread_over_http_and_grpc() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // 64 MiB of zeros in about 64 KB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100_000);
    let (code, body) = post(&sb, &served, &bomb, &[PROTOBUF, "Content-Encoding: gzip"]);
    assert_eq!(code, 413, "{body}");
    let (code, body) = post(&sb, &served, &bomb, &[JSON, "Content-Encoding: gzip"]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("\"code\":8"), "{body}");
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(true, bomb.len(), &bomb),
        &["grpc-encoding: gzip"],
    );
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED: {message}");
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn json_with_wrong_types_names_the_field() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // Structure: a trace id that is not hex refuses the export and names where.
    let (code, body) = post(
        &sb,
        &served,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","spanId":"0102030405060708","name":"x"}]}]}]}"#,
        &[JSON],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("traceId"), "{body}");
    let (code, body) = post(&sb, &served, br#"{"resourceSpans":7}"#, &[JSON]);
    assert_eq!(code, 400, "{body}");
    // An attribute of the wrong type refuses that span only.
    let (code, body) = post(
        &sb,
        &served,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"agent.registration",
             "attributes":[{"key":"agent.id","value":{"stringValue":"a1"}},
                           {"key":"agent.max_concurrent_features","value":{"stringValue":"two"}}]},
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"agent.registration",
             "attributes":[{"key":"agent.id","value":{"stringValue":"a2"}}]}]}]}]}"#,
        &[JSON],
    );
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json answer");
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{body}");
    let message = answer["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.contains("agent.max_concurrent_features must be int"),
        "{message}"
    );
    assert_eq!(events(&sb), 1, "the good span is kept");
    still_serving(&sb, &served);
}

#[test]
fn a_ten_megabyte_attribute_is_refused_with_the_limit() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let huge = "x".repeat(10 << 20);
    let body = request(vec![
        span(1, "tool.call", vec![kv("tool.output", s(&huge))]),
        span(2, "agent.registration", vec![kv("agent.id", s("a1"))]),
    ]);
    // OTLP/HTTP takes up to 20 MiB: the span is refused, its neighbour kept. (The answer is
    // protobuf; its message is readable as text inside it.)
    let (code, rejected, answer) = post_proto(&sb, &served, &body);
    assert_eq!(code, 200);
    assert_eq!(rejected, 1);
    assert!(answer.len() < 10_000, "the answer does not echo the value");
    assert!(
        answer.contains("tool.output") && answer.contains("the limit is 1048576"),
        "{answer}"
    );
    assert_eq!(events(&sb), 1, "only a1's registration");
    assert_eq!(sb.status()["agents"][0]["agent_id"], "a1");
    still_serving(&sb, &served);
}

#[test]
fn a_hundred_thousand_attributes_are_refused_with_the_limit() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let many: Vec<KeyValue> = (0..100_000)
        .map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i)))
        .collect();
    let body = request(vec![
        span(1, "tool.call", many),
        span(2, "agent.registration", vec![kv("agent.id", s("a1"))]),
    ]);
    let file = sb.tmp.path().join("many.bin");
    std::fs::write(&file, &body).expect("write");
    let (code, answer) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        None,
        Some(&file),
        &[PROTOBUF],
    );
    assert_eq!(code, 200);
    assert!(
        answer.contains("carries 100000 attributes") && answer.contains("the limit is 10000"),
        "the reason names the count and the limit: {answer:?}"
    );
    assert_eq!(events(&sb), 1, "only the registration");
    still_serving(&sb, &served);
}

#[test]
fn invalid_utf8_is_refused_over_protobuf_grpc_and_json() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    // A span name of "XXXX" turned into bytes that are not UTF-8.
    let mut body = request(vec![span(1, "XXXX", vec![])]);
    let at = body
        .windows(4)
        .position(|w| w == b"XXXX")
        .expect("name in the encoding");
    body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    let (code, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert_eq!(code, 400);
    assert!(answer.contains("invalid UTF-8"), "{answer}");
    let (status, message) = grpc_raw(
        &served,
        sb.tmp.path(),
        &frame(false, body.len(), &body),
        &[],
    );
    assert_eq!(status, "3", "INVALID_ARGUMENT: {message}");
    let json = b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xff\xfe\"}]}]}]}";
    let (code, _) = post(&sb, &served, json, &[JSON]);
    assert_eq!(code, 400);
    assert_eq!(events(&sb), 0);
    still_serving(&sb, &served);
}

#[test]
fn ids_of_the_wrong_length_refuse_their_span_only() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let good = span(1, "agent.registration", vec![kv("agent.id", s("a1"))]);
    let short_trace = Span {
        trace_id: vec![2; 8],
        ..span(2, "tool.call", vec![])
    };
    let long_span = Span {
        span_id: vec![3; 9],
        ..span(3, "tool.call", vec![])
    };
    let zero_trace = Span {
        trace_id: vec![0; 16],
        ..span(4, "tool.call", vec![])
    };
    let odd_parent = Span {
        parent_span_id: vec![5; 3],
        ..span(5, "tool.call", vec![])
    };
    let body = request(vec![good, short_trace, long_span, zero_trace, odd_parent]);
    let (code, rejected, answer) = post_proto(&sb, &served, &body);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(rejected, 4, "{answer}");
    for reason in [
        "trace_id must be 16 bytes",
        "span_id must be 8 bytes",
        "parent_span_id",
    ] {
        assert!(answer.contains(reason), "{reason}: {answer}");
    }
    assert_eq!(events(&sb), 1, "the good span is kept");
    still_serving(&sb, &served);
}

#[test]
fn names_that_could_escape_a_directory_or_break_a_ref_are_refused_over_otlp() {
    let sb = initialised();
    let served = sb.serve(&["--interval", "0"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let bad = [
        "../../etc",
        "/abs",
        "a/../../b",
        "a..b",
        "x.lock",
        "a@{b",
        "with space",
        "semi;colon",
        "$(touch pwned)",
        "back`tick`",
        ".hidden",
        "-option",
        "",
    ];
    let spans = bad
        .iter()
        .enumerate()
        .map(|(i, name)| {
            span(
                10 + i as u8,
                "feature.request",
                vec![kv("feature.name", s(name))],
            )
        })
        .collect();
    let (code, rejected, answer) = post_proto(&sb, &served, &request(spans));
    assert_eq!(code, 200);
    assert_eq!(rejected, bad.len() as i64, "every one refused: {answer}");
    assert_eq!(
        answer.matches("attribute feature.name").count(),
        bad.len(),
        "each by name: {answer}"
    );
    // A bad agent id in the resource, for any span, is refused too.
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("agent.id", s("../a1"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(40, "tool.call", vec![])],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec();
    let (_, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert!(answer.contains("resource attribute agent.id"), "{answer}");
    let status = sb.status();
    assert_eq!(status["features"].as_array().map(Vec::len), Some(0));
    // Nothing was made anywhere: no worktree, no branch, no file outside the repository.
    assert!(sb.git_worktrees().is_empty());
    assert_eq!(sb.git(&["branch", "--list", "spanfold/*"]), "");
    assert!(!sb.repo.join("pwned").exists() && !sb.tmp.path().join("pwned").exists());
    still_serving(&sb, &served);
}

#[test]
fn span_times_from_a_skewed_clock_never_reach_the_view() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let year_2200 = 7_258_118_400_000_000_000u64;
    let skewed = Span {
        start_time_unix_nano: year_2200,
        end_time_unix_nano: 1, // ends before it starts
        ..span(1, "agent.registration", vec![kv("agent.id", s("a1"))])
    };
    let (code, answer) = post(&sb, &served, &request(vec![skewed]), &[PROTOBUF]);
    assert_eq!(code, 200, "{answer}");
    let status = sb.status();
    // Every time the view holds is the log's receive time, not the sender's.
    let as_of = status["as_of"]["time"].as_str().unwrap_or("").to_owned();
    assert!(as_of.starts_with("20"), "{as_of}");
    let year: u64 = as_of[..4].parse().unwrap_or(0);
    assert!(year < 2100, "as_of is the receive time: {as_of}");
    let agent = &status["agents"][0];
    assert_eq!(agent["agent_id"], "a1");
    let last = agent["last_activity"].as_str().unwrap_or("");
    assert!(
        last.starts_with(&as_of[..4]),
        "last activity {last} is receive time"
    );
    // A lease counts from receive times: the agent is not seen as active far into the future,
    // nor expired at once; a cycle with a feature places it normally.
    sb.ok(&["agents", "add-feature", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["agent_id"], "a1", "{cycle}");
    still_serving(&sb, &served);
}

#[test]
fn spans_from_unknown_agents_are_kept_and_reported_as_anomalies() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    let ghost = span(
        1,
        "agent.work_progress",
        vec![kv("agent.id", s("ghost")), kv("agent.state", s("working"))],
    );
    let (code, answer) = post(&sb, &served, &request(vec![ghost]), &[PROTOBUF]);
    assert_eq!(code, 200);
    assert!(!answer.contains("ghost"), "acknowledged whole: {answer}");
    let status = sb.status();
    assert_eq!(
        events(&sb),
        1,
        "kept in the log as the record of what was sent"
    );
    assert_eq!(
        status["agents"].as_array().map(Vec::len),
        Some(0),
        "no agent made up"
    );
    let anomalies = status["anomalies"].to_string();
    assert!(anomalies.contains("ghost"), "{anomalies}");
    still_serving(&sb, &served);
}

#[test]
fn decision_spans_sent_over_otlp_http_are_refused() {
    let sb = initialised();
    let served = sb.serve(&["--manual"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let before = events(&sb);
    let forged = span(
        1,
        "agent.feature_assignment",
        vec![
            kv("agent.id", s("a1")),
            kv("feature.name", s("f1")),
            kv("worktree.path", s("/etc")),
        ],
    );
    let (code, answer) = post(&sb, &served, &request(vec![forged]), &[PROTOBUF]);
    assert_eq!(code, 200);
    assert!(answer.contains("coordinator decision"), "{answer}");
    assert_eq!(events(&sb), before);
    let status = sb.status();
    assert_eq!(status["features"][0]["status"], "queued");
    still_serving(&sb, &served);
}

#[test]
fn a_missing_or_wrong_token_refuses_spans_on_every_receiver() {
    let sb = initialised();
    let served = sb.serve(&["--manual", "--token", "s3cret"]);
    let body = request(vec![span(
        1,
        "agent.registration",
        vec![kv("agent.id", s("a1"))],
    )]);
    let file = sb.tmp.path().join("reg.bin");
    std::fs::write(&file, &body).expect("write");
    for token in [None, Some("wrong")] {
        let (code, answer) = curl(
            &served.http,
            "POST",
            "/v1/traces",
            token,
            Some(&file),
            &[PROTOBUF],
        );
        assert_eq!(code, 401, "{answer}");
        // tonic, a real gRPC client: curl may lose an answer sent before the body was read.
        let status = grpc_export(&served, &body, token).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    }
    for path in ["/metrics", "/api/status", "/api/events"] {
        assert_eq!(served.get(path, None).0, 401, "{path}");
    }
    let (code, _) = curl(
        &served.http,
        "POST",
        "/v1/traces",
        Some("s3cret"),
        Some(&file),
        &[PROTOBUF],
    );
    assert_eq!(code, 200);
    let status = sb
        .run(&["--json", "--token", "s3cret", "agents", "agent-status"])
        .json();
    assert_eq!(
        status["data"]["counters"]["events"], 2,
        "init and the one accepted registration"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn an_unwritable_coordination_directory_is_a_clear_error() {
    let sb = Sandbox::new("main");
    // A file where a directory should be stops even root.
    let blocker = sb.tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "").expect("write");
    let coord = blocker.join("coord");
    let c = coord.to_string_lossy().into_owned();
    let error = sb.fails(&["--coord-dir", &c, "agents", "init"]);
    assert!(
        error.contains(&c) && error.contains("Not a directory"),
        "{error}"
    );
    let run = sb.run(&[
        "--coord-dir",
        &c,
        "serve",
        "--grpc",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains(&c) || run.stdout.contains(&c),
        "{}{}",
        run.stdout,
        run.stderr
    );
    if !is_root() {
        // Permissions, where they bind.
        let ro = sb.tmp.path().join("read-only");
        std::fs::create_dir(&ro).expect("mkdir");
        let mut perms = std::fs::metadata(&ro).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
        std::fs::set_permissions(&ro, perms).expect("chmod");
        let inner = ro.join("coord").to_string_lossy().into_owned();
        let error = sb.fails(&["--coord-dir", &inner, "agents", "init"]);
        assert!(error.contains("Permission denied"), "{error}");
    }
}

#[test]
fn a_corrupted_log_is_a_clear_error_every_time_and_is_never_replaced() {
    let sb = initialised();
    for i in 0..20 {
        sb.ok(&["agents", "add-feature", &format!("f{i}")]);
    }
    let log = sb.repo.join(".git").join("spanfold").join("log");
    let db = log.join("db");
    let mut bytes = std::fs::read(&db).expect("read db");
    let used: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
    let at = used[used.len() / 2];
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&db, &bytes).expect("damage");

    // Every way in says so, every time: the log is never silently replaced by an empty one,
    // not even by `init`.
    for _ in 0..2 {
        let error = sb.fails(&["agents", "agent-status"]);
        assert!(
            error.contains("is damaged") && error.contains("restore a backup"),
            "{error}"
        );
        let run = sb.run(&["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        assert_ne!(run.code, 0, "the server does not start on a damaged log");
        assert!(run.stderr.contains("is damaged"), "{}", run.stderr);
        let error = sb.fails(&["agents", "add-feature", "more"]);
        assert!(error.contains("is damaged"), "{error}");
        let error = sb.fails(&["agents", "init"]);
        assert!(error.contains("is damaged"), "{error}");
    }
    assert!(
        log.join("db").exists(),
        "the damaged log is left where it was"
    );
}

#[test]
fn a_full_disk_refuses_spans_until_restart_and_loses_none_acknowledged() {
    use common::journal::{acknowledged, check_log, load, wait_bounded};
    let sb = initialised();
    let coord = sb.repo.join(".git").join("spanfold");
    let db = std::fs::metadata(coord.join("log").join("db"))
        .expect("db")
        .len();
    // The file may grow by about 200 KiB; past that every write fails with EFBIG, as on a full
    // disk (SIGXFSZ ignored, so the write fails instead of killing the process).
    // sled makes its file 512 KiB at open.
    let limit_kib = db.max(512 << 10) / 1024 + 200;
    let served = sb.serve_after(
        &format!("trap '' XFSZ; ulimit -f {limit_kib}"),
        &["--manual"],
    );
    let journal = sb.tmp.path().join("journal");
    let mut sender = load(&served.grpc, &journal);
    wait_bounded(&mut sender, 60);
    let acked = acknowledged(&journal);
    assert!(
        !acked.is_empty(),
        "some exports went in before the disk filled"
    );

    // The server is up, says why it takes nothing, and answers exports with a retryable error.
    let (code, why) = served.get("/healthz", None);
    assert_eq!(code, 503, "{why}");
    assert!(
        why.contains("could not be written") && why.contains("restart"),
        "{why}"
    );
    let body = request(vec![span(
        1,
        "agent.registration",
        vec![kv("agent.id", s("late"))],
    )]);
    let (code, answer) = post(&sb, &served, &body, &[PROTOBUF]);
    assert_eq!(code, 503, "{answer}");
    let retry = grpc_export(&served, &body, None).expect_err("refused");
    assert_eq!(retry.code(), tonic::Code::Unavailable, "{retry}");
    served.kill();

    // With room again: everything acknowledged is there, once, and the server takes spans.
    check_log(&coord, &acked);
    let served = sb.serve(&["--manual"]);
    still_serving(&sb, &served);
}

/// An export written into the coordination directory could overwrite the log itself: refused,
/// and the log stays whole. An export elsewhere appears only once complete.
#[test]
fn an_export_into_the_coordination_directory_is_refused_and_the_log_survives() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    let db = sb.repo.join(".git/spanfold/log/db");
    let before = std::fs::metadata(&db).expect("the log's file").len();
    for target in [db.clone(), sb.repo.join(".git/spanfold/backup.jsonl")] {
        let error = sb.fails(&["export", "--output", target.to_str().expect("utf-8")]);
        assert!(
            error.contains("inside the coordination directory"),
            "{error}"
        );
    }
    assert_eq!(std::fs::metadata(&db).expect("still there").len(), before);
    assert_eq!(
        sb.status()["agents"][0]["agent_id"],
        "a1",
        "the log reads as before"
    );
    let out = sb.tmp.path().join("backup.jsonl");
    let done = sb.ok(&["export", "--output", out.to_str().expect("utf-8")]);
    assert!(done["spans"].as_u64() > Some(0));
    assert!(out.exists() && !sb.tmp.path().join("backup.jsonl.partial").exists());
}

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
