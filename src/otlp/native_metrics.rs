//! OTLP protobuf metric exports decoded straight into the model, with the span decoder's wire
//! primitives and budget (`native`). Field numbers are those of opentelemetry-proto's metrics
//! messages. Repeated numbers are read packed or not, as protobuf allows either.

use super::native::{Budget, Fields, R, Value, bad, key_value, resource, resource_groups, scope};
use super::{DecodeError, Decoded};
use crate::model::{
    Buckets, Exemplar, ExponentialHistogramPoint, HistogramPoint, Metric, MetricData, Number,
    NumberPoint, Quantile, ResourceMetrics, ScopeMetrics, SummaryPoint,
};

/// Decodes an ExportMetricsServiceRequest.
pub fn decode_request(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut out = Decoded::default();
    resource_groups(body, "resource_metrics", |buf, b| {
        let rm = resource_metrics(buf, b)?;
        if !rm.scope_metrics.is_empty() {
            out.resource_metrics.push(rm);
        }
        Ok(())
    })?;
    out.within_limit()
}

fn resource_metrics(buf: &[u8], b: &mut Budget) -> R<ResourceMetrics> {
    let mut rm = ResourceMetrics::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => resource(v.bytes("resource")?, &mut rm.resource, b)?,
            2 => {
                let sm = scope_metrics(v.bytes("scope_metrics")?, b)?;
                if !sm.metrics.is_empty() {
                    rm.scope_metrics.push(sm);
                }
            }
            3 => rm.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(rm)
}

fn scope_metrics(buf: &[u8], b: &mut Budget) -> R<ScopeMetrics> {
    let mut sm = ScopeMetrics::default();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => scope(v.bytes("scope")?, &mut sm.scope, b)?,
            2 => sm.metrics.push(metric(v.bytes("metrics")?, b)?),
            3 => sm.schema_url = v.string("schema_url")?,
            _ => {}
        }
    }
    Ok(sm)
}

fn metric(buf: &[u8], b: &mut Budget) -> R<Metric> {
    b.take()?;
    let mut m = Metric {
        name: String::new(),
        description: String::new(),
        unit: String::new(),
        metadata: Vec::new(),
        data: MetricData::Empty,
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => m.name = v.string("name")?,
            2 => m.description = v.string("description")?,
            3 => m.unit = v.string("unit")?,
            5 => m.data = number_data(v.bytes("gauge")?, b, false)?,
            7 => m.data = number_data(v.bytes("sum")?, b, true)?,
            9 => m.data = histogram(v.bytes("histogram")?, b)?,
            10 => m.data = exponential_histogram(v.bytes("exponential_histogram")?, b)?,
            11 => m.data = summary(v.bytes("summary")?, b)?,
            12 => m.metadata.push(key_value(v.bytes("metadata")?, 0, b)?),
            _ => {}
        }
    }
    Ok(m)
}

/// A Gauge, or a Sum (`sum`: with temporality and monotonicity).
fn number_data(buf: &[u8], b: &mut Budget, sum: bool) -> R<MetricData> {
    let (mut points, mut temporality, mut monotonic) = (Vec::new(), 0, false);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => points.push(number_point(v.bytes("data_points")?, b)?),
            2 => temporality = v.varint("aggregation_temporality")? as i32,
            3 => monotonic = v.varint("is_monotonic")? != 0,
            _ => {}
        }
    }
    Ok(match sum {
        true => MetricData::Sum {
            points,
            temporality,
            monotonic,
        },
        false => MetricData::Gauge { points },
    })
}

fn number_point(buf: &[u8], b: &mut Budget) -> R<NumberPoint> {
    b.take()?;
    let mut p = NumberPoint {
        attributes: Vec::new(),
        start_time_unix_nano: 0,
        time_unix_nano: 0,
        value: Number::Empty,
        exemplars: Vec::new(),
        flags: 0,
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            2 => p.start_time_unix_nano = v.fixed64("start_time_unix_nano")?,
            3 => p.time_unix_nano = v.fixed64("time_unix_nano")?,
            4 => p.value = Number::Double(f64::from_bits(v.fixed64("as_double")?)),
            5 => p.exemplars.push(exemplar(v.bytes("exemplars")?, b)?),
            6 => p.value = Number::Int(v.fixed64("as_int")? as i64),
            7 => p.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            8 => p.flags = v.u32("flags")?,
            _ => {}
        }
    }
    Ok(p)
}

fn exemplar(buf: &[u8], b: &mut Budget) -> R<Exemplar> {
    b.take()?;
    let mut e = Exemplar {
        filtered_attributes: Vec::new(),
        time_unix_nano: 0,
        value: Number::Empty,
        span_id: Vec::new(),
        trace_id: Vec::new(),
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            2 => e.time_unix_nano = v.fixed64("time_unix_nano")?,
            3 => e.value = Number::Double(f64::from_bits(v.fixed64("as_double")?)),
            4 => e.span_id = v.bytes("span_id")?.to_vec(),
            5 => e.trace_id = v.bytes("trace_id")?.to_vec(),
            6 => e.value = Number::Int(v.fixed64("as_int")? as i64),
            7 => e
                .filtered_attributes
                .push(key_value(v.bytes("filtered_attributes")?, 0, b)?),
            _ => {}
        }
    }
    Ok(e)
}

fn histogram(buf: &[u8], b: &mut Budget) -> R<MetricData> {
    let (mut points, mut temporality) = (Vec::new(), 0);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => points.push(histogram_point(v.bytes("data_points")?, b)?),
            2 => temporality = v.varint("aggregation_temporality")? as i32,
            _ => {}
        }
    }
    Ok(MetricData::Histogram {
        points,
        temporality,
    })
}

fn histogram_point(buf: &[u8], b: &mut Budget) -> R<HistogramPoint> {
    b.take()?;
    let mut p = HistogramPoint {
        attributes: Vec::new(),
        start_time_unix_nano: 0,
        time_unix_nano: 0,
        count: 0,
        sum: None,
        bucket_counts: Vec::new(),
        explicit_bounds: Vec::new(),
        exemplars: Vec::new(),
        flags: 0,
        min: None,
        max: None,
    };
    let double = |v: Value<'_>, field| v.fixed64(field).map(f64::from_bits);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            2 => p.start_time_unix_nano = v.fixed64("start_time_unix_nano")?,
            3 => p.time_unix_nano = v.fixed64("time_unix_nano")?,
            4 => p.count = v.fixed64("count")?,
            5 => p.sum = Some(double(v, "sum")?),
            6 => fixed64s(v, "bucket_counts", b, |x| p.bucket_counts.push(x))?,
            7 => fixed64s(v, "explicit_bounds", b, |x| {
                p.explicit_bounds.push(f64::from_bits(x))
            })?,
            8 => p.exemplars.push(exemplar(v.bytes("exemplars")?, b)?),
            9 => p.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            10 => p.flags = v.u32("flags")?,
            11 => p.min = Some(double(v, "min")?),
            12 => p.max = Some(double(v, "max")?),
            _ => {}
        }
    }
    Ok(p)
}

fn exponential_histogram(buf: &[u8], b: &mut Budget) -> R<MetricData> {
    let (mut points, mut temporality) = (Vec::new(), 0);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => points.push(exponential_point(v.bytes("data_points")?, b)?),
            2 => temporality = v.varint("aggregation_temporality")? as i32,
            _ => {}
        }
    }
    Ok(MetricData::ExponentialHistogram {
        points,
        temporality,
    })
}

fn exponential_point(buf: &[u8], b: &mut Budget) -> R<ExponentialHistogramPoint> {
    b.take()?;
    let mut p = ExponentialHistogramPoint {
        attributes: Vec::new(),
        start_time_unix_nano: 0,
        time_unix_nano: 0,
        count: 0,
        sum: None,
        scale: 0,
        zero_count: 0,
        positive: None,
        negative: None,
        flags: 0,
        exemplars: Vec::new(),
        min: None,
        max: None,
        zero_threshold: 0.0,
    };
    let double = |v: Value<'_>, field| v.fixed64(field).map(f64::from_bits);
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => p.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            2 => p.start_time_unix_nano = v.fixed64("start_time_unix_nano")?,
            3 => p.time_unix_nano = v.fixed64("time_unix_nano")?,
            4 => p.count = v.fixed64("count")?,
            5 => p.sum = Some(double(v, "sum")?),
            6 => p.scale = zigzag(v.varint("scale")?),
            7 => p.zero_count = v.fixed64("zero_count")?,
            8 => p.positive = Some(buckets(v.bytes("positive")?, b)?),
            9 => p.negative = Some(buckets(v.bytes("negative")?, b)?),
            10 => p.flags = v.u32("flags")?,
            11 => p.exemplars.push(exemplar(v.bytes("exemplars")?, b)?),
            12 => p.min = Some(double(v, "min")?),
            13 => p.max = Some(double(v, "max")?),
            14 => p.zero_threshold = double(v, "zero_threshold")?,
            _ => {}
        }
    }
    Ok(p)
}

/// A `sint32`: zigzag-encoded.
fn zigzag(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn buckets(buf: &[u8], b: &mut Budget) -> R<Buckets> {
    let mut out = Buckets {
        offset: 0,
        bucket_counts: Vec::new(),
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            1 => out.offset = zigzag(v.varint("offset")?),
            2 => match v {
                Value::Varint(x) => out.bucket_counts.push(x),
                v => {
                    let mut packed = Fields::new(v.bytes("bucket_counts")?);
                    while !packed.is_empty() {
                        b.take()?;
                        out.bucket_counts.push(packed.varint()?);
                    }
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

fn summary(buf: &[u8], b: &mut Budget) -> R<MetricData> {
    let mut points = Vec::new();
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        if tag == 1 {
            points.push(summary_point(v.bytes("data_points")?, b)?);
        }
    }
    Ok(MetricData::Summary { points })
}

fn summary_point(buf: &[u8], b: &mut Budget) -> R<SummaryPoint> {
    b.take()?;
    let mut p = SummaryPoint {
        attributes: Vec::new(),
        start_time_unix_nano: 0,
        time_unix_nano: 0,
        count: 0,
        sum: 0.0,
        quantile_values: Vec::new(),
        flags: 0,
    };
    let mut f = Fields::new(buf);
    while let Some((tag, v)) = f.next_field()? {
        match tag {
            2 => p.start_time_unix_nano = v.fixed64("start_time_unix_nano")?,
            3 => p.time_unix_nano = v.fixed64("time_unix_nano")?,
            4 => p.count = v.fixed64("count")?,
            5 => p.sum = f64::from_bits(v.fixed64("sum")?),
            6 => {
                b.take()?;
                let mut q = Quantile {
                    quantile: 0.0,
                    value: 0.0,
                };
                let mut qf = Fields::new(v.bytes("quantile_values")?);
                while let Some((tag, v)) = qf.next_field()? {
                    match tag {
                        1 => q.quantile = f64::from_bits(v.fixed64("quantile")?),
                        2 => q.value = f64::from_bits(v.fixed64("value")?),
                        _ => {}
                    }
                }
                p.quantile_values.push(q);
            }
            7 => p.attributes.push(key_value(v.bytes("attributes")?, 0, b)?),
            8 => p.flags = v.u32("flags")?,
            _ => {}
        }
    }
    Ok(p)
}

/// A repeated fixed64 (or double) field: one value, or a packed run of them.
fn fixed64s(v: Value<'_>, field: &'static str, b: &mut Budget, mut push: impl FnMut(u64)) -> R<()> {
    match v {
        Value::Fixed64(x) => {
            push(x);
            Ok(())
        }
        v => {
            let bytes = v.bytes(field)?;
            if bytes.len() % 8 != 0 {
                return Err(bad("packed 64-bit values of a wrong length", field));
            }
            for chunk in bytes.chunks_exact(8) {
                b.take()?;
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                push(u64::from_le_bytes(word));
            }
            Ok(())
        }
    }
}
