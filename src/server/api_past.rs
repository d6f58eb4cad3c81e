//! The JSON API on the past: the status as of a point (`/api/status?at=`), a subject's history,
//! the diff between two points, usage over a range, the timeline and the log's export. Each reads the log off the
//! async workers; a failure, whether of the request's points or of the read, is a 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::State;
use super::api::ApiQuery;
use super::api_error::{Answer, ApiError, answer, to_json};
use crate::changes::Subject;
use crate::otlp::file::Format;
use crate::status::{self, StatusOptions};
use crate::timetravel::{self, Point};

/// The status as of `at`. The CLI's --at (`strict`) refuses a point outside the log; the
/// dashboard's scrubber, which may point left of the first event, is answered with the nearest
/// end.
pub(super) async fn status_at(
    state: Arc<State>,
    at: String,
    strict: bool,
    options: StatusOptions,
) -> Result<Value, ApiError> {
    blocking(move || {
        let reader = &state.log;
        let point = parse_point(&at)?;
        let now = crate::emit::now();
        let seq = match strict {
            true => point.resolve_at(reader, now).map(|(seq, _)| seq),
            false => point.resolve(reader, now),
        }
        .map_err(ApiError::bad_request)?;
        let st = match state.scrubber.try_lock() {
            Some(mut scrubber) => status::build(
                scrubber
                    .view_at(reader, seq)
                    .map_err(ApiError::bad_request)?,
                &options,
            ),
            // Someone else is scrubbing: answer from a checkpoint rather than wait or take
            // their place.
            None => status::build(
                &timetravel::view_at(reader, seq).map_err(ApiError::bad_request)?,
                &options,
            ),
        };
        to_json(st)
    })
    .await
}

fn parse_point(s: &str) -> Result<Point, ApiError> {
    s.parse::<Point>().map_err(ApiError::bad_request)
}

/// Runs log reads off the async workers. A read that panicked is answered as the reads' other
/// failures are, with 400 and what happened: what the API has always answered.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::bad_request)?
}

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    agent: Option<String>,
    feature: Option<String>,
}

pub(super) async fn history(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Answer {
    let subject = match (q.agent, q.feature) {
        (Some(a), None) => Subject::Agent(a),
        (None, Some(f)) => Subject::Feature(f),
        _ => {
            let why = ApiError::bad_request("give exactly one of agent=ID or feature=NAME");
            return answer("history", Err(why));
        }
    };
    let reader = state.log.clone();
    let result = blocking(move || {
        let entries = timetravel::history(&reader, subject).map_err(ApiError::bad_request)?;
        to_json(entries)
    })
    .await;
    answer("history", result)
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    from: String,
    to: String,
}

pub(super) async fn diff(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Answer {
    let reader = state.log.clone();
    let result = blocking(move || {
        let now = crate::emit::now();
        let from = parse_point(&q.from)?
            .resolve(&reader, now)
            .map_err(ApiError::bad_request)?;
        let to = parse_point(&q.to)?
            .resolve(&reader, now)
            .map_err(ApiError::bad_request)?;
        if let Some(why) = timetravel::reversed(from, to) {
            return Err(ApiError::bad_request(why));
        }
        let report = timetravel::diff(&reader, from, to).map_err(ApiError::bad_request)?;
        to_json(report)
    })
    .await;
    answer("diff", result)
}

#[derive(Deserialize)]
pub(super) struct UsageQuery {
    /// feature (default), agent, model or day.
    by: Option<crate::usage::By>,
    /// A POINT; default: the beginning of the log.
    from: Option<String>,
    /// A POINT; default: now.
    to: Option<String>,
    /// With by=session: only what was spent on this feature.
    feature: Option<String>,
}

/// Tokens and dollars grouped `by`, over a range of the log (`spanfold usage`).
pub(super) async fn usage(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Answer {
    let by = q.by.unwrap_or(crate::usage::By::Feature);
    let reader = state.log.clone();
    let result = blocking(move || {
        let now = crate::emit::now();
        let resolve = |p: Option<String>| -> Result<Option<u64>, ApiError> {
            // Points outside the log are refused, as for `--at`.
            p.map(|p| {
                parse_point(&p)?
                    .resolve_at(&reader, now)
                    .map(|(seq, _)| seq)
                    .map_err(ApiError::bad_request)
            })
            .transpose()
        };
        let (from, to) = (resolve(q.from)?, resolve(q.to)?);
        if let (Some(a), Some(b)) = (from, to)
            && let Some(why) = timetravel::reversed(a, b)
        {
            return Err(ApiError::bad_request(why));
        }
        let feature = q.feature.as_deref();
        let report =
            timetravel::usage(&reader, (by, feature), from, to).map_err(ApiError::bad_request)?;
        to_json(report)
    })
    .await;
    answer("usage", result)
}

#[derive(Deserialize)]
pub(super) struct TimelineQuery {
    /// A POINT; default: the beginning of the log.
    from: Option<String>,
    /// A POINT; default: now.
    to: Option<String>,
    /// The most time steps the range is drawn in (bounds the payload).
    resolution: Option<usize>,
}

pub(super) async fn timeline(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Answer {
    let result = blocking(move || {
        let reader = &state.log;
        let now = crate::emit::now();
        let point = |p: Option<&str>, default: u64| -> Result<u64, ApiError> {
            match p {
                None => Ok(default),
                Some(p) => parse_point(p)?
                    .resolve(reader, now)
                    .map_err(ApiError::bad_request),
            }
        };
        let from = point(q.from.as_deref(), 0)?;
        let to = point(q.to.as_deref(), u64::MAX)?;
        let resolution = q.resolution.unwrap_or(crate::timeline::DEFAULT_RESOLUTION);
        if from == 0
            && let Some(timeline) = whole_from_index(&state, to, resolution)
        {
            return to_json(timeline);
        }
        // From the start of the log, the kept timeline is extended rather than folded again
        // (unless another request is extending it right now).
        let live = (from == 0)
            .then(|| state.live_timeline.try_lock())
            .flatten();
        let timeline = match live {
            Some(mut live) => live.timeline(reader, to, resolution),
            None => timetravel::timeline(reader, from, to, resolution),
        }
        .map_err(ApiError::bad_request)?;
        to_json(timeline)
    })
    .await;
    answer("timeline", result)
}

/// How long a question for the whole log's timeline waits for the timeline keeper to reach the
/// log's end before it is answered by folding (the keeper runs only on idle CPU).
const KEEPER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The whole log's timeline from the kept index, when `to` asks for all of it and the keeper
/// has (or soon has) folded every event the writer had when the question came.
fn whole_from_index(
    state: &State,
    to: u64,
    resolution: usize,
) -> Option<crate::timeline::Timeline> {
    let kept = state.timeline.as_ref()?;
    let live = state.view.read().as_of.seq;
    if to < live {
        return None;
    }
    let deadline = std::time::Instant::now() + KEEPER_WAIT;
    loop {
        {
            let kept = kept.read();
            if kept.as_of().seq >= live {
                return kept.timeline(resolution);
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
    /// json (default) or protobuf.
    format: Option<String>,
}

/// The log as OTLP/JSON lines (or protobuf), streamed as it is read. What is wrong with the
/// request is said in the envelope before the stream starts.
pub(super) async fn export(
    Extract(state): Extract<Arc<State>>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let reader = state.log.clone();
    let range = (|| {
        let from = q.from.as_deref().map(parse_point).transpose()?;
        let to = q.to.as_deref().map(parse_point).transpose()?;
        timetravel::range(&reader, from, to, crate::emit::now()).map_err(ApiError::bad_request)
    })();
    let (from, to) = range.map_err(|e| e.of("export"))?;
    let (format, content_type) = match q.format.as_deref() {
        None | Some("json") => (Format::Json, "application/x-ndjson"),
        Some("protobuf") => (Format::Protobuf, "application/octet-stream"),
        Some(other) => {
            let why = format!("unknown format {other:?}; use json or protobuf");
            return Err(ApiError::bad_request(why).of("export"));
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let sink = ChannelWriter(tx.clone());
        if let Err(e) = timetravel::export(&reader, from, to, format, sink) {
            // The client sees a cut-off body and an error instead of a clean end.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}

/// A blocking writer feeding a streamed response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
