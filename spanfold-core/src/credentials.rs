//! Who is speaking: the operator (the server's `--token`, or anyone when it has none) or one
//! agent, by a token `spanfold agents token AGENT` issued for it. The log keeps only a token's
//! SHA-256 (the `agent.token_issued` span), never the token, so neither the log nor an export of
//! it lets anyone speak for an agent. An agent's token lets it send spans about itself only:
//! each span must carry its `agent.id` (on the span or its resource), and the spans the registry
//! marks as the operator's (adding, cancelling or reopening features, resets, configuration,
//! issuing tokens) are refused, span by span.
//!
//! Pure: the view is read, not written; hashing is the only work.

use sha2::{Digest, Sha256};

use crate::model::{AnyValue, KeyValue, ResourceLogs, ResourceMetrics, ResourceSpans, Span};
use crate::reducer::View;
use crate::registry::{Origin, Registry, Violation};
use crate::vocab::attr;

/// The prefix of every agent token, so that one found in a file or a shell history says what
/// it is.
pub const TOKEN_PREFIX: &str = "sfa_";

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Agent(String),
}

/// The SHA-256 of a token, in hex: what the log keeps.
pub fn hash(token: &str) -> String {
    crate::model::hex(&Sha256::digest(token.trim().as_bytes()))
}

/// An agent token from 32 random bytes (the caller reads them from the OS).
pub fn token_from(random: &[u8; 32]) -> String {
    format!("{TOKEN_PREFIX}{}", crate::model::hex(random))
}

/// The token in an `Authorization` value: `Bearer TOKEN`, the scheme in any case (RFC 9110).
pub fn bearer(value: &str) -> Option<&str> {
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Who presented `authorization` (the header's value, if any) to a server whose operator token
/// is `operator`; or why the request is refused. Without an operator token the server is open:
/// anyone is the operator, but an agent token presented still binds its holder to its agent.
pub fn principal(
    operator: Option<&str>,
    authorization: Option<&str>,
    view: &View,
) -> Result<Principal, String> {
    let presented = authorization.and_then(bearer);
    if let (Some(expected), Some(token)) = (operator, presented)
        && constant_time_eq(token.as_bytes(), expected.as_bytes())
    {
        return Ok(Principal::Operator);
    }
    if let Some(agent) = presented.and_then(|t| agent_of(t, view)) {
        return Ok(Principal::Agent(agent));
    }
    match (operator, authorization) {
        (None, _) => Ok(Principal::Operator),
        (Some(_), None) => Err("missing authorization: send the header `authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>)".into()),
        (Some(_), Some(_)) => Err("wrong authorization token".into()),
    }
}

/// The agent whose current token this is. Hashes are compared whole, in constant time.
fn agent_of(token: &str, view: &View) -> Option<String> {
    if !token.starts_with(TOKEN_PREFIX) {
        return None;
    }
    let presented = hash(token);
    view.credentials
        .iter()
        .find(|(_, h)| constant_time_eq(h.as_bytes(), presented.as_bytes()))
        .map(|(agent, _)| agent.clone())
}

/// Compares without returning early, so the time taken says nothing about where (or whether
/// in length) the values differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// Refuses, span by span, what `agent`'s token may not send: spans about another agent (or
/// about none), and the operator's spans. Returns why each was refused.
pub fn retain_agents_own(
    resource_spans: &mut [ResourceSpans],
    agent: &str,
    registry: &Registry,
) -> Vec<Violation> {
    let mut refused = Vec::new();
    for rs in resource_spans.iter_mut() {
        let on_resource = agent_id(&rs.resource.attributes).map(str::to_owned);
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|span| {
                let rule = match refusal(span, on_resource.as_deref(), agent, registry) {
                    None => return true,
                    Some(rule) => rule,
                };
                refused.push(Violation {
                    span: span.name.to_string(),
                    ids: format!(
                        "trace {} span {}",
                        crate::model::hex(&span.trace_id),
                        crate::model::hex(&span.span_id)
                    ),
                    rule,
                    agent: Some(agent.to_owned()),
                });
                false
            });
        }
    }
    refused
}

/// [`retain_agents_own`] for an agent's log records and metrics: each must name `agent` (on the
/// record, its scope or its resource, as `OTEL_RESOURCE_ATTRIBUTES=agent.id=…` does), so that
/// one agent's token cannot keep another agent's lease alive. Returns why each was refused.
pub fn retain_agents_own_telemetry(
    resource_logs: &mut [ResourceLogs],
    resource_metrics: &mut [ResourceMetrics],
    agent: &str,
) -> Vec<String> {
    let mut refused = Vec::new();
    let rule = |named: Option<&str>| match named {
        Some(id) if id == agent => None,
        Some(id) => Some(format!(
            "it speaks for agent {id:?}, and the token is agent {agent:?}'s"
        )),
        None => Some(format!(
            "it names no agent.id; with agent {agent:?}'s token every record must carry it (on the record, its scope or its resource)"
        )),
    };
    for rl in resource_logs.iter_mut() {
        let on_resource = agent_id(&rl.resource.attributes);
        for sl in &mut rl.scope_logs {
            let on_scope = agent_id(&sl.scope.attributes).or(on_resource);
            sl.log_records
                .retain(|r| match rule(agent_id(&r.attributes).or(on_scope)) {
                    None => true,
                    Some(why) => {
                        let name = crate::registry::describe_log(r);
                        refused.push(format!("log record {name}: {why}"));
                        false
                    }
                });
        }
    }
    for rm in resource_metrics.iter_mut() {
        let on_resource = agent_id(&rm.resource.attributes);
        for sm in &mut rm.scope_metrics {
            let named = agent_id(&sm.scope.attributes).or(on_resource);
            sm.metrics.retain(|m| match rule(named) {
                None => true,
                Some(why) => {
                    refused.push(format!("metric {:?}: {why}", m.name));
                    false
                }
            });
        }
    }
    refused
}

fn refusal(
    span: &Span,
    on_resource: Option<&str>,
    agent: &str,
    registry: &Registry,
) -> Option<String> {
    if registry
        .get(&span.name)
        .is_some_and(|spec| spec.origin == Origin::Operator)
    {
        return Some(format!(
            "it is the operator's to send, and the token is agent {agent:?}'s: send it with the operator token"
        ));
    }
    match agent_id(&span.attributes).or(on_resource) {
        Some(id) if id == agent => None,
        Some(id) => Some(format!(
            "it speaks for agent {id:?}, and the token is agent {agent:?}'s"
        )),
        None => Some(format!(
            "it names no agent.id; with agent {agent:?}'s token every span must carry it (on the span or its resource)"
        )),
    }
}

fn agent_id(attributes: &[KeyValue]) -> Option<&str> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == attr::AGENT_ID)
        .and_then(|kv| match &kv.value {
            AnyValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let token = token_from(&[7; 32]);
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 4 + 64);
        let mut view = View::default();
        view.credentials.insert("a1".into(), hash(&token));
        let header = format!("bearer {token}");
        assert_eq!(
            principal(Some("op"), Some(&header), &view),
            Ok(Principal::Agent("a1".into()))
        );
        assert_eq!(
            principal(Some("op"), Some("Bearer op"), &view),
            Ok(Principal::Operator)
        );
        assert!(principal(Some("op"), Some("Bearer sfa_00"), &view).is_err());
        assert!(principal(Some("op"), None, &view).is_err());
        assert_eq!(principal(None, None, &view), Ok(Principal::Operator));
        assert_eq!(
            principal(None, Some(&header), &view),
            Ok(Principal::Agent("a1".into())),
            "an agent token binds its holder on an open server too"
        );
    }
}
