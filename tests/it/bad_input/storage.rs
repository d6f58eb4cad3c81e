//! Bad conditions of the storage: a directory that cannot be written, a damaged log, a full
//! disk, an export aimed into the coordination directory.

use super::*;

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

/// `export -o` to a pipe (or a device, as `/dev/null`) writes into it and leaves it what it
/// was: an export once wrote a file beside `/dev/null` and renamed it over the device.
#[test]
fn an_export_into_a_named_pipe_goes_to_its_reader_and_the_pipe_stays() {
    use std::os::unix::fs::FileTypeExt;
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.ok(&["agents", "add-feature", "f1"]);
    let pipe = sb.tmp.path().join("pipe");
    let made = Command::new("mkfifo").arg(&pipe).status().expect("mkfifo");
    assert!(made.success());
    let received = sb.tmp.path().join("received.jsonl");
    // The reader waits on the pipe, as a `gzip < pipe` would.
    let mut reader = Command::new("cat")
        .arg(&pipe)
        .stdout(std::fs::File::create(&received).expect("create"))
        .spawn()
        .expect("a reader");
    let run = sb.run(&["export", "-o", &pipe.to_string_lossy()]);
    let still_a_pipe = std::fs::metadata(&pipe).is_ok_and(|m| m.file_type().is_fifo());
    if !still_a_pipe {
        // Its pipe is gone: the reader would wait for ever.
        let _ = reader.kill();
    }
    let _ = reader.wait();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(still_a_pipe, "the pipe was replaced by a file");
    let lines = std::fs::read_to_string(&received).expect("what the reader got");
    assert_eq!(lines.lines().count(), 2, "init and the request: {lines}");
}
