"""Claude Code's telemetry, shaped as its documentation describes it, sent through the
OpenTelemetry Python SDK's log and metric exporters (nothing of spanfold's own).

Configured by the standard variables: OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf),
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES (agent.id=...). Events are log records
whose body is "claude_code.<name>" and whose attribute event.name is "<name>", each carrying
session.id and prompt.id; metrics are delta counters. argv[1] says how many times to send the
same events (a retry after a lost answer resends the same records). Prints what it sent.
"""
import json
import os
import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
elif protocol == "http/protobuf":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
else:
    sys.exit(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol}")

resource = Resource.create({"service.name": "claude-code", "service.version": "2.0.0"})
SESSION = "8f2c1e4a-session"
# Fixed times: a resend is the same record, as a retried export is.
T0 = 1_764_000_000_000_000_000

EVENTS = [
    ("user_prompt", {"prompt_length": 42}),
    (
        "api_request",
        {
            "model": "claude-sonnet-4-5",
            "cost_usd": 0.0123,
            "input_tokens": 1200,
            "output_tokens": 340,
            "cache_read_tokens": 800,
            "cache_creation_tokens": 0,
            "duration_ms": 2100,
        },
    ),
    ("tool_result", {"tool_name": "Edit", "success": "true", "duration_ms": 15}),
]

def send(sends=1):
    """Sends the events `sends` times, then the metrics once; returns what was sent."""
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
    logger = logs.get_logger("com.anthropic.claude_code.events", "2.0.0")
    for _ in range(sends):
        for i, (name, attrs) in enumerate(EVENTS):
            logger.emit(
                timestamp=T0 + i * 1_000_000,
                observed_timestamp=T0 + i * 1_000_000,
                body=f"claude_code.{name}",
                attributes={"event.name": name, "session.id": SESSION, "prompt.id": "p-1", **attrs},
            )
    logs.shutdown()

    exporter = OTLPMetricExporter(preferred_temporality={Counter: AggregationTemporality.DELTA})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("com.anthropic.claude_code", "2.0.0")
    tokens = meter.create_counter("claude_code.token.usage", unit="tokens")
    cost = meter.create_counter("claude_code.cost.usage", unit="USD")
    common = {"session.id": SESSION, "model": "claude-sonnet-4-5"}
    tokens.add(1200, {**common, "type": "input"})
    tokens.add(340, {**common, "type": "output"})
    cost.add(0.0123, common)
    meters.shutdown()  # exports what was collected, once

    return {"log_records": len(EVENTS) * sends, "metrics": 2}


if __name__ == "__main__":
    print(json.dumps(send(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
