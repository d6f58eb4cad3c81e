//! Merging with a remote named (`spanfold.remote`): before a round of merges the base branch
//! here is brought in step with the remote's (someone else's push comes here first, so the
//! queue tests on it), and each remote agent's submitted branch is fetched, once per
//! submission (before any approval is asked, so a person reviews what will merge). Where either
//! fails, the merges wait and say why, recorded once per reason.

use crate::fact::MergeResult;
use crate::git::{self, BaseSync};
use crate::reducer::Config;

use super::execute::Workspace;
use super::{CoordError, Coordinator, MergeReport};

impl Coordinator {
    /// Gets the round ready; false when no merge may happen in it.
    pub(super) fn sync_remote(
        &mut self,
        config: &Config,
        workspace: &dyn Workspace,
        reports: &mut Vec<MergeReport>,
    ) -> Result<bool, CoordError> {
        self.unfetched.clear();
        if self.submitted().is_empty() && !self.sync_due {
            return Ok(true);
        }
        // Remote agents' branches to fetch: each submission once.
        let wanted: Vec<_> = self
            .submitted()
            .into_iter()
            .filter(|c| c.remote.is_some() && !c.interrupted)
            .filter(|c| self.fetched.get(&c.feature) != Some(&c.submitted_seq))
            .collect();
        let branches: Vec<&str> = wanted.iter().map(|c| c.branch.as_str()).collect();
        let (sync, fetched) = match workspace.sync_base(&branches) {
            Ok(None) => return Ok(true),
            Ok(Some(git::Synced {
                base,
                branches_fetched,
            })) => (base, branches_fetched),
            Err(e) => (
                BaseSync::Waits {
                    reason: format!("the remote could not be reached, so merges wait: {e}"),
                },
                false,
            ),
        };
        if let BaseSync::Waits { reason } = sync {
            // Not over a merge a crash cut off: its record of where it started is kept.
            for c in self.mergeable().into_iter().filter(|c| !c.interrupted) {
                if c.note.as_deref() != Some(reason.as_str()) {
                    let outcome = git::MergeOutcome::Deferred {
                        reason: reason.clone(),
                    };
                    reports.push(self.record_merge(config, &c, MergeResult::Deferred, &outcome)?);
                }
            }
            return Ok(false);
        }
        self.sync_due = false;
        for c in wanted {
            // Fetched with the base, or else one by one: the one the remote lacks sits out.
            let one = match fetched {
                true => Ok(()),
                false => workspace.fetch_branch(&c.branch),
            };
            match one {
                Ok(()) => {
                    self.fetched.insert(c.feature.clone(), c.submitted_seq);
                }
                Err(e) => {
                    self.unfetched.insert(c.feature.clone());
                    let reason = format!(
                        "its branch could not be fetched from the remote ({e}); tried again next cycle"
                    );
                    if c.note.as_deref() != Some(reason.as_str()) {
                        let outcome = git::MergeOutcome::Deferred { reason };
                        reports.push(self.record_merge(
                            config,
                            &c,
                            MergeResult::Deferred,
                            &outcome,
                        )?);
                    }
                }
            }
        }
        Ok(true)
    }
}
