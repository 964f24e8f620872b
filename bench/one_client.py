"""Latency at one client and where it goes: p50 and CPU per request of every process.

Starts the bench's system (bench.Bench: six services, the gateway, the anchor of
bench/anchor.py), then for ``--rounds`` interleaved rounds runs wrk with one connection
(kept alive) on the anchor and on authenticated reads, and prints per run the p50, the
mean time per request and the CPU per request (utime + stime from /proc) of each process
and of the broker (beam.smp, shared with whatever else runs here). At one client nothing
overlaps, so a request's time is the CPU of its serial path plus whatever waits: when the
mean time per request is about the summed CPU, nothing on the path waits (no timer, poll,
Nagle or confirm stall); what is left is CPU (docs/performance.md, "Latency at one client").

    python bench/one_client.py [--rounds 3] [--seconds 3]
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import DEMO, Bench, broker_pids, cpu_seconds, median  # noqa: E402

READS = ("/api/v1/me/contracts", "/api/v1/me/account", "/api/v1/me/payments/transfer-details")


def run(url, seconds, token=None):
    args = ["wrk", "-t1", "-c1", "-d", f"{seconds}s", "--latency"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    n = max(1, int(re.search(r"(\d+) requests in", out).group(1)))
    p50 = re.search(r"\s50%\s+([\d.]+)(\w+)", out)
    p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return n, p50_ms


def main(argv=None):
    parser = argparse.ArgumentParser(prog="one_client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--path", action="append", default=[],
                        help=f"an authenticated read to measure (repeatable; default {', '.join(READS)})")
    args = parser.parse_args(argv)
    bench = Bench()
    try:
        bench.start()
        base = f"http://127.0.0.1:{bench.port}"
        token = requests.post(base + "/api/v1/session", json=DEMO, timeout=10).json()["token"]
        pids = {name: proc.pid for name, (proc, _) in bench.processes.items()}
        targets = [("anchor", f"http://127.0.0.1:{bench.anchor_port}/anchor", None)]
        targets += [(path, base + path, token) for path in (args.path or READS)]
        p50s = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, url, tok in targets:
                groups = {**{k: [v] for k, v in pids.items()}, "broker": broker_pids()}
                before = {k: cpu_seconds(v) for k, v in groups.items()}
                started = time.perf_counter()
                n, p50 = run(url, args.seconds, tok)
                wall = (time.perf_counter() - started) * 1000 / n
                cpu = {k: (cpu_seconds(v) - before[k]) * 1000 / n for k, v in groups.items()}
                p50s[name].append(p50)
                shown = " ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v >= 0.05)
                print(f"{name:40s} p50 {p50:6.2f} ms  time/request {wall:6.2f} ms  "
                      f"CPU/request {sum(cpu.values()):6.2f} ms ({shown})", flush=True)
        anchor = median(p50s["anchor"])
        for name, values in p50s.items():
            print(f"median p50 {name:40s} {median(values):6.2f} ms  ratio to anchor "
                  f"{median(values) / anchor:4.2f}")
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
