//! Agent profiles: what the telemetry coding agents already send means to spanfold, as data
//! (`spans/profiles/*.yaml`, compiled in, listed by `spanfold spans`). For Claude Code, Codex,
//! Gemini CLI and the GenAI conventions, which event, metric and span names are activity, a tool
//! call, an LLM request, a commit, a session's start or an error, and in which attributes their
//! model, token counts, cost, tool and outcome travel.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{AnyValue, LogRecord, as_str, find_attr};

/// The profiles' sources, by path.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "spans/profiles/claude.yaml",
        include_str!("../../spans/profiles/claude.yaml"),
    ),
    (
        "spans/profiles/codex.yaml",
        include_str!("../../spans/profiles/codex.yaml"),
    ),
    (
        "spans/profiles/gemini.yaml",
        include_str!("../../spans/profiles/gemini.yaml"),
    ),
    (
        "spans/profiles/genai.yaml",
        include_str!("../../spans/profiles/genai.yaml"),
    ),
];

/// What a recognised record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Activity,
    ToolCall,
    LlmRequest,
    Commit,
    SessionStart,
    SessionEnd,
    Error,
    /// A token counter (metrics).
    Tokens,
    /// A cost counter (metrics).
    Cost,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activity => "activity",
            Kind::ToolCall => "tool_call",
            Kind::LlmRequest => "llm_request",
            Kind::Commit => "commit",
            Kind::SessionStart => "session_start",
            Kind::SessionEnd => "session_end",
            Kind::Error => "error",
            Kind::Tokens => "tokens",
            Kind::Cost => "cost",
        }
    }
}

/// Which attribute carries each thing a record can say (absent: it does not say it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    pub model: Option<String>,
    pub input_tokens: Option<String>,
    pub output_tokens: Option<String>,
    pub cache_read_tokens: Option<String>,
    pub cache_creation_tokens: Option<String>,
    pub reasoning_tokens: Option<String>,
    pub cost_usd: Option<String>,
    pub duration_ms: Option<String>,
    pub tool: Option<String>,
    pub success: Option<String>,
    pub paths: Option<String>,
    pub commit: Option<String>,
    pub message: Option<String>,
}

/// One event, metric or span name of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    pub kind: Kind,
    /// Attribute values the record must carry to mean this (else it is plain activity).
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    #[serde(default)]
    pub fields: Fields,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: String,
    title: String,
    service_names: Vec<String>,
    session_keys: Vec<String>,
    #[serde(default)]
    tokens: TokenRules,
    events: BTreeMap<String, RecordSpec>,
    metrics: BTreeMap<String, RecordSpec>,
    spans: BTreeMap<String, RecordSpec>,
}

/// How an agent counts its tokens, where that differs from Claude Code's way (input without
/// the cache read, output without the reasoning), so that usage means one thing for all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRules {
    /// Its input count includes the tokens read from the cache (OpenAI's and Google's APIs).
    #[serde(default)]
    pub input_includes_cache_read: bool,
    /// Its output count includes the reasoning tokens (OpenAI's API).
    #[serde(default)]
    pub output_includes_reasoning: bool,
}

/// One agent's profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: String,
    pub title: String,
    /// `service.name` values its resource carries.
    pub service_names: Vec<String>,
    /// Attributes that name a session (a launcher binds a session to its agent).
    pub session_keys: Vec<String>,
    pub tokens: TokenRules,
    pub events: BTreeMap<String, RecordSpec>,
    pub metrics: BTreeMap<String, RecordSpec>,
    /// By exact name, or by prefix when the name ends in ` *` ("chat *").
    pub spans: BTreeMap<String, RecordSpec>,
}

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {what} {name:?} is also in {other}; a name belongs to one profile")]
    Duplicate {
        path: String,
        what: &'static str,
        name: String,
        other: String,
    },
}

/// The resource attribute naming the feature an agent's records are about (the launcher sets
/// it in `OTEL_RESOURCE_ATTRIBUTES`, beside `agent.id`): what a record counts for when its
/// agent holds several features.
pub const SPANFOLD_FEATURE: &str = "spanfold.feature";

/// The resource attribute naming the repository an agent's records are about (the launcher
/// sets it beside [`SPANFOLD_FEATURE`]): what a Collector routes many repositories' agents by,
/// one spanfold per repository (see `routing`).
pub const SPANFOLD_REPO: &str = "spanfold.repo";

/// Every profile, and which one each name belongs to.
#[derive(Debug)]
pub struct Profiles {
    profiles: Vec<Profile>,
    /// Every profile's session keys, sorted, each once.
    session_keys: Vec<String>,
    /// The event names and the metric names whose records can say a commit, sorted: the
    /// writer checks these before it looks a record up, on every export.
    commit_events: Vec<String>,
    commit_metrics: Vec<String>,
}

impl Profiles {
    /// The profiles compiled into this build.
    pub fn builtin() -> &'static Profiles {
        static BUILTIN: OnceLock<Profiles> = OnceLock::new();
        // The sources are part of the binary and a unit test parses them: a failure is a build
        // defect, not bad input.
        BUILTIN.get_or_init(|| Profiles::parse(SOURCES).expect("the embedded profiles are valid"))
    }

    pub fn parse(sources: &[(&str, &str)]) -> Result<Profiles, ProfileError> {
        let mut profiles: Vec<Profile> = Vec::new();
        for (path, text) in sources {
            let file: ProfileFile =
                serde_yaml_ng::from_str(text).map_err(|e| ProfileError::Parse {
                    path: (*path).to_owned(),
                    message: e.to_string(),
                })?;
            for (what, names) in [
                ("event", file.events.keys()),
                ("metric", file.metrics.keys()),
                ("span", file.spans.keys()),
            ] {
                for name in names {
                    let taken = profiles.iter().find(|p| match what {
                        "event" => p.events.contains_key(name),
                        "metric" => p.metrics.contains_key(name),
                        _ => p.spans.contains_key(name),
                    });
                    if let Some(other) = taken {
                        return Err(ProfileError::Duplicate {
                            path: (*path).to_owned(),
                            what,
                            name: name.clone(),
                            other: other.name.clone(),
                        });
                    }
                }
            }
            profiles.push(Profile {
                name: file.profile,
                title: file.title,
                service_names: file.service_names,
                session_keys: file.session_keys,
                tokens: file.tokens,
                events: file.events,
                metrics: file.metrics,
                spans: file.spans,
            });
        }
        let mut session_keys: Vec<String> = profiles
            .iter()
            .flat_map(|p| p.session_keys.iter().cloned())
            .collect();
        session_keys.sort();
        session_keys.dedup();
        let can_say_commit = |of: fn(&Profile) -> &BTreeMap<String, RecordSpec>| {
            let mut names: Vec<String> = (profiles.iter())
                .flat_map(|p| of(p).iter())
                .filter(|(_, spec)| spec.kind == Kind::Commit || spec.fields.commit.is_some())
                .map(|(name, _)| name.clone())
                .collect();
            names.sort();
            names
        };
        let commit_events = can_say_commit(|p| &p.events);
        let commit_metrics = can_say_commit(|p| &p.metrics);
        Ok(Profiles {
            profiles,
            session_keys,
            commit_events,
            commit_metrics,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter()
    }

    /// The attributes that name a session in any profile (`session.id`, `conversation.id`, …).
    pub fn session_keys(&self) -> &[String] {
        &self.session_keys
    }

    /// Whether a log record of this event name can say its agent committed (see
    /// [`RecordSpec::says_commit`]); most cannot, and this costs a search of a short list.
    pub fn event_may_say_commit(&self, name: &str) -> bool {
        self.commit_events
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// As [`Profiles::event_may_say_commit`], for a metric.
    pub fn metric_may_say_commit(&self, name: &str) -> bool {
        (self.commit_metrics)
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// The profile and meaning of a log record's event name.
    pub fn event(&self, name: &str) -> Option<(&Profile, &RecordSpec)> {
        self.profiles
            .iter()
            .find_map(|p| p.events.get(name).map(|s| (p, s)))
    }

    pub fn metric(&self, name: &str) -> Option<(&Profile, &RecordSpec)> {
        self.profiles
            .iter()
            .find_map(|p| p.metrics.get(name).map(|s| (p, s)))
    }

    /// A span name's meaning: an exact name first, then a `"<operation> *"` pattern.
    pub fn span(&self, name: &str) -> Option<(&Profile, &RecordSpec)> {
        self.profiles
            .iter()
            .find_map(|p| p.spans.get(name).map(|s| (p, s)))
            .or_else(|| {
                self.profiles.iter().find_map(|p| {
                    p.spans.iter().find_map(|(pattern, s)| {
                        let prefix = pattern.strip_suffix('*')?;
                        name.starts_with(prefix).then_some((p, s))
                    })
                })
            })
    }

    /// The profile whose agent a resource's `service.name` names.
    pub fn by_service(&self, service: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.service_names.iter().any(|s| s == service))
    }
}

impl RecordSpec {
    /// Whether a record of this kind, carrying these attributes, says its agent committed: a
    /// commit record, or one whose commit field is set (Claude Code's tool result carries
    /// `git_commit_id` when the tool made a commit). A branch then has a new tip for the conflict
    /// radar to look at.
    pub fn says_commit<S: AsRef<str>>(&self, attr: impl Fn(&str) -> Option<S>) -> bool {
        self.kind == Kind::Commit
            || self
                .fields
                .commit
                .as_deref()
                .and_then(&attr)
                .is_some_and(|id| !id.as_ref().is_empty())
    }

    /// Whether a record carrying these attributes means this (every `when` value present).
    pub fn applies<S: AsRef<str>>(&self, attr: impl Fn(&str) -> Option<S>) -> bool {
        self.when
            .iter()
            .all(|(key, want)| attr(key).is_some_and(|v| v.as_ref() == want))
    }
}

/// A log record's event name: OTLP's `event_name`, else its `event.name` attribute — a bare name
/// taking the prefix its string body carries (Claude Code sends `api_request` with the body
/// `claude_code.api_request`) — else a string body.
pub fn event_name(record: &LogRecord) -> Option<Cow<'_, str>> {
    if !record.event_name.is_empty() {
        return Some(Cow::Borrowed(&record.event_name));
    }
    let body = match &record.body {
        AnyValue::String(s) => Some(s.as_str()),
        _ => None,
    };
    match find_attr(&record.attributes, "event.name").and_then(as_str) {
        Some(name) => match body {
            Some(b)
                if b.len() > name.len()
                    && b.ends_with(name)
                    && b[..b.len() - name.len()].ends_with('.') =>
            {
                Some(Cow::Borrowed(b))
            }
            _ => Some(Cow::Borrowed(name)),
        },
        None => body.map(Cow::Borrowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyValue;

    #[test]
    fn the_builtin_profiles_parse_and_each_name_belongs_to_one() {
        let profiles = Profiles::parse(SOURCES).expect("valid");
        let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["claude", "codex", "gemini", "genai"]);
        let (p, spec) = profiles.event("claude_code.api_request").expect("known");
        assert_eq!((p.name.as_str(), spec.kind), ("claude", Kind::LlmRequest));
        assert_eq!(spec.fields.cost_usd.as_deref(), Some("cost_usd"));
        let (p, spec) = profiles.span("chat gpt-4o").expect("by pattern");
        assert_eq!((p.name.as_str(), spec.kind), ("genai", Kind::LlmRequest));
        assert!(
            profiles.span("chatter").is_none(),
            "a pattern is a prefix with its space"
        );
        assert_eq!(
            profiles.by_service("claude-code").map(|p| p.name.as_str()),
            Some("claude")
        );
    }

    #[test]
    fn a_name_in_two_profiles_or_an_unknown_field_is_refused_with_where() {
        let a = "profile: a\ntitle: A\nservice_names: []\nsession_keys: []\nevents: {x.y: {kind: activity}}\nmetrics: {}\nspans: {}\n";
        let b = a.replace("profile: a", "profile: b");
        let err = Profiles::parse(&[("a.yaml", a), ("b.yaml", &b)]).expect_err("duplicate");
        assert!(
            err.to_string()
                .contains("b.yaml: event \"x.y\" is also in a"),
            "{err}"
        );
        let typo = a.replace("{kind: activity}", "{kind: activity, feilds: {}}");
        let err = Profiles::parse(&[("t.yaml", &typo)]).expect_err("unknown field");
        assert!(err.to_string().starts_with("t.yaml: "), "{err}");
    }

    fn record(body: Option<&str>, event_attr: Option<&str>, event_name: &str) -> LogRecord {
        LogRecord {
            body: body.map_or(AnyValue::Empty, |b| AnyValue::String(b.into())),
            attributes: event_attr
                .map(|e| vec![KeyValue::new("event.name", AnyValue::String(e.into()))])
                .unwrap_or_default(),
            event_name: event_name.into(),
            ..LogRecord::empty()
        }
    }

    #[test]
    fn an_event_is_named_by_its_field_its_attribute_or_its_body() {
        let name = |r: &LogRecord| event_name(r).map(|n| n.into_owned());
        let claude = record(Some("claude_code.api_request"), Some("api_request"), "");
        assert_eq!(name(&claude).as_deref(), Some("claude_code.api_request"));
        let codex = record(Some("anything"), Some("codex.tool_result"), "");
        assert_eq!(name(&codex).as_deref(), Some("codex.tool_result"));
        let field = record(Some("body"), Some("attr"), "gemini_cli.tool_call");
        assert_eq!(name(&field).as_deref(), Some("gemini_cli.tool_call"));
        let bare_body = record(Some("claude_code.user_prompt"), None, "");
        assert_eq!(name(&bare_body).as_deref(), Some("claude_code.user_prompt"));
        let suffix_only = record(Some("xapi_request"), Some("api_request"), "");
        assert_eq!(name(&suffix_only).as_deref(), Some("api_request"));
        assert_eq!(name(&record(None, None, "")), None);
    }

    #[test]
    fn a_commit_is_said_by_a_commit_record_or_a_set_commit_field() {
        let p = Profiles::builtin();
        let (_, result) = p.event("claude_code.tool_result").expect("known");
        let id = |v: &'static str| move |k: &str| (k == "git_commit_id").then_some(v);
        assert!(result.says_commit(id("4f2a9c1")));
        assert!(!result.says_commit(id("")), "an empty id is no commit");
        assert!(!result.says_commit(|_| None::<&str>));
        let (_, count) = p.metric("claude_code.commit.count").expect("known");
        assert!(count.says_commit(|_| None::<&str>));
        let (_, tokens) = p.metric("claude_code.token.usage").expect("known");
        assert!(!tokens.says_commit(|_| None::<&str>));
        assert!(p.event_may_say_commit("claude_code.tool_result"));
        assert!(p.metric_may_say_commit("claude_code.commit.count"));
        assert!(!p.event_may_say_commit("claude_code.api_request"));
        assert!(!p.metric_may_say_commit("claude_code.token.usage"));
    }
}
