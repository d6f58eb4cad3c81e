//! The limits for agents' log records and metrics: the span limits (`limits`), applied to what
//! those carry. No registry names their events (that is the agent profiles' job); they are only
//! kept from filling the log or making an export unreadable. What breaks a limit is refused
//! record by record, the rest of the export kept.

use super::limits::{MAX_ITEMS_PER_SPAN, longest_text, measure, shared};
use crate::model::{
    AnyValue, KeyValue, LogRecord, Metric, MetricData, ResourceLogs, ResourceMetrics,
};

/// Drops from `resource_logs` every record over a limit (and groups left empty), returning why
/// each was refused.
pub fn retain_valid_logs(resource_logs: &mut Vec<ResourceLogs>) -> Vec<String> {
    let mut rejected = Vec::new();
    for rl in resource_logs.iter_mut() {
        let resource = shared(&rl.resource.attributes, &[("schema_url", &rl.schema_url)])
            .map_err(|rule| format!("its resource: {rule}"));
        for sl in &mut rl.scope_logs {
            let texts = [
                ("name", sl.scope.name.as_str()),
                ("version", &sl.scope.version),
                ("schema_url", &sl.schema_url),
            ];
            let group = resource.clone().and_then(|()| {
                shared(&sl.scope.attributes, &texts).map_err(|rule| format!("its scope: {rule}"))
            });
            sl.log_records.retain(
                |r| match group.clone().and_then(|()| log_within_limits(r)) {
                    Ok(()) => true,
                    Err(rule) => {
                        rejected.push(format!("log record {}: {rule}", describe_log(r)));
                        false
                    }
                },
            );
        }
        rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
    }
    resource_logs.retain(|rl| !rl.scope_logs.is_empty());
    rejected
}

/// Drops from `resource_metrics` every metric over a limit, returning why each was refused.
pub fn retain_valid_metrics(resource_metrics: &mut Vec<ResourceMetrics>) -> Vec<String> {
    let mut rejected = Vec::new();
    for rm in resource_metrics.iter_mut() {
        let resource = shared(&rm.resource.attributes, &[("schema_url", &rm.schema_url)])
            .map_err(|rule| format!("its resource: {rule}"));
        for sm in &mut rm.scope_metrics {
            let texts = [
                ("name", sm.scope.name.as_str()),
                ("version", &sm.scope.version),
                ("schema_url", &sm.schema_url),
            ];
            let group = resource.clone().and_then(|()| {
                shared(&sm.scope.attributes, &texts).map_err(|rule| format!("its scope: {rule}"))
            });
            sm.metrics.retain(
                |m| match group.clone().and_then(|()| metric_within_limits(m)) {
                    Ok(()) => true,
                    Err(rule) => {
                        let name: String = m.name.chars().take(64).collect();
                        rejected.push(format!("metric {name:?}: {rule}"));
                        false
                    }
                },
            );
        }
        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
    }
    resource_metrics.retain(|rm| !rm.scope_metrics.is_empty());
    rejected
}

/// A log record in a message: its event name, else its body, else its time.
pub fn describe_log(r: &LogRecord) -> String {
    let short = |s: &str| format!("{:?}", s.chars().take(60).collect::<String>());
    if !r.event_name.is_empty() {
        return short(&r.event_name);
    }
    match &r.body {
        AnyValue::String(s) => short(s),
        _ => format!("at {}", r.time_unix_nano),
    }
}

/// A log record against the span limits: its texts, and its body and attributes counted as
/// values.
pub fn log_within_limits(r: &LogRecord) -> Result<(), String> {
    longest_text(
        [
            ("severity_text", r.severity_text.as_str()),
            ("event_name", &r.event_name),
        ]
        .into_iter(),
    )?;
    let body = KeyValue::new("body", r.body.clone());
    let items = measure(r.attributes.iter().chain(std::iter::once(&body)))?;
    if items > MAX_ITEMS_PER_SPAN {
        return Err(format!(
            "it carries {items} attributes and nested values; the limit is {MAX_ITEMS_PER_SPAN}"
        ));
    }
    Ok(())
}

/// A metric against the span limits: its texts, and its points' attributes and values counted.
pub fn metric_within_limits(m: &Metric) -> Result<(), String> {
    longest_text(
        [
            ("name", m.name.as_str()),
            ("description", &m.description),
            ("unit", &m.unit),
        ]
        .into_iter(),
    )?;
    let mut items = measure(m.metadata.iter())?;
    let mut count = |attrs: &[KeyValue], values: usize| -> Result<(), String> {
        items += measure(attrs.iter())? + values;
        Ok(())
    };
    match &m.data {
        MetricData::Empty => {}
        MetricData::Gauge { points } | MetricData::Sum { points, .. } => {
            for p in points {
                count(&p.attributes, 1 + p.exemplars.len())?;
            }
        }
        MetricData::Histogram { points, .. } => {
            for p in points {
                count(
                    &p.attributes,
                    1 + p.bucket_counts.len() + p.explicit_bounds.len() + p.exemplars.len(),
                )?;
            }
        }
        MetricData::ExponentialHistogram { points, .. } => {
            for p in points {
                let buckets = |b: &Option<crate::model::Buckets>| {
                    b.as_ref().map_or(0, |b| b.bucket_counts.len())
                };
                count(
                    &p.attributes,
                    1 + buckets(&p.positive) + buckets(&p.negative) + p.exemplars.len(),
                )?;
            }
        }
        MetricData::Summary { points } => {
            for p in points {
                count(&p.attributes, 1 + p.quantile_values.len())?;
            }
        }
    }
    if items > MAX_ITEMS_PER_SPAN {
        return Err(format!(
            "it carries {items} data points, attributes and values; the limit is {MAX_ITEMS_PER_SPAN}"
        ));
    }
    Ok(())
}
