//! A log damaged on disk, rows of TESTING.md's catalogue: what can be rebuilt is rebuilt, with
//! the directory as it was found copied aside first; what cannot is said truthfully.

mod common;

use common::Sandbox;

fn with_features(n: usize) -> Sandbox {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    for i in 0..n {
        sb.ok(&["agents", "add-feature", &format!("f{i}")]);
    }
    sb
}

fn flip_middle(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = bytes.len() / 2;
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xff;
    }
    std::fs::write(path, &bytes).expect("damage");
}

#[test]
fn a_damaged_snapshot_is_rebuilt_from_the_log_after_a_copy_is_set_aside() {
    let sb = with_features(20);
    let coord = sb.repo.join(".git").join("spanfold");
    let snapshot = std::fs::read_dir(coord.join("log"))
        .expect("log dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap."))
        })
        .expect("the storage keeps a snapshot");
    flip_middle(&snapshot);
    let damaged = std::fs::read(&snapshot).expect("read");

    let run = sb.run(&["--json", "agents", "agent-status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("snapshot") && run.stderr.contains("rebuilding it from the log"),
        "{}",
        run.stderr
    );
    let copy = coord.join("log.damaged-1");
    assert!(
        run.stderr.contains(&copy.display().to_string()),
        "{}",
        run.stderr
    );
    let name = snapshot.file_name().expect("name");
    assert_eq!(
        std::fs::read(copy.join(name)).expect("the damaged snapshot is in the copy"),
        damaged
    );
    // Nothing of the log was lost, and the next command opens it without a word.
    let status: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(status["data"]["counters"]["events"], 21);
    let again = sb.run(&["agents", "agent-status"]);
    assert_eq!((again.code, again.stderr.contains("damaged")), (0, false));
}

#[test]
fn a_damaged_log_is_said_without_claiming_nothing_changed() {
    let sb = with_features(20);
    let log = sb.repo.join(".git").join("spanfold").join("log");
    let mut bytes = std::fs::read(log.join("db")).expect("read db");
    let used: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
    let at = used[used.len() / 2];
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xff;
    }
    std::fs::write(log.join("db"), &bytes).expect("damage");
    let error = sb.fails(&["agents", "agent-status"]);
    assert!(error.contains("is damaged"), "{error}");
    assert!(!error.contains("Nothing was changed"), "{error}");
    assert!(error.contains("spanfold wrote nothing"), "{error}");
}
