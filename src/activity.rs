//! What the server tells its operator: one line per assignment, merge, conflict, gate failure,
//! lease verdict and recovery, and the spans it refused — rate-limited per agent and span, so
//! a misbehaving agent cannot flood the terminal. Lines are made here (pure, time passed in);
//! the server prints them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::coordinator::CycleReport;
use crate::fact::{MergeKind, MergeResult};

/// At most one line per agent and span name about refused spans in this long.
pub const REFUSAL_QUIET: Duration = Duration::from_secs(10);

/// The lines of one cycle, in the order things happened.
pub fn cycle_lines(r: &CycleReport) -> Vec<String> {
    let mut out: Vec<String> = r
        .recovered
        .iter()
        .map(|n| format!("recovery: {n}"))
        .collect();
    for id in &r.leases_expired {
        out.push(format!(
            "lease expired: {id} was silent too long; its features are queued again, their worktrees kept"
        ));
    }
    for p in &r.assignments {
        out.push(match &p.error {
            None => format!(
                "assigned {} to {} (score {:.3}), worktree {} {}",
                p.feature_name, p.agent_id, p.match_score, p.worktree_action, p.worktree_path
            ),
            Some(e) => format!(
                "assigning {} to {} failed: {e}; it waits in the queue",
                p.feature_name, p.agent_id
            ),
        });
    }
    for m in &r.merges {
        let (f, a) = (&m.feature_name, &m.agent_id);
        let reason = m.reason.as_deref().unwrap_or_default();
        out.push(match m.result {
            MergeResult::Merged => format!(
                "merged {f} by {a} ({} at {}){}",
                m.kind.map_or("merged", MergeKind::as_str),
                m.commit.as_deref().map_or("", |c| &c[..c.len().min(12)]),
                m.worktree
                    .map(|w| format!(", worktree {w}"))
                    .unwrap_or_default()
            ),
            MergeResult::Conflicted => format!(
                "conflict: {f} by {a} in {}; back to {a}",
                m.conflicts.join(", ")
            ),
            MergeResult::GateFailed => format!(
                "merge gate failed for {f} by {a}; back to {a}: {}",
                last_line(reason)
            ),
            MergeResult::Returned => format!("{f} went back to {a}: {reason}"),
            other => format!("merge of {f} {other}: {reason}"),
        });
    }
    out
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Refused spans, counted per agent, and the lines that say so without flooding.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Spans refused per agent ("-" when the span named none), for the status.
    per_agent: BTreeMap<String, u64>,
    /// Per (agent, span name): when it was last said, and how many since.
    said: BTreeMap<(String, String), (Instant, u64)>,
}

impl Refusals {
    /// Counts one refused span; returns the line to print, unless the same agent and span
    /// were reported less than [`REFUSAL_QUIET`] ago.
    pub fn refused(
        &mut self,
        agent: Option<&str>,
        span: &str,
        rule: &str,
        now: Instant,
    ) -> Option<String> {
        let who = agent.unwrap_or("-").to_owned();
        *self.per_agent.entry(who.clone()).or_default() += 1;
        let more = match self.said.entry((who, span.to_owned())) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((now, 0));
                0
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let (last, since) = e.get_mut();
                if now.duration_since(*last) < REFUSAL_QUIET {
                    *since += 1;
                    return None;
                }
                *last = now;
                std::mem::take(since)
            }
        };
        let who = agent.map_or("an unnamed agent".to_string(), |a| format!("agent {a}"));
        let extra = match more {
            0 => String::new(),
            n => format!(" ({n} more like it since the last line)"),
        };
        Some(format!("refused span {span} from {who}: {rule}{extra}"))
    }

    pub fn per_agent(&self) -> &BTreeMap<String, u64> {
        &self.per_agent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_every_time_and_said_at_most_once_a_quiet_period() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        let first = r.refused(Some("a1"), "agent.work_progress", "bad state", t0);
        assert!(first.is_some_and(|l| l.contains("agent a1") && l.contains("bad state")));
        for i in 1..=5 {
            assert_eq!(
                r.refused(
                    Some("a1"),
                    "agent.work_progress",
                    "bad state",
                    t0 + Duration::from_secs(i)
                ),
                None
            );
        }
        // Another agent, or another span, is said at once.
        assert!(
            r.refused(Some("a2"), "agent.work_progress", "x", t0)
                .is_some()
        );
        assert!(r.refused(Some("a1"), "feature.request", "x", t0).is_some());
        let later = r.refused(
            Some("a1"),
            "agent.work_progress",
            "bad state",
            t0 + REFUSAL_QUIET,
        );
        assert!(
            later.is_some_and(|l| l.contains("5 more like it")),
            "the quiet ones are counted"
        );
        assert_eq!(r.per_agent()["a1"], 8);
        assert_eq!(r.per_agent()["a2"], 1);
    }
}
