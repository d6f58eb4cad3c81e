//! Crash tests, after sled's own: kill the server with SIGKILL at random moments under load and
//! check what survives. An acknowledged span is in the log exactly once, however often its
//! exporter retried; sequence numbers have no gaps; the view the server starts from (checkpoint
//! plus the rest) equals a fresh fold of the whole log. Kills inside worktree creation and inside
//! a merge are recovered on restart, with nothing half-made and nothing merged twice.
//!
//! The seed of the random kill times is printed; `SPANFOLD_CRASH_SEED=N` repeats a run.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Sandbox;
use common::journal::{acknowledged, check_log, load, load_for, resent, wait_bounded};
use serde_json::Value;

const ROUNDS: usize = 22;

/// xorshift64*: enough randomness for kill times, and repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("SPANFOLD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("crash test seed: SPANFOLD_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn acknowledged_spans_survive_sigkill_under_load_exactly_once() {
    let mut rng = Rng::from_env();
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    // Work for the cycles that run between the kills: the load's agents get these features, so
    // worktrees are made while spans pour in.
    for f in ["alpha", "beta", "gamma", "delta"] {
        sb.ok(&["agents", "add-feature", f]);
    }
    let journal = sb.tmp.path().join("journal");
    let coord_dir: PathBuf = sb.repo.join(".git").join("spanfold");
    let mut events = 0;
    let (mut productive_rounds, mut retries) = (0, 0);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let served = sb.serve(&[]);
        let before = acknowledged(&journal).len();
        let mut sender = load(&served.grpc, &journal);
        // Under load: the kill comes a random while after this round's first acknowledgement.
        let first_ack = Instant::now() + Duration::from_secs(30);
        while acknowledged(&journal).len() == before && Instant::now() < first_ack {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.below(900)));
        served.kill();
        wait_bounded(&mut sender, 30);
        retries += resent(sender);

        let acked = acknowledged(&journal);
        if acked.len() > before {
            productive_rounds += 1;
        }
        let now = check_log(&coord_dir, &acked);
        assert!(now >= events, "round {round}: the log never shrinks");
        events = now;
        eprintln!(
            "round {round}: {} exports acknowledged in all, {events} events, {:?}",
            acked.len(),
            started.elapsed()
        );
    }
    // The kills must have landed under load, not before it began.
    assert!(
        productive_rounds >= ROUNDS / 2,
        "only {productive_rounds} of {ROUNDS} rounds had acknowledged exports"
    );
    // Exports in flight at a kill are sent again: the exactly-once check above had retries to
    // catch.
    assert!(retries > 0, "no export was ever retried across a kill");
    let worktrees = sb.git_worktrees();
    assert!(
        !worktrees.is_empty() && worktrees.len() <= 4,
        "the load's agents got work, one worktree per feature at most: {worktrees:?}"
    );
    // A last restart serves the same log with everything in it.
    let served = sb.serve(&["--manual"]);
    let status: Value = serde_json::from_str(&served.get("/api/status", None).1).expect("json");
    assert!(
        status["data"]["counters"]["events"].as_u64().unwrap_or(0) >= events,
        "{}",
        status["data"]["counters"]
    );
}

/// The load generator's own count of acknowledged exports is the journal's, connections still
/// sending at its deadline included (it said 0 when none had finished).
#[test]
fn the_load_generator_counts_what_was_acknowledged_when_it_stops() {
    let sb = Sandbox::new("main");
    sb.ok(&["agents", "init"]);
    let served = sb.serve(&["--manual"]);
    let journal = sb.tmp.path().join("journal");
    let out = load_for(&served.grpc, &journal, 2)
        .wait_with_output()
        .expect("the load generator ends by itself");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("its summary");
    let acked = acknowledged(&journal).len() as u64;
    assert!(acked > 0, "the server acknowledged exports");
    assert_eq!(summary["exports_acknowledged"], acked);
}

/// Kills at named points inside worktree creation and merges: the crash points exist only in a
/// build with the feature `test-hooks` (the test command's).
#[cfg(feature = "test-hooks")]
mod at_a_point {
    use super::*;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn feature_status(sb: &Sandbox, name: &str) -> String {
        let status = sb.status_doc();
        let feature = status.features.iter().find(|f| f.name == name);
        feature.map_or("", |f| f.status.as_str()).to_owned()
    }

    /// A server that holds still at `point` and is killed there; returns once it is dead.
    fn kill_at(sb: &Sandbox, point: &str, trigger: impl FnOnce()) {
        let mark = sb.tmp.path().join(format!("reached-{point}"));
        let fault = format!("pause:{point}");
        let mark_str = mark.to_string_lossy().into_owned();
        let served = sb.serve_with_env(
            &["--interval", "0"],
            &[
                ("SPANFOLD_FAULT", fault.as_str()),
                ("SPANFOLD_FAULT_MARK", mark_str.as_str()),
            ],
        );
        trigger();
        wait_for(&format!("the server to reach {point}"), || mark.exists());
        served.kill();
    }

    fn submit(sb: &Sandbox, agent: &str) {
        sb.ok(&["agents", "progress", agent, "--state", "working"]);
        sb.ok(&["agents", "progress", agent, "--state", "validating"]);
        sb.ok(&["agents", "validate", agent, "--result", "passed"]);
    }

    /// The one linked worktree, checked out on the feature's branch and locked for its agent.
    fn the_worktree(sb: &Sandbox) -> PathBuf {
        let git = sb.git_worktrees();
        assert_eq!(git.len(), 1, "exactly one worktree: {git:?}");
        assert_eq!(git[0].1, "spanfold/f1");
        assert_eq!(git[0].2.as_deref(), Some("a1"), "locked for its agent");
        let path = PathBuf::from(&git[0].0);
        assert!(path.join("README.md").exists(), "checked out in full");
        path
    }

    /// After the feature is merged: main has the work once, the checkout followed, nothing is left
    /// behind, and the log still folds to what the server started from.
    fn merged_cleanly(sb: &Sandbox, served: common::Served, merges: usize) {
        wait_for("f1 to be merged", || {
            feature_status(sb, "f1") == "completed"
        });
        let (code, _) = served.stop();
        assert!(code.success());
        assert!(
            sb.repo.join("f1.txt").exists(),
            "the main checkout followed"
        );
        assert_eq!(sb.git(&["status", "--porcelain"]), "", "and is clean");
        assert!(sb.git_worktrees().is_empty(), "the worktree was removed");
        assert_eq!(
            sb.git(&["log", "--format=%s", "main"])
                .lines()
                .filter(|s| *s == "f1 work")
                .count(),
            1,
            "the work is on main once"
        );
        assert_eq!(
            sb.git(&["log", "--merges", "--format=%H", "main"])
                .lines()
                .count(),
            merges,
            "merge commits on main"
        );
        check_log(
            &sb.repo.join(".git").join("spanfold"),
            &std::collections::BTreeSet::new(),
        );
    }

    #[test]
    fn a_kill_inside_worktree_creation_is_recovered_on_restart() {
        use spanfold::fault::*;
        for point in [
            AFTER_ASSIGNMENT_DECISION,
            WORKTREE_BRANCH_CREATED,
            WORKTREE_ADDED,
        ] {
            let sb = Sandbox::new("main");
            sb.ok(&["agents", "init"]);
            sb.ok(&["agents", "register-agent", "a1"]);
            kill_at(&sb, point, || {
                sb.ok(&["agents", "add-feature", "f1"]);
            });
            // The kill landed where it says: the state git was left in.
            let branch = !sb.git(&["branch", "--list", "spanfold/f1"]).is_empty();
            let git = sb.git_worktrees();
            match point {
                AFTER_ASSIGNMENT_DECISION => assert!(!branch && git.is_empty()),
                WORKTREE_BRANCH_CREATED => assert!(branch && git.is_empty()),
                _ => assert!(branch && git.len() == 1 && git[0].2.is_none(), "{git:?}"),
            }

            let served = sb.serve(&["--interval", "0"]);
            wait_for(&format!("f1's worktree after a kill at {point}"), || {
                feature_status(&sb, "f1") == "assigned"
                    && sb
                        .git_worktrees()
                        .first()
                        .is_some_and(|w| w.2.as_deref() == Some("a1"))
            });
            let wt = the_worktree(&sb);
            // The agent works there as if nothing had happened, and its work is merged.
            sb.commit_as_agent(&wt, "f1.txt", "f1 work\n", "f1 work");
            submit(&sb, "a1");
            merged_cleanly(&sb, served, 0);
        }
    }

    #[test]
    fn a_kill_inside_a_merge_is_recovered_on_restart_and_merges_once() {
        use spanfold::fault::*;
        for point in [MERGE_COMMIT_WRITTEN, AFTER_MERGE_REF] {
            let sb = Sandbox::new("main");
            sb.ok(&["agents", "init"]);
            sb.ok(&["agents", "register-agent", "a1"]);
            let served = sb.serve(&["--interval", "0"]);
            sb.ok(&["agents", "add-feature", "f1"]);
            wait_for("f1's worktree, locked", || {
                sb.git_worktrees()
                    .first()
                    .is_some_and(|w| w.2.as_deref() == Some("a1"))
            });
            let wt = the_worktree(&sb);
            sb.commit_as_agent(&wt, "f1.txt", "f1 work\n", "f1 work");
            // main moves on meanwhile, so the merge writes a merge commit.
            sb.commit_as_agent(&sb.repo, "other.txt", "other work\n", "other work");
            let (code, _) = served.stop();
            assert!(code.success());

            kill_at(&sb, point, || submit(&sb, "a1"));
            let merges = sb.git(&["log", "--merges", "--format=%H", "main"]);
            match point {
                MERGE_COMMIT_WRITTEN => assert_eq!(merges, "", "main has not moved yet"),
                _ => assert_eq!(
                    merges.lines().count(),
                    1,
                    "main moved, its checkout did not"
                ),
            }
            let served = sb.serve(&["--interval", "0"]);
            merged_cleanly(&sb, served, 1);
        }
    }
}
