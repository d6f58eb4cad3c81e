//! Where CLI commands go: straight to the log (local), or to a running server that holds it
//! (remote: spans over OTLP/HTTP, answers from its API). Both give the same answers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::changes::{HistoryEntry, Subject};
use crate::client::{Advert, Client, ClientError};
use crate::coordinator::{Coordinator, CycleReport, GcReport};
use crate::emit;
use crate::model::Span;
use crate::model::hex;
use crate::otlp::file::Format;
use crate::reducer::Anomaly;
use crate::status::{self, AgentJson, Status, StatusOptions};
use crate::timetravel::{self, DiffReport, Point};

/// Percent-encodes a query value (times carry ':' and '+').
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub enum Backend {
    Local {
        dir: PathBuf,
        /// Boxed: a coordinator is large, and a remote backend never holds one.
        coord: Option<Box<Coordinator>>,
    },
    Remote(Client),
}

impl Backend {
    /// A server named by `endpoint`, or advertised in the coordination directory and answering;
    /// otherwise the log itself.
    /// `ca` is the certificate to trust for an `https://` endpoint (an advert names its own).
    pub fn connect(
        coord_dir: &Path,
        endpoint: Option<&str>,
        token: Option<String>,
        ca: Option<&Path>,
    ) -> Backend {
        if let Some(url) = endpoint {
            return Backend::Remote(Client::trusting(url, token, ca));
        }
        if let Some(advert) = Advert::read(coord_dir) {
            let client = Client::for_advert(&advert, token);
            let file = coord_dir.join(crate::client::ADVERT_FILE);
            match client.probe() {
                Ok(()) => return Backend::Remote(client),
                Err(ClientError::OtherServer { .. }) => tracing::warn!(
                    "{} names a server at {} that is gone: another coordination directory's server answers there now; ignoring it and using the log directly",
                    file.display(),
                    advert.http
                ),
                Err(_) => tracing::warn!(
                    "{} names a server at {} that does not answer; using the log directly",
                    file.display(),
                    advert.http
                ),
            }
        }
        Backend::Local {
            dir: coord_dir.to_path_buf(),
            coord: None,
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    /// The local coordinator, opened on first use. Refuses when a server holds the log.
    pub fn local(&mut self) -> Result<&mut Coordinator> {
        match self {
            Backend::Remote(client) => bail!(
                "a spanfold server ({}) holds the log; stop it to run this command",
                client.base()
            ),
            Backend::Local { dir, coord } => {
                if coord.is_none() {
                    *coord = Some(Box::new(Coordinator::open(dir)?));
                }
                Ok(coord.as_mut().expect("just opened"))
            }
        }
    }

    /// Lets go of the log so that other processes can use it (continuous cycles do this
    /// between cycles).
    pub fn release(&mut self) {
        if let Backend::Local { coord, .. } = self {
            *coord = None;
        }
    }

    pub fn status(&mut self, options: &StatusOptions) -> Result<Status> {
        self.status_at(options, None)
    }

    /// The status now, or as of `at` (a POINT: seq, RFC 3339 time, or -5m).
    pub fn status_at(&mut self, options: &StatusOptions, at: Option<&str>) -> Result<Status> {
        self.status_noted(options, at).map(|(st, _)| st)
    }

    /// [`Backend::status_at`], with a note for the person when `at` is after the last event.
    pub fn status_noted(
        &mut self,
        options: &StatusOptions,
        at: Option<&str>,
    ) -> Result<(Status, Option<String>)> {
        let point = at.map(str::parse::<Point>).transpose()?;
        match self {
            Backend::Remote(client) => {
                let mut path = format!("/api/status?details={}", options.details);
                if let Some(agent) = &options.agent {
                    path.push_str(&format!("&agent={}", query_value(agent)));
                }
                if let Some(at) = at {
                    path.push_str(&format!("&at={}&strict=true", query_value(at)));
                }
                if !options.statuses.is_empty() {
                    let list: Vec<&str> = options.statuses.iter().map(|s| s.as_str()).collect();
                    path.push_str(&format!("&status={}", query_value(&list.join(","))));
                }
                let data = client.api("GET", &path)?;
                let st = serde_json::from_value(data).context("reading the server's status")?;
                Ok((st, None))
            }
            Backend::Local { .. } => {
                let coord = self.local()?;
                match point {
                    None => Ok((status::build(&coord.view(), options), None)),
                    Some(point) => {
                        let reader = coord.log().reader();
                        let (seq, note) = point.resolve_at(&reader, emit::now())?;
                        let view = timetravel::view_at(&reader, seq)?;
                        Ok((status::build(&view, options), note))
                    }
                }
            }
        }
    }

    /// One agent's or feature's timeline.
    pub fn history(&mut self, subject: Subject) -> Result<Vec<HistoryEntry>> {
        match self {
            Backend::Remote(client) => {
                let path = match &subject {
                    Subject::Agent(id) => format!("/api/history?agent={}", query_value(id)),
                    Subject::Feature(f) => format!("/api/history?feature={}", query_value(f)),
                };
                let data = client.api("GET", &path)?;
                serde_json::from_value(data).context("reading the server's history")
            }
            Backend::Local { .. } => {
                let reader = self.local()?.log().reader();
                Ok(timetravel::history(&reader, subject)?)
            }
        }
    }

    /// What changed between two POINTs.
    pub fn diff(&mut self, from: &str, to: &str) -> Result<DiffReport> {
        let (a, b) = (from.parse::<Point>()?, to.parse::<Point>()?);
        match self {
            Backend::Remote(client) => {
                let path = format!(
                    "/api/diff?from={}&to={}",
                    query_value(from),
                    query_value(to)
                );
                let data = client.api("GET", &path)?;
                serde_json::from_value(data).context("reading the server's diff")
            }
            Backend::Local { .. } => {
                let reader = self.local()?.log().reader();
                let now = emit::now();
                let (a, b) = (a.resolve(&reader, now)?, b.resolve(&reader, now)?);
                if let Some(why) = timetravel::reversed(a, b) {
                    bail!(why);
                }
                Ok(timetravel::diff(&reader, a, b)?)
            }
        }
    }

    /// Usage grouped `by` (by session: of one feature, when given), up to `to` (default: now),
    /// less what was used up to `from`.
    pub fn usage(
        &mut self,
        (by, feature): (crate::usage::By, Option<&str>),
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<crate::usage::Report> {
        let (a, b) = (
            from.map(str::parse::<Point>).transpose()?,
            to.map(str::parse::<Point>).transpose()?,
        );
        match self {
            Backend::Remote(client) => {
                let mut path = format!("/api/usage?by={}", by.as_str());
                for (key, value) in [("from", from), ("to", to), ("feature", feature)] {
                    if let Some(v) = value {
                        path.push_str(&format!("&{key}={}", query_value(v)));
                    }
                }
                let data = client.api("GET", &path)?;
                serde_json::from_value(data).context("reading the server's usage")
            }
            Backend::Local { .. } => {
                let reader = self.local()?.log().reader();
                let now = emit::now();
                // Points outside the log are refused, as for `--at`.
                let strict = |p: Point| p.resolve_at(&reader, now).map(|(seq, _)| seq);
                let to = b.map(strict).transpose()?;
                let from = a.map(strict).transpose()?;
                if let (Some(a), Some(b)) = (from, to)
                    && let Some(why) = timetravel::reversed(a, b)
                {
                    bail!(why);
                }
                Ok(timetravel::usage(&reader, (by, feature), from, to)?)
            }
        }
    }

    /// Writes the log (from..=to, POINTs) as OTLP/JSON lines to `out`. Returns what it wrote
    /// when it reads the log itself; a server's export is streamed and not counted.
    pub fn export(
        &mut self,
        from: Option<&str>,
        to: Option<&str>,
        format: Format,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<timetravel::Exported>> {
        let from_point = from.map(str::parse::<Point>).transpose()?;
        let to_point = to.map(str::parse::<Point>).transpose()?;
        match self {
            Backend::Remote(client) => {
                let mut query = vec![format!(
                    "format={}",
                    match format {
                        Format::Json => "json",
                        Format::Protobuf => "protobuf",
                    }
                )];
                if let Some(f) = from {
                    query.push(format!("from={}", query_value(f)));
                }
                if let Some(t) = to {
                    query.push(format!("to={}", query_value(t)));
                }
                client.download(&format!("/api/export?{}", query.join("&")), out)?;
                Ok(None)
            }
            Backend::Local { dir, coord } => {
                // Only the log is read: no fold, no checkpoint written, and on a full disk a
                // copy of it (see `Log::open_to_read`).
                let opened = match coord {
                    Some(c) => (None, c.log().reader()),
                    None => {
                        let (log, copy) = crate::store::Log::open_to_read(dir)?;
                        let reader = log.reader();
                        (Some((log, copy)), reader)
                    }
                };
                let reader = &opened.1;
                let (from, to) = timetravel::range(reader, from_point, to_point, emit::now())?;
                Ok(Some(timetravel::export(reader, from, to, format, out)?))
            }
        }
    }

    pub fn agent(&mut self, id: &str) -> Result<Option<AgentJson>> {
        let st = self.status(&StatusOptions {
            agent: Some(id.to_owned()),
            details: true,
            ..StatusOptions::default()
        })?;
        Ok(st.agents.into_iter().find(|a| a.agent_id == id))
    }

    /// Sends an operator's spans (all accepted or none written). Returns the anomaly they caused,
    /// if the reducer could not apply them.
    pub fn submit(&mut self, spans: Vec<Span>) -> Result<Option<Anomaly>> {
        let ids: Vec<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
        match self {
            Backend::Remote(client) => {
                client.submit(&[emit::wrap(emit::CLI_SERVICE, spans)])?;
                let st = self.status(&StatusOptions::default())?;
                Ok(st.anomalies.into_iter().find(|a| ids.contains(&a.span_id)))
            }
            Backend::Local { .. } => {
                let coord = self.local()?;
                coord.submit_client(spans)?;
                let view = coord.view();
                Ok(view
                    .anomalies
                    .iter()
                    .rev()
                    .find(|a| ids.contains(&a.span_id))
                    .cloned())
            }
        }
    }

    pub fn gc(&mut self, older_than: std::time::Duration, force: bool) -> Result<GcReport> {
        match self {
            Backend::Remote(client) => {
                let path = format!(
                    "/api/gc?older_than_secs={}&force={force}",
                    older_than.as_secs()
                );
                let data = client.api("POST", &path)?;
                serde_json::from_value(data).context("reading the server's gc report")
            }
            Backend::Local { .. } => Ok(self.local()?.gc(older_than, force)?),
        }
    }

    pub fn cycle(&mut self) -> Result<CycleReport> {
        match self {
            Backend::Remote(client) => {
                let data = client.api("POST", "/api/cycle")?;
                serde_json::from_value(data).context("reading the server's cycle report")
            }
            Backend::Local { .. } => {
                // Merge gates run in the background, as in the server, and the log is let go
                // while they run: other agents' reports must not wait out someone's test suite.
                let coord = self.local()?;
                coord.background_gates();
                let mut report = coord.cycle()?;
                // A gate's result may start another (a merge queue batch that failed is tested
                // again in halves): the command ends when no gate runs.
                let mut first = true;
                loop {
                    let coord = self.local()?;
                    let gates = coord.take_gates();
                    let running = gates.values().any(|g| !g.is_finished());
                    // After the first round, only a gate that round started is waited for: a
                    // finished one a merge could not take (the checkout is dirty) waits for
                    // the next cycle, as it always did.
                    if gates.is_empty() || (!first && !running) {
                        coord.restore_gates(gates);
                        return Ok(report);
                    }
                    first = false;
                    if running {
                        self.release();
                        while gates.values().any(|g| !g.is_finished()) {
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    }
                    let coord = self.local()?;
                    coord.background_gates();
                    coord.restore_gates(gates);
                    report.merges.extend(coord.merge_ready()?);
                }
            }
        }
    }
}
