//! `agents run`: launch and supervise an agent — for each of its assignments, its command in
//! the feature's worktree, or for a remote agent in a clone of its own under `--workdir`
//! (pushed back before it is submitted), with the OTLP endpoint, its identity and the task
//! (`launcher`); its
//! process reported as `agent.process` spans, its work submitted when it exits 0 with new
//! commits and sent back with the reason otherwise; stopped when the feature is cancelled or
//! the lease lost. And `agents logs`: the runs' output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::agents::submit_checked;
use super::next::{Ask, make_ready, wait_task};
use super::{Cli, LogsArgs, Output, RunArgs};
use crate::advert::Advert;
use crate::backend::Backend;
use crate::emit::{self, IdGen};
use crate::fact::{Process, ProcessEvent};
use crate::launcher::env::{self, Endpoint, Launch};
use crate::launcher::{self, Exit};
use crate::model::hex;
use crate::reducer::{AgentState, FeatureStatus};
use crate::{git, names};

/// `agents run`: one run per assignment, until stopped (or one with `--once`).
pub(super) fn run_agent(
    args: &RunArgs,
    cli: &Cli,
    coord_dir: &Path,
    backend: &mut Backend,
) -> Result<Output> {
    names::agent_id(&args.id)?;
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        bail!("--grace must be a number of seconds, 0 or more");
    }
    if backend.agent(&args.id)?.is_none() {
        bail!(
            "agent {} is not registered; `spanfold agents register-agent {}` first",
            args.id,
            args.id
        );
    }
    launcher::catch_stop_signals();
    let endpoint = agent_endpoint(args, cli, coord_dir, backend)?;
    if endpoint.is_none() {
        eprintln!(
            "spanfold: no server runs for {}: the agent's own telemetry has nowhere to go (start `spanfold serve` to receive it)",
            coord_dir.display()
        );
    }
    let mut runs = Vec::new();
    let mut finished = None;
    while launcher::stop_requested().is_none() {
        let stop = || launcher::stop_requested().is_some();
        let ask = Ask {
            id: &args.id,
            wait: true,
            timeout: args.timeout,
            prompt: false,
            stop: Some(&stop),
        };
        let task = wait_task(&ask, backend)?.data;
        let run = run_once(args, &task, endpoint.as_ref(), coord_dir, backend)?;
        eprintln!("spanfold: {}", run.line());
        let (feature, submitted) = (run.feature.clone(), run.submitted);
        runs.push(run);
        if !args.once {
            continue;
        }
        // One feature, to its end: the run again when it comes back (a conflict, a failed
        // gate), until it is merged or leaves the agent.
        if !submitted {
            finished = None;
            break;
        }
        match await_outcome(args, &feature, backend)? {
            Outcome::CameBack => eprintln!("spanfold: {feature} came back; running again"),
            Outcome::Ended(words) => {
                finished = Some(words);
                break;
            }
        }
    }
    let mut text = runs.iter().map(Run::line).collect::<Vec<_>>().join("\n");
    if let Some(words) = &finished {
        text.push_str(&format!("\n{words}"));
    }
    let data = json!({
        "agent_id": args.id,
        "runs": runs.iter().map(Run::json).collect::<Vec<_>>(),
        "outcome": finished,
    });
    if args.once && finished.is_none() {
        bail!("{text}");
    }
    Ok(Output::new(data, text))
}

/// Where the agent's own telemetry goes: to a Collector (`--otlp-endpoint`), or to the server
/// `--endpoint` names (on another host: its gRPC port is asked of it, on the host that address
/// names), or to the one advertised here; with the agent's token, the certificate that TLS is
/// trusted by, and the name the server gives its repository.
fn agent_endpoint(
    args: &RunArgs,
    cli: &Cli,
    coord_dir: &Path,
    backend: &Backend,
) -> Result<Option<Endpoint>> {
    let token = args.agent_token.clone().or_else(|| cli.token.clone());
    let to_server = server_endpoint(cli, coord_dir, backend, token.clone())?;
    match &args.otlp_endpoint {
        Some(http) => collector_endpoint(args, cli, http, token, to_server).map(Some),
        None => Ok(to_server),
    }
}

/// Where the agent's telemetry goes when it goes to a Collector (`--otlp-endpoint`): the
/// repository's name still the server's, so that the Collector can route by it.
fn collector_endpoint(
    args: &RunArgs,
    cli: &Cli,
    http: &str,
    token: Option<String>,
    to_server: Option<Endpoint>,
) -> Result<Endpoint> {
    let grpc = match &args.otlp_grpc_endpoint {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => env::on_port(http, 4317).ok_or_else(|| {
            anyhow!("--otlp-endpoint {http} is not a URL: give it as http://HOST:PORT or https://HOST:PORT")
        })?,
    };
    // Without the repository's name the Collector has nothing to route by: records lost.
    let Some(to_server) = to_server.filter(|e| e.repo.is_some()) else {
        bail!(
            "--otlp-endpoint needs the repository's name, which a running server gives (GET /api/server): start `spanfold serve`, or give its address with --endpoint"
        );
    };
    let certificate = match args.otlp_ca_cert.as_ref().or(cli.ca_cert.as_ref()) {
        Some(file) => {
            crate::client::certificates(file)?;
            Some(std::path::absolute(file)?.display().to_string())
        }
        // The server's own, as on its host.
        None => to_server.certificate,
    };
    Ok(Endpoint {
        http: http.trim_end_matches('/').to_owned(),
        grpc,
        token,
        certificate,
        repo: to_server.repo,
    })
}

/// Where the agent's telemetry goes on the server: the one `--endpoint` names (its gRPC port
/// asked of it), or the one advertised here; None without a server.
fn server_endpoint(
    cli: &Cli,
    coord_dir: &Path,
    backend: &Backend,
    token: Option<String>,
) -> Result<Option<Endpoint>> {
    let asked = match backend {
        Backend::Remote(client) => Some(client.api("GET", "/api/server")),
        Backend::Local { .. } => None,
    };
    let repo = |info: &Value| info["repo"].as_str().map(str::to_owned);
    if let (Some(http), Some(asked)) = (&cli.endpoint, &asked) {
        let info = asked.as_ref().map_err(|e| {
            anyhow!("asking the server at {http} where its gRPC port is (GET /api/server; a server older than this spanfold does not say: upgrade it): {e}")
        })?;
        let port = info["grpc_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok());
        let port =
            port.ok_or_else(|| anyhow!("the server at {http} did not say where its gRPC port is"))?;
        let grpc = env::on_port(http, port).ok_or_else(|| {
            anyhow!(
                "--endpoint {http} is not a URL: give it as http://HOST:PORT or https://HOST:PORT"
            )
        })?;
        let certificate = match &cli.ca_cert {
            // The agent runs in its own directory: the file by a path that holds there too.
            Some(file) => Some(std::path::absolute(file)?.display().to_string()),
            None => None,
        };
        return Ok(Some(Endpoint {
            http: http.trim_end_matches('/').to_owned(),
            grpc,
            token,
            certificate,
            repo: repo(info),
        }));
    }
    // A server older than `GET /api/server` names no repository: the records then carry none.
    let named = asked.and_then(Result::ok).as_ref().and_then(repo);
    Ok(Advert::read(coord_dir).map(|a| {
        let scheme = if a.http.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Endpoint {
            grpc: format!("{scheme}://{}", a.grpc.trim_start_matches("http://")),
            http: a.http,
            token,
            certificate: a.tls_cert,
            repo: named,
        }
    }))
}

/// Where a submitted feature went.
enum Outcome {
    /// Back to the agent (a conflict, a failed gate): run the command again.
    CameBack,
    /// Merged, or gone from the agent otherwise: in words.
    Ended(String),
}

/// Waits (within `--timeout`, or until told to stop) for the submitted `feature` to be merged,
/// to come back, or to leave the agent.
fn await_outcome(args: &RunArgs, feature: &str, backend: &mut Backend) -> Result<Outcome> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        let Some(agent) = backend.agent(&args.id)? else {
            bail!("agent {} is gone from the log", args.id);
        };
        let Some(held) = agent.assignments.iter().find(|a| a.feature_name == feature) else {
            let st = backend.status(&crate::status::StatusOptions::default())?;
            let status = st
                .features
                .iter()
                .find(|f| f.name == feature)
                .map(|f| f.status);
            return Ok(Outcome::Ended(match status {
                Some(FeatureStatus::Completed) => format!("{feature} is merged"),
                Some(other) => format!("{feature} left {} ({})", args.id, other.as_str()),
                None => format!("{feature} left {}", args.id),
            }));
        };
        if held.status != FeatureStatus::Merging {
            return Ok(Outcome::CameBack);
        }
        if let Some(signal) = launcher::stop_requested() {
            let name = launcher::signal_name(signal);
            bail!("stopped by {name} while {feature} waited for its merge");
        }
        if Instant::now() >= deadline {
            bail!(
                "{feature} was submitted; its merge was still pending after {}s",
                args.timeout
            );
        }
        backend.release();
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One run as it ended.
struct Run {
    feature: String,
    exit: Exit,
    outcome: String,
    submitted: bool,
    log: PathBuf,
}

impl Run {
    fn line(&self) -> String {
        format!(
            "{}: {} after {:.1}s; {} (output: {})",
            self.feature,
            self.exit.describe(),
            self.exit.duration.as_secs_f64(),
            self.outcome,
            self.log.display()
        )
    }

    fn json(&self) -> Value {
        json!({
            "feature_name": self.feature,
            "exit_code": self.exit.code,
            "signal": self.exit.signal,
            "duration_ms": self.exit.duration.as_millis() as u64,
            "outcome": self.outcome,
            "submitted": self.submitted,
            "log": self.log.display().to_string(),
        })
    }
}

/// The task's text fields.
fn field<'a>(task: &'a Value, key: &str) -> Result<&'a str> {
    task[key]
        .as_str()
        .ok_or_else(|| anyhow!("the agent's task has no {key}; try again"))
}

/// Runs the command once on `task`, reporting its process, and submits or sends back the work.
fn run_once(
    args: &RunArgs,
    task: &Value,
    endpoint: Option<&Endpoint>,
    coord_dir: &Path,
    backend: &mut Backend,
) -> Result<Run> {
    let feature = field(task, "feature_name")?;
    let (branch, prompt) = (field(task, "branch_name")?, field(task, "prompt")?);
    let remote_url = task["remote_url"].as_str();
    let clone = remote_clone(args, remote_url, feature, branch)?;
    let worktree = match &clone {
        Some(dir) => dir.as_str(),
        None => field(task, "worktree_path")?,
    };
    let (log, prompt_file) = run_files(coord_dir, &args.id, feature)?;
    std::fs::write(&prompt_file, prompt)
        .with_context(|| format!("writing the prompt to {}", prompt_file.display()))?;
    // The launcher's report of the process opens a trace of its own: handed to the agent as
    // TRACEPARENT, so that its records in that trace are its own.
    let mut ids = IdGen::default();
    let opened = ids.span("agent.process", 0);
    let traceparent = format!("00-{}-{}-01", hex(&opened.trace_id), hex(&opened.span_id));
    let repo = Path::new(worktree);
    let port = task["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let launch = Launch {
        agent: &args.id,
        feature,
        worktree,
        branch,
        prompt,
        prompt_file: &prompt_file,
        traceparent: &traceparent,
        endpoint,
        needs_git_identity: git::config_value(repo, "user.name")?.is_none()
            || git::config_value(repo, "user.email")?.is_none(),
        port,
        node_ca_given: std::env::var_os("NODE_EXTRA_CA_CERTS").is_some(),
    };
    let profile = args.profile.into();
    // The set-up command runs as the agent would (its identity, its port), without the
    // telemetry switches.
    let setup_env: Vec<_> = env::environment(
        env::Profile::Plain,
        &Launch {
            endpoint: None,
            ..launch.clone()
        },
    );
    let ready = make_ready(task, &setup_env, backend)
        .with_context(|| format!("fix the worktree's set-up (git config spanfold.setupCmd, spanfold.copyFiles), then start {} again", args.id))?;
    eprintln!("spanfold: the worktree of {feature}: {}", ready.describe());
    let (program, argv, command) = command_line(args, profile, &launch)?;
    let tip_before = git::branch_tip(repo, branch).ok();
    let mut child = launcher::start(
        program,
        &argv,
        repo,
        &env::environment(profile, &launch),
        &log,
    )?;
    let reporter = Reporter {
        agent: &args.id,
        feature,
        command: &command,
        pid: child.pid,
    };
    let mut started = reporter.span(ProcessEvent::Started, None, None);
    (started.trace_id, started.span_id) = (opened.trace_id, opened.span_id);
    submit_checked(backend, started)?;
    working(backend, &args.id, feature)?;
    let grace = Duration::from_secs_f64(args.grace);
    let (exit, stopped) = supervise(&mut child, backend, &reporter, grace)?;
    let (outcome, submitted) = match &stopped {
        Some(why) => (why.clone(), false),
        None => push_if_remote(
            judge(&exit, repo, branch, tip_before.as_deref(), &log),
            (repo, remote_url, branch),
        ),
    };
    let exited = reporter.span(ProcessEvent::Exited, Some(&exit), Some(&outcome));
    submit_checked(backend, exited)?;
    if stopped.is_none() {
        settle(backend, &args.id, feature, submitted, &outcome)?;
    }
    Ok(Run {
        feature: feature.to_owned(),
        exit,
        outcome,
        submitted,
        log,
    })
}

/// The agent's program, its arguments with the profile's and the placeholders filled in, and
/// the whole as one shell line (for the record).
fn command_line<'a>(
    args: &'a RunArgs,
    profile: env::Profile,
    launch: &Launch<'_>,
) -> Result<(&'a String, Vec<String>, String)> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow!("give the agent's command after --"))?;
    let argv = env::arguments(profile, launch, rest);
    let command = std::iter::once(program.clone())
        .chain(argv.iter().map(|a| shell_word(a)))
        .collect::<Vec<_>>()
        .join(" ");
    Ok((program, argv, command))
}

/// A remote agent's clone of `branch` under `--workdir`, made or brought up to date from
/// `remote_url` (its task's); None for a local agent, whose worktree is made here.
fn remote_clone(
    args: &RunArgs,
    remote_url: Option<&str>,
    feature: &str,
    branch: &str,
) -> Result<Option<String>> {
    let Some(url) = remote_url else {
        return Ok(None);
    };
    let workdir = std::path::absolute(&args.workdir)
        .with_context(|| format!("--workdir {}", args.workdir.display()))?;
    let dir = names::worktree_path(&workdir, feature)?;
    git::clone_or_update(url, branch, &dir)
        .with_context(|| format!("getting {branch} from {url}"))?;
    Ok(Some(dir.to_string_lossy().into_owned()))
}

/// Submitted from afar, the work goes to the remote first, where the coordinator fetches it;
/// a push that fails sends the feature back instead.
fn push_if_remote(
    (outcome, submitted): (String, bool),
    (clone, remote_url, branch): (&Path, Option<&str>, &str),
) -> (String, bool) {
    match (submitted, remote_url) {
        (true, Some(url)) => match git::push_work(clone, url, branch) {
            Ok(()) => (outcome, true),
            Err(e) => (
                format!(
                    "its commits could not be pushed to {url} ({e}); the feature goes back to the queue"
                ),
                false,
            ),
        },
        _ => (outcome, submitted),
    }
}

/// The launcher's reports on one process.
struct Reporter<'a> {
    agent: &'a str,
    feature: &'a str,
    command: &'a str,
    pid: u32,
}

impl Reporter<'_> {
    fn span(
        &self,
        event: ProcessEvent,
        exit: Option<&Exit>,
        outcome: Option<&str>,
    ) -> crate::model::Span {
        let report = Process {
            agent_id: self.agent,
            event,
            feature_name: Some(self.feature),
            command: Some(self.command),
            pid: Some(i64::from(self.pid)),
            exit_code: exit.and_then(|e| e.code).map(i64::from),
            signal: exit.and_then(|e| e.signal.as_deref()),
            duration_ms: exit.map(|e| e.duration.as_millis() as i64),
            outcome,
        };
        emit::process(&mut IdGen::default(), emit::now(), &report)
    }
}

/// Where a run's output and prompt go: `COORD_DIR/runs/AGENT/NNNN-FEATURE.{log,prompt.md}`.
fn run_files(coord_dir: &Path, agent: &str, feature: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = coord_dir.join("runs").join(agent.replace('/', "-"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let n = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
        .unwrap_or(0);
    let stem = format!("{:04}-{}", n + 1, feature.replace('/', "-"));
    Ok((
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.prompt.md")),
    ))
}

/// A word as a shell would need it quoted, for the recorded command line.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    match !word.is_empty() && word.chars().all(plain) {
        true => word.to_owned(),
        false => format!("'{}'", word.replace('\'', "'\\''")),
    }
}

/// Waits for the process, sending heartbeats, and stops it when the agent no longer holds the
/// feature or the launcher is told to stop. Returns how it ended, and why it was stopped.
fn supervise(
    child: &mut launcher::Running,
    backend: &mut Backend,
    reporter: &Reporter<'_>,
    grace: Duration,
) -> Result<(Exit, Option<String>)> {
    let (agent, feature) = (reporter.agent, reporter.feature);
    let heartbeat = Duration::from_secs(10);
    let (mut last_check, mut last_beat) = (Instant::now(), Instant::now());
    loop {
        if let Some(exit) = child.poll()? {
            return Ok((exit, None));
        }
        if let Some(signal) = launcher::stop_requested() {
            let exit = child.stop(grace)?;
            let why = format!(
                "stopped: the launcher received {}",
                launcher::signal_name(signal)
            );
            return Ok((exit, Some(why)));
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Some(why) = lost(backend, agent, feature)? {
                let exit = child.stop(grace)?;
                return Ok((exit, Some(why)));
            }
            if last_beat.elapsed() >= heartbeat {
                last_beat = Instant::now();
                submit_checked(backend, reporter.span(ProcessEvent::Running, None, None))?;
            }
            // Between checks, other processes may use the log.
            backend.release();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why the agent no longer works on `feature` (cancelled, lease lost, reset), if it does not.
fn lost(backend: &mut Backend, agent: &str, feature: &str) -> Result<Option<String>> {
    let Some(a) = backend.agent(agent)? else {
        return Ok(Some(format!("stopped: agent {agent} is gone from the log")));
    };
    if a.state == AgentState::Error {
        let why = a.error.unwrap_or_else(|| "it is in error".into());
        return Ok(Some(format!("stopped: agent {agent} lost its work: {why}")));
    }
    if a.assignments.iter().any(|x| x.feature_name == feature) {
        return Ok(None);
    }
    if let Some(b) = a.budget.filter(|b| b.state == "exceeded") {
        return Ok(Some(format!(
            "stopped: agent {agent} spent its daily budget (${:.4} of ${:.4}); {feature} went back to the queue, its worktree kept",
            b.spent_usd, b.usd_per_day
        )));
    }
    Ok(Some(format!(
        "stopped: agent {agent} no longer holds {feature} (cancelled, or reassigned)"
    )))
}

/// What a run that ended by itself came to: submitted (exit 0 with new commits on the
/// branch), or the reason the feature goes back.
fn judge(
    exit: &Exit,
    repo: &Path,
    branch: &str,
    tip_before: Option<&str>,
    log: &Path,
) -> (String, bool) {
    let tip_after = git::branch_tip(repo, branch).ok();
    let moved = tip_after.is_some() && tip_after.as_deref() != tip_before;
    if exit.success() && moved {
        return (
            format!("exited 0 with new commits on {branch}: submitted"),
            true,
        );
    }
    let why = match exit.success() {
        true => format!("exited 0 without a new commit on {branch}"),
        false => exit.describe(),
    };
    let tail = launcher::tail(log, 10);
    // The last 2,000 characters at most, cut on a character boundary.
    let from = tail.char_indices().rev().nth(1999).map_or(0, |(at, _)| at);
    let tail = &tail[from..];
    match tail.trim().is_empty() {
        true => (format!("{why}; the feature goes back to the queue"), false),
        false => (
            format!("{why}; the feature goes back to the queue. Its last output:\n{tail}"),
            false,
        ),
    }
}

/// Submits the work (working, then validation passed) or sends the feature back (a reset with
/// the reason), as the run came to.
fn settle(
    backend: &mut Backend,
    agent: &str,
    feature: &str,
    submitted: bool,
    outcome: &str,
) -> Result<()> {
    let mut ids = IdGen::default();
    if !submitted {
        return submit_checked(
            backend,
            emit::reset(&mut ids, emit::now(), agent, Some(outcome)),
        );
    }
    let holds = backend.agent(agent)?.is_some_and(|a| {
        a.assignments
            .iter()
            .any(|x| x.feature_name == feature && x.status != FeatureStatus::Merging)
    });
    if !holds {
        return Ok(());
    }
    working(backend, agent, feature)?;
    let passed = emit::validation(&mut ids, emit::now(), agent, Some(feature), true, None);
    submit_checked(backend, passed)
}

/// Reports the agent working on `feature`, if it is still claiming it: its process runs.
fn working(backend: &mut Backend, agent: &str, feature: &str) -> Result<()> {
    let claiming = backend
        .agent(agent)?
        .is_some_and(|a| a.state == AgentState::Claiming);
    if !claiming {
        return Ok(());
    }
    let report = emit::ProgressReport {
        agent_id: agent.to_owned(),
        state: Some(AgentState::Working),
        feature: Some(feature.to_owned()),
        ..Default::default()
    };
    submit_checked(
        backend,
        emit::progress(&mut IdGen::default(), emit::now(), &report),
    )
}

/// `agents logs`: the latest run's output; with `--follow`, what it writes until it ends.
pub(super) fn logs(args: &LogsArgs, coord_dir: &Path, backend: &mut Backend) -> Result<Output> {
    names::agent_id(&args.id)?;
    let dir = coord_dir.join("runs").join(args.id.replace('/', "-"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    let Some(latest) = logs.pop() else {
        bail!(
            "agent {} has no runs under `spanfold agents run` yet ({} is empty)",
            args.id,
            dir.display()
        );
    };
    if !args.follow {
        let text = std::fs::read_to_string(&latest)
            .with_context(|| format!("reading {}", latest.display()))?;
        return Ok(Output::new(
            json!({"path": latest.display().to_string(), "text": text}),
            text,
        ));
    }
    follow(&latest, &args.id, backend)?;
    Ok(Output::new(
        json!({"path": latest.display().to_string()}),
        String::new(),
    ))
}

/// Prints what `path` holds and what is written to it, until the agent's process has exited.
fn follow(path: &Path, agent: &str, backend: &mut Backend) -> Result<()> {
    use std::io::{Read, Write};
    launcher::catch_stop_signals();
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = std::io::stdout();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        file.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
        let running = backend.agent(agent)?.is_some_and(|a| {
            a.telemetry
                .and_then(|t| t.process)
                .is_some_and(|p| p.state != ProcessEvent::Exited)
        });
        backend.release();
        if !running || launcher::stop_requested().is_some() {
            buf.clear();
            file.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
