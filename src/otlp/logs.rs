//! OTLP log records between their wire forms and the model: the OTLP/JSON decoder (protobuf is
//! `native_logs`), the rule for their ids, and the protobuf message they are exported as.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1 as pl;
use prost::Message;
use serde_json::{Map, Value};

use super::convert::{
    kvs_from_proto, kvs_to_proto, resource_from_proto, resource_to_proto, scope_from_proto,
    scope_to_proto, value_from_proto, value_to_proto,
};
use super::json::{
    any_value, array, check_size, enum_field, field, hex_field, key_values, object, resource_from,
    scope_from, string, u32_field, u64_field,
};
use super::{DecodeError, Decoded};
use crate::model::{AnyValue, LogRecord, ResourceLogs, ScopeLogs};

type R<T> = Result<T, DecodeError>;

/// A log record's ids are optional, but when present they must have OTLP's lengths: a record
/// with a malformed id is refused, naming it (its event name, else its body, else its time).
pub(super) fn check_ids(r: LogRecord) -> Result<LogRecord, String> {
    let bad_trace = !r.trace_id.is_empty() && r.trace_id.len() != 16;
    let bad_span = !r.span_id.is_empty() && r.span_id.len() != 8;
    if !bad_trace && !bad_span {
        return Ok(r);
    }
    let (what, len, want) = match bad_trace {
        true => ("trace_id", r.trace_id.len(), 16),
        false => ("span_id", r.span_id.len(), 8),
    };
    Err(format!(
        "log record {}: {what} must be empty or {want} bytes ({} hex digits), got {len} bytes",
        crate::registry::describe_log(&r),
        want * 2
    ))
}

/// Decodes an OTLP/JSON ExportLogsServiceRequest.
pub fn decode_json(body: &[u8]) -> R<Decoded> {
    check_size(body)?;
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_json_value(&root)
}

pub(super) fn decode_json_value(root: &Value) -> R<Decoded> {
    let root = object(root, "$")?;
    let mut out = Decoded::default();
    for (i, rl) in array(root, "resourceLogs", "resource_logs", "$")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceLogs[{i}]");
        let rl = object(rl, &path)?;
        let mut scope_logs = Vec::new();
        for (j, sl) in array(rl, "scopeLogs", "scope_logs", &path)?
            .iter()
            .enumerate()
        {
            let p = format!("{path}.scopeLogs[{j}]");
            let sl = object(sl, &p)?;
            let mut log_records = Vec::new();
            for (k, r) in array(sl, "logRecords", "log_records", &p)?
                .iter()
                .enumerate()
            {
                let rp = format!("{p}.logRecords[{k}]");
                match check_ids(record_from(object(r, &rp)?, &rp)?) {
                    Ok(r) => log_records.push(r),
                    Err(why) => out.rejected.push(why),
                }
            }
            if !log_records.is_empty() {
                scope_logs.push(ScopeLogs {
                    scope: scope_from(sl, &p)?
                        .map(scope_from_proto)
                        .unwrap_or_default(),
                    schema_url: string(sl, "schemaUrl", "schema_url", &p)?,
                    log_records,
                });
            }
        }
        if !scope_logs.is_empty() {
            out.resource_logs.push(ResourceLogs {
                resource: resource_from(rl, &path)?
                    .map(resource_from_proto)
                    .unwrap_or_default(),
                schema_url: string(rl, "schemaUrl", "schema_url", &path)?,
                scope_logs,
            });
        }
    }
    out.within_limit()
}

/// OTLP's SeverityNumber names, by number.
const SEVERITIES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

fn record_from(obj: &Map<String, Value>, path: &str) -> R<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: u64_field(obj, "timeUnixNano", "time_unix_nano", path)?,
        observed_time_unix_nano: u64_field(
            obj,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
            path,
        )?,
        severity_number: enum_field(obj, "severityNumber", path, &SEVERITIES)?,
        severity_text: string(obj, "severityText", "severity_text", path)?,
        body: match field(obj, "body", "body") {
            None => AnyValue::Empty,
            Some(v) => value_from_proto(any_value(v, &format!("{path}.body"))?),
        },
        attributes: kvs_from_proto(key_values(obj, "attributes", path)?),
        dropped_attributes_count: u32_field(
            obj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        flags: u32_field(obj, "flags", "flags", path)?,
        trace_id: hex_field(obj, "traceId", "trace_id", path)?,
        span_id: hex_field(obj, "spanId", "span_id", path)?,
        event_name: string(obj, "eventName", "event_name", path)?,
    })
}

/// Log records as the protobuf message they were received as.
pub fn to_proto(resource_logs: &[ResourceLogs]) -> ExportLogsServiceRequest {
    let record = |r: &LogRecord| pl::LogRecord {
        time_unix_nano: r.time_unix_nano,
        observed_time_unix_nano: r.observed_time_unix_nano,
        severity_number: r.severity_number,
        severity_text: r.severity_text.clone(),
        body: match &r.body {
            AnyValue::Empty => None,
            body => Some(value_to_proto(body)),
        },
        attributes: kvs_to_proto(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        flags: r.flags,
        trace_id: r.trace_id.clone(),
        span_id: r.span_id.clone(),
        event_name: r.event_name.clone(),
    };
    ExportLogsServiceRequest {
        resource_logs: resource_logs
            .iter()
            .map(|rl| pl::ResourceLogs {
                resource: Some(resource_to_proto(&rl.resource)),
                schema_url: rl.schema_url.clone(),
                scope_logs: rl
                    .scope_logs
                    .iter()
                    .map(|sl| pl::ScopeLogs {
                        scope: Some(scope_to_proto(&sl.scope)),
                        schema_url: sl.schema_url.clone(),
                        log_records: sl.log_records.iter().map(record).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Log records as an encoded ExportLogsServiceRequest.
pub fn encode_request(resource_logs: &[ResourceLogs]) -> Vec<u8> {
    to_proto(resource_logs).encode_to_vec()
}
