//! The conflict radar's forecasts against what `git merge` itself does: a generated corpus of
//! branch pairs (edits on the same, adjacent and distant lines, renames, deletions, binary
//! files, adds of the same path, and random mixes of these), each merged for real in a checkout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use spanfold::git::{ForecastKind, Radar};

use crate::common::{Sandbox, bare_env};

/// One change a side makes to the base tree.
#[derive(Debug, Clone)]
enum Op {
    /// Replaces line `n` (from 0) of a text file.
    Line(String, usize, String),
    Delete(String),
    Rename(String, String),
    Add(String, Vec<u8>),
    Binary(String, Vec<u8>),
}

type Tree = BTreeMap<String, Vec<u8>>;

const TEXT_FILES: usize = 8;
const BINARY_FILES: usize = 3;
const LINES: usize = 30;

fn base_tree() -> Tree {
    let mut tree = Tree::new();
    for k in 0..TEXT_FILES {
        let text: String = (0..LINES)
            .map(|i| format!("line {i} of t{k}: {}\n", "x".repeat(20 + (i * 7 + k) % 13)))
            .collect();
        tree.insert(format!("src/t{k}.txt"), text.into_bytes());
    }
    for k in 0..BINARY_FILES {
        tree.insert(format!("assets/b{k}.bin"), binary(k as u8, 0));
    }
    tree
}

fn binary(k: u8, version: u8) -> Vec<u8> {
    (0..96u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(k) ^ version)
        .chain([0, 0, 1, version])
        .collect()
}

fn apply(base: &Tree, ops: &[Op]) -> Tree {
    let mut tree = base.clone();
    for op in ops {
        match op {
            Op::Line(path, n, text) => {
                if let Some(bytes) = tree.get_mut(path) {
                    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
                        .lines()
                        .map(str::to_owned)
                        .collect();
                    if let Some(line) = lines.get_mut(*n) {
                        *line = text.clone();
                    }
                    *bytes = (lines.join("\n") + "\n").into_bytes();
                }
            }
            Op::Delete(path) => {
                tree.remove(path);
            }
            Op::Rename(from, to) => {
                if let Some(bytes) = tree.remove(from) {
                    tree.insert(to.clone(), bytes);
                }
            }
            Op::Add(path, bytes) | Op::Binary(path, bytes) => {
                tree.insert(path.clone(), bytes.clone());
            }
        }
    }
    tree
}

/// A small deterministic generator: the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as usize
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() % n
    }
}

fn t(k: usize) -> String {
    format!("src/t{k}.txt")
}

fn line(k: usize, n: usize, who: &str) -> Op {
    Op::Line(t(k), n, format!("{who} changed line {n}"))
}

/// The pairs of the corpus: (what it exercises, ours, theirs).
fn corpus() -> Vec<(String, Vec<Op>, Vec<Op>)> {
    let mut rng = Rng(0x5eed_cafe_f00d);
    let mut out = Vec::new();
    for v in 0..14 {
        let (k, n) = (v % TEXT_FILES, 1 + (v * 5) % (LINES - 12));
        let b = format!("assets/b{}.bin", v % BINARY_FILES);
        let cases: Vec<(&str, Vec<Op>, Vec<Op>)> = vec![
            (
                "same line, different text",
                vec![line(k, n, "a")],
                vec![line(k, n, "b")],
            ),
            (
                "same line, same text",
                vec![line(k, n, "both")],
                vec![line(k, n, "both")],
            ),
            (
                "distant lines",
                vec![line(k, n, "a")],
                vec![line(k, n + 8, "b")],
            ),
            (
                "adjacent lines",
                vec![line(k, n, "a")],
                vec![line(k, n + 1, "b")],
            ),
            (
                "different files",
                vec![line(k, n, "a")],
                vec![line((k + 1) % TEXT_FILES, n, "b")],
            ),
            (
                "rename against an edit",
                vec![Op::Rename(t(k), format!("lib/r{k}.txt"))],
                vec![line(k, n, "b")],
            ),
            (
                "renamed and edited against a distant edit",
                vec![
                    Op::Rename(t(k), format!("lib/r{k}.txt")),
                    Op::Line(format!("lib/r{k}.txt"), n, "a moved".into()),
                ],
                vec![line(k, n + 9, "b")],
            ),
            (
                "renamed to two names",
                vec![Op::Rename(t(k), "lib/one.txt".into())],
                vec![Op::Rename(t(k), "lib/two.txt".into())],
            ),
            (
                "renamed to the same name",
                vec![Op::Rename(t(k), "lib/same.txt".into())],
                vec![Op::Rename(t(k), "lib/same.txt".into())],
            ),
            (
                "deleted against an edit",
                vec![Op::Delete(t(k))],
                vec![line(k, n, "b")],
            ),
            (
                "deleted on both",
                vec![Op::Delete(t(k))],
                vec![Op::Delete(t(k))],
            ),
            (
                "binary changed on both",
                vec![Op::Binary(b.clone(), binary(9, 1))],
                vec![Op::Binary(b.clone(), binary(9, 2))],
            ),
            (
                "binary changed on one",
                vec![Op::Binary(b.clone(), binary(9, 1))],
                vec![line(k, n, "b")],
            ),
            (
                "added the same path, same content",
                vec![Op::Add("new.txt".into(), b"same\n".to_vec())],
                vec![Op::Add("new.txt".into(), b"same\n".to_vec())],
            ),
            (
                "added the same path, different content",
                vec![Op::Add(
                    format!("new{v}.txt"),
                    format!("a {v}\n").into_bytes(),
                )],
                vec![Op::Add(
                    format!("new{v}.txt"),
                    format!("b {v}\n").into_bytes(),
                )],
            ),
        ];
        for (what, ours, theirs) in cases {
            out.push((what.to_owned(), ours, theirs));
        }
        // A random mix of edits on both sides, a few of which may meet.
        let mix = |who: &str, rng: &mut Rng| -> Vec<Op> {
            (0..1 + rng.below(4))
                .map(|_| {
                    line(
                        rng.below(3),
                        rng.below(LINES),
                        &format!("{who}{}", rng.below(2)),
                    )
                })
                .collect()
        };
        let (ours, theirs) = (mix("a", &mut rng), mix("b", &mut rng));
        out.push(("random mix".to_owned(), ours, theirs));
    }
    out
}

/// Writes the base commit and a branch per side in one `git fast-import`.
fn import(sb: &Sandbox, pairs: &[(String, Vec<Op>, Vec<Op>)]) {
    let base = base_tree();
    let mut stream = Vec::new();
    let commit = |stream: &mut Vec<u8>, branch: &str, tree: &Tree, from: Option<&str>| {
        writeln!(stream, "commit refs/heads/{branch}").expect("write");
        writeln!(stream, "committer T <t@example.com> 1700000000 +0000").expect("write");
        writeln!(stream, "data {}\n{branch}", branch.len()).expect("write");
        if let Some(from) = from {
            writeln!(stream, "from refs/heads/{from}").expect("write");
        }
        writeln!(stream, "deleteall").expect("write");
        for (path, bytes) in tree {
            writeln!(stream, "M 100644 inline {path}\ndata {}", bytes.len()).expect("write");
            stream.extend_from_slice(bytes);
            writeln!(stream).expect("write");
        }
    };
    commit(&mut stream, "corpus-base", &base, Some("main"));
    for (i, (_, ours, theirs)) in pairs.iter().enumerate() {
        commit(
            &mut stream,
            &format!("p{i}-ours"),
            &apply(&base, ours),
            Some("corpus-base"),
        );
        commit(
            &mut stream,
            &format!("p{i}-theirs"),
            &apply(&base, theirs),
            Some("corpus-base"),
        );
    }
    stream.extend_from_slice(b"done\n");
    let mut cmd = Command::new("git");
    cmd.args(["fast-import", "--quiet", "--done"])
        .current_dir(&sb.repo)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    bare_env(&mut cmd, &sb.home);
    let mut child = cmd.spawn().expect("git fast-import runs");
    // A refused stream shows in fast-import's output below, not in the pipe's error.
    let _ = child.stdin.take().expect("stdin").write_all(&stream);
    let out = child.wait_with_output().expect("fast-import ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `git merge` of `theirs` into `ours` stops on conflicts, and the paths it leaves
/// unmerged.
fn git_merge(sb: &Sandbox, dir: &Path, ours: &str, theirs: &str) -> (bool, Vec<String>) {
    sb.git_in(dir, &["checkout", "-q", "--detach", ours]);
    let mut cmd = Command::new("git");
    cmd.args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(["merge", "-q", "--no-edit", "--no-ff", theirs])
        .current_dir(dir);
    bare_env(&mut cmd, &sb.home);
    let out = cmd.output().expect("git merge runs");
    let unmerged = sb.git_in(dir, &["diff", "--name-only", "--diff-filter=U"]);
    if !out.status.success() {
        sb.git_in(dir, &["merge", "--abort"]);
    }
    let paths = unmerged.lines().map(str::to_owned).collect();
    (!out.status.success(), paths)
}

#[test]
fn the_radars_verdict_is_what_git_merge_does_on_every_pair_of_the_corpus() {
    let sb = Sandbox::new("main");
    let pairs = corpus();
    assert!(pairs.len() >= 200, "{} pairs", pairs.len());
    import(&sb, &pairs);
    let checkout = sb.tmp.path().join("merges");
    sb.git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        checkout.to_str().expect("utf-8"),
        "corpus-base",
    ]);
    let mut radar = Radar::open(&sb.repo).expect("radar opens");
    let (mut conflicts, mut clean) = (0, 0);
    for (i, (what, ours, theirs)) in pairs.iter().enumerate() {
        let (a, b) = (format!("p{i}-ours"), format!("p{i}-theirs"));
        let (git_conflicts, unmerged) = git_merge(&sb, &checkout, &a, &b);
        let tips = radar.tips(&[&a, &b]);
        let (Some(ours_tip), Some(theirs_tip)) = (tips[0], tips[1]) else {
            panic!("pair {i}: branches not found");
        };
        let forecast = radar
            .forecast(ours_tip, theirs_tip)
            .expect("merges in memory");
        assert_eq!(
            forecast.kind == ForecastKind::Conflict,
            git_conflicts,
            "pair {i} ({what}: {ours:?} / {theirs:?}): radar says {forecast:?}, git merge left {unmerged:?}"
        );
        for path in &unmerged {
            assert!(
                forecast.paths.contains(path),
                "pair {i} ({what}): git leaves {path} unmerged, the radar names {:?}",
                forecast.paths
            );
        }
        if what == "same line, different text" {
            // Line n+1 of the file; git's markers take five lines around the two versions.
            let n = 1 + (i / 16 * 5) % (LINES - 12);
            let expected = format!("src/t{}.txt:{}-{}", (i / 16) % TEXT_FILES, n + 1, n + 5);
            assert_eq!(forecast.hunks, [expected], "pair {i}");
        }
        if git_conflicts {
            conflicts += 1;
        } else {
            clean += 1;
        }
    }
    // Both verdicts are well represented, so agreeing is not agreeing on one answer.
    assert!(
        conflicts >= 60 && clean >= 60,
        "{conflicts} conflicts, {clean} clean"
    );
}

fn feature_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no feature {name}: {status}"))
}

/// How many forecasts the log holds, from the export.
fn forecasts_recorded(sb: &Sandbox) -> usize {
    let out = sb.run(&["export", "--format", "json"]);
    out.stdout.matches("coordination.conflict_forecast").count()
}

/// Two agents change the same line of the same file on their branches: the next cycle
/// forecasts the conflict before either submits, tells both agents, names it in status, text
/// status, history and `check-path`; nothing is recorded again while nothing moves; when one
/// takes its change back the forecast clears.
#[test]
fn a_conflict_between_two_active_features_is_forecast_before_either_submits() {
    use crate::common::{assign, submit};
    let sb = Sandbox::new("main");
    sb.commit_as_agent(
        &sb.repo,
        "auth.rs",
        "fn login() {}\nfn logout() {}\n",
        "auth",
    );
    sb.ok(&["agents", "init"]);
    let one = assign(&sb, "a1", "login-form");
    let two = assign(&sb, "a2", "login-audit");
    sb.commit_as_agent(
        &one,
        "auth.rs",
        "fn login(form: Form) {}\nfn logout() {}\n",
        "form",
    );
    sb.commit_as_agent(
        &two,
        "auth.rs",
        "fn login() { audit(); }\nfn logout() {}\n",
        "audit",
    );
    sb.commit_as_agent(&two, "audit.rs", "fn audit() {}\n", "audit log");

    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status();
    let risk = &feature_of(&status, "login-audit")["conflict_risk"];
    assert_eq!(risk[0]["with"], "login-form", "{status}");
    assert_eq!(risk[0]["kind"], "conflict");
    assert_eq!(risk[0]["paths"], serde_json::json!(["auth.rs"]));
    assert_eq!(risk[0]["hunks"], serde_json::json!(["auth.rs:1-5"]));
    assert_eq!(
        feature_of(&status, "login-form")["conflict_risk"][0]["with"],
        "login-audit"
    );
    let recorded = forecasts_recorded(&sb);
    assert_eq!(recorded, 1, "one pair, one forecast");

    // The agents are told, in their task and when they report.
    let next = sb.run(&["agents", "next", "a1"]).stdout;
    assert!(
        next.contains("warning: feature login-audit also changes auth.rs and the two conflict"),
        "{next}"
    );
    let prompt = sb.run(&["agents", "next", "a1", "--prompt"]).stdout;
    assert!(prompt.contains("Conflicts ahead"), "{prompt}");
    let reported = sb
        .run(&["agents", "progress", "a2", "--state", "working"])
        .stdout;
    assert!(
        reported.contains("login-audit: feature login-form also changes auth.rs"),
        "{reported}"
    );
    let text = sb.run(&["agents", "agent-status"]).stdout;
    assert!(text.contains("conflict:login-form(auth.rs)"), "{text}");
    let history = sb.ok(&["history", "--feature", "login-form"]).to_string();
    assert!(
        history.contains("conflict with login-audit on auth.rs"),
        "{history}"
    );

    // The hook's question: a1 editing auth.rs collides (exit 2, why on stderr); audit.rs,
    // which only a2 changed, collides too; a file no one touched does not.
    let hook = sb.run(&[
        "agents",
        "check-path",
        "a1",
        one.join("auth.rs").to_str().unwrap_or(""),
    ]);
    assert_eq!(hook.code, 2, "{hook:?}");
    assert!(
        hook.stderr
            .contains("feature login-audit changes the same lines"),
        "{}",
        hook.stderr
    );
    let other = sb.run(&["agents", "check-path", "a1", "audit.rs"]);
    assert_eq!(other.code, 2, "{other:?}");
    assert!(
        other.stderr.contains("feature login-audit also changes it"),
        "{}",
        other.stderr
    );
    let free = sb.run(&["agents", "check-path", "a1", "README.md"]);
    assert_eq!(free.code, 0, "{free:?}");

    // Nothing moved: nothing recorded.
    sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(forecasts_recorded(&sb), recorded);

    // a2 takes its change to auth.rs back: the pair no longer shares a path.
    sb.commit_as_agent(
        &two,
        "auth.rs",
        "fn login() {}\nfn logout() {}\n",
        "no audit in login",
    );
    sb.ok(&["agents", "coordination-cycle"]);
    let status = sb.status();
    assert!(
        feature_of(&status, "login-audit")
            .get("conflict_risk")
            .is_none(),
        "{status}"
    );
    assert_eq!(forecasts_recorded(&sb), recorded + 1, "the clear forecast");

    // Once merged, a feature's forecasts are gone with it.
    submit(&sb, "a1");
    sb.ok(&["agents", "coordination-cycle"]);
    assert!(
        feature_of(&sb.status(), "login-form")
            .get("conflict_risk")
            .is_none()
    );
}

/// Declared scopes keep two features apart: the second waits, named, until the first is done;
/// `--allow-overlap` lets a third go at once.
#[test]
fn features_whose_declared_paths_overlap_are_not_worked_on_at_once() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    for a in ["a1", "a2", "a3"] {
        sb.ok(&["agents", "register-agent", a]);
    }
    sb.ok(&[
        "agents",
        "add-feature",
        "login",
        "--paths",
        "src/auth/**,docs/auth.md",
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "tokens",
        "--paths",
        "src/auth/tokens.rs",
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "audit",
        "--paths",
        "src/auth/audit.rs",
        "--allow-overlap",
    ]);
    let refused = sb.fails(&["agents", "add-feature", "bad", "--paths", "../elsewhere/**"]);
    assert!(
        refused.contains("must be relative to the repository"),
        "{refused}"
    );
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    let placed: Vec<&str> = cycle["assignments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["feature_name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(placed, ["login", "audit"], "{cycle}");
    let status = sb.status();
    let tokens = feature_of(&status, "tokens");
    assert_eq!(tokens["status"], "queued");
    assert!(
        tokens["wait_reason"].as_str().is_some_and(
            |r| r.starts_with("waits for feature login: its paths (src/auth/**) overlap")
        ),
        "{tokens}"
    );
    let details = sb.ok(&["agents", "agent-status", "--details"]);
    assert_eq!(
        feature_of(&details, "login")["details"]["paths"],
        serde_json::json!(["src/auth/**", "docs/auth.md"])
    );
    // login cancelled: tokens goes.
    sb.ok(&["agents", "cancel-feature", "login"]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(cycle["assignments"][0]["feature_name"], "tokens", "{cycle}");
}

/// Barrier paths from git config reach the log at the next cycle, and serialise the features
/// that touch them even when they allow overlap; a replay of the log decides the same.
#[test]
fn barrier_paths_serialise_the_features_that_touch_them() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    sb.git(&["config", "spanfold.barrierPaths", "Cargo.lock, .github/**"]);
    for a in ["a1", "a2"] {
        sb.ok(&["agents", "register-agent", a]);
    }
    sb.ok(&[
        "agents",
        "add-feature",
        "bump-serde",
        "--paths",
        "Cargo.lock,Cargo.toml",
        "--allow-overlap",
    ]);
    sb.ok(&[
        "agents",
        "add-feature",
        "bump-tokio",
        "--paths",
        "Cargo.lock",
        "--allow-overlap",
    ]);
    let cycle = sb.ok(&["agents", "coordination-cycle"]);
    assert_eq!(
        cycle["assignments"].as_array().map(Vec::len),
        Some(1),
        "{cycle}"
    );
    let status = sb.status();
    assert_eq!(
        status["barrier_paths"],
        serde_json::json!(["Cargo.lock", ".github/**"])
    );
    let waiting = feature_of(&status, "bump-tokio");
    assert!(
        waiting["wait_reason"]
            .as_str()
            .is_some_and(|r| r.contains("both touch the barrier path Cargo.lock")),
        "{waiting}"
    );
    // The recorded decisions are the policy's on the recorded barriers.
    let export = sb.tmp.path().join("trace.jsonl");
    sb.ok(&["export", "-o", export.to_str().unwrap_or("")]);
    let verified = sb.run(&["replay", export.to_str().unwrap_or(""), "--verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// The radar looks when an agent's own telemetry says it committed (Claude Code's tool result
/// carries `git_commit_id`), not only at the next timed cycle: with no timed cycles at all, the
/// forecast follows the commit the telemetry reports.
#[test]
fn an_agents_telemetry_of_a_commit_makes_the_radar_look() {
    use crate::common::assign;
    let sb = Sandbox::new("main");
    sb.commit_as_agent(&sb.repo, "auth.rs", "fn login() {}\n", "auth");
    sb.ok(&["agents", "init"]);
    let one = assign(&sb, "a1", "login-form");
    let two = assign(&sb, "a2", "login-audit");
    sb.commit_as_agent(&one, "auth.rs", "fn login(form: Form) {}\n", "form");
    sb.commit_as_agent(&two, "auth.rs", "fn login() { audit(); }\n", "audit");
    // No timed cycles: the server's first look, when it starts, sees the conflict.
    let served = sb.serve(&["--interval", "0"]);
    let risk_kind = |sb: &Sandbox| {
        feature_of(&sb.status(), "login-audit")["conflict_risk"][0]["kind"]
            .as_str()
            .map(str::to_owned)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while risk_kind(&sb).is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(risk_kind(&sb).as_deref(), Some("conflict"));

    // a2 takes a1's version: the same change on both sides merges cleanly, and the risk clears.
    // Nothing but its telemetry tells the server.
    let commit = {
        sb.commit_as_agent(&two, "auth.rs", "fn login(form: Form) {}\n", "same as form");
        sb.git_in(&two, &["rev-parse", "HEAD"]).trim().to_owned()
    };
    let record = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[
          {{"key":"service.name","value":{{"stringValue":"claude-code"}}}},
          {{"key":"agent.id","value":{{"stringValue":"a2"}}}}]}},
          "scopeLogs":[{{"scope":{{"name":"com.anthropic.claude_code.events"}},"logRecords":[
            {{"timeUnixNano":"1764000000000000000","body":{{"stringValue":"claude_code.tool_result"}},
             "attributes":[{{"key":"event.name","value":{{"stringValue":"tool_result"}}}},
                           {{"key":"tool_name","value":{{"stringValue":"Bash"}}}},
                           {{"key":"success","value":{{"stringValue":"true"}}}},
                           {{"key":"git_commit_id","value":{{"stringValue":"{commit}"}}}}]}}
          ]}}]}}]}}"#
    );
    let (code, answer) = crate::common::wire::post_at(
        &sb,
        &served,
        "/v1/logs",
        record.as_bytes(),
        &["Content-Type: application/json"],
    );
    assert_eq!(code, 200, "{answer}");
    while risk_kind(&sb).as_deref() == Some("conflict") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        risk_kind(&sb),
        None,
        "the forecast follows the commit the telemetry reported"
    );
}
