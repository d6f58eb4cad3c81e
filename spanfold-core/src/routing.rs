//! Which repository telemetry is for. One spanfold coordinates one repository; where one
//! OTLP Collector routes many repositories' agents, it routes by the resource attribute
//! [`SPANFOLD_REPO`] (the launcher sets it). A resource naming another repository reached the
//! wrong server: it is refused whole, with the reason, rather than folded into this one's
//! agents (an agent id may well exist in both).

use crate::model::{AnyValue, KeyValue, ResourceLogs, ResourceMetrics, ResourceSpans};
pub use crate::profiles::SPANFOLD_REPO;

/// A repository's name as telemetry carries it: letters, digits and `-_./`, anything else
/// `-`. Then it needs no escaping in `OTEL_RESOURCE_ATTRIBUTES`, where not every SDK decodes
/// an escape (Rust's does not), and a Collector's route names it as written.
pub fn repository_name(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '/' => c,
            _ => '-',
        })
        .collect()
}

/// Drops the resources whose [`SPANFOLD_REPO`] names a repository other than `repo`; for each
/// resource dropped, how many items it held and why. Resources that name none are kept (most
/// senders do not).
pub fn retain_this_repository(
    spans: &mut Vec<ResourceSpans>,
    logs: &mut Vec<ResourceLogs>,
    metrics: &mut Vec<ResourceMetrics>,
    repo: &str,
) -> Vec<(usize, String)> {
    let mut refused = Vec::new();
    let mut keep = |attributes: &[KeyValue], count: usize, what: &str| match named_repo(attributes)
        .filter(|named| *named != repo)
    {
        None => true,
        Some(other) => {
            // The sender's words: bounded, as every reason the answer carries.
            let other: String = other.chars().take(100).collect();
            let why = format!(
                "{count} {what} for repository {other:?}, and this server coordinates {repo:?}: route by the resource attribute {SPANFOLD_REPO} to that repository's spanfold"
            );
            refused.push((count, why));
            false
        }
    };
    spans.retain(|rs| {
        let count = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        keep(&rs.resource.attributes, count, "spans")
    });
    logs.retain(|rl| {
        let count = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
        keep(&rl.resource.attributes, count, "log records")
    });
    metrics.retain(|rm| {
        let count = rm.scope_metrics.iter().map(|s| s.metrics.len()).sum();
        keep(&rm.resource.attributes, count, "metrics")
    });
    refused
}

fn named_repo(attributes: &[KeyValue]) -> Option<&str> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == SPANFOLD_REPO)
        .and_then(|kv| match &kv.value {
            AnyValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, ScopeSpans, Span};

    fn resource(repo: Option<&str>) -> Resource {
        let mut attributes = vec![KeyValue::new("agent.id", AnyValue::String("a1".into()))];
        if let Some(repo) = repo {
            attributes.push(KeyValue::new(SPANFOLD_REPO, AnyValue::String(repo.into())));
        }
        Resource {
            attributes,
            ..Resource::default()
        }
    }

    #[test]
    fn a_name_telemetry_carries_needs_no_escaping() {
        assert_eq!(repository_name(" My Project,v2 "), "My-Project-v2");
        assert_eq!(repository_name("team/app.git"), "team/app.git");
        assert_eq!(repository_name("café"), "caf-");
    }

    #[test]
    fn another_repositorys_resources_are_refused_whole_and_the_rest_kept() {
        let spans_of = |repo: Option<&str>| ResourceSpans {
            resource: resource(repo),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    Span::new([1; 16], [1; 8], "x", 0),
                    Span::new([1; 16], [2; 8], "y", 0),
                ],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        let mut spans = vec![spans_of(Some("app")), spans_of(Some("web")), spans_of(None)];
        let mut logs = vec![ResourceLogs {
            resource: resource(Some("web")),
            ..ResourceLogs::default()
        }];
        let mut metrics = Vec::new();
        let refused = retain_this_repository(&mut spans, &mut logs, &mut metrics, "app");
        let kept: Vec<_> = spans
            .iter()
            .map(|rs| named_repo(&rs.resource.attributes))
            .collect();
        assert_eq!(kept, [Some("app"), None]);
        assert!(logs.is_empty());
        assert_eq!(refused.len(), 2, "{refused:?}");
        let (count, why) = &refused[0];
        assert_eq!(*count, 2);
        assert!(
            why.starts_with("2 spans for repository \"web\", and this server coordinates \"app\""),
            "{why}"
        );
    }
}
