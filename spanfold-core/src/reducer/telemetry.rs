//! What agents' own telemetry tells the fold: whose it is (the identity rules), what it was (the
//! profiles), and that its agent is alive. A record is an agent's by `agent.id` on the record,
//! its scope or its resource; else by the trace id of an assignment (the launcher hands the
//! agent its assignment's `TRACEPARENT`); else by its session (`session.id`, `conversation.id`,
//! `gen_ai.conversation.id`), once a record placed by one of the first two rules has bound that
//! session to its agent. A record no rule places is kept and counted as unattributed, by the
//! service that sent it.

use std::borrow::Cow;

use super::view::{AgentTelemetry, AsOf, LastSeen, ProcessState, View};
use crate::fact::{Process, ProcessEvent};
use crate::model::{Event, LogEvent, MetricEvent, UnixNanos, as_bool, as_str, hex};
use crate::profiles::{self, Kind, Profile, Profiles, RecordSpec};
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
}

impl View {
    /// A log record: counted, tied to its agent, read through the profiles.
    pub(super) fn telemetry_log(&mut self, ev: &LogEvent<'_>) {
        self.telemetry.log_records += 1;
        let session = session_of(|k| ev.str_attr(k));
        let Some(agent) = self.owner(ev.str_attr(attr::AGENT_ID), &ev.record.trace_id, session)
        else {
            let service = ev.str_attr("service.name").unwrap_or("(none)").to_owned();
            self.unattributed(service);
            return;
        };
        let profiles = Profiles::builtin();
        let name = profiles::event_name(ev.record).unwrap_or_default();
        let matched = profiles.event(&name);
        let read = |key: &str| ev.attr(key).and_then(text);
        let seen = seen(matched, name, &read);
        self.heard(&agent, seen, || ev.str_attr("service.name"), ev.time);
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
        let seen = seen(Some(matched), Cow::Borrowed(ev.span.name.as_str()), &read);
        let service =
            || crate::model::find_attr(&ev.resource.attributes, "service.name").and_then(as_str);
        self.heard(&agent, seen, service, ev.time);
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
        let registered = |id: &String| self.agents.contains_key(id.as_str());
        let found = match named {
            Some(id) => self.agents.contains_key(id).then_some(Cow::Borrowed(id)),
            None if trace_id.len() == 16 => self
                .telemetry
                .traces
                .get(&hex(trace_id))
                .filter(|id| registered(id))
                .map(|id| Cow::Owned(id.clone())),
            None => None,
        };
        let Some(session) = session else {
            return found;
        };
        let Some(agent) = found else {
            let sessions = &self.telemetry.sessions;
            return sessions
                .get(session)
                .filter(|id| registered(id))
                .cloned()
                .map(Cow::Owned);
        };
        if !self.telemetry.sessions.contains_key(session) {
            let bound = (session.to_owned(), agent.as_ref().to_owned());
            self.telemetry.sessions.insert(bound.0, bound.1);
        }
        Some(agent)
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
        if let Some(a) = self.agents.get_mut(agent) {
            a.last_activity = a.last_activity.max(time);
        }
        if !self.telemetry.agents.contains_key(agent) {
            self.telemetry
                .agents
                .insert(agent.to_owned(), AgentTelemetry::default());
        }
        let Some(t) = self.telemetry.agents.get_mut(agent) else {
            return;
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
            count(t, kind, seen.failed);
        }
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
    }
}

/// The session a record names, by the first session key (of any profile) it carries.
fn session_of<'a>(read: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    let keys = Profiles::builtin().session_keys();
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
    }
}

fn count(t: &mut AgentTelemetry, kind: Kind, failed: bool) {
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
mod tests {
    use super::*;
    use crate::model::{
        AnyValue, Batch, KeyValue, LogRecord, Metric, MetricData, Resource, ResourceLogs,
        ResourceMetrics, ResourceSpans, Scope, ScopeLogs, ScopeMetrics, Span,
    };

    fn s(v: &str) -> AnyValue {
        AnyValue::String(v.into())
    }

    fn resource(pairs: &[(&str, &str)]) -> Resource {
        Resource {
            attributes: pairs.iter().map(|(k, v)| KeyValue::new(*k, s(v))).collect(),
            ..Resource::default()
        }
    }

    /// Claude Code's event `name` with these attributes, as its log record carries it.
    fn claude(name: &str, attrs: &[(&str, AnyValue)]) -> LogRecord {
        let mut attributes = vec![KeyValue::new("event.name", s(name))];
        attributes.extend(attrs.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
        LogRecord {
            body: s(&format!("claude_code.{name}")),
            attributes,
            ..LogRecord::empty()
        }
    }

    /// `a1` registered; its lease starts at time 1.
    fn registered() -> View {
        let mut view = View::default();
        let span = Span::new([1; 16], [1; 8], "agent.registration", 0).with("agent.id", s("a1"));
        let batch = Batch::of_spans(
            1,
            1,
            vec![ResourceSpans::single(
                Resource::default(),
                Scope::default(),
                vec![span],
            )],
        );
        view.apply_batch(&batch, 0);
        view
    }

    fn logs(view: &mut View, at: u64, resource: Resource, records: Vec<LogRecord>) {
        let batch = Batch {
            first_seq: view.as_of.seq + 1,
            received_at: at,
            resource_logs: vec![ResourceLogs {
                resource,
                schema_url: String::new(),
                scope_logs: vec![ScopeLogs {
                    scope: Scope::default(),
                    schema_url: String::new(),
                    log_records: records,
                }],
            }],
            ..Batch::default()
        };
        view.apply_batch(&batch, 0);
    }

    #[test]
    fn claude_codes_events_are_read_through_its_profile_and_keep_its_agent_alive() {
        let mut view = registered();
        let who = resource(&[("agent.id", "a1"), ("service.name", "claude-code")]);
        let records = vec![
            claude("user_prompt", &[]),
            claude("api_request", &[("model", s("claude-sonnet-4-5"))]),
            claude(
                "tool_result",
                &[("tool_name", s("Edit")), ("success", s("true"))],
            ),
            claude(
                "tool_result",
                &[("tool_name", s("Bash")), ("success", AnyValue::Bool(false))],
            ),
            claude("api_error", &[]),
            claude("something_new", &[]),
        ];
        logs(&mut view, 50, who, records);
        assert_eq!(view.agents["a1"].last_activity, 50, "a sign of life");
        let t = &view.telemetry.agents["a1"];
        assert_eq!(t.source, "claude");
        assert_eq!((t.tool_calls, t.tool_failures), (2, 1));
        assert_eq!((t.llm_requests, t.errors), (1, 1));
        let last = t.last.as_ref().expect("a recognised record");
        assert_eq!(
            (last.kind, last.name.as_str(), last.at),
            (Kind::Error, "claude_code.api_error", 50),
            "the unknown event after it is alive, not a new last activity"
        );
        assert_eq!(view.telemetry.log_records, 6);
        assert_eq!(view.counters.events, 7);
        assert!(view.telemetry.unattributed.is_empty());
    }

    #[test]
    fn a_record_belongs_to_the_agent_it_names_or_to_its_assignments_trace() {
        let mut view = registered();
        view.remember_trace(&[9; 16], "a1");
        let in_trace = LogRecord {
            trace_id: vec![9; 16],
            ..claude("tool_result", &[("tool_name", s("Read"))])
        };
        logs(
            &mut view,
            20,
            resource(&[("service.name", "claude-code")]),
            vec![in_trace],
        );
        assert_eq!(view.telemetry.agents["a1"].tool_calls, 1);
        // Nobody's: not named, not in an assignment's trace; or an agent nobody registered.
        let stray = LogRecord {
            trace_id: vec![8; 16],
            ..claude("tool_result", &[])
        };
        logs(
            &mut view,
            30,
            resource(&[("service.name", "claude-code")]),
            vec![stray],
        );
        logs(
            &mut view,
            31,
            resource(&[("agent.id", "ghost")]),
            vec![claude("api_request", &[])],
        );
        assert_eq!(
            view.telemetry.unattributed,
            std::collections::BTreeMap::from([("claude-code".into(), 1), ("(none)".into(), 1)])
        );
        assert_eq!(view.agents["a1"].last_activity, 20);
        assert!(!view.agents.contains_key("ghost"), "no agent made up");
    }

    #[test]
    fn a_lease_that_would_run_out_does_not_while_the_agent_sends_telemetry() {
        const SECOND: u64 = 1_000_000_000;
        let holding = || {
            let mut view = registered();
            let a1 = view.agents.get_mut("a1").expect("a1");
            a1.lease_seconds = Some(60);
            a1.state = crate::reducer::AgentState::Working;
            a1.assignments = vec!["f1".into()];
            let mut f1 =
                crate::reducer::Feature::queued("f1", crate::reducer::Priority::Medium, 3, 1);
            f1.status = crate::reducer::FeatureStatus::InProgress;
            f1.assigned_agent = Some("a1".into());
            view.features.insert("f1".into(), f1);
            view
        };
        let later = 1 + 70 * SECOND;
        let silent = holding();
        assert_eq!(
            crate::policy::expired_leases(&silent, later),
            vec![("a1".to_owned(), 70)],
            "silent for 70 s of a 60 s lease"
        );
        let mut busy = holding();
        let who = resource(&[("agent.id", "a1")]);
        logs(
            &mut busy,
            1 + 40 * SECOND,
            who,
            vec![claude("tool_result", &[])],
        );
        assert!(
            crate::policy::expired_leases(&busy, later).is_empty(),
            "a long tool call reported only in its own telemetry keeps the lease"
        );
    }

    #[test]
    fn a_refused_assignment_leaves_no_trace_to_tie_records_to() {
        // Found by the fuzzer: an assignment of a feature never requested is an anomaly, and
        // must change nothing else — its trace was remembered all the same.
        let mut view = registered();
        let assignment = Span::new([7; 16], [7; 8], "agent.feature_assignment", 0)
            .with("agent.id", s("a1"))
            .with("feature.name", s("f1"))
            .with("worktree.path", s("/wt/f1"))
            .with("worktree.branch", s("spanfold/f1"));
        let batch = Batch::of_spans(
            2,
            2,
            vec![ResourceSpans::single(
                Resource::default(),
                Scope::default(),
                vec![assignment],
            )],
        );
        view.apply_batch(&batch, 0);
        assert_eq!(view.counters.anomalies, 1);
        assert!(
            view.telemetry.traces.is_empty(),
            "{:?}",
            view.telemetry.traces
        );
    }

    #[test]
    fn unattributed_services_are_counted_apart_up_to_a_bound() {
        let mut view = registered();
        for i in 0..MAX_SERVICES + 5 {
            let service = format!("svc-{i:03}");
            logs(
                &mut view,
                5,
                resource(&[("service.name", &service)]),
                vec![LogRecord::empty()],
            );
        }
        let counts = &view.telemetry.unattributed;
        assert_eq!(counts.len(), MAX_SERVICES + 1);
        assert_eq!(counts.get(OTHER_SERVICES), Some(&5));
    }

    #[test]
    fn codexs_sse_event_is_an_llm_request_only_when_the_response_completed() {
        let mut view = registered();
        let sse = |kind: &str| LogRecord {
            attributes: vec![
                KeyValue::new("event.name", s("codex.sse_event")),
                KeyValue::new("event.kind", s(kind)),
            ],
            ..LogRecord::empty()
        };
        let who = resource(&[("agent.id", "a1")]);
        logs(
            &mut view,
            5,
            who,
            vec![sse("response.output_text.delta"), sse("response.completed")],
        );
        let t = &view.telemetry.agents["a1"];
        assert_eq!((t.source.as_str(), t.llm_requests), ("codex", 1));
    }

    /// A Claude Code token counter whose only identity is `session.id` on its data point.
    fn session_metric(view: &mut View, at: u64, session: &str) {
        let point = crate::model::NumberPoint {
            attributes: vec![KeyValue::new("session.id", s(session))],
            start_time_unix_nano: 0,
            time_unix_nano: at,
            value: crate::model::Number::Int(10),
            exemplars: Vec::new(),
            flags: 0,
        };
        let metric = Metric {
            name: "claude_code.token.usage".into(),
            description: String::new(),
            unit: "tokens".into(),
            metadata: Vec::new(),
            data: MetricData::Sum {
                points: vec![point],
                temporality: 1,
                monotonic: true,
            },
        };
        let batch = Batch {
            first_seq: view.as_of.seq + 1,
            received_at: at,
            resource_metrics: vec![ResourceMetrics {
                resource: resource(&[("service.name", "claude-code")]),
                schema_url: String::new(),
                scope_metrics: vec![ScopeMetrics {
                    scope: Scope::default(),
                    schema_url: String::new(),
                    metrics: vec![metric],
                }],
            }],
            ..Batch::default()
        };
        view.apply_batch(&batch, 0);
    }

    #[test]
    fn a_session_first_seen_with_its_agent_places_the_records_that_carry_only_it() {
        let mut view = registered();
        session_metric(&mut view, 10, "s-1");
        assert_eq!(view.telemetry.unattributed.get("claude-code"), Some(&1));
        assert!(view.telemetry.sessions.is_empty(), "no agent named it yet");
        let who = resource(&[("agent.id", "a1"), ("service.name", "claude-code")]);
        let prompt = claude("user_prompt", &[("session.id", s("s-1"))]);
        logs(&mut view, 20, who, vec![prompt]);
        assert_eq!(
            view.telemetry.sessions.get("s-1").map(String::as_str),
            Some("a1")
        );
        session_metric(&mut view, 30, "s-1");
        session_metric(&mut view, 40, "s-2");
        assert_eq!(view.agents["a1"].last_activity, 30);
        assert_eq!(
            view.telemetry.unattributed.get("claude-code"),
            Some(&2),
            "only the metric of the unknown session stays unattributed"
        );
        // A session stays with the agent it was first seen with.
        let span = Span::new([2; 16], [2; 8], "agent.registration", 0).with("agent.id", s("a2"));
        let batch = Batch::of_spans(
            view.as_of.seq + 1,
            50,
            vec![ResourceSpans::single(
                Resource::default(),
                Scope::default(),
                vec![span],
            )],
        );
        view.apply_batch(&batch, 0);
        let other = resource(&[("agent.id", "a2"), ("service.name", "claude-code")]);
        logs(
            &mut view,
            60,
            other,
            vec![claude("user_prompt", &[("session.id", s("s-1"))])],
        );
        assert_eq!(
            view.telemetry.sessions.get("s-1").map(String::as_str),
            Some("a1")
        );
    }

    #[test]
    fn a_metric_names_its_agent_by_its_resource() {
        let mut view = registered();
        let metric = Metric {
            name: "claude_code.commit.count".into(),
            description: String::new(),
            unit: String::new(),
            metadata: Vec::new(),
            data: MetricData::Empty,
        };
        let batch = Batch {
            first_seq: 2,
            received_at: 70,
            resource_metrics: vec![ResourceMetrics {
                resource: resource(&[("agent.id", "a1")]),
                schema_url: String::new(),
                scope_metrics: vec![ScopeMetrics {
                    scope: Scope::default(),
                    schema_url: String::new(),
                    metrics: vec![metric],
                }],
            }],
            ..Batch::default()
        };
        view.apply_batch(&batch, 0);
        assert_eq!(view.telemetry.metrics, 1);
        let t = &view.telemetry.agents["a1"];
        assert_eq!(t.commits, 0, "a counter's export is not one commit");
        assert_eq!(t.last.as_ref().map(|l| l.kind), Some(Kind::Commit));
        assert_eq!(view.agents["a1"].last_activity, 70);
    }
}
