"""A stand-in for an OpenTelemetry Collector's OTLP/HTTP receiver: what each export's resources
say, one JSON line per request, so a test can see what a Collector would route by.

Listens on 127.0.0.1 port 0, writes the port to argv[1] once listening, and appends to argv[2]
{"path": ..., "resources": [{attribute: value, ...}, ...]} for each protobuf export of logs,
traces or metrics. Stops when killed.
"""
import http.server
import json
import os
import sys

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

port_path, out_path = sys.argv[1], sys.argv[2]
KINDS = {
    "/v1/logs": (ExportLogsServiceRequest, "resource_logs"),
    "/v1/traces": (ExportTraceServiceRequest, "resource_spans"),
    "/v1/metrics": (ExportMetricsServiceRequest, "resource_metrics"),
}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        kind = KINDS.get(self.path)
        if kind is not None:
            request = kind[0]()
            request.ParseFromString(body)
            resources = [
                {kv.key: kv.value.string_value for kv in r.resource.attributes}
                for r in getattr(request, kind[1])
            ]
            with open(out_path, "a") as out:
                out.write(json.dumps({"path": self.path, "resources": resources}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
