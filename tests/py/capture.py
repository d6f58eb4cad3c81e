"""Captures what the OpenTelemetry Python SDK sends over OTLP/HTTP protobuf, byte for byte.

Starts a tiny OTLP/HTTP receiver on 127.0.0.1 (port 0) that appends each request body to the
file given as argv[1], prefixed by its length (4-byte big-endian: the OpenTelemetry Collector
file exporter's proto format), then has the SDK report an agent registering, a feature request
and some work. The result is a recorded trace that `spanfold replay` reads as it is.
"""
import http.server
import os
import struct
import sys
import threading

out_path = sys.argv[1]
out = open(out_path, "wb")
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            out.write(struct.pack(">I", len(body)))
            out.write(body)
            out.flush()
        # An empty ExportTraceServiceResponse: full success.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
os.environ["OTEL_RESOURCE_ATTRIBUTES"] = "agent.id=sdk-agent,service.name=sdk-agent"

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("spanfold-capture")

with tracer.start_as_current_span(
    "agent.registration",
    attributes={"agent.languages": ["python", "rust"], "agent.max_concurrent_features": 2},
):
    pass
with tracer.start_as_current_span(
    "feature.request",
    attributes={"feature.name": "sdk-feature", "feature.priority": "high", "feature.languages": ["python"]},
):
    pass
with tracer.start_as_current_span("agent.communication", attributes={"message": "ready"}):
    pass
# Not in spanfold's registry: kept, and a sign of life.
with tracer.start_as_current_span("tool.call", attributes={"tool.name": "pytest"}) as span:
    span.add_event("started", {"attempt": 1})
provider.shutdown()
server.shutdown()
out.close()
