"""Drives rotel (blackhole) and `spanfold serve` (durable) with spanfold-load; see vs-rotel.sh."""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the receiver exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="spanfold-vs-rotel-")
        self.count = 0

    def load(self, endpoint, pid, rate=None, seconds=None):
        a = self.args
        if a.client == "grpcio":
            cmd = [
                a.python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_load.py"),
                "--endpoint", endpoint,
                "--seconds", str(seconds or a.seconds),
                "--concurrency", str(a.concurrency),
                "--batch", str(a.batch),
                "--watch-pid", str(pid),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            return json.loads(out)
        cmd = [
            os.path.join(a.bin, "spanfold-load"),
            "--endpoint", endpoint,
            "--duration", str(seconds or a.seconds),
            "--concurrency", str(a.concurrency),
            "--batch", str(a.batch),
            "--watch-pid", str(pid),
            "--json",
        ]
        if rate:
            cmd += ["--rate", str(rate)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def rotel(self):
        self.count += 1
        grpc, http = free_port(), free_port()
        d = os.path.join(self.work, f"rotel{self.count}")
        os.makedirs(d)
        proc = subprocess.Popen(
            [
                self.args.rotel, "start", "--exporter", "blackhole",
                "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                "--otlp-http-endpoint", f"127.0.0.1:{http}",
                "--pid-file", os.path.join(d, "rotel.pid"),
                "--log-file", os.path.join(d, "rotel.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(d, "stderr"), "w"),
        )
        wait_for_port(grpc, proc)
        return proc, f"127.0.0.1:{grpc}"

    def repo(self):
        self.count += 1
        repo = os.path.join(self.work, f"repo{self.count}")
        os.makedirs(repo)
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
        with open(os.path.join(repo, "a"), "w") as f:
            f.write("x\n")
        subprocess.run(git + ["add", "a"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "init"], check=True)
        spanfold = os.path.join(self.args.bin, "spanfold")
        subprocess.run([spanfold, "agents", "init"], cwd=repo, check=True, capture_output=True)
        return repo

    def spanfold(self, repo=None):
        repo = repo or self.repo()
        advert = os.path.join(repo, ".git", "spanfold", "server.json")
        started = time.monotonic()
        proc = subprocess.Popen(
            [os.path.join(self.args.bin, "spanfold"), "serve",
             "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--manual"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(repo, "serve.log"), "w"),
        )
        while not os.path.exists(advert):
            if proc.poll() is not None:
                sys.exit(f"spanfold serve exited early; see {repo}/serve.log")
            if time.monotonic() - started > 300:
                sys.exit("spanfold serve did not start within 300 s")
            time.sleep(0.02)
        ready = time.monotonic() - started
        with open(advert) as f:
            endpoint = json.load(f)["grpc"]
        return proc, endpoint, ready

    def measure(self, who, rate=None):
        if who == "rotel":
            proc, endpoint = self.rotel()
        else:
            proc, endpoint, _ = self.spanfold()
        try:
            return self.load(endpoint, proc.pid, rate)
        finally:
            stop(proc)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def row(name, r):
    return (
        f"{name:<9} {r['spans_per_second']:>12,.0f} {r['latency_ms_p50']:>8.1f} "
        f"{r['latency_ms_p99']:>8.1f} {r.get('receiver_cpu_seconds_per_million_spans', 0):>10.2f} "
        f"{r.get('receiver_peak_rss_mb', 0):>9.1f} {r['errors']:>6}"
    )


HEADER = f"{'':<9} {'spans/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/M':>10} {'RSS MiB':>9} {'errors':>6}"


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def compare(bench, args, results):
    """The side-by-side runs, their medians and ratio, then latency at 80% of the peak."""
    for run in range(args.runs):
        # Alternate who goes first, so a drift in the machine's load hits both alike.
        order = ["rotel", "spanfold"] if run % 2 == 0 else ["spanfold", "rotel"]
        for who in order:
            results[who].append(bench.measure(who))
        print(f"\nrun {run + 1}\n{HEADER}")
        print(row("rotel", results["rotel"][-1]))
        print(row("spanfold", results["spanfold"][-1]))
    ratios = [
        s["spans_per_second"] / r["spans_per_second"]
        for s, r in zip(results["spanfold"], results["rotel"])
    ]
    print(f"\nmedians of {args.runs} runs\n{HEADER}")
    for who in ("rotel", "spanfold"):
        rs = results[who]
        print(
            f"{who:<9} {median([r['spans_per_second'] for r in rs]):>12,.0f} "
            f"{median([r['latency_ms_p50'] for r in rs]):>8.1f} "
            f"{median([r['latency_ms_p99'] for r in rs]):>8.1f} "
            f"{median([r.get('receiver_cpu_seconds_per_million_spans', 0) for r in rs]):>10.2f} "
            f"{median([r.get('receiver_peak_rss_mb', 0) for r in rs]):>9.1f} "
            f"{sum(r['errors'] for r in rs):>6}"
        )
    print(
        "ratio spanfold / rotel (spans/s, per run): "
        + ", ".join(f"{x:.2f}" for x in ratios)
        + f"; median {median(ratios):.2f}"
    )
    if args.client == "grpcio":
        # grpcio's client has no fixed schedule: the latency at 80% is spanfold-load's part.
        return
    rate = round(0.8 * median([r["spans_per_second"] for r in results["spanfold"]]))
    print(f"\nat 80% of spanfold's peak: {rate:,} spans/s offered on a fixed schedule\n{HEADER}")
    for who in ("rotel", "spanfold"):
        print(row(who, bench.measure(who, rate=rate)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--rotel", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--big-log", type=int, default=10_000_000)
    p.add_argument(
        "--client", choices=["spanfold-load", "grpcio"], default="spanfold-load",
        help="who sends the load: spanfold's generator, or gRPC's own C core (grpc_load.py)",
    )
    p.add_argument("--python", default="python3", help="a Python with grpcio and opentelemetry-proto")
    p.add_argument("--big-log-only", action="store_true", help="skip the comparison")
    args = p.parse_args()
    bench = Bench(args)
    print(f"machine: {machine()}")
    print(
        f"load: {args.client}, {args.concurrency} connections, {args.batch} spans per export "
        f"(agent.work_progress, ten attributes, eight agents), {args.seconds:g} s after 1 s of warm-up"
    )
    results = {"rotel": [], "spanfold": []}
    try:
        if args.big_log_only:
            # The empty-log figure that the large log is compared with.
            results["spanfold"].append(bench.measure("spanfold"))
        else:
            compare(bench, args, results)

        if args.big_log > 0:
            repo = bench.repo()
            subprocess.run(
                [os.path.join(args.bin, "spanfold-load"), "--offline",
                 os.path.join(repo, ".git", "spanfold"), "--spans", str(args.big_log),
                 "--batch", str(args.batch), "--json"],
                check=True, capture_output=True,
            )
            # The first open folds the whole log and writes its checkpoints; a restart opens
            # from the latest one, as every later start does. Ingest is measured after that.
            proc, _, first_ready = bench.spanfold(repo)
            stop(proc)
            proc, endpoint, ready = bench.spanfold(repo)
            try:
                r = bench.load(endpoint, proc.pid)
            finally:
                stop(proc)
            small = median([x.get("receiver_peak_rss_mb", 0) for x in results["spanfold"]])
            print(
                f"\ningesting into a log that already holds {args.big_log:,} spans "
                f"(first open, folding it all: {first_ready:.1f} s; restart to serving: {ready:.2f} s)\n{HEADER}"
            )
            print(row("spanfold", r))
            print(
                f"peak RSS {r.get('receiver_peak_rss_mb', 0):.1f} MiB against "
                f"{small:.1f} MiB on an empty log"
            )
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
