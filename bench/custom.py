#!/usr/bin/env python3
"""The generic gRPC path against the built-in one (issue #12): the same server, the same load.

One server (PurchaseSafe, --latency 0ms, stock 1e9, pinned to one core) and, on the other core,
the driver run alternately in its two ways against it, each a sustained run of the same length
and users:
  builtin  --mode safe                                 (generated flashsale.v1 client)
  custom   --call flashsale.v1.Checkout/PurchaseSafe   (descriptors from server reflection,
           --data JSON template, dynamic messages,     rules on the reply's JSON)
Prints each pair's throughputs and their ratio (custom / builtin, measured in the same run),
the median ratio and the goal (>= 0.8), plus the driver's CPU per request.

    python3 bench/custom.py                  # 3 pairs of 8 s runs
    python3 bench/custom.py --smoke          # 1 pair of 2 s runs
    python3 bench/custom.py --skip-build --repeats 5 --duration 10

Exit status: 0 when every run produced numbers (add --strict to fail below the goal), 1 when a
run failed, 2 on a build error. Helpers (processes, pinning, parsing) are bench.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

GOAL = 0.8

CUSTOM_FLAGS = [
    "--call", "flashsale.v1.Checkout/PurchaseSafe",
    "--data", '{"user_id":"{{user}}","quantity":{{quantity}},"request_id":"{{request_id}}"}',
    "--purchased", 'reply.outcome == "OUTCOME_PURCHASED"',
    "--sold-out", 'reply.outcome == "OUTCOME_SOLD_OUT"',
    "--limit-reached", 'reply.outcome == "OUTCOME_LIMIT_REACHED"',
    "--order-id-field", "order_id",
    "--stock-after-field", "stock_after",
    "--stock-call", "flashsale.v1.Checkout/GetStock",
    "--stock-field", "stock",
    "--reset-call", "flashsale.v1.Checkout/Reset",
    "--reset-data", '{"stock":{{stock}}}',
]


def command(driver: Path, port: int, how: str, users: int, seconds: float) -> list[str]:
    cmd = [
        str(driver), "--target", f"127.0.0.1:{port}", "--users", str(users),
        "--duration", f"{int(seconds * 1000)}ms", "--stock", str(bench.STOCK),
        "--timeout", "10s", "--output", "json",
    ]
    return cmd + (["--mode", "safe"] if how == "builtin" else CUSTOM_FLAGS)


def measure(b: bench.Bench, driver: Path, port: int, how: str, tag: str, seconds: float) -> dict:
    v = {"kind": "driver", "seconds": seconds, "users": b.args.users}
    cmd = command(driver, port, how, b.args.users, seconds)
    res = bench.run_client(tag, cmd, b.bound(seconds, b.args.users), b.outdir)
    m = b.parse(v, res)
    if m["errors"]:
        raise bench.RunFailed(f"{tag}: {m['errors']} errors")
    m["load_us_per_req"] = 1e6 * res["cpu_s"] / m["attempts"]
    return m


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="one pair of 2 s runs")
    p.add_argument("--repeats", type=int, default=3, help="pairs of runs")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (each way)")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--bin-dir", type=Path, help="server and driver from this folder")
    p.add_argument("--out", type=Path, help="directory for raw results and logs")
    p.add_argument("--strict", action="store_true", help="exit 1 below the goal")
    args = p.parse_args()
    if args.smoke:
        args.repeats, args.duration, args.warmup = 1, 2.0, 0.5
    try:
        bins = bench.build(args)
    except Exception as e:  # noqa: BLE001 - a build error is exit 2
        print(f"build failed: {e}", file=sys.stderr)
        return 2
    outdir = args.out or Path(tempfile.mkdtemp(prefix="flashsale-custom-bench-"))
    outdir.mkdir(parents=True, exist_ok=True)
    b = bench.Bench(args, bins, outdir)
    driver = bins["driver"]
    pairs = []
    try:
        server, port = b.start_server("custom", "0ms")
        for how in ("builtin", "custom"):
            measure(b, driver, port, how, f"warmup-{how}", args.warmup)
        for r in range(args.repeats):
            # Alternate which way goes first, so drift of a busy machine hits both.
            order = ("builtin", "custom") if r % 2 == 0 else ("custom", "builtin")
            pair = {how: measure(b, driver, port, how, f"{how}-{r}", args.duration)
                    for how in order}
            pair["ratio"] = pair["custom"]["rps"] / pair["builtin"]["rps"]
            pairs.append(pair)
            print(f"pair {r + 1}: builtin {pair['builtin']['rps']:,.0f} req/s, custom "
                  f"{pair['custom']['rps']:,.0f} req/s, ratio {pair['ratio']:.2f}",
                  file=sys.stderr, flush=True)
        server.stop()
    except bench.RunFailed as e:
        print(f"run failed: {e} (logs in {outdir})", file=sys.stderr)
        return 1
    finally:
        bench.Daemon.stop_all()

    def med(how, key):
        return statistics.median(p[how][key] for p in pairs)

    ratio = statistics.median(p["ratio"] for p in pairs)
    print(f"# generic gRPC path vs built-in, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
          f"UTC, load average {bench.os.getloadavg()[0]:.1f}")
    print(f"{args.users} users, {args.repeats} pairs of {args.duration:g} s, PurchaseSafe, "
          f"server --latency 0ms; server core {bench.SERVER_CORE}, driver core {bench.LOAD_CORE}")
    print()
    print("| way | req/s (median) | per pair | p50 ms | p99 ms | driver CPU µs/req |")
    print("|---|--:|--|--:|--:|--:|")
    for how in ("builtin", "custom"):
        per = ", ".join(f"{p[how]['rps']:,.0f}" for p in pairs)
        print(f"| {how} | {med(how, 'rps'):,.0f} | {per} | {med(how, 'p50_ms'):.1f} | "
              f"{med(how, 'p99_ms'):.1f} | {med(how, 'load_us_per_req'):.0f} |")
    print()
    per = ", ".join(f"{p['ratio']:.2f}" for p in pairs)
    met = ratio >= GOAL
    print(f"ratio custom / builtin: {ratio:.2f} (pairs: {per}); goal >= {GOAL}: "
          f"{'met' if met else 'MISSED'}")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
