//! A log damaged on disk, rows of TESTING.md's catalogue: what can be rebuilt is rebuilt, with
//! the directory as it was found copied aside first; what cannot is said truthfully.

use crate::common;

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

/// A full disk (here: the file size limit, with its signal ignored so the write fails as on a
/// full disk) stops the log from opening, even to export it: the storage writes as it opens.
/// The error says to free space, not that the directory may be missing.
#[test]
fn a_log_that_cannot_open_for_want_of_space_says_to_free_space() {
    let sb = with_features(20);
    let out = sb.tmp.path().join("backup.jsonl");
    let run = std::process::Command::new("bash")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 200; exec \"$0\" export -o \"$1\"",
        ])
        .arg(env!("CARGO_BIN_EXE_spanfold"))
        .arg(&out)
        .current_dir(&sb.repo)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_ne!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("free disk space"), "{stderr}");
    assert!(
        !stderr.contains("check that the directory exists"),
        "{stderr}"
    );
    assert!(!out.exists(), "no export is left half-written");
}

/// With the disk full where the log is, `export` reads a copy of the log made in the temp
/// directory (the full disk is the test-only switch `SPANFOLD_FAULT=no-space-on-open`: the
/// storage reports ENOSPC as it opens), says so, and removes the copy.
#[cfg(feature = "test-hooks")]
#[test]
fn export_works_on_a_full_disk_from_a_copy() {
    let sb = with_features(20);
    let scratch = sb.tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let out = sb.tmp.path().join("backup.jsonl");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_spanfold"))
        .args(["export", "-o"])
        .arg(&out)
        .current_dir(&sb.repo)
        .env("SPANFOLD_FAULT", "no-space-on-open")
        .env("TMPDIR", &scratch)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("reading a copy in"), "{stderr}");
    let lines = std::fs::read_to_string(&out)
        .expect("the export")
        .lines()
        .count();
    assert_eq!(lines, 21, "every event of the log");
    assert_eq!(
        std::fs::read_dir(&scratch).expect("scratch").count(),
        0,
        "the copy is removed"
    );
}
