"""Codex CLI's and Gemini CLI's telemetry, shaped as their documentation describes it, sent
through the OpenTelemetry Python SDK's log exporter (argv[1]: codex or gemini).

Configured by the standard variables: OTEL_EXPORTER_OTLP_PROTOCOL (grpc or http/protobuf),
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES (agent.id=...). Codex names each event
in full in event.name, its token counts on codex.sse_event when event.kind is
response.completed; Gemini CLI's events are gemini_cli.* by event.name.
"""
import json
import os
import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

# Every Codex event carries the same metadata (conversation.id, model, app.version, ...).
CODEX_META = {"conversation.id": "c-1", "model": "gpt-5-codex", "app.version": "0.46.0"}
CODEX = [
    ("codex.conversation_starts", {**CODEX_META}),
    ("codex.user_prompt", {**CODEX_META, "prompt_length": 80}),
    ("codex.sse_event", {**CODEX_META, "event.kind": "response.created"}),
    (
        "codex.sse_event",
        {
            **CODEX_META,
            "event.kind": "response.completed",
            "input_token_count": 2100,
            "output_token_count": 380,
            "cached_token_count": 1200,
            "reasoning_token_count": 64,
        },
    ),
    (
        "codex.tool_result",
        {**CODEX_META, "tool_name": "shell", "call_id": "t1", "success": "false", "duration_ms": 900},
    ),
]
GEMINI = [
    ("gemini_cli.config", {"session.id": "g-1", "model": "gemini-2.5-pro"}),
    ("gemini_cli.user_prompt", {"session.id": "g-1", "prompt_length": 60}),
    (
        "gemini_cli.api_response",
        {
            "session.id": "g-1",
            "model": "gemini-2.5-pro",
            "input_token_count": 3000,
            "output_token_count": 500,
            "cached_content_token_count": 0,
            "thoughts_token_count": 120,
        },
    ),
    ("gemini_cli.tool_call", {"session.id": "g-1", "function_name": "read_file", "success": True}),
    ("gemini_cli.file_operation", {"session.id": "g-1", "operation": "create", "lines": 12}),
]

which = sys.argv[1]
events, service = {"codex": (CODEX, "codex_cli_rs"), "gemini": (GEMINI, "gemini-cli")}[which]
logs = LoggerProvider(resource=Resource.create({"service.name": service}))
logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
logger = logs.get_logger(service)
for i, (name, attrs) in enumerate(events):
    logger.emit(timestamp=1_764_000_000_000_000_000 + i, body=name, attributes={"event.name": name, **attrs})
logs.shutdown()
print(json.dumps({"sent": len(events)}))
