//! Replay and time travel as a user sees them: recorded fixtures replay to their recorded
//! status, the demo's log exported and replayed gives the live status byte for byte, a decision
//! edited by hand is caught and named, `--at`/`history`/`diff` agree with replaying up to a
//! point, the server answers the same questions, and a what-if shows other assignments.

use crate::common;

use std::path::{Path, PathBuf};

use common::Sandbox;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("replay-fixtures")
}

/// A value as bytes, for byte-for-byte comparisons of status documents.
fn bytes(v: &Value) -> String {
    serde_json::to_string(v).expect("serialises")
}

#[test]
fn every_fixture_replays_to_its_recorded_status_and_passes_verify() {
    let sb = Sandbox::new("main");
    let mut seen = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("replay-fixtures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("jsonl" | "binpb")
            )
        })
        .collect();
    entries.sort();
    for trace in entries {
        let name = trace.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let expected_path = fixtures().join(format!("{name}.expected.json"));
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .expect("expected status is JSON");
        let run = sb.run(&["--json", "replay", trace.to_str().unwrap_or(""), "--verify"]);
        let doc = run.json();
        assert_eq!(
            run.code, 0,
            "{name}: replay --verify failed: {}",
            doc["errors"]
        );
        assert_eq!(
            bytes(&doc["data"]),
            bytes(&expected),
            "{name}: the replayed status differs from {}. If a deliberate change to the reducer \
             changed it, re-record the expectations with `bash replay-fixtures/record.sh` (or one \
             scenario: `bash replay-fixtures/record.sh {name}`) and review the diff.",
            expected_path.display()
        );
        assert!(doc["metadata"]["replay"]["events"].as_u64() > Some(0));
        seen += 1;
    }
    // demo, conflict, lease-expiry, crash-recovery, python-sdk, python-sdk-capture
    assert!(seen >= 6, "only {seen} fixtures found");
}

#[test]
fn a_decision_edited_by_hand_fails_verify_and_is_named() {
    let original = std::fs::read_to_string(fixtures().join("demo.jsonl")).expect("demo fixture");
    let edited_path = fixtures().join("broken/demo-edited-decision.jsonl");
    let edited = std::fs::read_to_string(&edited_path).expect("edited fixture");
    // The span that was edited, found by comparing the two files span by span.
    let spans = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("line"))
            .flat_map(|doc| {
                let mut out = Vec::new();
                for rs in doc["resourceSpans"].as_array().cloned().unwrap_or_default() {
                    for ss in rs["scopeSpans"].as_array().cloned().unwrap_or_default() {
                        out.extend(ss["spans"].as_array().cloned().unwrap_or_default());
                    }
                }
                out
            })
            .collect()
    };
    let changed: Vec<(Value, Value)> = spans(&original)
        .into_iter()
        .zip(spans(&edited))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "exactly one span was edited");
    let (_, edited_span) = &changed[0];
    assert_eq!(edited_span["name"], "agent.feature_assignment");
    let span_id = edited_span["spanId"].as_str().unwrap_or("").to_owned();
    let agent = |s: &Value| {
        s["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == "agent.id"))
            .map(|kv| kv["value"]["stringValue"].clone())
            .unwrap_or(Value::Null)
    };

    let sb = Sandbox::new("main");
    let file = edited_path.to_str().unwrap_or("");
    let run = sb.run(&["--json", "replay", file, "--verify"]);
    assert_ne!(run.code, 0, "an edited decision must fail verify");
    let doc = run.json();
    assert_eq!(doc["success"], false);
    let d = &doc["data"]["verify"]["divergence"];
    assert_eq!(d["kind"], "assignment");
    assert_eq!(d["recorded_span_id"], span_id.as_str());
    assert_eq!(d["recorded"]["agent_id"], agent(edited_span));
    assert_ne!(d["recomputed"]["agent_id"], d["recorded"]["agent_id"]);
    assert_eq!(d["recomputed"]["agent_id"], agent(&changed[0].0));
    let message = doc["errors"][0].as_str().unwrap_or("");
    assert!(message.contains(&span_id), "{message}");
    assert!(message.contains("recorded") && message.contains("re-computed"));
    // In text, side by side, with the reasons.
    let text = sb.run(&["replay", file, "--verify"]);
    assert_ne!(text.code, 0);
    assert!(text.stderr.contains("re-computed"), "{}", text.stderr);
    assert!(text.stderr.contains("- priority"), "{}", text.stderr);
}

/// The demo's repository and coordination directory, made once per test that needs them.
fn demo(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let repo = sb.tmp.path().join("demo-project");
    let run = sb.run_in(
        sb.tmp.path(),
        &["--json", "demo", "--repo", repo.to_str().unwrap_or("")],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let coord = repo.join(".git").join("spanfold");
    (repo, coord)
}

#[test]
fn demo_export_replay_gives_the_live_status_byte_for_byte() {
    let sb = Sandbox::new("main");
    let (_, coord) = demo(&sb);
    let c = coord.to_str().unwrap_or("");
    let live = sb.ok(&["--coord-dir", c, "agents", "agent-status"]);
    for (format, file) in [("json", "demo.jsonl"), ("protobuf", "demo.binpb")] {
        let path = sb.tmp.path().join(file);
        let p = path.to_str().unwrap_or("");
        let exported = sb.ok(&["--coord-dir", c, "export", "--format", format, "-o", p]);
        assert_eq!(
            exported["events"].as_u64(),
            live["counters"]["events"].as_u64()
        );
        let log_records = live["telemetry"]["log_records"].as_u64().unwrap_or(0);
        assert!(
            log_records > 0,
            "the launched agent's events are in the log"
        );
        assert_eq!(
            exported["spans"].as_u64().map(|s| s + log_records),
            live["counters"]["events"].as_u64()
        );
        let run = sb.run(&["--json", "replay", p, "--verify"]);
        let doc = run.json();
        assert_eq!(run.code, 0, "{format}: {}", doc["errors"]);
        assert_eq!(bytes(&doc["data"]), bytes(&live), "{format}");
        let v = &doc["metadata"]["replay"]["verify"];
        assert!(v["decision_points"].as_u64() >= Some(4), "{v}");
        assert_eq!(v["divergence"], Value::Null);
    }
    // Replay never touches the live log; --keep makes a new one that answers the same.
    let kept = sb.tmp.path().join("kept");
    let jsonl = sb.tmp.path().join("demo.jsonl");
    sb.ok(&[
        "replay",
        jsonl.to_str().unwrap_or(""),
        "--keep",
        kept.to_str().unwrap_or(""),
    ]);
    let from_kept = sb.ok(&[
        "--coord-dir",
        kept.to_str().unwrap_or(""),
        "agents",
        "agent-status",
    ]);
    assert_eq!(bytes(&from_kept), bytes(&live));
    let again = sb.fails(&[
        "replay",
        jsonl.to_str().unwrap_or(""),
        "--keep",
        kept.to_str().unwrap_or(""),
    ]);
    assert!(again.contains("exists"), "{again}");
    // What-if counts what the work cost in the record: the launched agent's $0.0117.
    let policy = sb.tmp.path().join("policy.yaml");
    std::fs::write(&policy, "lease_seconds: 60\n").expect("write");
    let what_if = sb.run(&[
        "--json",
        "replay",
        jsonl.to_str().unwrap_or(""),
        "--policy-config",
        policy.to_str().unwrap_or(""),
    ]);
    let w = &what_if.json()["metadata"]["replay"]["what_if"];
    assert_eq!(w["recorded"]["cost_usd"].as_f64(), Some(0.0117), "{w}");
    assert_eq!(
        w["current"]["cost_usd"].as_f64(),
        Some(0.0117),
        "all done again: {w}"
    );
    assert_eq!(
        bytes(&sb.ok(&["--coord-dir", c, "agents", "agent-status"])),
        bytes(&live),
        "the live log is unchanged"
    );
    // With --json the export needs a file: stdout carries the envelope.
    let err = sb.fails(&["--coord-dir", c, "export"]);
    assert!(err.contains("--output"), "{err}");
}

#[test]
fn time_travel_history_and_diff_agree_with_replaying_up_to_a_point() {
    let sb = Sandbox::new("main");
    let (repo, coord) = demo(&sb);
    let c = coord.to_str().unwrap_or("");
    let file = sb.tmp.path().join("demo.jsonl");
    let f = file.to_str().unwrap_or("");
    sb.ok(&["--coord-dir", c, "export", "-o", f]);
    let live = sb.ok(&["--coord-dir", c, "agents", "agent-status"]);
    let last = live["as_of"]["seq"].as_u64().unwrap_or(0);
    assert!(last > 40);
    let mut at_points = Vec::new();
    for seq in (0..=last).step_by(7).chain([last]) {
        let s = seq.to_string();
        let at = sb.ok(&["--coord-dir", c, "agents", "agent-status", "--at", &s]);
        let replayed = sb.ok(&["replay", f, "--until", &s]);
        assert_eq!(bytes(&at), bytes(&replayed), "at seq {seq}");
        assert_eq!(at["as_of"]["seq"].as_u64(), Some(seq));
        at_points.push((seq, at));
    }
    // An early point shows a feature that is completed now as still in progress.
    let early = &at_points[3].1;
    let status_of = |st: &Value, name: &str| {
        st["features"]
            .as_array()
            .and_then(|fs| fs.iter().find(|x| x["name"] == name))
            .map(|x| x["status"].clone())
    };
    assert_eq!(status_of(&live, "feature-01"), Some("completed".into()));
    assert_ne!(status_of(early, "feature-01"), Some("completed".into()));
    // A time names the last event received by then: from the export, each line's receive time
    // and seqs.
    let lines: Vec<(u64, u64, u64)> = std::fs::read_to_string(&file)
        .expect("export")
        .lines()
        .map(|l| {
            let doc: Value = serde_json::from_str(l).expect("line");
            let count: usize = doc["resourceSpans"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
                        .map(|ss| ss["spans"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            let num = |k: &str| doc["spanfold"][k].as_str().and_then(|s| s.parse().ok());
            let first: u64 = num("firstSeq").unwrap_or(0);
            (
                first,
                first + count as u64 - 1,
                num("receivedAt").unwrap_or(0),
            )
        })
        .collect();
    let time = lines[10].2;
    let expected = lines
        .iter()
        .filter(|l| l.2 <= time)
        .map(|l| l.1)
        .max()
        .unwrap_or(0);
    let rfc = sb.ok(&[
        "--coord-dir",
        c,
        "agents",
        "agent-status",
        "--at",
        &humantime_rfc3339(time),
    ]);
    assert_eq!(rfc["as_of"]["seq"].as_u64(), Some(expected));
    // An hour ago, before the demo: said, rather than answered with the empty view.
    let relative = sb.fails(&["--coord-dir", c, "agents", "agent-status", "--at", "-1h"]);
    assert!(relative.contains("before the first event"), "{relative}");
    // Just after the first worktree was made (found in the export, not assumed at a seq).
    let made = first_seq_of(&file, "worktree.lifecycle").to_string();
    let wt = sb.ok(&["--coord-dir", c, "agents", "worktree-status", "--at", &made]);
    assert_eq!(wt["as_of"]["seq"].to_string(), made);
    assert!(wt["worktrees"].as_array().is_some_and(|w| !w.is_empty()));
    let bad = sb.fails(&[
        "--coord-dir",
        c,
        "agents",
        "agent-status",
        "--at",
        "yesterday",
    ]);
    assert!(bad.contains("RFC 3339"), "{bad}");

    // The conflicting feature's history (the two first features rewrite the same line; the one
    // submitted second conflicts): each transition in order, with its causing span.
    let statuses_of = |h: &Value| -> Vec<String> {
        h["entries"]
            .as_array()
            .map(|es| {
                es.iter()
                    .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
                    .filter(|c| c["field"] == "status")
                    .map(|c| c["to"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let histories =
        ["feature-01", "feature-02"].map(|f| sb.ok(&["--coord-dir", c, "history", "--feature", f]));
    let h = histories
        .iter()
        .find(|h| statuses_of(h).iter().any(|s| s == "conflicted"))
        .expect("one of the first two features conflicted");
    let statuses = statuses_of(h);
    let first = |s: &str| statuses.iter().position(|x| x == s);
    assert!(first("queued") < first("assigned"), "{statuses:?}");
    assert!(first("conflicted").is_some(), "{statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("completed"));
    let assignment = h["entries"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["span"] == "agent.feature_assignment"))
        .expect("an assignment entry");
    assert!(assignment["score"].as_f64().is_some());
    assert!(
        assignment["reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(assignment["span_id"].as_str().map(str::len), Some(16));
    let agent = sb.ok(&["--coord-dir", c, "history", "--agent", "demo-agent-1"]);
    assert!(agent["entries"].as_array().is_some_and(|e| e.len() > 4));
    let unknown = sb.fails(&["--coord-dir", c, "history", "--agent", "nobody"]);
    assert!(unknown.contains("nothing about agent nobody"), "{unknown}");

    // Diff from the start to now: every feature appears, completed.
    let d = sb.ok(&["--coord-dir", c, "diff", "--from", "0"]);
    assert_eq!(d["to"]["seq"].as_u64(), Some(last));
    for i in 1..=6 {
        let name = format!("feature-{i:02}");
        assert!(
            d["changes"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["id"] == name.as_str()
                    && c["field"] == "status"
                    && c["to"] == "completed")),
            "{name} missing from {d}"
        );
    }
    let nothing = sb.ok(&["--coord-dir", c, "diff", "--from", "30", "--to", "30"]);
    assert_eq!(nothing["changes"], Value::Array(vec![]));

    // --verify with --until: a cut inside a cycle's decisions leaves that cycle unchecked, never
    // reported as a difference.
    for seq in 1..=40 {
        let run = sb.run(&[
            "--json",
            "replay",
            f,
            "--verify",
            "--until",
            &seq.to_string(),
        ]);
        assert_eq!(run.code, 0, "--until {seq}: {}", run.json()["errors"]);
    }

    // --step prints one line per event, with what changed.
    let step = sb.run(&["replay", f, "--step", "--until", "15"]);
    assert_eq!(step.code, 0, "{}", step.stderr);
    // An event's line starts with its seq; the lines under it are what its span said.
    let lines: Vec<&str> = step
        .stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .collect();
    assert_eq!(lines.len(), 15, "{}", step.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("feature.request") && l.contains("queued")),
        "a queued feature among the first events: {}",
        step.stdout
    );
    drop(repo);
}

/// RFC 3339 with nanoseconds, as users may type it.
fn humantime_rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, sub as u32);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[test]
fn a_server_answers_the_same_time_travel_questions() {
    let sb = Sandbox::new("main");
    let (repo, coord) = demo(&sb);
    let c = coord.to_str().unwrap_or("");
    let local_at = sb.ok(&["--coord-dir", c, "agents", "agent-status", "--at", "25"]);
    let local_history = sb.ok(&["--coord-dir", c, "history", "--feature", "feature-02"]);
    let local_diff = sb.ok(&["--coord-dir", c, "diff", "--from", "10", "--to", "50"]);
    let local_export = sb.tmp.path().join("local.jsonl");
    sb.ok(&[
        "--coord-dir",
        c,
        "export",
        "-o",
        local_export.to_str().unwrap_or(""),
    ]);

    let served = sb.serve_for(&coord, &repo);
    let (code, body) = served.get("/api/status?at=25", None);
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(bytes(&doc["data"]), bytes(&local_at));
    // The CLI finds the server through its advert and gets the same answers.
    assert_eq!(
        bytes(&sb.ok(&["--coord-dir", c, "agents", "agent-status", "--at", "25"])),
        bytes(&local_at)
    );
    assert_eq!(
        bytes(&sb.ok(&["--coord-dir", c, "history", "--feature", "feature-02"])),
        bytes(&local_history)
    );
    assert_eq!(
        bytes(&sb.ok(&["--coord-dir", c, "diff", "--from", "10", "--to", "50"])),
        bytes(&local_diff)
    );
    let remote_export = sb.tmp.path().join("remote.jsonl");
    sb.ok(&[
        "--coord-dir",
        c,
        "export",
        "-o",
        remote_export.to_str().unwrap_or(""),
    ]);
    assert_eq!(
        std::fs::read(&remote_export).expect("remote export"),
        std::fs::read(&local_export).expect("local export")
    );
    let (code, body) = served.get("/api/status?at=not-a-point", None);
    assert_eq!(code, 400);
    assert!(body.contains("RFC 3339"), "{body}");
    let (code, _) = served.get("/api/history?agent=a&feature=b", None);
    assert_eq!(code, 400);
}

#[test]
fn what_if_shows_the_assignments_another_policy_would_make() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    // A specialist and a generalist: by default the specialist gets the rust feature.
    sb.ok(&[
        "agents",
        "register-agent",
        "generalist",
        "--langs",
        "rust,python,go",
    ]);
    sb.ok(&["agents", "register-agent", "specialist", "--langs", "rust"]);
    sb.ok(&["agents", "add-feature", "parser", "--langs", "rust"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["agent_id"], "specialist");
    let trace = sb.tmp.path().join("trace.jsonl");
    let t = trace.to_str().unwrap_or("");
    sb.ok(&["export", "-o", t]);
    let config = sb.tmp.path().join("policy.yaml");
    std::fs::write(
        &config,
        "weights:\n  capability: 0\n  priority: 1\n  complexity: 0\n  load: 0\nlease_seconds: 60\n",
    )
    .expect("write");
    let run = sb.run(&[
        "--json",
        "replay",
        t,
        "--policy-config",
        config.to_str().unwrap_or(""),
    ]);
    let doc = run.json();
    assert_eq!(run.code, 0, "{}", doc["errors"]);
    let w = &doc["metadata"]["replay"]["what_if"];
    assert_eq!(w["cycles"], 1);
    assert_eq!(w["recorded"]["load"]["specialist"], 1);
    assert_eq!(w["current"]["load"]["specialist"], 1);
    // Without the capability weight the tie goes to the agent id order: the generalist.
    assert_eq!(w["alternative"]["load"]["generalist"], 1, "{w}");
    assert_eq!(w["differences"][0]["feature_name"], "parser");
    assert_eq!(w["differences"][0]["agent_id"], "generalist");
    // The live log is untouched by the what-if: still one cycle.
    assert_eq!(sb.status()["counters"]["cycles"], 1);
    let text = sb.run(&[
        "replay",
        t,
        "--policy-config",
        config.to_str().unwrap_or(""),
    ]);
    assert!(
        text.stdout.contains("parser → generalist"),
        "{}",
        text.stdout
    );

    std::fs::write(&config, "weights: {capabilty: 1}\n").expect("write");
    let err = sb.fails(&[
        "replay",
        t,
        "--policy-config",
        config.to_str().unwrap_or(""),
    ]);
    assert!(
        err.contains("capabilty") && err.contains("lease_seconds"),
        "{err}"
    );
}

#[test]
fn a_collector_file_without_placements_replays_in_order() {
    // What an OpenTelemetry Collector's file exporter writes: the same requests, no seqs or
    // receive times. Spans are numbered in order and take their end time as receive time.
    let text = std::fs::read_to_string(fixtures().join("demo.jsonl")).expect("demo fixture");
    let mut stripped = String::new();
    for line in text.lines() {
        let mut doc: Value = serde_json::from_str(line).expect("line");
        doc.as_object_mut().map(|o| o.remove("spanfold"));
        // The same request twice, as an exporter's retry would send it: applied once.
        stripped.push_str(&doc.to_string());
        stripped.push('\n');
        if line.contains("coordination.init") {
            stripped.push_str(&doc.to_string());
            stripped.push('\n');
        }
    }
    let sb = Sandbox::new("main");
    let file = sb.tmp.path().join("collector.jsonl");
    std::fs::write(&file, stripped).expect("write");
    let run = sb.run(&["--json", "replay", file.to_str().unwrap_or(""), "--verify"]);
    let doc = run.json();
    assert_eq!(run.code, 0, "{}", doc["errors"]);
    assert_eq!(doc["metadata"]["replay"]["duplicates"], 1);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("demo.expected.json")).expect("expected"),
    )
    .expect("json");
    let statuses = |st: &Value| -> Vec<(Value, Value, Value)> {
        st["features"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        (
                            f["name"].clone(),
                            f["status"].clone(),
                            f["assigned_agent"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(statuses(&doc["data"]), statuses(&expected));
    assert_eq!(doc["data"]["counters"], expected["counters"]);
}

/// The seq of the first span named `name` in an OTLP/JSON export (each line's `firstSeq`, then
/// its spans in order).
fn first_seq_of(file: &std::path::Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(file).expect("export");
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).expect("line");
        let mut seq: u64 = doc["spanfold"]["firstSeq"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let groups = doc["resourceSpans"].as_array().cloned().unwrap_or_default();
        for rs in &groups {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    if span["name"] == name {
                        return seq;
                    }
                    seq += 1;
                }
            }
        }
    }
    panic!("no {name} in {}", file.display())
}
