//! What a new user hit in a day with spanfold, each as it happened: separate `spanfold`
//! processes on real repositories. Every test here failed on the code before its fix.

mod common;

use common::Sandbox;

fn feature_names(status: &serde_json::Value) -> Vec<String> {
    status["features"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A server killed with SIGKILL leaves its advert; when another repository's server later
/// listens on the same ports, commands here must not go to it.
#[test]
fn a_stale_advert_never_sends_commands_to_another_repositorys_server() {
    let a = Sandbox::new("main");
    a.ok(&["agents", "init"]);
    let b = Sandbox::new("main");
    b.ok(&["agents", "init"]);

    let served_a = a.serve(&["--manual"]);
    let (grpc, http) = (served_a.grpc.clone(), served_a.http.clone());
    served_a.kill();
    assert!(
        a.repo.join(".git/spanfold/server.json").exists(),
        "a killed server leaves its advert"
    );
    let http_addr = http.trim_start_matches("http://");
    let served_b = b.serve(&["--manual", "--grpc", &grpc, "--http", http_addr]);
    assert_eq!(served_b.http, http, "B listens where A did");

    let run = a.run(&["agents", "add-feature", "only-in-a"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("another coordination directory's server answers there"),
        "warns: {}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}'), "no colour codes into a pipe: {:?}", run.stderr);

    let (code, body) = served_b.get("/api/status", None);
    assert_eq!(code, 200);
    assert!(!body.contains("only-in-a"), "landed in B's log: {body}");
    // A's board, read by A's CLI (from A's log), has it; B's board does not leak into A.
    let b_run = b.run(&["--json", "agents", "add-feature", "only-in-b"]);
    assert_eq!(b_run.code, 0, "{}", b_run.stdout);
    let names = feature_names(&a.status());
    assert_eq!(names, vec!["only-in-a".to_owned()]);
}
