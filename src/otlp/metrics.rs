//! OTLP metrics between their wire forms and the model: the OTLP/JSON decoder (protobuf is
//! `native_metrics`) and the protobuf message they are exported as.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use prost::Message;
use serde_json::{Map, Value};

use super::convert::{
    kvs_from_proto, kvs_to_proto, resource_from_proto, resource_to_proto, scope_from_proto,
    scope_to_proto,
};
use super::json::{
    array, check_size, double_of, err, field, hex_field, int_of, key_values, object, resource_from,
    scope_from, string, u32_field, u64_field,
};
use super::{DecodeError, Decoded};
use crate::model::{
    Buckets, Exemplar, ExponentialHistogramPoint, HistogramPoint, KeyValue, Metric, MetricData,
    Number, NumberPoint, Quantile, ResourceMetrics, ScopeMetrics, SummaryPoint,
};

type R<T> = Result<T, DecodeError>;
type Obj = Map<String, Value>;

/// Decodes an OTLP/JSON ExportMetricsServiceRequest.
pub fn decode_json(body: &[u8]) -> R<Decoded> {
    check_size(body)?;
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    decode_json_value(&root)
}

pub(super) fn decode_json_value(root: &Value) -> R<Decoded> {
    let root = object(root, "$")?;
    let mut out = Decoded::default();
    for (i, rm) in array(root, "resourceMetrics", "resource_metrics", "$")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceMetrics[{i}]");
        let rm = object(rm, &path)?;
        let mut scope_metrics = Vec::new();
        for (j, sm) in array(rm, "scopeMetrics", "scope_metrics", &path)?
            .iter()
            .enumerate()
        {
            let p = format!("{path}.scopeMetrics[{j}]");
            let sm = object(sm, &p)?;
            let mut metrics = Vec::new();
            for (k, m) in array(sm, "metrics", "metrics", &p)?.iter().enumerate() {
                let mp = format!("{p}.metrics[{k}]");
                metrics.push(metric_from(object(m, &mp)?, &mp)?);
            }
            if !metrics.is_empty() {
                scope_metrics.push(ScopeMetrics {
                    scope: scope_from(sm, &p)?
                        .map(scope_from_proto)
                        .unwrap_or_default(),
                    schema_url: string(sm, "schemaUrl", "schema_url", &p)?,
                    metrics,
                });
            }
        }
        if !scope_metrics.is_empty() {
            out.resource_metrics.push(ResourceMetrics {
                resource: resource_from(rm, &path)?
                    .map(resource_from_proto)
                    .unwrap_or_default(),
                schema_url: string(rm, "schemaUrl", "schema_url", &path)?,
                scope_metrics,
            });
        }
    }
    out.within_limit()
}

fn attrs(obj: &Obj, name: &str, path: &str) -> R<Vec<KeyValue>> {
    Ok(kvs_from_proto(key_values(obj, name, path)?))
}

fn metric_from(obj: &Obj, path: &str) -> R<Metric> {
    let kinds = [
        ("gauge", "gauge"),
        ("sum", "sum"),
        ("histogram", "histogram"),
        ("exponentialHistogram", "exponential_histogram"),
        ("summary", "summary"),
    ];
    let mut data = MetricData::Empty;
    for (camel, snake) in kinds {
        let Some(v) = field(obj, camel, snake) else {
            continue;
        };
        let p = format!("{path}.{camel}");
        let d = object(v, &p)?;
        let temporality = temporality(d, &p)?;
        data = match camel {
            "gauge" => MetricData::Gauge {
                points: points(d, &p, number_point)?,
            },
            "sum" => MetricData::Sum {
                points: points(d, &p, number_point)?,
                temporality,
                monotonic: match field(d, "isMonotonic", "is_monotonic") {
                    None => false,
                    Some(b) => b
                        .as_bool()
                        .ok_or_else(|| err(&p, "isMonotonic must be true or false"))?,
                },
            },
            "histogram" => MetricData::Histogram {
                points: points(d, &p, histogram_point)?,
                temporality,
            },
            "exponentialHistogram" => MetricData::ExponentialHistogram {
                points: points(d, &p, exponential_point)?,
                temporality,
            },
            _ => MetricData::Summary {
                points: points(d, &p, summary_point)?,
            },
        };
    }
    Ok(Metric {
        name: string(obj, "name", "name", path)?,
        description: string(obj, "description", "description", path)?,
        unit: string(obj, "unit", "unit", path)?,
        metadata: attrs(obj, "metadata", path)?,
        data,
    })
}

const TEMPORALITIES: [&str; 3] = [
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

fn temporality(obj: &Obj, path: &str) -> R<i32> {
    super::json::enum_field(obj, "aggregationTemporality", path, &TEMPORALITIES)
}

fn points<T>(obj: &Obj, path: &str, each: fn(&Obj, &str) -> R<T>) -> R<Vec<T>> {
    let mut out = Vec::new();
    for (i, p) in array(obj, "dataPoints", "data_points", path)?
        .iter()
        .enumerate()
    {
        let pp = format!("{path}.dataPoints[{i}]");
        out.push(each(object(p, &pp)?, &pp)?);
    }
    Ok(out)
}

fn double(obj: &Obj, camel: &str, snake: &str, path: &str) -> R<Option<f64>> {
    match field(obj, camel, snake) {
        None => Ok(None),
        Some(v) => double_of(v)
            .map(Some)
            .ok_or_else(|| err(&format!("{path}.{camel}"), "expected a number")),
    }
}

/// `asDouble` or `asInt`, as a point or an exemplar carries it.
fn number(obj: &Obj, path: &str) -> R<Number> {
    if let Some(d) = double(obj, "asDouble", "as_double", path)? {
        return Ok(Number::Double(d));
    }
    match field(obj, "asInt", "as_int") {
        None => Ok(Number::Empty),
        Some(v) => int_of(v)
            .map(Number::Int)
            .ok_or_else(|| err(&format!("{path}.asInt"), "expected a 64-bit integer")),
    }
}

fn exemplars(obj: &Obj, path: &str) -> R<Vec<Exemplar>> {
    let mut out = Vec::new();
    for (i, e) in array(obj, "exemplars", "exemplars", path)?
        .iter()
        .enumerate()
    {
        let p = format!("{path}.exemplars[{i}]");
        let e = object(e, &p)?;
        out.push(Exemplar {
            filtered_attributes: attrs(e, "filteredAttributes", &p)?,
            time_unix_nano: u64_field(e, "timeUnixNano", "time_unix_nano", &p)?,
            value: number(e, &p)?,
            span_id: hex_field(e, "spanId", "span_id", &p)?,
            trace_id: hex_field(e, "traceId", "trace_id", &p)?,
        });
    }
    Ok(out)
}

fn times(obj: &Obj, path: &str) -> R<(u64, u64)> {
    Ok((
        u64_field(obj, "startTimeUnixNano", "start_time_unix_nano", path)?,
        u64_field(obj, "timeUnixNano", "time_unix_nano", path)?,
    ))
}

fn number_point(obj: &Obj, path: &str) -> R<NumberPoint> {
    let (start, time) = times(obj, path)?;
    Ok(NumberPoint {
        attributes: attrs(obj, "attributes", path)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: number(obj, path)?,
        exemplars: exemplars(obj, path)?,
        flags: u32_field(obj, "flags", "flags", path)?,
    })
}

fn u64s(obj: &Obj, camel: &str, snake: &str, path: &str) -> R<Vec<u64>> {
    array(obj, camel, snake, path)?
        .iter()
        .map(|v| {
            int_of(v)
                .and_then(|i| u64::try_from(i).ok())
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| err(&format!("{path}.{camel}"), "expected unsigned integers"))
        })
        .collect()
}

fn histogram_point(obj: &Obj, path: &str) -> R<HistogramPoint> {
    let (start, time) = times(obj, path)?;
    let bounds = array(obj, "explicitBounds", "explicit_bounds", path)?
        .iter()
        .map(|v| double_of(v).ok_or_else(|| err(path, "explicitBounds must be numbers")))
        .collect::<R<Vec<f64>>>()?;
    Ok(HistogramPoint {
        attributes: attrs(obj, "attributes", path)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: u64_field(obj, "count", "count", path)?,
        sum: double(obj, "sum", "sum", path)?,
        bucket_counts: u64s(obj, "bucketCounts", "bucket_counts", path)?,
        explicit_bounds: bounds,
        exemplars: exemplars(obj, path)?,
        flags: u32_field(obj, "flags", "flags", path)?,
        min: double(obj, "min", "min", path)?,
        max: double(obj, "max", "max", path)?,
    })
}

fn buckets(obj: &Obj, camel: &str, snake: &str, path: &str) -> R<Option<Buckets>> {
    let Some(v) = field(obj, camel, snake) else {
        return Ok(None);
    };
    let p = format!("{path}.{camel}");
    let b = object(v, &p)?;
    let offset = match field(b, "offset", "offset") {
        None => 0,
        Some(v) => int_of(v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| err(&p, "offset must be a 32-bit integer"))?,
    };
    Ok(Some(Buckets {
        offset,
        bucket_counts: u64s(b, "bucketCounts", "bucket_counts", &p)?,
    }))
}

fn exponential_point(obj: &Obj, path: &str) -> R<ExponentialHistogramPoint> {
    let (start, time) = times(obj, path)?;
    let scale = match field(obj, "scale", "scale") {
        None => 0,
        Some(v) => int_of(v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| err(path, "scale must be a 32-bit integer"))?,
    };
    Ok(ExponentialHistogramPoint {
        attributes: attrs(obj, "attributes", path)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: u64_field(obj, "count", "count", path)?,
        sum: double(obj, "sum", "sum", path)?,
        scale,
        zero_count: u64_field(obj, "zeroCount", "zero_count", path)?,
        positive: buckets(obj, "positive", "positive", path)?,
        negative: buckets(obj, "negative", "negative", path)?,
        flags: u32_field(obj, "flags", "flags", path)?,
        exemplars: exemplars(obj, path)?,
        min: double(obj, "min", "min", path)?,
        max: double(obj, "max", "max", path)?,
        zero_threshold: double(obj, "zeroThreshold", "zero_threshold", path)?.unwrap_or(0.0),
    })
}

fn summary_point(obj: &Obj, path: &str) -> R<SummaryPoint> {
    let (start, time) = times(obj, path)?;
    let mut quantile_values = Vec::new();
    for (i, q) in array(obj, "quantileValues", "quantile_values", path)?
        .iter()
        .enumerate()
    {
        let p = format!("{path}.quantileValues[{i}]");
        let q = object(q, &p)?;
        quantile_values.push(Quantile {
            quantile: double(q, "quantile", "quantile", &p)?.unwrap_or(0.0),
            value: double(q, "value", "value", &p)?.unwrap_or(0.0),
        });
    }
    Ok(SummaryPoint {
        attributes: attrs(obj, "attributes", path)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: u64_field(obj, "count", "count", path)?,
        sum: double(obj, "sum", "sum", path)?.unwrap_or(0.0),
        quantile_values,
        flags: u32_field(obj, "flags", "flags", path)?,
    })
}

// ---- to protobuf --------------------------------------------------------------------------

fn number_to_proto(n: Number) -> Option<pm::number_data_point::Value> {
    use pm::number_data_point::Value as V;
    match n {
        Number::Empty => None,
        Number::Int(i) => Some(V::AsInt(i)),
        Number::Double(d) => Some(V::AsDouble(d)),
    }
}

fn exemplars_to_proto(es: &[Exemplar]) -> Vec<pm::Exemplar> {
    use pm::exemplar::Value as V;
    es.iter()
        .map(|e| pm::Exemplar {
            filtered_attributes: kvs_to_proto(&e.filtered_attributes),
            time_unix_nano: e.time_unix_nano,
            span_id: e.span_id.clone(),
            trace_id: e.trace_id.clone(),
            value: match e.value {
                Number::Empty => None,
                Number::Int(i) => Some(V::AsInt(i)),
                Number::Double(d) => Some(V::AsDouble(d)),
            },
        })
        .collect()
}

fn number_points(points: &[NumberPoint]) -> Vec<pm::NumberDataPoint> {
    points
        .iter()
        .map(|p| pm::NumberDataPoint {
            attributes: kvs_to_proto(&p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            exemplars: exemplars_to_proto(&p.exemplars),
            flags: p.flags,
            value: number_to_proto(p.value),
        })
        .collect()
}

fn buckets_to_proto(b: &Option<Buckets>) -> Option<pm::exponential_histogram_data_point::Buckets> {
    b.as_ref()
        .map(|b| pm::exponential_histogram_data_point::Buckets {
            offset: b.offset,
            bucket_counts: b.bucket_counts.clone(),
        })
}

fn data_to_proto(data: &MetricData) -> Option<pm::metric::Data> {
    use pm::metric::Data as D;
    Some(match data {
        MetricData::Empty => return None,
        MetricData::Gauge { points } => D::Gauge(pm::Gauge {
            data_points: number_points(points),
        }),
        MetricData::Sum {
            points,
            temporality,
            monotonic,
        } => D::Sum(pm::Sum {
            data_points: number_points(points),
            aggregation_temporality: *temporality,
            is_monotonic: *monotonic,
        }),
        MetricData::Histogram {
            points,
            temporality,
        } => D::Histogram(pm::Histogram {
            aggregation_temporality: *temporality,
            data_points: points
                .iter()
                .map(|p| pm::HistogramDataPoint {
                    attributes: kvs_to_proto(&p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    count: p.count,
                    sum: p.sum,
                    bucket_counts: p.bucket_counts.clone(),
                    explicit_bounds: p.explicit_bounds.clone(),
                    exemplars: exemplars_to_proto(&p.exemplars),
                    flags: p.flags,
                    min: p.min,
                    max: p.max,
                })
                .collect(),
        }),
        MetricData::ExponentialHistogram {
            points,
            temporality,
        } => D::ExponentialHistogram(pm::ExponentialHistogram {
            aggregation_temporality: *temporality,
            data_points: points
                .iter()
                .map(|p| pm::ExponentialHistogramDataPoint {
                    attributes: kvs_to_proto(&p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    count: p.count,
                    sum: p.sum,
                    scale: p.scale,
                    zero_count: p.zero_count,
                    positive: buckets_to_proto(&p.positive),
                    negative: buckets_to_proto(&p.negative),
                    flags: p.flags,
                    exemplars: exemplars_to_proto(&p.exemplars),
                    min: p.min,
                    max: p.max,
                    zero_threshold: p.zero_threshold,
                })
                .collect(),
        }),
        MetricData::Summary { points } => D::Summary(pm::Summary {
            data_points: points
                .iter()
                .map(|p| pm::SummaryDataPoint {
                    attributes: kvs_to_proto(&p.attributes),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    count: p.count,
                    sum: p.sum,
                    quantile_values: p
                        .quantile_values
                        .iter()
                        .map(|q| pm::summary_data_point::ValueAtQuantile {
                            quantile: q.quantile,
                            value: q.value,
                        })
                        .collect(),
                    flags: p.flags,
                })
                .collect(),
        }),
    })
}

/// Metrics as the protobuf message they were received as.
pub fn to_proto(resource_metrics: &[ResourceMetrics]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: resource_metrics
            .iter()
            .map(|rm| pm::ResourceMetrics {
                resource: Some(resource_to_proto(&rm.resource)),
                schema_url: rm.schema_url.clone(),
                scope_metrics: rm
                    .scope_metrics
                    .iter()
                    .map(|sm| pm::ScopeMetrics {
                        scope: Some(scope_to_proto(&sm.scope)),
                        schema_url: sm.schema_url.clone(),
                        metrics: sm
                            .metrics
                            .iter()
                            .map(|m| pm::Metric {
                                name: m.name.clone(),
                                description: m.description.clone(),
                                unit: m.unit.clone(),
                                metadata: kvs_to_proto(&m.metadata),
                                data: data_to_proto(&m.data),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Metrics as an encoded ExportMetricsServiceRequest.
pub fn encode_request(resource_metrics: &[ResourceMetrics]) -> Vec<u8> {
    to_proto(resource_metrics).encode_to_vec()
}
