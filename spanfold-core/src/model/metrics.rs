//! OTLP metrics, kept as received: token, cost and activity counters of coding agents (Claude
//! Code's `claude_code.token.usage`, …). Mirrors `opentelemetry.proto.metrics.v1` field for
//! field, every kind of data included, so that exporting a stored metric gives back what was
//! received. One metric (with all its data points) is one event of the log.

use serde::{Deserialize, Serialize};

use super::{KeyValue, Resource, Scope, UnixNanos};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub metadata: Vec<KeyValue>,
    pub data: MetricData,
}

impl Metric {
    pub fn point_count(&self) -> usize {
        match &self.data {
            MetricData::Empty => 0,
            MetricData::Gauge { points } => points.len(),
            MetricData::Sum { points, .. } => points.len(),
            MetricData::Histogram { points, .. } => points.len(),
            MetricData::ExponentialHistogram { points, .. } => points.len(),
            MetricData::Summary { points } => points.len(),
        }
    }

    /// The value of attribute `key` on the first data point that has it.
    pub fn point_attr(&self, key: &str) -> Option<&super::AnyValue> {
        let find = |attrs| super::find_attr(attrs, key);
        match &self.data {
            MetricData::Empty => None,
            MetricData::Gauge { points } | MetricData::Sum { points, .. } => {
                points.iter().find_map(|p| find(&p.attributes))
            }
            MetricData::Histogram { points, .. } => points.iter().find_map(|p| find(&p.attributes)),
            MetricData::ExponentialHistogram { points, .. } => {
                points.iter().find_map(|p| find(&p.attributes))
            }
            MetricData::Summary { points } => points.iter().find_map(|p| find(&p.attributes)),
        }
    }
}

/// OTLP's `Metric.data` oneof. `temporality` is OTLP's `AggregationTemporality`: 1 delta,
/// 2 cumulative, 0 unspecified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricData {
    /// The oneof was not set; OTLP allows it.
    Empty,
    Gauge {
        points: Vec<NumberPoint>,
    },
    Sum {
        points: Vec<NumberPoint>,
        temporality: i32,
        monotonic: bool,
    },
    Histogram {
        points: Vec<HistogramPoint>,
        temporality: i32,
    },
    ExponentialHistogram {
        points: Vec<ExponentialHistogramPoint>,
        temporality: i32,
    },
    Summary {
        points: Vec<SummaryPoint>,
    },
}

/// A number as OTLP carries it: an integer, a double, or not set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Number {
    Empty,
    Int(i64),
    Double(f64),
}

impl Number {
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Number::Empty => None,
            Number::Int(i) => Some(i as f64),
            Number::Double(d) => Some(d),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    pub filtered_attributes: Vec<KeyValue>,
    pub time_unix_nano: UnixNanos,
    pub value: Number,
    pub span_id: Vec<u8>,
    pub trace_id: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: UnixNanos,
    pub time_unix_nano: UnixNanos,
    pub value: Number,
    pub exemplars: Vec<Exemplar>,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: UnixNanos,
    pub time_unix_nano: UnixNanos,
    pub count: u64,
    pub sum: Option<f64>,
    pub bucket_counts: Vec<u64>,
    pub explicit_bounds: Vec<f64>,
    pub exemplars: Vec<Exemplar>,
    pub flags: u32,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    pub offset: i32,
    pub bucket_counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExponentialHistogramPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: UnixNanos,
    pub time_unix_nano: UnixNanos,
    pub count: u64,
    pub sum: Option<f64>,
    pub scale: i32,
    pub zero_count: u64,
    pub positive: Option<Buckets>,
    pub negative: Option<Buckets>,
    pub flags: u32,
    pub exemplars: Vec<Exemplar>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub zero_threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPoint {
    pub attributes: Vec<KeyValue>,
    pub start_time_unix_nano: UnixNanos,
    pub time_unix_nano: UnixNanos,
    pub count: u64,
    pub sum: f64,
    pub quantile_values: Vec<Quantile>,
    pub flags: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeMetrics {
    pub scope: Scope,
    pub schema_url: String,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceMetrics {
    pub resource: Resource,
    pub schema_url: String,
    pub scope_metrics: Vec<ScopeMetrics>,
}

impl ResourceMetrics {
    pub fn metric_count(&self) -> usize {
        self.scope_metrics.iter().map(|s| s.metrics.len()).sum()
    }
}
