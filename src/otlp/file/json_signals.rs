//! Log records and metrics as OTLP/JSON, straight from the model, with the helpers of the span
//! writer (`json_line`): what `spanfold export` writes for agents' events and counters.

use super::json_line::{
    any_value, attributes, double, integer, key, list, resource, scope, str_field, uint,
    uint_string,
};
use crate::model::{
    Buckets, Exemplar, ExponentialHistogramPoint, HistogramPoint, LogRecord, Metric, MetricData,
    Number, NumberPoint, ResourceLogs, ResourceMetrics, SummaryPoint, hex,
};

/// `{"resource":…,"<scopes>":[{"scope":…,"<items>":[…],"schemaUrl":…}],"schemaUrl":…}`.
fn group<S>(
    resource_json: impl FnOnce(&mut Vec<u8>),
    scopes_key: &str,
    scopes: &[S],
    scope_json: impl Fn(&S, &mut Vec<u8>),
    schema_url: &str,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    key("resource", out);
    resource_json(out);
    out.push(b',');
    key(scopes_key, out);
    list(scopes, out, |s, out| scope_json(s, out));
    out.push(b',');
    str_field("schemaUrl", schema_url, out);
    out.push(b'}');
}

pub(super) fn resource_logs(rl: &ResourceLogs, out: &mut Vec<u8>) {
    group(
        |out| resource(&rl.resource, out),
        "scopeLogs",
        &rl.scope_logs,
        |sl, out| {
            out.push(b'{');
            key("scope", out);
            scope(&sl.scope, out);
            out.push(b',');
            key("logRecords", out);
            list(&sl.log_records, out, log_record);
            out.push(b',');
            str_field("schemaUrl", &sl.schema_url, out);
            out.push(b'}');
        },
        &rl.schema_url,
        out,
    );
}

fn log_record(r: &LogRecord, out: &mut Vec<u8>) {
    out.push(b'{');
    uint_string("timeUnixNano", r.time_unix_nano, out);
    out.push(b',');
    uint_string("observedTimeUnixNano", r.observed_time_unix_nano, out);
    out.push(b',');
    key("severityNumber", out);
    integer(r.severity_number, out);
    out.push(b',');
    str_field("severityText", &r.severity_text, out);
    out.push(b',');
    key("body", out);
    any_value(&r.body, out);
    out.push(b',');
    attributes(&r.attributes, r.dropped_attributes_count, out);
    out.push(b',');
    uint("flags", r.flags.into(), out);
    out.push(b',');
    str_field("traceId", &hex(&r.trace_id), out);
    out.push(b',');
    str_field("spanId", &hex(&r.span_id), out);
    out.push(b',');
    str_field("eventName", &r.event_name, out);
    out.push(b'}');
}

pub(super) fn resource_metrics(rm: &ResourceMetrics, out: &mut Vec<u8>) {
    group(
        |out| resource(&rm.resource, out),
        "scopeMetrics",
        &rm.scope_metrics,
        |sm, out| {
            out.push(b'{');
            key("scope", out);
            scope(&sm.scope, out);
            out.push(b',');
            key("metrics", out);
            list(&sm.metrics, out, metric);
            out.push(b',');
            str_field("schemaUrl", &sm.schema_url, out);
            out.push(b'}');
        },
        &rm.schema_url,
        out,
    );
}

fn metric(m: &Metric, out: &mut Vec<u8>) {
    out.push(b'{');
    str_field("name", &m.name, out);
    out.push(b',');
    str_field("description", &m.description, out);
    out.push(b',');
    str_field("unit", &m.unit, out);
    out.push(b',');
    key("metadata", out);
    list(&m.metadata, out, super::json_line::key_value);
    if !matches!(m.data, MetricData::Empty) {
        out.push(b',');
        metric_data(&m.data, out);
    }
    out.push(b'}');
}

/// The metric's data, under the key of its kind.
fn metric_data(data: &MetricData, out: &mut Vec<u8>) {
    match data {
        MetricData::Empty => {}
        MetricData::Gauge { points } => {
            self::data(out, "gauge", None, None, |out| {
                list(points, out, number_point)
            });
        }
        MetricData::Sum {
            points,
            temporality,
            monotonic,
        } => self::data(out, "sum", Some(*temporality), Some(*monotonic), |out| {
            list(points, out, number_point)
        }),
        MetricData::Histogram {
            points,
            temporality,
        } => self::data(out, "histogram", Some(*temporality), None, |out| {
            list(points, out, histogram_point)
        }),
        MetricData::ExponentialHistogram {
            points,
            temporality,
        } => self::data(
            out,
            "exponentialHistogram",
            Some(*temporality),
            None,
            |out| list(points, out, exponential_point),
        ),
        MetricData::Summary { points } => {
            self::data(out, "summary", None, None, |out| {
                list(points, out, summary_point)
            });
        }
    }
}

fn histogram_point(p: &HistogramPoint, out: &mut Vec<u8>) {
    out.push(b'{');
    point_head(&p.attributes, p.start_time_unix_nano, p.time_unix_nano, out);
    uint_string("count", p.count, out);
    optional_double("sum", p.sum, out);
    out.push(b',');
    key("bucketCounts", out);
    list(&p.bucket_counts, out, |c, out| uint_str(*c, out));
    out.push(b',');
    key("explicitBounds", out);
    list(&p.explicit_bounds, out, |b, out| {
        let _ = serde_json::to_writer(&mut *out, &json_double(*b));
    });
    point_tail(&p.exemplars, p.flags, out);
    optional_double("min", p.min, out);
    optional_double("max", p.max, out);
    out.push(b'}');
}

fn exponential_point(p: &ExponentialHistogramPoint, out: &mut Vec<u8>) {
    out.push(b'{');
    point_head(&p.attributes, p.start_time_unix_nano, p.time_unix_nano, out);
    uint_string("count", p.count, out);
    optional_double("sum", p.sum, out);
    out.push(b',');
    key("scale", out);
    integer(p.scale, out);
    out.push(b',');
    uint_string("zeroCount", p.zero_count, out);
    buckets("positive", &p.positive, out);
    buckets("negative", &p.negative, out);
    point_tail(&p.exemplars, p.flags, out);
    optional_double("min", p.min, out);
    optional_double("max", p.max, out);
    out.push(b',');
    double("zeroThreshold", p.zero_threshold, out);
    out.push(b'}');
}

fn summary_point(p: &SummaryPoint, out: &mut Vec<u8>) {
    out.push(b'{');
    point_head(&p.attributes, p.start_time_unix_nano, p.time_unix_nano, out);
    uint_string("count", p.count, out);
    out.push(b',');
    double("sum", p.sum, out);
    out.push(b',');
    key("quantileValues", out);
    list(&p.quantile_values, out, |q, out| {
        out.push(b'{');
        double("quantile", q.quantile, out);
        out.push(b',');
        double("value", q.value, out);
        out.push(b'}');
    });
    out.push(b',');
    uint("flags", p.flags.into(), out);
    out.push(b'}');
}

/// `"<kind>":{"dataPoints":[…],"aggregationTemporality":…,"isMonotonic":…}`.
fn data(
    out: &mut Vec<u8>,
    kind: &str,
    temporality: Option<i32>,
    monotonic: Option<bool>,
    points: impl FnOnce(&mut Vec<u8>),
) {
    key(kind, out);
    out.push(b'{');
    key("dataPoints", out);
    points(out);
    if let Some(t) = temporality {
        out.push(b',');
        key("aggregationTemporality", out);
        integer(t, out);
    }
    if let Some(m) = monotonic {
        out.push(b',');
        key("isMonotonic", out);
        out.extend_from_slice(if m { b"true" } else { b"false" });
    }
    out.push(b'}');
}

/// A point's attributes and times, and the comma after them.
fn point_head(attrs: &[crate::model::KeyValue], start: u64, time: u64, out: &mut Vec<u8>) {
    key("attributes", out);
    list(attrs, out, super::json_line::key_value);
    out.push(b',');
    uint_string("startTimeUnixNano", start, out);
    out.push(b',');
    uint_string("timeUnixNano", time, out);
    out.push(b',');
}

/// A point's exemplars and flags, each after a comma.
fn point_tail(exemplars: &[Exemplar], flags: u32, out: &mut Vec<u8>) {
    out.push(b',');
    key("exemplars", out);
    list(exemplars, out, |e, out| {
        out.push(b'{');
        key("filteredAttributes", out);
        list(&e.filtered_attributes, out, super::json_line::key_value);
        out.push(b',');
        uint_string("timeUnixNano", e.time_unix_nano, out);
        number(e.value, out);
        out.push(b',');
        str_field("spanId", &hex(&e.span_id), out);
        out.push(b',');
        str_field("traceId", &hex(&e.trace_id), out);
        out.push(b'}');
    });
    out.push(b',');
    uint("flags", flags.into(), out);
}

fn number_point(p: &NumberPoint, out: &mut Vec<u8>) {
    out.push(b'{');
    point_head(&p.attributes, p.start_time_unix_nano, p.time_unix_nano, out);
    // The head ends with a comma; the value (if any) follows it, then the tail's own comma.
    out.pop();
    number(p.value, out);
    point_tail(&p.exemplars, p.flags, out);
    out.push(b'}');
}

/// `,"asDouble":…` or `,"asInt":"…"`, or nothing for an unset value.
fn number(n: Number, out: &mut Vec<u8>) {
    match n {
        Number::Empty => {}
        Number::Int(i) => {
            out.push(b',');
            key("asInt", out);
            out.push(b'"');
            integer(i, out);
            out.push(b'"');
        }
        Number::Double(d) => {
            out.push(b',');
            double("asDouble", d, out);
        }
    }
}

fn optional_double(k: &str, v: Option<f64>, out: &mut Vec<u8>) {
    if let Some(v) = v {
        out.push(b',');
        double(k, v, out);
    }
}

fn buckets(k: &str, b: &Option<Buckets>, out: &mut Vec<u8>) {
    if let Some(b) = b {
        out.push(b',');
        key(k, out);
        out.push(b'{');
        key("offset", out);
        integer(b.offset, out);
        out.push(b',');
        key("bucketCounts", out);
        list(&b.bucket_counts, out, |c, out| uint_str(*c, out));
        out.push(b'}');
    }
}

/// A 64-bit count as a decimal string, as the protobuf JSON mapping writes it.
fn uint_str(v: u64, out: &mut Vec<u8>) {
    out.push(b'"');
    integer(v, out);
    out.push(b'"');
}

/// A double as a JSON value: a number, or the string the mapping uses for NaN and infinities.
fn json_double(d: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => serde_json::Value::Number(n),
        None if d.is_nan() => "NaN".into(),
        None if d > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}
