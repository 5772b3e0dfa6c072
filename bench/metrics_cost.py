#!/usr/bin/env python3
"""Cost of the server's Prometheus metrics (issue #26): server CPU per request with
`--metrics-listen` on vs off, in one invocation.

Builds the release `server` and `getstock-load`, then for each repeat runs both variants
(alternating which goes first) on a fresh server pinned to one core, `--latency 0ms`, stock 1e9,
with `getstock-load --rpc purchase-safe` (1000 users, closed loop) pinned to the other core.
Server CPU comes from /proc/PID/stat over the load's run; requests from the load's count. With
metrics on, /metrics is scraped once at the end and its PurchaseSafe OK counter must equal the
requests the load made. Prints the medians and the ratio on/off.

    python3 bench/metrics_cost.py                  # 3 repeats of 8 s per variant
    python3 bench/metrics_cost.py --repeats 1 --duration 2
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (LOAD_CORE, ROOT, SERVER_CORE, STOCK, cpu_seconds, free_port,  # noqa: E402
                   pinned, wait_listening)

SAFE_OK = 'flashsale_rpc_requests_total{method="flashsale.v1.Checkout/PurchaseSafe",code="OK"}'


def build() -> Path:
    subprocess.run(["cargo", "build", "--release", "--bin", "server", "--bin", "getstock-load"],
                   cwd=ROOT, check=True)
    return ROOT / "target" / "release"


def scrape(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode().split("\r\n\r\n", 1)[1]


def run(bins: Path, metrics: bool, duration: int, users: int) -> dict:
    port = free_port()
    cmd = [str(bins / "server"), "--listen", f"127.0.0.1:{port}", "--latency", "0ms",
           "--stock", str(STOCK)]
    metrics_port = free_port() if metrics else None
    if metrics_port:
        cmd += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    server = subprocess.Popen(pinned(SERVER_CORE, cmd), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, server)
        if metrics_port:
            wait_listening(metrics_port, server)
        before = cpu_seconds(server.pid)
        load = subprocess.run(
            pinned(LOAD_CORE, [str(bins / "getstock-load"), "--target", f"127.0.0.1:{port}",
                               "--users", str(users), "--duration", f"{duration}s",
                               "--rpc", "purchase-safe"]),
            capture_output=True, text=True, timeout=duration + 60)
        cpu = cpu_seconds(server.pid) - before
        if load.returncode != 0:
            raise RuntimeError(f"getstock-load exited {load.returncode}: {load.stderr[-500:]}")
        result = json.loads(load.stdout)
        attempts = int(result["attempts"])
        if metrics_port:
            text = scrape(metrics_port)
            counted = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                           if line.startswith(SAFE_OK + " "))
            if int(counted) != attempts:
                raise RuntimeError(f"/metrics counted {counted} PurchaseSafe OK, load made "
                                   f"{attempts}")
        return {"metrics": metrics, "attempts": attempts, "rps": result["throughput_rps"],
                "server_cpu_s": cpu, "us_per_req": cpu / attempts * 1e6}
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    bins = build()
    runs: list[dict] = []
    for repeat in range(args.repeats):
        order = [False, True] if repeat % 2 == 0 else [True, False]
        for metrics in order:
            r = run(bins, metrics, args.duration, args.users)
            runs.append(r)
            print(f"repeat {repeat + 1} metrics {'on ' if metrics else 'off'}: "
                  f"{r['rps']:,.0f} req/s, server {r['us_per_req']:.2f} µs/req", flush=True)
    med = {m: {k: statistics.median(r[k] for r in runs if r["metrics"] == m)
               for k in ("rps", "us_per_req")} for m in (False, True)}
    ratio = med[True]["us_per_req"] / med[False]["us_per_req"]
    print(f"\nmedians of {args.repeats}: off {med[False]['rps']:,.0f} req/s "
          f"{med[False]['us_per_req']:.2f} µs/req; on {med[True]['rps']:,.0f} req/s "
          f"{med[True]['us_per_req']:.2f} µs/req")
    print(f"server CPU per request, metrics on / off: {ratio:.3f} "
          f"({(ratio - 1) * 100:+.1f}%; goal <= +5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
