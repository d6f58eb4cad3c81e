"""A coding agent that talks to spanfold only through the OpenTelemetry Python SDK.

Configured entirely by the standard variables: OTEL_EXPORTER_OTLP_PROTOCOL (grpc or
http/protobuf), OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS and
OTEL_RESOURCE_ATTRIBUTES=agent.id=... . It registers, waits until spanfold assigns it a
feature (polling the API given as argv[1]), then reports progress on it.
"""
import json
import os
import sys
import time
import urllib.request

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
elif protocol == "http/protobuf":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
else:
    sys.exit(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol}")

resource = Resource.create()  # reads OTEL_RESOURCE_ATTRIBUTES
agent_id = resource.attributes["agent.id"]
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("spanfold-test-agent")

with tracer.start_as_current_span(
    "agent.registration",
    attributes={"agent.languages": ["python"], "agent.max_concurrent_features": 1},
):
    pass

api = sys.argv[1]
deadline = time.time() + 30
while True:
    with urllib.request.urlopen(f"{api}/api/agents/{agent_id}") as answer:
        doc = json.load(answer)
    if doc["success"] and doc["data"]["assignments"]:
        break
    if time.time() > deadline:
        sys.exit(f"{agent_id} got no assignment: {doc}")
    time.sleep(0.1)

with tracer.start_as_current_span(
    "agent.work_progress",
    attributes={"agent.state": "working", "work.progress_percentage": 50.0, "work.files_modified": 2},
):
    pass
# Not in spanfold's registry: kept in the log, and a sign of life.
with tracer.start_as_current_span("tool.call", attributes={"tool.name": "pytest"}):
    pass
provider.shutdown()
print(json.dumps({"agent": agent_id, "feature": doc["data"]["assignments"][0]["feature_name"]}))
