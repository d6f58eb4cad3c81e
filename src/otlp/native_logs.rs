//! OTLP protobuf log exports decoded straight into the model, with the span decoder's wire
//! primitives and its budget of items (`native`): a body of empty attributes cannot become
//! gigabytes. Field numbers are those of opentelemetry-proto's logs messages.

use super::native::{
    Budget, Fields, R, any_value_into, key_value, resource, resource_groups, scope,
};
use super::{DecodeError, Decoded};
use crate::model::{LogRecord, ResourceLogs, ScopeLogs};

/// Decodes an ExportLogsServiceRequest, refusing log records with malformed ids one by one.
pub fn decode_request(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Decoded::default();
    resource_groups(body, "resource_logs", |buf, b| {
        let rl = resource_logs(buf, &mut out, b)?;
        if !rl.scope_logs.is_empty() {
            out.resource_logs.push(rl);
        }
        Ok(())
    })?;
    out.within_limit()
}

fn resource_logs(buf: &[u8], out: &mut Decoded, b: &mut Budget) -> R<ResourceLogs> {
    let mut rl = ResourceLogs::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => resource(v.bytes("resource")?, &mut rl.resource, b)?,
            2 => {
                let sl = scope_logs(v.bytes("scope_logs")?, out, b)?;
                if !sl.log_records.is_empty() {
                    rl.scope_logs.push(sl);
                }
            }
            3 => rl.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(rl)
}

fn scope_logs(buf: &[u8], out: &mut Decoded, b: &mut Budget) -> R<ScopeLogs> {
    let mut sl = ScopeLogs::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => scope(v.bytes("scope")?, &mut sl.scope, b)?,
            2 => match log_record(v.bytes("log_records")?, b)? {
                Ok(r) => sl.log_records.push(r),
                Err(why) => out.rejected.push(why),
            },
            3 => sl.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(sl)
}

/// A log record, or why it is refused (the outer error is a malformed message).
fn log_record(buf: &[u8], b: &mut Budget) -> R<Result<LogRecord, String>> {
    b.take()?;
    let mut r = LogRecord::empty();
    r.attributes = Vec::with_capacity((buf.len() / 40).min(64));
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => r.time_unix_nano = v.fixed64("time_unix_nano")?,
            2 => r.severity_number = v.varint("severity_number")? as i32,
            3 => r.severity_text = v.string("severity_text")?,
            5 => any_value_into(v.bytes("body")?, 0, &mut r.body, b)?,
            6 => r.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            7 => r.dropped_attributes_count = v.u32("dropped_attributes_count")?,
            8 => r.flags = v.fixed32("flags")?,
            9 => r.trace_id = v.bytes("trace_id")?.to_vec(),
            10 => r.span_id = v.bytes("span_id")?.to_vec(),
            11 => r.observed_time_unix_nano = v.fixed64("observed_time_unix_nano")?,
            12 => r.event_name = v.string("event_name")?,
            _ => {}
        }
    }
    Ok(super::logs::check_ids(r))
}
