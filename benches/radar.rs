//! The conflict radar against its peer, measured in the same run: one radar pass over 20 active
//! branches of a 10,000-file repository (every branch merged in memory with the base tip, and
//! with each other branch it shares a changed path with) against a loop of
//! `git merge-tree --write-tree` over exactly the pairs the radar merged. Then what a pass costs
//! when no branch gained a commit: reading the tips and finding every forecast in the cache.
//!
//! `cargo bench --bench radar [-- RUNS]` prints each run and the medians.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spanfold::git::Radar;

const FILES: usize = 10_000;
const DIRS: usize = 100;
const BRANCHES: usize = 20;

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    build_repository(repo);
    let names: Vec<String> = (0..BRANCHES).map(|i| format!("feature-{i:02}")).collect();
    let (mut radar_times, mut git_times, mut idle_times) = (Vec::new(), Vec::new(), Vec::new());
    println!("run | radar pass (cold) | git merge-tree loop | pairs | pass, no new commit");
    for run in 1..=runs {
        let started = Instant::now();
        let mut radar = Radar::open(repo).expect("radar opens");
        let (base, branches) = tips(&radar, &names);
        let pairs = radar.pass(base, &branches).expect("pass");
        let cold = started.elapsed();

        let started = Instant::now();
        for p in &pairs {
            merge_tree(repo, &p.theirs.to_string(), &p.ours.to_string());
        }
        let git = started.elapsed();

        // A cycle with nothing new: the tips are read again, every forecast is in the cache.
        let computed = radar.merges_computed;
        let started = Instant::now();
        let (base, branches) = tips(&radar, &names);
        let again = radar.pass(base, &branches).expect("pass");
        let idle = started.elapsed();
        assert_eq!(again, pairs);
        assert_eq!(radar.merges_computed, computed, "nothing merged again");

        println!(
            "{run} | {:.1} ms | {:.1} ms | {} | {:.3} ms",
            ms(cold),
            ms(git),
            pairs.len(),
            ms(idle)
        );
        radar_times.push(cold);
        git_times.push(git);
        idle_times.push(idle);
    }
    let (r, g, i) = (
        median(&mut radar_times),
        median(&mut git_times),
        median(&mut idle_times),
    );
    println!(
        "median | {:.1} ms | {:.1} ms | | {:.3} ms\nradar is {:.1}x faster than the git loop",
        ms(r),
        ms(g),
        ms(i),
        g.as_secs_f64() / r.as_secs_f64()
    );
}

fn tips(radar: &Radar, names: &[String]) -> (gix::ObjectId, Vec<(String, gix::ObjectId)>) {
    let mut all: Vec<&str> = vec!["main"];
    all.extend(names.iter().map(String::as_str));
    let tips = radar.tips(&all);
    let base = tips[0].expect("main");
    let branches = names
        .iter()
        .zip(&tips[1..])
        .map(|(n, t)| (n.clone(), t.expect("branch")))
        .collect();
    (base, branches)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd
}

fn merge_tree(repo: &Path, ours: &str, theirs: &str) {
    let out = git(repo)
        .args(["merge-tree", "--write-tree", ours, theirs])
        .output()
        .expect("git merge-tree runs");
    // 0: clean, 1: conflicts; anything else is a failure of the peer, not a verdict.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
}

fn text(i: usize, version: &str) -> String {
    (0..40)
        .map(|l| format!("file {i} line {l} {version}\n"))
        .collect()
}

/// A repository of `FILES` files in `DIRS` directories; `BRANCHES` branches that each change
/// four files of their own and one file shared with the next three branches (every fourth pair
/// on the same line: a conflict; the others on their own lines: an overlap); and a base branch
/// that moved on after they branched.
fn build_repository(repo: &Path) {
    assert!(
        git(repo)
            .args(["init", "-q", "-b", "main"])
            .status()
            .expect("git init")
            .success()
    );
    let mut s = Vec::new();
    let file = |s: &mut Vec<u8>, path: &str, body: &str| {
        writeln!(s, "M 100644 inline {path}\ndata {}\n{body}", body.len()).expect("write");
    };
    let commit = |s: &mut Vec<u8>, branch: &str, from: Option<&str>| {
        writeln!(
            s,
            "commit refs/heads/{branch}\ncommitter B <b@localhost> 1700000000 +0000\ndata 1\nc"
        )
        .expect("write");
        if let Some(from) = from {
            writeln!(s, "from {from}").expect("write");
        }
    };
    commit(&mut s, "main", None);
    for i in 0..FILES {
        file(
            &mut s,
            &format!("d{:02}/f{i:05}.txt", i % DIRS),
            &text(i, "base"),
        );
    }
    for b in 0..BRANCHES {
        commit(&mut s, &format!("feature-{b:02}"), Some("refs/heads/main"));
        for k in 0..4 {
            let i = b * 37 + k * 1_001;
            file(
                &mut s,
                &format!("d{:02}/f{i:05}.txt", i % DIRS),
                &text(i, &format!("b{b}")),
            );
        }
        // The shared file of this branch's group of four: the same line for every fourth.
        let group = b / 4;
        let i = 9_000 + group;
        let line = if b % 4 == 3 { 0 } else { 1 + b % 4 * 10 };
        let body: String = (0..40)
            .map(|l| {
                if l == line {
                    format!("file {i} line {l} changed by {b}\n")
                } else {
                    format!("file {i} line {l} base\n")
                }
            })
            .collect();
        file(&mut s, &format!("d{:02}/f{i:05}.txt", i % DIRS), &body);
    }
    // The base moves on after the branches left it: every merge with it is a real merge.
    commit(&mut s, "main", None);
    for i in [5, 505, 5_005] {
        file(
            &mut s,
            &format!("d{:02}/f{i:05}.txt", i % DIRS),
            &text(i, "moved"),
        );
    }
    s.extend_from_slice(b"done\n");
    let mut child = git(repo)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&s)
        .expect("stream");
    assert!(child.wait().expect("fast-import").success());
    assert!(
        git(repo)
            .args(["gc", "-q"])
            .status()
            .expect("git gc")
            .success()
    );
}
