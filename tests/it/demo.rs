//! `spanfold demo --agents 3 --features 6`: every feature merged for real (one of them by an
//! agent run under `spanfold agents run`), nothing left behind,
//! and the conflicting pair visible in the log as conflicted, then merged.

use crate::common;

use common::Sandbox;
use serde_json::Value;

#[test]
fn the_demo_merges_everything_and_leaves_a_clean_repository() {
    // A sandbox only for its newcomer environment; the demo makes its own repository.
    let sb = Sandbox::new("main");
    let repo = sb.tmp.path().join("demo-project");
    let run = sb.run_in(
        sb.tmp.path(),
        &[
            "--json",
            "demo",
            "--agents",
            "3",
            "--features",
            "6",
            "--repo",
            repo.to_str().unwrap_or(""),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary = run.json()["data"].clone();
    assert_eq!(summary["features_merged"], 6);
    assert_eq!(summary["conflicts_resolved"], 1);
    // One agent ran under `spanfold agents run`: the bundled script agent, which reports as
    // Claude Code does (OTLP log records), read through Claude Code's profile.
    let launched = &summary["launched_agent"];
    assert_eq!(launched["source"], "claude", "{launched}");
    assert!(launched["llm_requests"].as_u64() >= Some(1), "{launched}");
    assert_eq!(launched["process"]["state"], "exited", "{launched}");

    let git = |args: &[&str]| sb.git_in(&repo, args);
    let log = git(&["log", "--format=%s", "main"]);
    for i in 1..=6 {
        assert!(
            log.contains(&format!("feature-{i:02}: implement")),
            "feature {i} not on main:\n{log}"
        );
        assert!(repo.join(format!("feature-{i:02}.txt")).exists());
    }
    assert_eq!(
        git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1,
        "only the main checkout"
    );
    assert_eq!(
        git(&["branch", "--list", "spanfold/*"]).trim(),
        "",
        "no feature branches remain"
    );
    assert_eq!(git(&["status", "--porcelain"]), "");
    git(&["fsck", "--no-progress"]);

    let coord = repo.join(".git/spanfold");
    let status = sb
        .run_in(
            &repo,
            &[
                "--json",
                "--coord-dir",
                coord.to_str().unwrap_or(""),
                "agents",
                "agent-status",
            ],
        )
        .json();
    let c = &status["data"]["coordination_status"];
    assert_eq!(c["features_completed"], 6);
    assert_eq!(c["features_in_progress"], 0);

    // The log tells the conflict: one feature conflicted, then merged.
    let served = sb.serve_for(&coord, &repo);
    let (_, events) = served.get("/api/events?from=1&limit=100000", None);
    let merges: Vec<(String, String)> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] == "coordination.feature_merge")
        .map(|v| {
            (
                v["attributes"]["feature.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                v["attributes"]["merge.result"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let conflicted: Vec<&String> = merges
        .iter()
        .filter(|(_, r)| r == "conflicted")
        .map(|(f, _)| f)
        .collect();
    assert_eq!(conflicted.len(), 1, "{merges:?}");
    let f = conflicted[0];
    let at_conflict = merges.iter().position(|(g, r)| g == f && r == "conflicted");
    let at_merge = merges.iter().rposition(|(g, r)| g == f && r == "merged");
    assert!(
        at_conflict < at_merge,
        "{f}: conflicted, then merged: {merges:?}"
    );
}
