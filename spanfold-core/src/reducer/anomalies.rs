//! Anomalies: spans the fold could not apply, kept with their reason in a bounded ring, and an
//! operator acknowledging them.

use super::{Anomaly, MAX_ANOMALIES, View};
use crate::fact::Acknowledge;
use crate::model::Event;
use crate::vocab::attr;

impl View {
    pub(super) fn anomaly(&mut self, ev: &Event<'_>, reason: String) {
        self.counters.anomalies += 1;
        if let Some(agent) = ev
            .str_attr(attr::AGENT_ID)
            .and_then(|id| self.agents.get_mut(id))
        {
            agent.anomalies += 1;
        }
        if self.anomalies.len() == MAX_ANOMALIES {
            self.anomalies.pop_front();
        }
        self.anomalies.push_back(Anomaly {
            seq: ev.seq,
            agent_id: ev.str_attr(attr::AGENT_ID).map(str::to_owned),
            span: ev.span.name.to_string(),
            span_id: crate::model::hex(&ev.span.span_id),
            reason,
        });
    }

    pub(super) fn acknowledge(&mut self, a: Acknowledge) -> Result<(), String> {
        let seq = match a {
            Acknowledge::All => {
                self.counters.acknowledged += self.anomalies.len() as u64;
                self.anomalies.clear();
                return Ok(());
            }
            Acknowledge::Seq(seq) => seq,
        };
        let at = self
            .anomalies
            .iter()
            .position(|a| a.seq == seq)
            .ok_or_else(|| format!("no anomaly listed at seq {seq}; agent-status lists them"))?;
        self.anomalies.remove(at);
        self.counters.acknowledged += 1;
        Ok(())
    }
}
