//! What `agents run` gives an agent's process: where to send its telemetry (this coordinator's
//! OTLP endpoint, with the token), who it is (`OTEL_RESOURCE_ATTRIBUTES=agent.id=…`), the trace
//! its records belong to (`TRACEPARENT`), each agent's own switches to turn its telemetry on,
//! a git identity when the machine has none, and the command's placeholders filled in.

use std::path::Path;

/// Which coding agent the command is, for the switches that turn its telemetry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Claude Code: `CLAUDE_CODE_ENABLE_TELEMETRY=1`, logs and metrics over OTLP, tool details.
    Claude,
    /// Codex CLI: `-c otel.*` arguments sending all three signals over OTLP/gRPC.
    Codex,
    /// Gemini CLI: `GEMINI_TELEMETRY_ENABLED=true` and its OTLP endpoint.
    Gemini,
    /// GitHub Copilot CLI and others following the GenAI conventions: the standard variables.
    Copilot,
    /// Any other command (Aider, a script): the standard variables; the launcher's process
    /// reports are its heartbeats.
    Plain,
}

/// This coordinator's OTLP endpoints, as its server advertises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://host:port` of OTLP/HTTP.
    pub http: String,
    /// `http://host:port` of OTLP/gRPC.
    pub grpc: String,
    pub token: Option<String>,
    /// The PEM file the server's TLS is trusted by (an `https://` endpoint's own certificate).
    pub certificate: Option<String>,
    /// The name the server gives its repository: the agent's records carry it as
    /// `spanfold.repo`, which a Collector in between routes by.
    pub repo: Option<String>,
}

/// `url` (`scheme://host[:port][/path]`) with the port `port` and no path: the other port of
/// the server an address names. None for an address that is not a URL.
pub fn on_port(url: &str, port: u16) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    // A user and password before the host are not the host.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // An IPv6 host is bracketed and holds colons of its own.
    let host = match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.split(':').next().unwrap_or_default(),
    };
    (!scheme.is_empty() && !host.is_empty()).then(|| format!("{scheme}://{host}:{port}"))
}

/// One launch: the agent, its task, and where its telemetry goes.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub agent: &'a str,
    pub feature: &'a str,
    pub worktree: &'a str,
    pub branch: &'a str,
    pub prompt: &'a str,
    pub prompt_file: &'a Path,
    /// W3C `traceparent` of the launcher's report on this process: records sent in that trace
    /// are the agent's.
    pub traceparent: &'a str,
    /// None without a running server: the agent's telemetry then has nowhere to go.
    pub endpoint: Option<&'a Endpoint>,
    /// Whether git has no identity configured for the repository: commits would fail.
    pub needs_git_identity: bool,
    /// The first port of the worktree's block (`SPANFOLD_PORT`).
    pub port: Option<u16>,
    /// `NODE_EXTRA_CA_CERTS` is set in the launcher's own environment (a proxy's CA, say): the
    /// agent keeps it as it is.
    pub node_ca_given: bool,
}

/// The variables set in the child's environment (on top of the launcher's own).
pub fn environment(profile: Profile, l: &Launch<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("SPANFOLD_AGENT", l.agent.to_owned());
    set("SPANFOLD_FEATURE", l.feature.to_owned());
    set("SPANFOLD_WORKTREE", l.worktree.to_owned());
    set("SPANFOLD_BRANCH", l.branch.to_owned());
    set("TRACEPARENT", l.traceparent.to_owned());
    if let Some(port) = l.port {
        set("SPANFOLD_PORT", port.to_string());
    }
    // Names follow the name rule (letters, digits, `-_./`): nothing to escape in the list.
    let mut resource = format!(
        "{}={},{}={}",
        crate::vocab::attr::AGENT_ID,
        l.agent,
        crate::profiles::SPANFOLD_FEATURE,
        l.feature
    );
    if let Some(repo) = l.endpoint.and_then(|e| e.repo.as_deref()) {
        // Made of characters that need no escaping, as the server names it.
        resource.push_str(&format!(
            ",{}={}",
            crate::profiles::SPANFOLD_REPO,
            crate::routing::repository_name(repo)
        ));
    }
    set("OTEL_RESOURCE_ATTRIBUTES", resource);
    if l.needs_git_identity {
        let email = format!("{}@spanfold.invalid", l.agent.replace('/', "-"));
        set("GIT_AUTHOR_NAME", l.agent.to_owned());
        set("GIT_AUTHOR_EMAIL", email.clone());
        set("GIT_COMMITTER_NAME", l.agent.to_owned());
        set("GIT_COMMITTER_EMAIL", email);
    }
    let Some(endpoint) = l.endpoint else {
        return env;
    };
    // OTLP over HTTP with protobuf: every SDK speaks it, and it needs no gRPC stack.
    set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.http.clone());
    set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into());
    if let Some(certificate) = &endpoint.certificate {
        set("OTEL_EXPORTER_OTLP_CERTIFICATE", certificate.clone());
        // Node's exporters (Claude Code's, Gemini CLI's) read that variable only in recent
        // releases; an extra CA for the whole process reaches every one (it adds, not
        // replaces) — unless one is set already (a proxy's), which the agent needs as it is.
        if !l.node_ca_given {
            set("NODE_EXTRA_CA_CERTS", certificate.clone());
        }
    }
    if let Some(token) = &endpoint.token {
        // The header list is `key=value` with the value percent-encoded (a space is %20).
        set(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{token}"),
        );
    }
    for signal in [
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_TRACES_EXPORTER",
    ] {
        set(signal, "otlp".into());
    }
    // Delta temporality, as Claude Code sends by default: each export counts its interval.
    set(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "delta".into(),
    );
    match profile {
        Profile::Claude => {
            set("CLAUDE_CODE_ENABLE_TELEMETRY", "1".into());
            set("OTEL_LOG_TOOL_DETAILS", "1".into());
        }
        Profile::Gemini => {
            set("GEMINI_TELEMETRY_ENABLED", "true".into());
            set("GEMINI_TELEMETRY_OTLP_ENDPOINT", endpoint.grpc.clone());
            set("GEMINI_TELEMETRY_OTLP_PROTOCOL", "grpc".into());
        }
        Profile::Codex | Profile::Copilot | Profile::Plain => {}
    }
    env
}

/// The command's arguments: the profile's own first (Codex's `-c otel.…`), then `args` with
/// `{prompt}`, `{prompt_file}`, `{feature}`, `{worktree}`, `{branch}` and `{port}` filled in.
pub fn arguments(profile: Profile, l: &Launch<'_>, args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if let (Profile::Codex, Some(endpoint)) = (profile, l.endpoint) {
        // The token stays out of the command line, which other users may read: Codex's
        // exporter takes OTEL_EXPORTER_OTLP_HEADERS from the environment.
        let tls = endpoint
            .certificate
            .as_deref()
            .map(|file| format!(",tls={{ca-certificate={}}}", toml_string(file)))
            .unwrap_or_default();
        for key in [
            "otel.exporter",
            "otel.trace_exporter",
            "otel.metrics_exporter",
        ] {
            out.push("-c".to_owned());
            out.push(format!(
                "{key}={{otlp-grpc={{endpoint={}{tls}}}}}",
                toml_string(&endpoint.grpc)
            ));
        }
    }
    let prompt_file = l.prompt_file.display().to_string();
    let port = l.port.map(|p| p.to_string()).unwrap_or_default();
    let values = [
        ("{prompt_file}", prompt_file.as_str()),
        ("{port}", port.as_str()),
        ("{prompt}", l.prompt),
        ("{feature}", l.feature),
        ("{worktree}", l.worktree),
        ("{branch}", l.branch),
    ];
    out.extend(args.iter().map(|a| fill(a, &values)));
    out
}

/// `text` as a TOML basic string (Codex's `-c` values are TOML).
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` with each placeholder replaced by its value, in one pass: a value that itself holds
/// a placeholder's name (a prompt quoting `{feature}`) is left as it is.
fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match values.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &tail[name.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(endpoint: Option<&'a Endpoint>, file: &'a Path) -> Launch<'a> {
        Launch {
            agent: "claude-1",
            feature: "auth/login",
            worktree: "/trees/auth-login",
            branch: "spanfold/auth/login",
            prompt: "Implement {feature}",
            prompt_file: file,
            traceparent: "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01",
            endpoint,
            needs_git_identity: false,
            port: Some(20_010),
            node_ca_given: false,
        }
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn claude_code_gets_its_switches_the_endpoint_the_token_and_who_it_is() {
        let endpoint = Endpoint {
            http: "http://127.0.0.1:4318".into(),
            grpc: "http://127.0.0.1:4317".into(),
            token: Some("sfa_abc".into()),
            certificate: None,
            repo: None,
        };
        let file = Path::new("/tmp/p.md");
        let env = environment(Profile::Claude, &launch(Some(&endpoint), file));
        assert_eq!(get(&env, "CLAUDE_CODE_ENABLE_TELEMETRY"), Some("1"));
        assert_eq!(get(&env, "OTEL_LOGS_EXPORTER"), Some("otlp"));
        assert_eq!(
            get(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(
            get(&env, "OTEL_EXPORTER_OTLP_HEADERS"),
            Some("authorization=Bearer%20sfa_abc")
        );
        assert_eq!(
            get(&env, "OTEL_RESOURCE_ATTRIBUTES"),
            Some("agent.id=claude-1,spanfold.feature=auth/login")
        );
        assert!(get(&env, "TRACEPARENT").is_some_and(|t| t.starts_with("00-")));
        assert_eq!(get(&env, "SPANFOLD_PORT"), Some("20010"));
        assert_eq!(
            get(&env, "GIT_AUTHOR_NAME"),
            None,
            "git has an identity here"
        );
        let gemini = environment(Profile::Gemini, &launch(Some(&endpoint), file));
        assert_eq!(
            get(&gemini, "GEMINI_TELEMETRY_OTLP_ENDPOINT"),
            Some("http://127.0.0.1:4317")
        );
    }

    #[test]
    fn without_a_server_there_is_no_endpoint_and_without_an_identity_the_agent_gets_one() {
        let file = Path::new("/tmp/p.md");
        let mut l = launch(None, file);
        l.needs_git_identity = true;
        let env = environment(Profile::Claude, &l);
        assert_eq!(get(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"), None);
        assert_eq!(get(&env, "CLAUDE_CODE_ENABLE_TELEMETRY"), None);
        assert_eq!(get(&env, "GIT_AUTHOR_NAME"), Some("claude-1"));
        assert_eq!(
            get(&env, "GIT_COMMITTER_EMAIL"),
            Some("claude-1@spanfold.invalid")
        );
    }

    #[test]
    fn placeholders_are_filled_once_and_codex_gets_its_otel_arguments_first() {
        let endpoint = Endpoint {
            http: "http://h:1".into(),
            grpc: "http://h:2".into(),
            token: None,
            certificate: None,
            repo: None,
        };
        let file = Path::new("/runs/1.md");
        let args: Vec<String> = [
            "exec",
            "{prompt}",
            "--file={prompt_file}",
            "{branch}:{port}",
        ]
        .map(String::from)
        .to_vec();
        let codex = arguments(Profile::Codex, &launch(Some(&endpoint), file), &args);
        assert_eq!(codex[0], "-c");
        assert_eq!(
            codex[1],
            "otel.exporter={otlp-grpc={endpoint=\"http://h:2\"}}"
        );
        assert_eq!(
            &codex[6..],
            [
                "exec",
                "Implement {feature}",
                "--file=/runs/1.md",
                "spanfold/auth/login:20010"
            ],
            "a placeholder inside the prompt is not filled again"
        );
        let plain = arguments(Profile::Plain, &launch(Some(&endpoint), file), &args);
        assert_eq!(plain[0], "exec");
    }

    #[test]
    fn over_tls_every_agent_is_told_the_certificate_and_codex_gets_it_quoted() {
        let endpoint = Endpoint {
            http: "https://coord:4318".into(),
            grpc: "https://coord:4317".into(),
            token: Some("sfa_abc".into()),
            certificate: Some("/etc/my \"certs\"/ca.pem".into()),
            repo: Some("my app,v2".into()),
        };
        let file = Path::new("/runs/1.md");
        let env = environment(Profile::Gemini, &launch(Some(&endpoint), file));
        assert_eq!(
            get(&env, "OTEL_RESOURCE_ATTRIBUTES"),
            Some("agent.id=claude-1,spanfold.feature=auth/login,spanfold.repo=my-app-v2"),
            "the repository a Collector routes by, in characters no SDK must decode"
        );
        assert_eq!(
            get(&env, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            Some("/etc/my \"certs\"/ca.pem")
        );
        assert_eq!(
            get(&env, "NODE_EXTRA_CA_CERTS"),
            Some("/etc/my \"certs\"/ca.pem")
        );
        let mut given = launch(Some(&endpoint), file);
        given.node_ca_given = true;
        let env_given = environment(Profile::Claude, &given);
        assert_eq!(
            get(&env_given, "NODE_EXTRA_CA_CERTS"),
            None,
            "a proxy's CA is kept"
        );
        assert_eq!(
            get(&env, "GEMINI_TELEMETRY_OTLP_ENDPOINT"),
            Some("https://coord:4317")
        );
        let codex = arguments(Profile::Codex, &launch(Some(&endpoint), file), &[]);
        assert_eq!(
            codex[1],
            r#"otel.exporter={otlp-grpc={endpoint="https://coord:4317",tls={ca-certificate="/etc/my \"certs\"/ca.pem"}}}"#
        );
        assert!(
            codex.iter().all(|a| !a.contains("sfa_abc")),
            "the token stays out of the command line: {codex:?}"
        );
    }

    #[test]
    fn the_other_port_is_on_the_host_the_address_names() {
        assert_eq!(
            on_port("https://coord.example:4318/", 4317).as_deref(),
            Some("https://coord.example:4317")
        );
        assert_eq!(
            on_port("http://coord.example", 9).as_deref(),
            Some("http://coord.example:9")
        );
        assert_eq!(
            on_port("http://[::1]:4318/api", 4317).as_deref(),
            Some("http://[::1]:4317")
        );
        assert_eq!(
            on_port("https://u:p@coord:4318", 4317).as_deref(),
            Some("https://coord:4317")
        );
        assert_eq!(on_port("coord.example:4318", 4317), None);
        assert_eq!(on_port("http://", 4317), None);
    }
}
