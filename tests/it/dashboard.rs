//! The dashboard in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core (npm), both installed by tests/browser/ensure.sh, against a server holding the
//! demo's log. Screenshots go to target/browser-screenshots.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::Sandbox;
use serde_json::{Value, json};

fn api(served: &common::Served, path: &str) -> Value {
    let (code, body) = served.get(path, None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str::<Value>(&body).expect("json")["data"].clone()
}

#[test]
fn the_dashboard_shows_the_past_in_a_real_browser() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ensure = Command::new("bash")
        .arg(format!("{root}/tests/browser/ensure.sh"))
        .output()
        .expect("the install script runs");
    assert!(
        ensure.status.success(),
        "could not install Chromium and playwright-core: {}",
        String::from_utf8_lossy(&ensure.stderr)
    );
    let node_dir = String::from_utf8_lossy(&ensure.stdout).trim().to_owned();

    let sb = Sandbox::new("main");
    let demo = sb.tmp.path().join("demo");
    let run = sb.run(&["demo", "--repo", &demo.to_string_lossy()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    forecast_a_conflict(&sb, &demo);
    let served = sb.serve_for(&demo.join(".git").join("spanfold"), &demo);

    // What the page must show, from the API: the agents, a feature completed now, and an early
    // point at which it was in progress.
    let status = api(&served, "/api/status");
    let agents: Vec<String> = status["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent_id"].as_str().map(str::to_owned))
        .collect();
    let feature = status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["status"] == "completed"))
        .and_then(|f| f["name"].as_str())
        .expect("a completed feature")
        .to_owned();
    let history = api(&served, &format!("/api/history?feature={feature}"));
    let early_seq =
        first_seq_to(&history, "in_progress").expect("the feature was in progress once");
    // When the feature was submitted: the merge queue then holds it, in the queue's order.
    let merge_seq = first_seq_to(&history, "merging").expect("the feature was submitted once");
    let queued = api(&served, &format!("/api/status?at={merge_seq}"));
    let merge_queue: Vec<&str> = queued["merge_queue"]
        .as_array()
        .map(|q| q.iter().filter_map(|e| e["feature"].as_str()).collect())
        .unwrap_or_default();
    assert!(merge_queue.contains(&feature.as_str()), "{queued}");
    let last_seq = status["as_of"]["seq"].as_u64().expect("as_of");
    // Which agents hold work under a lease at the early point: the board must show them a
    // lease left, and the others none.
    let early = api(&served, &format!("/api/status?at={early_seq}"));
    let leased: Vec<&str> = early["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter(|a| !a["lease_expires_at"].is_null())
        .filter_map(|a| a["agent_id"].as_str())
        .collect();
    assert!(
        !leased.is_empty(),
        "someone works on {feature} at {early_seq}"
    );
    // What a feature's branch changes, for the page's detail: an active feature's diffstat; a
    // merged one's branch is gone, which the answer says; an unknown feature is not found.
    let changes = api(&served, "/api/features/radar-1/changes");
    assert!(
        changes["diffstat"]
            .as_str()
            .is_some_and(|d| d.contains("radar.txt") && d.contains("1 file changed")),
        "{changes}"
    );
    let (code, body) = served.get(&format!("/api/features/{feature}/changes"), None);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("is gone") && body.contains("merged as"),
        "{body}"
    );
    let (code, body) = served.get("/api/features/never-asked/changes", None);
    assert_eq!(code, 404, "{body}");
    // When the radar first forecast a conflict.
    let (radar_seq, radar_feature) = first_conflict_forecast(&served, &status)
        .expect("the radar forecast a conflict in the demo");
    let expect = json!({
        "agents": agents,
        "feature": feature,
        "early_seq": early_seq,
        "last_seq": last_seq,
        "leased": leased,
        "merge_seq": merge_seq,
        "merge_queue": merge_queue,
        "radar_seq": radar_seq,
        "radar_feature": radar_feature,
    });

    // A second server whose log is one instant: `init` alone, one export. The timeline then
    // spans no time at all, which the page must still draw.
    let instant = Sandbox::new("main");
    instant.ok(&["agents", "init"]);
    let instant_served = instant.serve(&["--manual"]);
    let t = api(&instant_served, "/api/timeline");
    let to = t["to"]["time"].as_u64().expect("an end");
    assert!(
        t["samples"]
            .as_array()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|s| s["time"] == to)),
        "the log is one instant: {t}"
    );

    let shots = PathBuf::from(root)
        .join("target")
        .join("browser-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/dashboard.cjs"))
        .arg(&node_dir)
        .arg(format!("{}/", served.http))
        .arg(expect.to_string())
        .arg(&shots)
        .arg(format!("{}/", instant_served.http))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert!(shots.join("dashboard-past.png").exists());
}

/// The seq of the first entry of a feature's history whose status became `status`.
fn first_seq_to(history: &Value, status: &str) -> Option<u64> {
    history
        .as_array()?
        .iter()
        .find(|e| {
            e["changes"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["field"] == "status" && c["to"] == status)
            })
        })
        .and_then(|e| e["seq"].as_u64())
}

/// The first moment a feature's history shows a conflict forecast, and that feature.
fn first_conflict_forecast(served: &common::Served, status: &Value) -> Option<(u64, String)> {
    let names: Vec<&str> = status["features"]
        .as_array()?
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let history = api(served, &format!("/api/history?feature={name}"));
            let seq = history.as_array()?.iter().find_map(|e| {
                let forecast = e["changes"].as_array()?.iter().any(|c| {
                    c["field"] == "risk"
                        && c["to"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("conflict with"))
                });
                forecast.then(|| e["seq"].as_u64()).flatten()
            })?;
            Some((seq, name.to_owned()))
        })
        .min()
}

/// Two more features on the demo's repository, each adding the same file with other words: the
/// cycle after their commits forecasts their conflict. (The demo's own conflict is resolved by
/// its agents within milliseconds, sometimes before the radar looks.)
fn forecast_a_conflict(sb: &Sandbox, demo: &std::path::Path) {
    // Only the two new agents can take them: the demo's agents (one of them launched, whose
    // process is gone) stay idle, so the server has nothing to act on when it starts.
    for (agent, feature) in [("radar-a", "radar-1"), ("radar-b", "radar-2")] {
        sb.run_in(
            demo,
            &["agents", "register-agent", agent, "--expertise", "radar"],
        );
        sb.run_in(
            demo,
            &["agents", "add-feature", feature, "--expertise", "radar"],
        );
    }
    let cycle = sb
        .run_in(demo, &["--json", "agents", "coordination-cycle"])
        .json();
    let placed = cycle["data"]["assignments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(placed.len(), 2, "{cycle}");
    for p in &placed {
        let wt = PathBuf::from(p["worktree_path"].as_str().unwrap_or_default());
        let name = p["feature_name"].as_str().unwrap_or_default();
        sb.commit_as_agent(&wt, "radar.txt", &format!("{name} was here\n"), name);
    }
    sb.run_in(demo, &["agents", "coordination-cycle"]);
}
