//! What agents' own telemetry tells the fold: whose it is (the identity rules), what it was (the
//! profiles), and that its agent is alive. A record is an agent's by `agent.id` on the record,
//! its scope or its resource; else by the trace id of an assignment (the launcher hands the
//! agent its assignment's `TRACEPARENT`); else by its session (`session.id`, `conversation.id`,
//! `gen_ai.conversation.id`), once a record placed by one of the first two rules has bound that
//! session to its agent. A record no rule places is kept and counted as unattributed, by the
//! service that sent it.

use std::borrow::Cow;

use super::usage::Origin;
use super::view::{ActivityCounts, AgentTelemetry, AsOf, LastSeen, ProcessState, View};
use crate::fact::{Process, ProcessEvent};
use crate::model::{AnyEvent, Event, LogEvent, MetricEvent, UnixNanos, as_bool, as_str, hex};
use crate::profiles::{self, Kind, Profile, Profiles, RecordSpec, SPANFOLD_FEATURE};
use crate::vocab::attr;

/// Most service names counted apart among unattributed records: the names come from senders.
pub const MAX_SERVICES: usize = 32;

/// The key unattributed records from further services are counted under.
const OTHER_SERVICES: &str = "(other)";

/// What a record was, once matched to a profile.
struct Seen<'a> {
    profile: Option<&'a Profile>,
    kind: Option<Kind>,
    name: Cow<'a, str>,
    tool: Option<Cow<'a, str>>,
    failed: bool,
    /// Whether it is one occurrence of its kind (an event, a span), to be counted; a metric is
    /// a total over an interval, whose occurrences are for the usage accounting to read.
    counted: bool,
    /// The feature the record says it is about (`spanfold.feature`, which the launcher puts on
    /// its agent's resource): what it counts for when its agent holds several.
    feature: Option<&'a str>,
}

impl View {
    /// A log record: counted, tied to its agent, read through the profiles.
    pub(super) fn telemetry_log(&mut self, ev: &LogEvent<'_>) {
        self.telemetry.log_records += 1;
        let profiles = Profiles::builtin();
        let name = profiles::event_name(ev.record).unwrap_or_default();
        let matched = profiles.event(&name);
        // The session by the keys of the record's profile (any profile's when none knew it).
        let keys = matched.map_or(profiles.session_keys(), |(p, _)| p.session_keys.as_slice());
        let session = first_of(keys, |k| ev.str_attr(k));
        let Some(agent) = self.owner(ev.str_attr(attr::AGENT_ID), &ev.record.trace_id, session)
        else {
            let service = ev.str_attr("service.name").unwrap_or("(none)").to_owned();
            self.unattributed(service);
            return;
        };
        let read = |key: &str| ev.attr(key).and_then(text);
        let mut seen = seen(matched, name, &read);
        let feature = ev.str_attr(SPANFOLD_FEATURE);
        seen.feature = feature;
        let kind = seen.kind;
        self.heard(&agent, seen, || ev.str_attr("service.name"), ev.time);
        if let (Some(Kind::LlmRequest), Some((profile, spec))) = (kind, matched) {
            let at = Origin {
                agent: &agent,
                feature,
                session,
                time: ev.time,
            };
            self.usage_request(&at, profile, spec, &|k| ev.attr(k));
        }
    }

    /// A metric: counted, tied to the agent its resource names.
    pub(super) fn telemetry_metric(&mut self, ev: &MetricEvent<'_>) {
        self.telemetry.metrics += 1;
        let session = session_of(|k| {
            ev.str_attr(k)
                .or_else(|| ev.metric.point_attr(k).and_then(as_str))
        });
        let Some(agent) = self.owner(ev.str_attr(attr::AGENT_ID), &[], session) else {
            let service = ev.str_attr("service.name").unwrap_or("(none)").to_owned();
            self.unattributed(service);
            return;
        };
        let matched = Profiles::builtin().metric(&ev.metric.name);
        let mut seen = seen(matched, Cow::Borrowed(&ev.metric.name), &|_| None);
        seen.counted = false;
        self.heard(&agent, seen, || ev.str_attr("service.name"), ev.time);
        if let Some((_, spec)) =
            matched.filter(|(_, s)| matches!(s.kind, Kind::Tokens | Kind::Cost))
        {
            let at = Origin {
                agent: &agent,
                feature: ev.str_attr(SPANFOLD_FEATURE),
                session: session_of(|k| ev.str_attr(k)),
                time: ev.time,
            };
            self.usage_metric(&at, spec, ev);
        }
    }

    /// A span the registry does not name but a profile does (an agent's own traces): read
    /// like a log record. Returns whether a profile knew it.
    pub(super) fn telemetry_span(&mut self, ev: &Event<'_>) -> bool {
        let Some(matched) = Profiles::builtin().span(&ev.span.name) else {
            return false;
        };
        let session = session_of(|k| ev.str_attr(k));
        let Some(agent) = self.owner(ev.str_attr(attr::AGENT_ID), &ev.span.trace_id, session)
        else {
            return true;
        };
        let read = |key: &str| ev.attr(key).and_then(text);
        let mut seen = seen(Some(matched), Cow::Borrowed(ev.span.name.as_str()), &read);
        seen.feature = ev.str_attr(SPANFOLD_FEATURE);
        let kind = seen.kind;
        let service =
            || crate::model::find_attr(&ev.resource.attributes, "service.name").and_then(as_str);
        self.heard(&agent, seen, service, ev.time);
        if kind == Some(Kind::LlmRequest) {
            let at = Origin {
                agent: &agent,
                feature: ev.str_attr(SPANFOLD_FEATURE),
                session,
                time: ev.time,
            };
            self.usage_request(&at, matched.0, matched.1, &|k| ev.attr(k));
        }
        true
    }

    /// The launcher's report on an agent's process: a sign of life, and what the status shows
    /// of the process.
    pub(super) fn process(&mut self, p: Process<'_>, at: AsOf) -> Result<(), String> {
        self.agent_of(p.agent_id, at)?;
        let t = self
            .telemetry
            .agents
            .entry(p.agent_id.to_owned())
            .or_insert_with(|| AgentTelemetry {
                source: "launcher".into(),
                ..AgentTelemetry::default()
            });
        let since = match (&t.process, p.event) {
            (Some(earlier), ProcessEvent::Running | ProcessEvent::Exited)
                if earlier.pid == p.pid =>
            {
                earlier.since
            }
            _ => at.time,
        };
        t.process = Some(ProcessState {
            event: p.event,
            feature: p.feature_name.map(str::to_owned),
            command: p.command.map(str::to_owned),
            pid: p.pid,
            since,
            exit_code: p.exit_code,
            signal: p.signal.map(str::to_owned),
            outcome: p.outcome.map(str::to_owned),
        });
        Ok(())
    }

    /// An assignment's trace: records sent in it are its agent's.
    pub(super) fn remember_trace(&mut self, trace_id: &[u8; 16], agent: &str) {
        self.telemetry
            .traces
            .insert(hex(trace_id), agent.to_owned());
    }

    /// The registered agent a record is about: the one it names, else its trace's, else its
    /// session's. A session seen first on a record placed by name or trace is bound to that
    /// agent, so that its records which carry neither (a metric without the agent's resource,
    /// say) are still its own.
    fn owner<'e>(
        &mut self,
        named: Option<&'e str>,
        trace_id: &[u8],
        session: Option<&str>,
    ) -> Option<Cow<'e, str>> {
        let found = self.named_or_traced(named, trace_id);
        let Some(session) = session else {
            return found;
        };
        let Some(agent) = found else {
            return self.by_session(session).map(|id| Cow::Owned(id.to_owned()));
        };
        if !self.telemetry.sessions.contains_key(session) {
            let bound = (session.to_owned(), agent.as_ref().to_owned());
            self.telemetry.sessions.insert(bound.0, bound.1);
        }
        Some(agent)
    }

    /// The agent an agent's own record (a log record, a metric, a span a profile knows) is
    /// about, by the rules above, as the view stands (nothing learnt): for readers of the fold,
    /// such as the timeline.
    pub fn record_owner<'e>(&self, ev: &AnyEvent<'e>) -> Option<Cow<'e, str>> {
        match ev {
            AnyEvent::Log(e) => self
                .named_or_traced(e.str_attr(attr::AGENT_ID), &e.record.trace_id)
                .or_else(|| {
                    self.by_session(session_of(|k| e.str_attr(k))?)
                        .map(|id| Cow::Owned(id.to_owned()))
                }),
            AnyEvent::Metric(e) => self
                .named_or_traced(e.str_attr(attr::AGENT_ID), &[])
                .or_else(|| {
                    let session = session_of(|k| {
                        e.str_attr(k)
                            .or_else(|| e.metric.point_attr(k).and_then(as_str))
                    });
                    self.by_session(session?)
                        .map(|id| Cow::Owned(id.to_owned()))
                }),
            AnyEvent::Span(e) => self
                .named_or_traced(e.str_attr(attr::AGENT_ID), &e.span.trace_id)
                .or_else(|| {
                    self.by_session(session_of(|k| e.str_attr(k))?)
                        .map(|id| Cow::Owned(id.to_owned()))
                }),
        }
    }

    fn named_or_traced<'e>(&self, named: Option<&'e str>, trace_id: &[u8]) -> Option<Cow<'e, str>> {
        match named {
            Some(id) => self.agents.contains_key(id).then_some(Cow::Borrowed(id)),
            None if trace_id.len() == 16 => self
                .telemetry
                .traces
                .get(&hex(trace_id))
                .filter(|id| self.agents.contains_key(id.as_str()))
                .map(|id| Cow::Owned(id.clone())),
            None => None,
        }
    }

    fn by_session(&self, session: &str) -> Option<&str> {
        self.telemetry
            .sessions
            .get(session)
            .filter(|id| self.agents.contains_key(id.as_str()))
            .map(String::as_str)
    }

    fn unattributed(&mut self, service: String) {
        let counts = &mut self.telemetry.unattributed;
        let key = if counts.contains_key(&service) || counts.len() < MAX_SERVICES {
            service
        } else {
            OTHER_SERVICES.to_owned()
        };
        *counts.entry(key).or_insert(0) += 1;
    }

    /// `agent` was heard from: alive, and what it did is counted. Called for every record an
    /// agent sends, on the writer's thread: it allocates only for what is new.
    /// `service` is read only when no profile knew the record.
    fn heard<'s>(
        &mut self,
        agent: &str,
        seen: Seen<'_>,
        service: impl FnOnce() -> Option<&'s str>,
        time: UnixNanos,
    ) {
        // The agent's features, read in the same lookup that renews its lease.
        let held = self.agents.get_mut(agent).map(|a| {
            a.last_activity = a.last_activity.max(time);
            &a.assignments
        });
        let agents = &mut self.telemetry.agents;
        let t = match agents.get_mut(agent) {
            Some(t) => t,
            None => agents.entry(agent.to_owned()).or_default(),
        };
        let profile = seen
            .profile
            .or_else(|| service().and_then(|s| Profiles::builtin().by_service(s)));
        let source = profile.map_or("otlp", |p| p.name.as_str());
        if t.source != source {
            source.clone_into(&mut t.source);
        }
        let Some(kind) = seen.kind else {
            return;
        };
        if seen.counted {
            count(&mut t.counts, kind, seen.failed);
        }
        let (counted, failed, feature) = (seen.counted, seen.failed, seen.feature);
        let tool = seen.tool.map(Cow::into_owned);
        match &mut t.last {
            Some(last) => {
                last.kind = kind;
                seen.name.as_ref().clone_into(&mut last.name);
                last.tool = tool;
                last.at = time;
            }
            None => {
                t.last = Some(LastSeen {
                    kind,
                    name: seen.name.into_owned(),
                    tool,
                    at: time,
                })
            }
        }
        if let Some(feature) = held.and_then(|h| pick(h, feature)).filter(|_| counted) {
            count_for_feature(&mut self.telemetry.features, feature, kind, failed);
        }
    }
}

/// Counts a record for the feature it was about.
fn count_for_feature(
    features: &mut std::collections::BTreeMap<String, ActivityCounts>,
    feature: &str,
    kind: Kind,
    failed: bool,
) {
    match features.get_mut(feature) {
        Some(counts) => count(counts, kind, failed),
        None => {
            let mut counts = ActivityCounts::default();
            count(&mut counts, kind, failed);
            if counts != ActivityCounts::default() {
                features.insert(feature.to_owned(), counts);
            }
        }
    }
}

/// The feature a record of `agent` is about: the one it holds, or among several the one the
/// record names (`named`); none when it holds none.
pub(super) fn feature_held<'v>(
    agents: &'v std::collections::BTreeMap<String, super::Agent>,
    agent: &str,
    named: Option<&str>,
) -> Option<&'v str> {
    pick(&agents.get(agent)?.assignments, named)
}

/// Of the features `held`, the one a record is about: the only one, or the one it names.
fn pick<'v>(held: &'v [String], named: Option<&str>) -> Option<&'v str> {
    match held {
        [only] => Some(only.as_str()),
        several => named.and_then(|n| several.iter().find(|f| f.as_str() == n).map(String::as_str)),
    }
}

/// The session a record names, by the first session key (of any profile) it carries.
fn session_of<'a>(read: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    first_of(Profiles::builtin().session_keys(), read)
}

/// The first of `keys` that `read` finds, not empty.
fn first_of<'a>(keys: &[String], read: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    keys.iter().find_map(|k| read(k)).filter(|s| !s.is_empty())
}

/// What a record is, by its profile's spec (None when no profile knows it).
fn seen<'a>(
    matched: Option<(&'a Profile, &'a RecordSpec)>,
    name: Cow<'a, str>,
    read: &dyn Fn(&str) -> Option<Cow<'a, str>>,
) -> Seen<'a> {
    let Some((profile, spec)) = matched else {
        return Seen {
            profile: None,
            kind: None,
            name,
            tool: None,
            failed: false,
            counted: true,
            feature: None,
        };
    };
    // A record that lacks what its spec requires (`when`) is still its agent at work.
    let kind = match spec.applies(read) {
        true => spec.kind,
        false => Kind::Activity,
    };
    let field = |f: &Option<String>| f.as_deref().and_then(read);
    let failed = field(&spec.fields.success).is_some_and(|s| s.eq_ignore_ascii_case("false"));
    Seen {
        profile: Some(profile),
        kind: Some(kind),
        name,
        tool: field(&spec.fields.tool),
        failed,
        counted: true,
        feature: None,
    }
}

fn count(t: &mut ActivityCounts, kind: Kind, failed: bool) {
    match kind {
        Kind::ToolCall => {
            t.tool_calls += 1;
            t.tool_failures += u64::from(failed);
        }
        Kind::LlmRequest => t.llm_requests += 1,
        Kind::Error => t.errors += 1,
        Kind::Commit => t.commits += 1,
        _ => {}
    }
}

/// An attribute as text: a string as it is (borrowed), a boolean or number written out.
fn text(value: &crate::model::AnyValue) -> Option<Cow<'_, str>> {
    use crate::model::AnyValue;
    match value {
        AnyValue::String(s) => Some(Cow::Borrowed(s.as_str())),
        AnyValue::Bool(_) => as_bool(value).map(|b| Cow::Owned(b.to_string())),
        AnyValue::Int(i) => Some(Cow::Owned(i.to_string())),
        AnyValue::Double(d) => Some(Cow::Owned(d.to_string())),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests;
