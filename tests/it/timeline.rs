//! `/api/timeline` on a known log: one agent through a whole feature, made with the CLI. Its
//! intervals, markers and samples are exactly what that story means, for the whole log, for a
//! range of it, and drawn coarsely.

use crate::common;

use std::collections::BTreeMap;

use common::Sandbox;
use serde_json::{Value, json};
use spanfold::store::Log;

/// The story: a1 registers, f1 is queued and assigned, a1 works, validates, submits, f1 is
/// merged. Returns the time of every event by seq and the last seq.
fn story(sb: &Sandbox) -> (BTreeMap<u64, u64>, u64) {
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let worktree = cycle["assignments"][0]["worktree_path"]
        .as_str()
        .expect("worktree");
    sb.ok(&["agents", "progress", "a1", "--state", "working"]);
    sb.commit_as_agent(std::path::Path::new(worktree), "f1.txt", "f1\n", "f1");
    sb.ok(&["agents", "progress", "a1", "--state", "validating"]);
    sb.ok(&["agents", "validate", "a1", "--result", "passed"]);
    sb.ok(&["agents", "coordination-cycle"]);
    let mut log = Log::open(&sb.repo.join(".git").join("spanfold"), false).expect("log");
    let mut times = BTreeMap::new();
    log.scan(|batch| {
        for ev in batch.events() {
            times.insert(ev.seq, ev.time);
        }
    })
    .expect("readable");
    let last = *times.keys().last().expect("events");
    (times, last)
}

/// The seq of the first event with this span name (and agent state, for progress reports).
fn seq_of(served: &common::Served, name: &str, state: Option<&str>) -> u64 {
    let (_, events) = served.get("/api/events?from=1", None);
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["name"] == name && state.is_none_or(|s| e["attributes"]["agent.state"] == s))
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or_else(|| panic!("no {name} {state:?}"))
}

fn timeline(served: &common::Served, query: &str) -> Value {
    let (code, body) = served.get(&format!("/api/timeline?{query}"), None);
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["success"], true, "{body}");
    doc["data"].clone()
}

fn interval(times: &BTreeMap<u64, u64>, state: &str, features: &str, from: u64, to: u64) -> Value {
    json!({
        "state": state,
        "features": features,
        "from_seq": from,
        "from_time": times[&from],
        "to_seq": to,
        "to_time": times[&to],
    })
}

#[test]
fn the_timeline_of_a_known_log_is_exactly_its_story() {
    let sb = Sandbox::new("main");
    let (times, last) = story(&sb);
    let served = sb.serve(&["--manual"]);
    let registered = seq_of(&served, "agent.registration", None);
    let assigned = seq_of(&served, "agent.feature_assignment", None);
    let working = seq_of(&served, "agent.work_progress", Some("working"));
    let validating = seq_of(&served, "agent.work_progress", Some("validating"));
    let submitted = seq_of(&served, "agent.validation", None);
    let merged = {
        let (_, events) = served.get("/api/events?from=1", None);
        events
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| {
                e["name"] == "coordination.feature_merge"
                    && e["attributes"]["merge.result"] == "merged"
            })
            .and_then(|e| e["seq"].as_u64())
            .expect("the merge")
    };

    // The whole log, finely drawn: every change is its own interval.
    let t = timeline(&served, "resolution=10000");
    assert_eq!(t["from"]["seq"], 0);
    assert_eq!(t["to"]["seq"], last);
    assert_eq!(t["events"], last);
    assert_eq!(t["lanes"].as_array().map(Vec::len), Some(1));
    assert_eq!(t["lanes"][0]["agent_id"], "a1");
    assert_eq!(
        t["lanes"][0]["intervals"],
        json!([
            interval(&times, "idle", "", registered, assigned),
            interval(&times, "claiming", "f1", assigned, working),
            interval(&times, "working", "f1", working, validating),
            interval(&times, "validating", "f1", validating, submitted),
            interval(&times, "submitting", "f1", submitted, merged),
            interval(&times, "idle", "", merged, last),
        ])
    );
    let markers: Vec<(String, u64, String)> = t["markers"]
        .as_array()
        .expect("markers")
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or("").to_owned(),
                m["seq"].as_u64().unwrap_or(0),
                m["feature"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        markers,
        vec![
            ("assignment".into(), assigned, "f1".into()),
            ("merge".into(), merged, "f1".into()),
        ]
    );
    assert!(
        t["markers"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("score 0.600"),
        "the assignment's score and reasons: {}",
        t["markers"][0]
    );
    assert_eq!(t["markers_omitted"], 0);
    // Samples: in order, the queue holds f1 from its request to its assignment, health in
    // [0, 1], the last sample at the end of the range.
    let samples = t["samples"].as_array().expect("samples");
    let seqs: Vec<u64> = samples.iter().filter_map(|s| s["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(seqs.last(), Some(&last));
    for s in samples {
        let seq = s["seq"].as_u64().unwrap_or(0);
        let expected_queue = u64::from(seq > registered && seq < assigned);
        assert_eq!(s["queued"], expected_queue, "at seq {seq}");
        let health = s["health"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&health), "{s}");
    }

    // A range: it starts from the view at `from` (a1 claiming), ends at `to`, and the state at
    // `to` stands even though it has only just begun.
    let t = timeline(
        &served,
        &format!("from={assigned}&to={submitted}&resolution=10000"),
    );
    assert_eq!(t["events"], submitted - assigned);
    assert_eq!(
        t["lanes"][0]["intervals"],
        json!([
            interval(&times, "claiming", "f1", assigned, working),
            interval(&times, "working", "f1", working, validating),
            interval(&times, "validating", "f1", validating, submitted),
            interval(&times, "submitting", "f1", submitted, submitted),
        ])
    );

    // Drawn in one step: everything shorter folds into what came first, and the last state
    // (idle, like the first) continues it. The payload stays small however long the log.
    let t = timeline(&served, "resolution=1");
    assert_eq!(
        t["lanes"][0]["intervals"],
        json!([interval(&times, "idle", "", registered, last)])
    );
    assert!(t["samples"].as_array().map_or(0, Vec::len) <= 3);

    // The board's bounded question: no feature listed, every one still counted.
    let (_, body) = served.get("/api/status?per_status=0", None);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["data"]["features"], json!([]));
    assert_eq!(
        doc["data"]["coordination_status"]["features_by_status"]["completed"],
        1
    );

    // The lease on the board: it runs from a1's last span while a1 holds f1, and stops once
    // f1 waits for its merge, as the coordinator's verdict does.
    let lease_at = |seq: u64| -> (Value, u64) {
        let (_, body) = served.get(&format!("/api/status?at={seq}"), None);
        let doc: Value = serde_json::from_str(&body).expect("json");
        let lease = doc["data"]["config"]["lease_seconds"]
            .as_u64()
            .expect("init set a lease");
        (doc["data"]["agents"][0]["lease_expires_at"].clone(), lease)
    };
    assert_eq!(lease_at(registered).0, Value::Null, "no work, no lease");
    for since in [assigned, working, validating] {
        let (expires, lease) = lease_at(since);
        assert_eq!(
            expires,
            spanfold::status::rfc3339(times[&since] + lease * 1_000_000_000),
            "at seq {since}"
        );
    }
    assert_eq!(
        lease_at(submitted).0,
        Value::Null,
        "a submitted feature waits for the merge"
    );

    // Bad points are a clear error.
    let (code, body) = served.get("/api/timeline?from=yesterday-ish", None);
    assert_eq!(code, 400, "{body}");
}

#[test]
fn the_dashboard_is_one_embedded_page_behind_the_token() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual", "--token", "s3cret"]);
    let (code, body) = served.get("/", None);
    assert_eq!(code, 401);
    assert!(body.contains("?token="), "says how to open it: {body}");
    assert_eq!(served.get("/?token=wrong", None).0, 401);
    let (code, page) = served.get("/?token=s3cret", None);
    assert_eq!(code, 200);
    assert!(page.starts_with("<!doctype html>"));
    for part in [
        "id=\"seq\"",
        "id=\"timeline\"",
        "id=\"agents\"",
        "id=\"history\"",
    ] {
        assert!(page.contains(part), "the page has {part}");
    }
    // Nothing from elsewhere: no external script, style, font or image.
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!page.contains(external), "the page loads {external}");
    }
    // The header works too, as for the API.
    assert_eq!(served.get("/", Some("s3cret")).0, 200);
}

#[test]
fn an_anomaly_is_a_marker_on_its_agents_lane_with_its_reason() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "register-agent", "a1"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    sb.ok(&["agents", "coordination-cycle"]);
    // claiming cannot become submitting: the reducer records it and changes nothing else.
    let served = sb.serve(&["--manual"]);
    let (code, body) = served.agent_span(
        "a1",
        "agent.work_progress",
        &[("agent.state", "submitting")],
    );
    assert_eq!(code, 200, "{body}");
    let t = timeline(&served, "resolution=10000");
    let anomalies: Vec<&Value> = t["markers"]
        .as_array()
        .expect("markers")
        .iter()
        .filter(|m| m["kind"] == "anomaly")
        .collect();
    assert_eq!(anomalies.len(), 1, "{}", t["markers"]);
    assert_eq!(anomalies[0]["agent_id"], "a1");
    assert_eq!(
        anomalies[0]["seq"],
        seq_of(&served, "agent.work_progress", Some("submitting"))
    );
    assert!(
        anomalies[0]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("illegal transition claiming → submitting"),
        "{}",
        anomalies[0]
    );
    // The lane is unmoved by it: a1 is still claiming f1 at the end.
    let lane = t["lanes"][0]["intervals"].as_array().expect("intervals");
    let last = lane.last().expect("an interval");
    assert_eq!(
        (&last["state"], &last["features"]),
        (&json!("claiming"), &json!("f1"))
    );
}

/// The last step of a timeline is usually cut short by its end; its rate is counted over a
/// whole step like the others, not over the few milliseconds since the sample before (which
/// drew a spike that never happened).
#[test]
fn the_last_partial_step_draws_no_false_spike() {
    let sb = Sandbox::new("main");
    let (times, last) = story(&sb);
    let served = sb.serve(&["--manual"]);
    let first = times[&1];
    let mut partial = 0;
    for resolution in 2..=24 {
        let t = timeline(&served, &format!("resolution={resolution}"));
        let samples = t["samples"].as_array().expect("samples");
        let n = samples.len();
        assert!(n >= 2, "{t}");
        let (before, end) = (&samples[n - 2], &samples[n - 1]);
        assert_eq!(end["seq"], last);
        let step = spanfold::timeline::step_for(times[&last] - first, resolution);
        let elapsed = end["time"].as_u64().expect("time") - before["time"].as_u64().expect("time");
        if elapsed >= step {
            continue;
        }
        partial += 1;
        let events =
            (end["seq"].as_u64().expect("seq") - before["seq"].as_u64().expect("seq")) as f64;
        let expected = (events / (step as f64 / 1e9) * 10.0).round() / 10.0;
        assert_eq!(
            end["ingest_rate"].as_f64(),
            Some(expected),
            "resolution {resolution}: {t}"
        );
    }
    assert!(partial > 0, "some resolution ends in a partial step");
}
