//! The bytes of a record: how a batch is cut into records, encoded and decoded.

use super::*;

/// Borrowed views that serialise exactly like `ResourceSpans` and `ScopeSpans` (postcard writes
/// struct fields in order, with no names), so a record can hold part of a batch without copying.
#[derive(serde::Serialize)]
pub(super) struct ResourceView<'a>(&'a Resource, &'a str, Vec<ScopeView<'a>>);

#[derive(serde::Serialize)]
pub(super) struct ScopeView<'a>(&'a Scope, &'a str, &'a [crate::model::Span]);

/// Splits a batch into record-sized parts of at most `max` spans, each with its first seq.
pub(super) fn chunks(batch: &Batch, max: usize) -> Vec<(u64, Vec<ResourceView<'_>>)> {
    let mut out: Vec<(u64, Vec<ResourceView<'_>>)> = Vec::new();
    let mut seq = batch.first_seq;
    let mut room = 0;
    for rs in &batch.resource_spans {
        let mut open_resource = false;
        for ss in &rs.scope_spans {
            let mut spans: &[crate::model::Span] = &ss.spans;
            while !spans.is_empty() {
                if room == 0 {
                    out.push((seq, Vec::new()));
                    room = max;
                    open_resource = false;
                }
                let take = spans.len().min(room);
                let chunk = &mut out.last_mut().expect("pushed above").1;
                if !open_resource {
                    chunk.push(ResourceView(&rs.resource, &rs.schema_url, Vec::new()));
                    open_resource = true;
                }
                chunk.last_mut().expect("pushed above").2.push(ScopeView(
                    &ss.scope,
                    &ss.schema_url,
                    &spans[..take],
                ));
                spans = &spans[take..];
                room -= take;
                seq += take as u64;
            }
        }
    }
    out
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
        Some((&FORMAT_V2, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            Ok((first_seq, time(&plain)?))
        }
        _ => decode(path, key, value).map(|b| (b.first_seq, b.received_at)),
    }
}

/// A batch as the records that store it.
pub(super) fn records(batch: &Batch) -> sled::Batch {
    let mut records = sled::Batch::default();
    for (first_seq, chunk) in chunks(batch, RECORD_SPANS) {
        records.insert(
            &first_seq.to_be_bytes(),
            encode_record(batch.received_at, &chunk),
        );
    }
    records
}

pub(super) fn encode_record(received_at: UnixNanos, chunk: &[ResourceView<'_>]) -> Vec<u8> {
    let plain = postcard::to_stdvec(&(received_at, chunk))
        .expect("serialising in-memory spans cannot fail");
    let mut value = Vec::with_capacity(plain.len() / 4 + 16);
    value.push(FORMAT_V2);
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
            Ok(Batch {
                first_seq,
                received_at,
                resource_spans,
            })
        }
        Some((&FORMAT_V2, body)) => {
            let plain = lz4_flex::decompress_size_prepended(body)
                .map_err(|e| corrupt(path, key, format!("undecompressable batch: {e}")))?;
            let (received_at, resource_spans) = postcard::from_bytes(&plain)
                .map_err(|e| corrupt(path, key, format!("undecodable batch: {e}")))?;
            Ok(Batch {
                first_seq,
                received_at,
                resource_spans,
            })
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
