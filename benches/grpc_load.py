"""OTLP/gRPC load from a client spanfold did not write: gRPC's own C core (the grpcio package)
sends ExportTraceServiceRequests encoded by the OpenTelemetry project's opentelemetry-proto
package, the same shape as spanfold-load's (progress reports with ten attributes from eight
agents, registered first). So a receiver is measured under a client that is no one's but gRPC's.

Requests are encoded once; each export writes its number into the first eight bytes of every
span's trace id, so no two exports repeat a span. Prints one JSON object with the keys
spanfold-load prints (spans/s, latency percentiles, the receiver's CPU per million spans and
peak RSS).
"""

import argparse
import json
import os
import threading
import time

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MARK = bytes([0xA5] * 16)


def kv(key, value):
    if isinstance(value, str):
        v = common_pb2.AnyValue(string_value=value)
    elif isinstance(value, float):
        v = common_pb2.AnyValue(double_value=value)
    else:
        v = common_pb2.AnyValue(int_value=value)
    return common_pb2.KeyValue(key=key, value=v)


def request(spans):
    resource = resource_pb2.Resource(attributes=[kv("service.name", "grpc-load")])
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)]
            )
        ]
    )


def template(batch, agents):
    spans = []
    for i in range(batch):
        spans.append(
            trace_pb2.Span(
                trace_id=MARK,
                span_id=bytes([0xF0, 0x0D]) + i.to_bytes(2, "big") + bytes([0xBE, 0xEF, 0xCA, 0xFE]),
                name="agent.work_progress",
                kind=1,
                start_time_unix_nano=1_700_000_000_000_000_000,
                end_time_unix_nano=1_700_000_000_100_000_000,
                attributes=[
                    kv("agent.id", f"load-agent-{i % agents:03}"),
                    kv("agent.state", "idle"),
                    kv("work.progress_percentage", float(i % 100)),
                    kv("work.files_modified", 3),
                    kv("work.lines_added", 120),
                    kv("work.duration_ms", 42_000),
                    kv("code.filepath", "src/reducer.rs"),
                    kv("vcs.ref.head.name", "spanfold/feature"),
                    kv("tool.name", "cargo test"),
                    kv("gen_ai.usage.output_tokens", 512),
                ],
            )
        )
    return request(spans).SerializeToString()


def registrations(agents):
    spans = [
        trace_pb2.Span(
            trace_id=bytes([0x5A] * 8) + os.getpid().to_bytes(8, "big"),
            span_id=(a + 1).to_bytes(8, "big"),
            name="agent.registration",
            kind=1,
            attributes=[kv("agent.id", f"load-agent-{a:03}")],
        )
        for a in range(agents)
    ]
    return request(spans).SerializeToString()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--watch-pid", type=int, required=True)
    a = p.parse_args()

    body = template(a.batch, a.agents)
    offsets = []
    at = body.find(MARK)
    while at >= 0:
        offsets.append(at)
        at = body.find(MARK, at + len(MARK))
    assert len(offsets) == a.batch, "one marker per span"

    channel = grpc.insecure_channel(a.endpoint)
    export = channel.unary_unary(METHOD)
    export(registrations(a.agents), timeout=30)

    counter = iter(range(1, 1 << 62))
    lock = threading.Lock()
    state = {"measuring": False, "stop": False}
    latencies, errors, done = [], [0], [0]

    def worker():
        ch = grpc.insecure_channel(a.endpoint)
        call = ch.unary_unary(METHOD)
        while not state["stop"]:
            with lock:
                n = next(counter)
            buf = bytearray(body)
            stamp = n.to_bytes(8, "big")
            for o in offsets:
                buf[o:o + 8] = stamp
            started = time.perf_counter()
            try:
                call(bytes(buf), timeout=10)
                ok = True
            except grpc.RpcError:
                ok = False
            took = time.perf_counter() - started
            if state["measuring"]:
                with lock:
                    if ok:
                        latencies.append(took)
                        done[0] += 1
                    else:
                        errors[0] += 1
        ch.close()

    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # warm-up
    cpu0, t0 = cpu_seconds(a.watch_pid), time.perf_counter()
    state["measuring"] = True
    time.sleep(a.seconds)
    state["measuring"] = False
    cpu1, t1 = cpu_seconds(a.watch_pid), time.perf_counter()
    state["stop"] = True
    for t in threads:
        t.join()
    channel.close()

    spans = done[0] * a.batch
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else 0.0
    print(json.dumps({
        "client": f"grpcio {grpc.__version__}",
        "exports": done[0],
        "spans_acknowledged": spans,
        "spans_per_second": spans / (t1 - t0),
        "latency_ms_p50": pct(0.50),
        "latency_ms_p99": pct(0.99),
        "errors": errors[0],
        "receiver_cpu_seconds_per_million_spans": (cpu1 - cpu0) / spans * 1e6 if spans else 0.0,
        "receiver_peak_rss_mb": peak_rss_mb(a.watch_pid),
    }))


if __name__ == "__main__":
    main()
