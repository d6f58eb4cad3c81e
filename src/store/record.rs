//! The bytes of a record: how a batch is cut into records, encoded and decoded.

use super::*;

/// Borrowed views that serialise exactly like a resource group of any signal
/// (`ResourceSpans`, `ResourceLogs`, `ResourceMetrics`: resource, schema URL, scope groups) and
/// its scope groups (scope, schema URL, items): postcard writes struct fields and tuples alike,
/// in order and with no names, so a record can hold part of a batch without copying.
pub(super) type ResourceView<'a, T> = (&'a Resource, &'a str, Vec<ScopeView<'a, T>>);
pub(super) type ScopeView<'a, T> = (&'a Scope, &'a str, &'a [T]);

/// One record's share of a batch: its first seq and its events, of one signal.
pub(super) type Chunk<'a, T> = (u64, Vec<ResourceView<'a, T>>);

/// What a record of log records or metrics holds after its receive time (`FORMAT_V3`): the
/// signal's tag, then its resource groups. Decoded as [`Signal`].
#[derive(serde::Serialize)]
enum SignalView<'a> {
    Logs(Vec<ResourceView<'a, LogRecord>>),
    Metrics(Vec<ResourceView<'a, Metric>>),
}

#[derive(serde::Deserialize)]
enum Signal {
    Logs(Vec<ResourceLogs>),
    Metrics(Vec<ResourceMetrics>),
}

/// Splits a resource → scope → item tree into record-sized parts of at most `max` items, each
/// with its first seq, numbering from `*seq` on.
pub(super) fn chunks<'a, R: 'a, S: 'a, T: 'a>(
    resources: &'a [R],
    max: usize,
    seq: &mut u64,
    resource: impl Fn(&'a R) -> (&'a Resource, &'a str, &'a [S]),
    scope: impl Fn(&'a S) -> (&'a Scope, &'a str, &'a [T]),
) -> Vec<Chunk<'a, T>> {
    let mut out: Vec<Chunk<'a, T>> = Vec::new();
    let mut room = 0;
    for r in resources {
        let (res, res_url, scopes) = resource(r);
        let mut open_resource = false;
        for sc in scopes {
            let (scope, scope_url, mut items) = scope(sc);
            while !items.is_empty() {
                if room == 0 {
                    out.push((*seq, Vec::new()));
                    room = max;
                    open_resource = false;
                }
                let take = items.len().min(room);
                let chunk = &mut out.last_mut().expect("pushed above").1;
                if !open_resource {
                    chunk.push((res, res_url, Vec::new()));
                    open_resource = true;
                }
                let group = &mut chunk.last_mut().expect("pushed above").2;
                group.push((scope, scope_url, &items[..take]));
                items = &items[take..];
                room -= take;
                *seq += take as u64;
            }
        }
    }
    out
}

/// The spans of a batch, cut into records.
pub(super) fn span_chunks(batch: &Batch, max: usize) -> Vec<Chunk<'_, Span>> {
    let mut seq = batch.first_seq;
    chunks(
        &batch.resource_spans,
        max,
        &mut seq,
        |rs| {
            (
                &rs.resource,
                rs.schema_url.as_str(),
                rs.scope_spans.as_slice(),
            )
        },
        |ss| (&ss.scope, ss.schema_url.as_str(), ss.spans.as_slice()),
    )
}

/// A record's first seq and receive time, without decoding its spans.
pub(super) fn decode_time(
    path: &Path,
    key: &[u8],
    value: &[u8],
) -> Result<(u64, UnixNanos), StoreError> {
    let first_seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(path, key, "the key is not an 8-byte sequence number".into()))?;
    let time = |plain: &[u8]| {
        postcard::take_from_bytes::<UnixNanos>(plain)
            .map(|(t, _)| t)
            .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))
    };
    match value.split_first() {
        Some((&FORMAT_V1, body)) => Ok((first_seq, time(body)?)),
        Some((&(FORMAT_V2 | FORMAT_V3), body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            Ok((first_seq, time(&plain)?))
        }
        _ => decode(path, key, value).map(|b| (b.first_seq, b.received_at)),
    }
}

/// A batch as the records that store it: its spans, then its log records, then its metrics,
/// each record of one signal.
pub(super) fn records(batch: &Batch) -> sled::Batch {
    let mut records = sled::Batch::default();
    let at = batch.received_at;
    for (first_seq, chunk) in span_chunks(batch, RECORD_SPANS) {
        records.insert(&first_seq.to_be_bytes(), encode(FORMAT_V2, &(at, &chunk)));
    }
    let mut seq = batch.first_seq + batch.span_count() as u64;
    let logs = chunks(
        &batch.resource_logs,
        RECORD_SPANS,
        &mut seq,
        |rl| {
            (
                &rl.resource,
                rl.schema_url.as_str(),
                rl.scope_logs.as_slice(),
            )
        },
        |sl| (&sl.scope, sl.schema_url.as_str(), sl.log_records.as_slice()),
    );
    for (first_seq, chunk) in logs {
        let value = encode(FORMAT_V3, &(at, SignalView::Logs(chunk)));
        records.insert(&first_seq.to_be_bytes(), value);
    }
    let metrics = chunks(
        &batch.resource_metrics,
        RECORD_SPANS,
        &mut seq,
        |rm| {
            (
                &rm.resource,
                rm.schema_url.as_str(),
                rm.scope_metrics.as_slice(),
            )
        },
        |sm| (&sm.scope, sm.schema_url.as_str(), sm.metrics.as_slice()),
    );
    for (first_seq, chunk) in metrics {
        let value = encode(FORMAT_V3, &(at, SignalView::Metrics(chunk)));
        records.insert(&first_seq.to_be_bytes(), value);
    }
    records
}

/// A record's value: its format byte, then the lz4 of its postcard.
fn encode(format: u8, body: &impl serde::Serialize) -> Vec<u8> {
    let plain = postcard::to_stdvec(body).expect("serialising in-memory telemetry cannot fail");
    let mut value = Vec::with_capacity(plain.len() / 4 + 16);
    value.push(format);
    value.extend(lz4_flex::compress_prepend_size(&plain));
    value
}

pub(super) fn decode(path: &Path, key: &[u8], value: &[u8]) -> Result<Batch, StoreError> {
    let first_seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(path, key, "the key is not an 8-byte sequence number".into()))?;
    match value.split_first() {
        Some((&FORMAT_V1, body)) => {
            let (received_at, resource_spans) = postcard::from_bytes(body)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            Ok(Batch::of_spans(first_seq, received_at, resource_spans))
        }
        Some((&FORMAT_V2, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            let (received_at, resource_spans) = postcard::from_bytes(&plain)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            Ok(Batch::of_spans(first_seq, received_at, resource_spans))
        }
        Some((&FORMAT_V3, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            let (received_at, signal) = postcard::from_bytes(&plain)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            let mut batch = Batch::of_spans(first_seq, received_at, Vec::new());
            match signal {
                Signal::Logs(logs) => batch.resource_logs = logs,
                Signal::Metrics(metrics) => batch.resource_metrics = metrics,
            }
            Ok(batch)
        }
        Some((other, _)) => Err(corrupt(
            path,
            key,
            format!(
                "record format {other} is newer than this spanfold understands; upgrade spanfold"
            ),
        )),
        None => Err(corrupt(path, key, "the record is empty".into())),
    }
}

/// A checkpoint's record (also the kept timeline index's): format byte, reducer version, then
/// the value's postcard bytes compressed with lz4. `decode_checkpoint` reads it back.
pub(super) fn encode_checkpoint<T: serde::Serialize>(
    version: u32,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let plain = postcard::to_stdvec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
    let mut record = Vec::with_capacity(plain.len() / 4 + 16);
    record.push(CHECKPOINT_FORMAT);
    record.extend(version.to_be_bytes());
    record.extend(lz4_flex::compress_prepend_size(&plain));
    Ok(record)
}

pub(super) fn decode_checkpoint<T: serde::de::DeserializeOwned>(
    path: &Path,
    key: &[u8],
    record: &[u8],
) -> Result<T, StoreError> {
    let bad = |why: String| {
        corrupt(
            path,
            key,
            format!(
                "checkpoint unreadable ({why}); run `spanfold rebuild` to make checkpoints again"
            ),
        )
    };
    match record.split_first() {
        Some((&CHECKPOINT_FORMAT, rest)) if rest.len() >= 4 => {
            let plain =
                lz4_flex::decompress_size_prepended(&rest[4..]).map_err(|e| bad(e.to_string()))?;
            postcard::from_bytes(&plain).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("unknown format".into())),
    }
}

pub(super) fn corrupt(path: &Path, key: &[u8], reason: String) -> StoreError {
    let key = <[u8; 8]>::try_from(key)
        .map(|k| format!("seq {}", u64::from_be_bytes(k)))
        .unwrap_or_else(|_| format!("{key:?}"));
    StoreError::Corrupt {
        path: path.to_path_buf(),
        key,
        reason,
    }
}

pub(super) fn read_error(path: &Path, source: sled::Error) -> StoreError {
    match source {
        sled::Error::Corruption { .. } => corrupt(path, b"", format!("{source}")),
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}
