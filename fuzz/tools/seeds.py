#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/TARGET/) from the replay fixtures.

    python3 fuzz/tools/seeds.py

Needs only python3 (and PyYAML for the reducer's programs, which follow spans/*.yaml). OTLP/JSON
lines are re-encoded as OTLP protobuf by the small encoder below (field numbers of
opentelemetry-proto's trace, common and resource messages), so the protobuf seeds carry the
same real spans as the JSON ones. Rerun it after the fixtures or the reducer target's input
format change; the files it writes are small and deterministic.
"""

import base64
import gzip
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "replay-fixtures"
SEEDS = ROOT / "fuzz" / "seeds"


# ---- OTLP/JSON -> OTLP protobuf ------------------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def ld(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def vint(field, n):
    return key(field, 0) + varint(int(n))


def fixed64(field, n):
    return key(field, 1) + struct.pack("<Q", int(n))


def fixed32(field, n):
    return key(field, 5) + struct.pack("<I", int(n))


def string(field, s):
    return ld(field, s.encode())


def get(obj, camel, snake=None):
    v = obj.get(camel)
    if v is None and snake:
        v = obj.get(snake)
    return v


def any_value(v):
    out = b""
    if "stringValue" in v:
        out = string(1, v["stringValue"])
    elif "boolValue" in v:
        out = vint(2, 1 if v["boolValue"] else 0)
    elif "intValue" in v:
        out = vint(3, int(v["intValue"]))
    elif "doubleValue" in v:
        d = v["doubleValue"]
        d = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.get(d, d)
        out = key(4, 1) + struct.pack("<d", float(d))
    elif "arrayValue" in v:
        out = ld(5, b"".join(ld(1, any_value(x)) for x in v["arrayValue"].get("values", [])))
    elif "kvlistValue" in v:
        out = ld(6, b"".join(ld(1, key_value(x)) for x in v["kvlistValue"].get("values", [])))
    elif "bytesValue" in v:
        out = ld(7, base64.b64decode(v["bytesValue"]))
    return out


def key_value(kv):
    return string(1, kv["key"]) + ld(2, any_value(kv.get("value") or {}))


def attrs(field, obj):
    return b"".join(ld(field, key_value(kv)) for kv in obj.get("attributes", []))


def span(s):
    out = ld(1, bytes.fromhex(s["traceId"])) + ld(2, bytes.fromhex(s["spanId"]))
    if s.get("traceState"):
        out += string(3, s["traceState"])
    if s.get("parentSpanId"):
        out += ld(4, bytes.fromhex(s["parentSpanId"]))
    out += string(5, s.get("name", ""))
    kind = s.get("kind", 0)
    if isinstance(kind, str):
        kind = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
                "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"].index(kind)
    out += vint(6, kind)
    out += fixed64(7, get(s, "startTimeUnixNano", "start_time_unix_nano") or 0)
    out += fixed64(8, get(s, "endTimeUnixNano", "end_time_unix_nano") or 0)
    out += attrs(9, s)
    for e in s.get("events", []):
        out += ld(11, fixed64(1, e.get("timeUnixNano", 0)) + string(2, e.get("name", "")) + attrs(3, e))
    for link in s.get("links", []):
        out += ld(13, ld(1, bytes.fromhex(link["traceId"])) + ld(2, bytes.fromhex(link["spanId"]))
                  + attrs(4, link) + fixed32(6, link.get("flags", 0)))
    st = s.get("status") or {}
    if st:
        code = st.get("code", 0)
        if isinstance(code, str):
            code = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"].index(code)
        out += ld(15, string(2, st.get("message", "")) + vint(3, code))
    if s.get("flags"):
        out += fixed32(16, s["flags"])
    return out


def request(lines, meta=False):
    """One ExportTraceServiceRequest holding the resource spans of all `lines`."""
    out = b""
    for line in lines:
        for rs in get(line, "resourceSpans", "resource_spans") or []:
            body = ld(1, attrs(1, rs.get("resource") or {}))
            for ss in get(rs, "scopeSpans", "scope_spans") or []:
                sc = ss.get("scope") or {}
                scope = string(1, sc.get("name", "")) + string(2, sc.get("version", "")) + attrs(3, sc)
                body += ld(2, ld(1, scope) + b"".join(ld(2, span(s)) for s in ss.get("spans", [])))
            out += ld(1, body)
    if meta:
        m = lines[0]["spanfold"]
        out += ld(1000, vint(1, int(m["firstSeq"])) + vint(2, int(m["receivedAt"])))
    return out


def lines_of(name):
    return [json.loads(l) for l in (FIXTURES / name).read_text().splitlines() if l.strip()]


def merged_json(name):
    """All lines of a fixture as one OTLP/JSON body, without spanfold's placement."""
    spans = [rs for line in lines_of(name) for rs in line["resourceSpans"]]
    return json.dumps({"resourceSpans": spans}, separators=(",", ":")).encode()


def gz(b):
    return gzip.compress(b, mtime=0)


# ---- the reducer target's programs -----------------------------------------------------------

def reducer_programs():
    import yaml

    specs = {}
    for f in sorted((ROOT / "spans").glob("*.yaml")):
        for g in yaml.safe_load(f.read_text())["groups"]:
            specs[g["id"]] = g["attributes"]
    names = sorted(specs)  # the registry's order (a BTreeMap)
    agents = ["a0", "a1", "a2", "agent-3"]
    features = ["f0", "f1", "f2", "feature-3"]
    ints = [0, 1, 2, 3, 5, -1, 8, 11, 600, 1024, 1025]
    caps = ["rust", "go", "python"]

    def span(name, **values):
        """Op 0 (a registry span): spec index, then per attribute a flags byte and its value.
        `values` maps attribute ids (dots as '__') to the value's bytes."""
        out = [0x00, names.index(name)]
        for a in specs[name]:
            v = values.get(a["id"].replace(".", "__"))
            required = a["requirement_level"] == "required"
            if v is None:
                out.append(0x10 if required else 0x01)
            else:
                out.append(0x02)
                out += v
        return out

    def lst(*items):
        return [len(items)] + [caps.index(i) for i in items]

    register = lambda a, m, *langs: span(
        "agent.registration", agent__id=[agents.index(a)],
        agent__languages=lst(*langs), agent__max_concurrent_features=[ints.index(m)])
    request = lambda f, *langs: span(
        "feature.request", feature__name=[features.index(f)], feature__languages=lst(*langs))
    progress = lambda a, i: [0x07, agents.index(a), i, 0x00, 0x02]  # state index among legal ones
    validation = lambda a, passed: [0x09, agents.index(a), 0x00, 0x00 if passed else 0x01]
    cycle = lambda *actions: [0x0A, 0x00] + list(actions)  # 0 created, 1 reused, 2 failed
    merge = lambda result, *extra: [0x0C, 0x00, ["started", "gate_started", "gate_failed", "merged",
                                                 "conflicted", "deferred", "failed"].index(result)] + list(extra)
    init = span("coordination.init", coordination__repo=[3], coordination__base_branch=[2],
                coordination__worktrees_dir=[4], coordination__lease_seconds=[ints.index(1)])
    status = [0x0F, 0x00, 0x01]
    unregistered = [0x00, len(names), 0x00, agents.index("a2")]  # tool.call naming its agent

    happy = ([0x00] + init + register("a0", 1, "rust") + request("f0", "rust") + request("f1")
             + cycle(0) + progress("a0", 1) + progress("a0", 1) + validation("a0", True)
             + merge("started") + merge("merged") + [0x0E, 0x00, 0x00] + cycle(0) + status)
    conflict = ([0x05] + register("a0", 2, "rust") + register("a1", 1, "go")
                + request("f0") + request("f1", "go") + request("f2", "rust") + cycle(0, 1, 0)
                + progress("a1", 1) + progress("a1", 1) + validation("a1", True)
                + merge("conflicted", 0x02, 0x00, 0x01) + validation("a1", True)
                + merge("gate_failed", 0x01) + validation("a1", True) + merge("merged") + status)
    lease = ([0x30] + init + register("a0", 1) + request("f0") + cycle(0)
             + [0x8D, 0x03]  # a big time step, then the lease verdicts
             + span("agent.reset", agent__id=[0]) + register("a1", 1) + cycle(1)
             + span("feature.cancel", feature__name=[0]) + [0x0E, 0x00, 0x01] + status)
    failed = ([0x02] + register("a2", 3, "python", "go") + request("f0", "python")
              + request("f1", "go", "python") + cycle(2, 0) + unregistered + [0x0E, 0x00, 0x00]
              + progress("a2", 1) + span("agent.work_progress", agent__id=[2], agent__state=[0xFF])
              + [0x0F, 0x01, 0x02, 0x01])
    return {
        "happy-path": bytes(happy),
        "conflict-and-gate": bytes(conflict),
        "lease-reset-cancel": bytes(lease),
        "create-failed-and-garbage": bytes(failed),
        "every-op": bytes(range(0, 256, 3)),
    }


# ---- writing --------------------------------------------------------------------------------

def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    assert len(data) < 64 * 1024, (target, name, len(data))
    (d / name).write_bytes(data)


# The OTLP/JSON rules the decoder accepts: upper-case hex, numbers as strings, enum names,
# snake_case keys, unknown fields, every value type.
RULES = json.dumps({"resource_spans": [{"resource": {
        "attributes": [{"key": "agent.id", "value": {"stringValue": "a1"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "", "name": "agent.work_progress", "kind": "SPAN_KIND_CLIENT",
            "startTimeUnixNano": "1544712660000000000", "end_time_unix_nano": 1544712661000000000,
            "unknownField": {"x": 1},
            "attributes": [
                {"key": "agent.state", "value": {"stringValue": "working"}},
                {"key": "work.files_modified", "value": {"intValue": "8"}},
                {"key": "work.progress_percentage", "value": {"doubleValue": "NaN"}},
                {"key": "l", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {}]}}},
                {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"boolValue": True}}]}}},
                {"key": "b", "value": {"bytesValue": "AQI="}}],
            "events": [{"timeUnixNano": "1", "name": "e", "attributes": []}],
            "links": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b175"}],
            "status": {"code": "STATUS_CODE_ERROR", "message": "m"}}]}]}]}).encode()


def main():
    capture = (FIXTURES / "python-sdk-capture.binpb").read_bytes()
    messages, i = [], 0
    while i < len(capture):
        n = int.from_bytes(capture[i:i + 4], "big")
        messages.append(capture[i + 4:i + 4 + n])
        i += 4 + n
    for n, m in enumerate(messages):
        write("otlp_proto", f"sdk-capture-{n}", b"\x00" + m)
    write("otlp_proto", "sdk-capture-0-gzip", b"\x01" + gz(messages[0]))
    write("otlp_proto", "sdk-capture-1-gzipped-here", b"\x02" + messages[1])
    demo = lines_of("demo.jsonl")
    write("otlp_proto", "demo-feature-requests", b"\x00" + request([demo[1]]))
    write("otlp_proto", "demo-cycle-with-placement", b"\x03" + request([demo[5]], meta=True))
    # Whole traces in one export, folded as the coordinator's (origin bit set).
    write("otlp_proto", "lease-expiry-all", b"\x80" + request(lines_of("lease-expiry.jsonl")))
    write("otlp_proto", "conflict-all-gzip", b"\x81" + gz(request(lines_of("conflict.jsonl"))))
    write("otlp_proto", "python-sdk-all", b"\x80" + request(lines_of("python-sdk.jsonl")))

    raw = (FIXTURES / "demo.jsonl").read_text().splitlines()
    for n in (0, 1, 5, 16):
        write("otlp_json", f"demo-line-{n}.json", raw[n].encode())
    write("otlp_json", "python-sdk-tool-call.json",
          (FIXTURES / "python-sdk.jsonl").read_text().splitlines()[7].encode())
    write("otlp_json", "lease-expiry-all.json", merged_json("lease-expiry.jsonl"))
    write("otlp_json", "crash-recovery-all.json", merged_json("crash-recovery.jsonl"))
    write("otlp_json", "json-rules.json", RULES)
    write("otlp_proto", "every-value-type", b"\x00" + request([json.loads(RULES)]))
    # Values nested in arrays and key-value lists, well inside the limits.
    deep = {"stringValue": "leaf"}
    for n in range(12):
        deep = {"arrayValue": {"values": [deep]}} if n % 2 else {"kvlistValue": {"values": [{"key": "k", "value": deep}]}}
    nested = json.loads(RULES)
    nested["resource_spans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append({"key": "deep", "value": deep})
    write("otlp_proto", "nested-values", b"\x00" + request([nested]))
    write("otlp_json", "empty.json", b'{"resourceSpans":[]}')

    write("names", "valid", b"agent-001\na\nuser-authentication\nv1.2_x\n0abc\n" + b"a" * 63)
    write("names", "invalid", "\n../etc\nA B\na/b\nAgent\n.hidden\n-x\na..b\nx.lock\nx.\na\\b\n"
          "a~1\na^\na:b\na?\na*\na[\n\u00e9\na@{b}\n@\n".encode() + b"a" * 64)
    write("names", "nul-and-controls", b"a\x00b\na\tb\na\x7fb\nfeature-\x1b[0m")
    write("names", "one", b"feature-3")

    for name, program in reducer_programs().items():
        write("reducer", name, program)




if __name__ == "__main__":
    main()
