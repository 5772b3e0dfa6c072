#!/usr/bin/env python3
"""Load shapes (issue #21): achieved vs target arrival rate, and the driver's CPU per request in
the open model vs a burst of the same number of purchases.

    python3 bench/shapes.py                      # 1k and 10k req/s, 5 s each; bursts to match
    python3 bench/shapes.py --rates 1000 --duration 3

A release server (`target/release/server`, --latency 0ms, stock 1e9) is pinned to one core and
the driver (`target/release/driver`) to another when taskset is there. For each rate the driver
runs `--rate R/s --duration D --max-in-flight 1000 -u 1000 --no-probes --output json`; then a
burst of the same number of users (R x D purchases, one connection per 100 users). The
driver's CPU is the user + system time of its process (getrusage of the child), over its whole
life: connecting, the load, settling and reading the order book (both runs book the same
number of orders, so that part is common). Printed: achieved / target rate, dropped arrivals,
response and service p99, CPU per request, and open / burst CPU ratios.

Noisy, shared machine: read ratios, not absolute numbers; differences under ~15% are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
STOCK = 1_000_000_000


def pinned(core: str, cmd: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", core, *cmd]
    return cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def run_driver(args: list[str], limit: float) -> tuple[dict, float]:
    """Runs the driver; returns its JSON report and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(pinned("1", [str(BIN / "driver"), *args]), capture_output=True,
                          text=True, timeout=limit)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.exit(f"driver {args} exited {done.returncode} without a report:\n{done.stderr[-2000:]}")
    return report, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,10000", help="comma-separated arrivals/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per open run")
    args = parser.parse_args()
    for name in ("server", "driver"):
        if not (BIN / name).exists():
            sys.exit(f"build first: cargo build --release -p flashsale-server -p flashsale-driver ({name} missing)")
    port = free_port()
    server = subprocess.Popen(
        pinned("0", [str(BIN / "server"), "--listen", f"127.0.0.1:{port}", "--stock", str(STOCK),
                     "--latency", "0ms", "--failure-rate", "0"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_listening(port, server)
        common = ["--target", f"127.0.0.1:{port}", "--mode", "safe", "--stock", str(STOCK),
                  "--no-probes", "--output", "json", "--settle", "1s"]
        for rate in [int(r) for r in args.rates.split(",")]:
            purchases = int(rate * args.duration)
            open_report, open_cpu = run_driver(
                [*common, "--rate", f"{rate}/s", "--duration", f"{args.duration}s",
                 "-u", "1000", "--max-in-flight", "1000"], limit=args.duration + 120)
            burst_report, burst_cpu = run_driver(
                [*common, "-u", str(purchases)], limit=120)
            shape = open_report.get("load_shape") or {}
            attempts = open_report["outcomes"]["attempts"]
            burst_attempts = burst_report["outcomes"]["attempts"]
            rows.append({
                "target_rps": rate,
                "achieved_rps": attempts / args.duration,
                "achieved_ratio": attempts / purchases,
                "dropped": shape.get("dropped"),
                "response_p99_ms": (shape.get("response_time_ms") or {}).get("p99"),
                "service_p99_ms": (shape.get("service_time_ms") or {}).get("p99"),
                "open_cpu_us_per_req": open_cpu / max(attempts, 1) * 1e6,
                "burst_cpu_us_per_req": burst_cpu / max(burst_attempts, 1) * 1e6,
                "burst_attempts": burst_attempts,
            })
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"{'target/s':>9} {'achieved/s':>11} {'ratio':>6} {'dropped':>8} {'resp p99':>9} "
          f"{'serv p99':>9} {'open µs/req':>12} {'burst µs/req':>13} {'open/burst':>10}")
    for r in rows:
        print(f"{r['target_rps']:>9} {r['achieved_rps']:>11.0f} {r['achieved_ratio']:>6.3f} "
              f"{r['dropped']!s:>8} {r['response_p99_ms']!s:>9} {r['service_p99_ms']!s:>9} "
              f"{r['open_cpu_us_per_req']:>12.1f} {r['burst_cpu_us_per_req']:>13.1f} "
              f"{r['open_cpu_us_per_req'] / r['burst_cpu_us_per_req']:>10.2f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
