"""A coding agent for the tests, launched by `spanfold agents run --profile claude`: it reads
the prompt file it is given (argv[1]), does its "work" in the worktree it was started in —
a file, committed — and sends Claude Code's events and metrics through the OpenTelemetry
Python SDK, configured only by the environment the launcher gave it. With FAKE_AGENT_SLEEP it
first sleeps that many seconds (a long tool call), printing that it started (with
FAKE_AGENT_SPEND_FIRST, after sending its telemetry); with FAKE_AGENT_EXPECT_TOKEN it fails
unless its OTLP headers carry that token.
"""
import os
import subprocess
import sys
import time

prompt = open(sys.argv[1], encoding="utf-8").read()
feature = os.environ["SPANFOLD_FEATURE"]
print(f"fake agent for {os.environ['SPANFOLD_AGENT']} on {feature} in {os.getcwd()}", flush=True)
expected = os.environ.get("FAKE_AGENT_EXPECT_TOKEN")
if expected is not None:
    header = os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    if header != f"authorization=Bearer%20{expected}":
        sys.exit("the launcher did not hand this agent its own token")
import claude_telemetry  # noqa: E402  (reads the launcher's OTEL_* variables)

# With FAKE_AGENT_SPEND_FIRST its LLM request (and its cost) is reported before the pause.
spent_first = bool(os.environ.get("FAKE_AGENT_SPEND_FIRST"))
if spent_first:
    print(claude_telemetry.send(1), flush=True)
pause = float(os.environ.get("FAKE_AGENT_SLEEP", "0"))
if pause:
    print("working...", flush=True)
    time.sleep(pause)
with open("WORK.md", "a", encoding="utf-8") as f:
    f.write(prompt.splitlines()[0] + "\n")
subprocess.run(["git", "add", "WORK.md"], check=True)
subprocess.run(["git", "commit", "-q", "-m", f"work on {feature}"], check=True)

if not spent_first:
    print(claude_telemetry.send(1), flush=True)
