#!/usr/bin/env python3
"""flashsale on PostgreSQL against pgbench running the same statements (issue #11).

For every safe strategy, purchases/s of `server --store postgres --latency 0ms` driven by our
driver, against `pgbench` running that strategy's statements as a custom script (-f) on the same
kind of database with the same number of clients; plus the hot-row ceiling: pgbench doing
nothing but the one UPDATE of the one row every purchase takes from.

    source .ci/postgres.sh                 # throwaway cluster (fsync off), exports the URL
    python3 bench/pgbench.py               # 3 interleaved repeats of 5 s per variant (~4 min)
    python3 bench/pgbench.py --repeats 1 --duration 2    # a quick look
    python3 bench/pgbench.py --strategies atomic --shards 1,4,16   # stock shards (--stock-shards)
    python3 bench/pgbench.py --clients 1000 --strategies atomic,batched \
        --batch-windows 0ms,1ms,2ms,5ms          # the batched strategy's window curve

Database CPU per purchase is reported for every variant: the CPU time of the cluster's
processes (the postmaster, its live children, and the children it reaped: cutime/cstime) over
the measured run, divided by the purchases; this needs the cluster on this machine and readable
/proc (a throwaway cluster from .ci/postgres.sh is). Nothing else should use the cluster then.

Every run gets a fresh database (CREATE DATABASE from FLASHSALE_TEST_DATABASE_URL, or
--database-url), created and seeded by the server itself (its migrations, stock 10^9 so nothing
sells out), so pgbench runs on exactly the server's schema. The driver runs `--users C` against
a server with its default `--pool-size P` (or `--pool-size`); pgbench runs `-c C -j C -M
prepared` (equal clients: the comparison the goal is about) and, when P differs from C, also
`-c P -j P` (equal connections to the database: reported beside it). One thread per client, as
the server's multi-threaded runtime has: with `-j 1` pgbench's own thread is the bottleneck
and stretches every row-lock hold, 1,100-1,500 against 2,400-2,500 tps measured here). Nothing is pinned: the
database, the server and the load share the machine's cores, as they do in a deployment on one
host. Ratios come from the medians of this one invocation. Exit status 0 when every run produced
numbers (no speed assertion), 1 when one did not, 2 on a usage or build error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the harness's process helpers: Daemon, run_client, free_port)

ROOT = bench.ROOT
STOCK = 1_000_000_000

# The statements of each path, as server/src/store/postgres/sql.rs has them, in the order the
# server sends them for one purchase of one unit (no per-user limit). Conditional is one
# statement (sql::BUY_IF_ATOMIC: the strategy and round checked in the UPDATE, the order row
# inserted from its RETURNING, autocommit); row-lock and serializable first read the round and
# strategy (sql::CURRENT), then run their transaction.
CURRENT = "SELECT round AS r, strategy FROM sale \\gset\n"
RECORD = (
    "INSERT INTO orders (round, user_id, quantity, request_id) "
    "VALUES (:r, 'pgbench-' || :client_id, 1, NULLIF('pgb-' || :rid, '')) "
    "ON CONFLICT ON CONSTRAINT orders_request_once DO NOTHING RETURNING order_id;\n"
)
RID = "\\set rid random(1, 1000000000000000)\n"
SCRIPTS = {
    "conditional": RID + "\\set q 1\n\\set any 0\n"
    "WITH take AS (UPDATE sale SET stock = stock - :q "
    "WHERE strategy = 'atomic' AND (:any::bigint = 0 OR round = :any) AND stock >= :q "
    "RETURNING round, stock), "
    "placed AS (INSERT INTO orders (round, user_id, quantity, request_id) "
    "SELECT round, 'pgbench-' || :client_id, :q, NULLIF('pgb-' || :rid, '') FROM take "
    "RETURNING order_id) "
    "SELECT take.round, placed.order_id, take.stock FROM take, placed;\n",
    "row-lock": RID + CURRENT + "BEGIN;\n"
    "SELECT round, stock FROM sale FOR UPDATE;\n"
    "UPDATE sale SET stock = stock - 1 WHERE round = :r RETURNING stock;\n"
    + RECORD + "COMMIT;\n",
    "serializable": RID + CURRENT + "BEGIN ISOLATION LEVEL SERIALIZABLE;\n"
    "SELECT stock AS s FROM sale \\gset\n"
    "UPDATE sale SET stock = :s - 1 WHERE round = :r RETURNING stock;\n"
    + RECORD + "COMMIT;\n",
    # Stock shards (server --stock-shards N): sql::BUY_FROM_SHARD, the one statement a sharded
    # purchase is (its preferred shard: a random one here, the server's round robin there).
    "conditional-shards": RID + "\\set q 1\n\\set any 0\n\\set pref random(0, 65535)\n"
    "WITH pick AS MATERIALIZED (SELECT sh.round, sh.shard FROM sale s "
    "JOIN sale_shards sh ON sh.round = s.round "
    "WHERE s.strategy = 'atomic' AND s.shards > 1 AND (:any::bigint = 0 OR s.round = :any) "
    "AND sh.stock >= :q ORDER BY (sh.shard - :pref::integer % s.shards + s.shards) % s.shards "
    "LIMIT 1), "
    "take AS (UPDATE sale_shards sh SET stock = sh.stock - :q FROM pick "
    "WHERE sh.round = pick.round AND sh.shard = pick.shard AND sh.stock >= :q "
    "RETURNING sh.round, sh.shard, sh.stock), "
    "placed AS (INSERT INTO orders (round, user_id, quantity, request_id) "
    "SELECT round, 'pgbench-' || :client_id, :q, NULLIF('pgb-' || :rid, '') FROM take "
    "RETURNING order_id) "
    "SELECT take.round, placed.order_id, take.stock + (SELECT coalesce(sum(o.stock), 0)::bigint "
    "FROM sale_shards o WHERE o.round = take.round AND o.shard <> take.shard) "
    "FROM take, placed;\n",
    # The ceiling: one row everyone updates, nothing else, one statement per transaction.
    "hot-row": "UPDATE sale SET stock = stock - 1 WHERE round = 1 AND stock >= 1;\n",
}
# The server's strategy each pgbench script mirrors.
MIRRORS = {"atomic": "conditional", "row-lock": "row-lock", "serializable": "serializable"}


def db_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name))


def psql(url: str, sql: str) -> str:
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise bench.RunFailed(f"psql {sql!r}: {out.stderr.strip()}")
    return out.stdout.strip()


class PgBench:
    def __init__(self, args, bins: dict[str, Path], outdir: Path):
        self.args = args
        self.bins = bins
        self.outdir = outdir
        self.seq = 0
        data = psql(args.database_url, "SHOW data_directory")
        try:
            self.postmaster = int(Path(data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError) as e:
            raise SystemExit(f"pgbench.py: the cluster's postmaster.pid in {data}: {e} (database "
                             "CPU is read from /proc: run on the cluster's machine)")
        self.scripts = {}
        for name, text in SCRIPTS.items():
            path = outdir / f"{name}.sql"
            path.write_text(text)
            self.scripts[name] = path

    def db_cpu(self) -> float:
        """CPU seconds the cluster has used: the postmaster's own and its reaped children's,
        plus its live children's (backends, walwriter, ...)."""
        total = 0.0
        with open(f"/proc/{self.postmaster}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in rest[11:15]) / bench.CLK_TCK  # utime stime cutime cstime
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.postmaster:
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile: its time is in the postmaster's cutime now
            if int(rest[1]) == self.postmaster:  # field 4: ppid
                total += (int(rest[11]) + int(rest[12])) / bench.CLK_TCK
        return total

    def fresh_db(self) -> str:
        self.seq += 1
        name = f"flashsale_pgbench_{os.getpid()}_{self.seq}"
        psql(self.args.database_url, f"DROP DATABASE IF EXISTS {name}")
        psql(self.args.database_url, f"CREATE DATABASE {name}")
        return name

    def drop_db(self, name: str) -> None:
        psql(self.args.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def server(self, tag: str, url: str, strategy: str, pool: int,
               shards: int = 1, window: str | None = None) -> tuple[bench.Daemon, int]:
        """A server on `url`, seeded and listening (its own migrations create the schema)."""
        port = bench.free_port()
        cmd = [str(self.bins["server"]), "--store", "postgres", "--database-url", url,
               "--pool-size", str(pool), "--strategy", strategy,
               "--listen", f"127.0.0.1:{port}", "--stock", str(STOCK), "--latency", "0ms",
               "--failure-rate", "0", "--stock-shards", str(shards)]
        if window is not None:
            cmd += ["--batch-window", window]
        d = bench.Daemon(f"{tag}-server", cmd, None, self.outdir)
        bench.wait_listening(port, d.proc, timeout=30)
        return d, port

    def run(self, tag: str, v: dict) -> dict:
        name = self.fresh_db()
        url = db_url(self.args.database_url, name)
        try:
            if v["kind"] == "driver":
                return self.driver(tag, url, v)
            return self.pgbench(tag, url, v)
        finally:
            self.drop_db(name)

    def driver(self, tag: str, url: str, v: dict) -> dict:
        server, port = self.server(tag, url, v["strategy"], v.get("pool", self.args.pool_size),
                                   v.get("shards", 1), v.get("window"))
        try:
            cmd = [str(self.bins["driver"]), "--mode", "safe", "--target", f"127.0.0.1:{port}",
                   "--users", str(self.args.clients),
                   "--duration", f"{int(self.args.duration * 1000)}ms", "--stock", str(STOCK),
                   "--timeout", "30s", "--output", "json"]
            cpu0, db0 = bench.cpu_seconds(server.pid), self.db_cpu()
            res = bench.run_client(tag, cmd, self.args.duration + 120, self.outdir)
            server_cpu = bench.cpu_seconds(server.pid) - cpu0
            db_cpu = self.db_cpu() - db0
        finally:
            server.stop()
        if res["timed_out"] or res["rc"] not in (0, 1, 4):
            raise bench.RunFailed(f"driver exited with {res['rc']}: {res['stderr_tail']}")
        doc = json.loads(res["stdout"])
        out = doc["outcomes"]
        if not out["attempts"]:
            raise bench.RunFailed("no attempts measured")
        # throughput_rps is attempts/s; a purchase is an attempt that placed an order.
        pps = doc["throughput_rps"] * out["purchased"] / out["attempts"]
        return {"pps": pps, "attempts": out["attempts"], "purchased": out["purchased"],
                "server_us": 1e6 * server_cpu / max(out["purchased"], 1),
                "db_us": 1e6 * db_cpu / max(out["purchased"], 1),
                "load_us": 1e6 * res["cpu_s"] / max(out["purchased"], 1),
                "errors": out["errors"], "oversold": doc["audit"]["oversold_units"],
                "p50_ms": doc["latency_ms"]["p50"], "p99_ms": doc["latency_ms"]["p99"]}

    def pgbench(self, tag: str, url: str, v: dict) -> dict:
        # The server creates and seeds the schema (its own migrations), then steps aside.
        server, _ = self.server(tag, url, "atomic", 1, v.get("shards", 1))
        server.stop()
        clients = str(v.get("clients", self.args.clients))
        # Opening hundreds of connections takes seconds, which pgbench counts in -T (its tps
        # excludes them): a second more per 100 clients.
        seconds = max(1, round(self.args.duration)) + int(clients) // 100
        cmd = ["pgbench", "-n", "-M", "prepared", "-c", clients, "-j", clients,
               "-T", str(seconds), "-f", str(self.scripts[v["script"]])]
        if v["script"] == "serializable":
            cmd += ["--max-tries", "10"]  # the server's bound on attempts
        cmd.append(url)
        db0 = self.db_cpu()
        res = bench.run_client(tag, cmd, self.args.duration + 120, self.outdir)
        db_cpu = self.db_cpu() - db0
        text = res["stdout"]
        if res["timed_out"] or res["rc"] != 0:
            raise bench.RunFailed(f"pgbench exited with {res['rc']}: {res['stderr_tail']}")
        tps = re.search(r"^tps = ([0-9.]+) \(without initial", text, re.M)
        done = re.search(r"^number of transactions actually processed: (\d+)", text, re.M)
        failed = re.search(r"^number of failed transactions: (\d+)", text, re.M)
        retried = re.search(r"^number of transactions retried: (\d+)", text, re.M)
        lat = re.search(r"^latency average = ([0-9.]+) ms", text, re.M)
        if not tps or not done:
            raise bench.RunFailed(f"no tps in pgbench output: {text[-500:]}")
        return {"pps": float(tps.group(1)), "attempts": int(done.group(1)),
                "purchased": int(done.group(1)),
                "load_us": 1e6 * res["cpu_s"] / max(int(done.group(1)), 1),
                "db_us": 1e6 * db_cpu / max(int(done.group(1)), 1),
                "errors": int(failed.group(1)) if failed else 0,
                "retried": int(retried.group(1)) if retried else 0,
                "avg_ms": float(lat.group(1)) if lat else float("nan")}


def equal_connections(args) -> list[int]:
    """pgbench client counts that match a server pool (other than the equal-clients one)."""
    return sorted({p for p in [args.pool_size, *args.extra_pools] if p != args.clients})


def variants(args) -> list[dict]:
    vs = []
    for s in args.strategies:
        vs.append({"name": f"driver/{s}", "kind": "driver", "strategy": s})
        if s in MIRRORS:
            vs.append({"name": f"pgbench/{MIRRORS[s]}", "kind": "pgbench", "script": MIRRORS[s]})
            for c in equal_connections(args):  # as many connections as the server's pool
                vs.append({"name": f"pgbench/{MIRRORS[s]}@c{c}", "kind": "pgbench",
                           "script": MIRRORS[s], "clients": c})
        if s == "batched":  # the window's curve (the server's default is driver/batched)
            for w in args.batch_windows:
                vs.append({"name": f"driver/batched@w{w}", "kind": "driver",
                           "strategy": "batched", "window": w})
        for pool in args.extra_pools:  # the same load through a smaller (or larger) pool
            vs.append({"name": f"driver/{s}@pool{pool}", "kind": "driver", "strategy": s,
                       "pool": pool})
        if s == "atomic":  # the stock split over N rows (1 is driver/atomic itself)
            for n in args.shards:
                if n > 1:
                    vs.append({"name": f"driver/atomic@shards{n}", "kind": "driver",
                               "strategy": "atomic", "shards": n})
                    vs.append({"name": f"pgbench/conditional@shards{n}", "kind": "pgbench",
                               "script": "conditional-shards", "shards": n})
    vs.append({"name": "pgbench/hot-row", "kind": "pgbench", "script": "hot-row"})
    for c in equal_connections(args):  # the ceiling with as many connections as the pool
        vs.append({"name": f"pgbench/hot-row@c{c}", "kind": "pgbench", "script": "hot-row",
                   "clients": c})
    return vs


def default_pool_size(server: Path) -> int:
    """The server's default --pool-size, as its --help states it."""
    text = subprocess.run([str(server), "--help"], capture_output=True, text=True,
                          check=True).stdout
    found = re.search(r"--pool-size <POOL_SIZE>.*?\[default: (\d+)\]", text, re.S)
    if not found:
        raise SystemExit("pgbench.py: cannot read the default --pool-size from `server --help`")
    return int(found.group(1))


def med(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def ratio_range(a: list[dict], b: list[dict]) -> str:
    rs = [x["pps"] / y["pps"] for x, y in zip(a, b) if y["pps"]]
    return f"{min(rs):.2f} – {max(rs):.2f}" if rs else ""


def summarize(args, vs: list[dict], results: dict[str, list[dict]]) -> str:
    lines = [
        "| variant | purchases/s | per-repeat | p50 ms | p99 ms | errors / failed tx | "
        "retried (pgbench) | server CPU µs/purchase | database CPU µs/purchase | "
        "load CPU µs/purchase |",
        "|---|--:|--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in vs:
        runs = results[v["name"]]
        if not runs:
            lines.append(f"| {v['name']} | failed (see the logs) | | | | | | | | |")
            continue
        per = ", ".join(f"{r['pps']:,.0f}" for r in runs)
        lines.append(
            f"| {v['name']} | {med(runs, 'pps'):,.0f} | {per} | "
            f"{med(runs, 'p50_ms'):.1f} | {med(runs, 'p99_ms'):.1f} | "
            f"{max(r['errors'] for r in runs)} | "
            f"{max((r.get('retried', 0) for r in runs), default=0) if v['kind'] == 'pgbench' else '-'} | "
            f"{med(runs, 'server_us'):.0f} | {med(runs, 'db_us'):.0f} | "
            f"{med(runs, 'load_us'):.0f} |"
            .replace("| nan | nan |", "| - | - |").replace("| nan |", "| - |"))
    lines += ["", "| ratio | median | per-repeat range | goal |", "|---|--:|--|--|"]

    def row(label, a, b, goal=""):
        if a in results and b in results:
            x, y = med(results[a], "pps"), med(results[b], "pps")
            lines.append(f"| {label} | {x / y:.2f} | {ratio_range(results[a], results[b])} | {goal} |")

    c, p = args.clients, args.pool_size
    for strategy, script in MIRRORS.items():
        goal = "≥ 0.8" if strategy == "atomic" else "(report)"
        row(f"driver/{strategy} ÷ pgbench/{script}: equal clients ({c} users, {c} pgbench "
            f"clients; server pool {p})", f"driver/{strategy}", f"pgbench/{script}", goal)
        if p != c:
            row(f"driver/{strategy} ÷ pgbench/{script}@c{p}: equal connections ({p} each)",
                f"driver/{strategy}", f"pgbench/{script}@c{p}", "(report)")
        for pool in args.extra_pools:
            row(f"driver/{strategy}@pool{pool} ÷ pgbench/{script}: equal clients ({c})",
                f"driver/{strategy}@pool{pool}", f"pgbench/{script}", "(report)")
            if pool != c:
                row(f"driver/{strategy}@pool{pool} ÷ pgbench/{script}@c{pool}: equal "
                    f"connections ({pool} each)", f"driver/{strategy}@pool{pool}",
                    f"pgbench/{script}@c{pool}", "(report)")
    for n in args.shards:
        if n > 1:
            row(f"driver/atomic@shards{n} ÷ driver/atomic", f"driver/atomic@shards{n}",
                "driver/atomic", "(report)")
            row(f"driver/atomic@shards{n} ÷ pgbench/conditional@shards{n} (equal clients)",
                f"driver/atomic@shards{n}", f"pgbench/conditional@shards{n}", "(report)")
    ceilings = [v["name"] for v in vs if v["name"].startswith("pgbench/hot-row")]
    for name in [v["name"] for v in vs if v["name"] not in ceilings]:
        for ceiling in ceilings:
            goal = "≥ 3" if name.startswith("driver/batched") else "(report)"
            row(f"{name} ÷ {ceiling} ceiling", name, ceiling, goal)
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=os.environ.get("FLASHSALE_TEST_DATABASE_URL"),
                   help="a superuser URL of a cluster to create databases in "
                        "(default: $FLASHSALE_TEST_DATABASE_URL, as .ci/postgres.sh exports)")
    p.add_argument("--clients", type=int, default=32,
                   help="driver users = pgbench clients (default 32)")
    p.add_argument("--pool-size", type=int, default=None,
                   help="the server's --pool-size (default: the server's own default, read "
                        "from its --help); pgbench also runs with this many clients")
    p.add_argument("--extra-pools", default=[],
                   type=lambda s: [int(x) for x in s.split(",") if x],
                   help="also run each strategy's driver case with these server --pool-size "
                        "values (same driver users), e.g. 8")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-windows", default=[],
                   type=lambda s: [x for x in s.split(",") if x],
                   help="also run driver/batched with these server --batch-window values, "
                        "e.g. 0ms,1ms,5ms (the window's curve; needs batched in --strategies)")
    p.add_argument("--strategies", default="atomic,batched,row-lock,serializable,mutex",
                   type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--shards", default=[],
                   type=lambda s: [int(x) for x in s.split(",") if x],
                   help="also run driver/atomic with the stock split over these numbers of rows "
                        "(server --stock-shards N, 2..256; 1 is driver/atomic itself), e.g. "
                        "1,4,16: variants driver/atomic@shardsN and pgbench/conditional@shardsN "
                        "(the sharded statement), with ratios to driver/atomic and to the "
                        "hot-row ceiling")
    p.add_argument("--skip-build", action="store_true")
    args = p.parse_args()
    if not args.database_url:
        print("pgbench.py: no database: source .ci/postgres.sh or pass --database-url",
              file=sys.stderr)
        return 2
    if not 1 <= args.clients <= 1024 or args.duration <= 0 or args.repeats < 1:
        print("pgbench.py: --clients 1..1024, --duration > 0, --repeats >= 1", file=sys.stderr)
        return 2
    if any(not 1 <= n <= 256 for n in args.shards) or (args.shards and
                                                       "atomic" not in args.strategies):
        print("pgbench.py: --shards takes numbers in 1..256 and needs atomic in --strategies",
              file=sys.stderr)
        return 2
    for tool in ("pgbench", "psql"):
        if not shutil.which(tool):
            print(f"pgbench.py: {tool} not found (Debian: apt-get install postgresql-client)",
                  file=sys.stderr)
            return 2
    bench.LOAD_CORE = None  # nothing pinned: database, server and load share the cores
    if not args.skip_build:
        print("building release binaries ...", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--bin", "server", "--bin", "driver"],
                       cwd=ROOT, check=True)
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    release = Path(json.loads(meta.stdout)["target_directory"]) / "release"
    bins = {b: release / b for b in ("server", "driver")}
    missing = [str(b) for b in bins.values() if not b.exists()]
    if missing:
        print(f"pgbench.py: missing binaries {missing}", file=sys.stderr)
        return 2

    if args.pool_size is None:
        args.pool_size = default_pool_size(bins["server"])
    if not 1 <= args.pool_size <= 1024 or not all(1 <= x <= 1024 for x in args.extra_pools):
        print("pgbench.py: --pool-size and --extra-pools 1..1024", file=sys.stderr)
        return 2

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    outdir = release.parent / "bench" / f"pgbench-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    pb = PgBench(args, bins, outdir)
    vs = variants(args)
    results: dict[str, list[dict]] = {v["name"]: [] for v in vs}
    started = time.monotonic()
    version = psql(args.database_url, "SHOW server_version")
    settings = psql(args.database_url,
                    "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings "
                    "WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', "
                    "'max_connections', 'shared_buffers')")
    failed = 0
    try:
        for rep in range(args.repeats):
            for v in vs:  # interleaved: a noisy minute hits every variant alike
                tag = f"r{rep}-{v['name'].replace('/', '-')}"
                print(f"  {tag} ...", file=sys.stderr, flush=True)
                try:
                    results[v["name"]].append(pb.run(tag, v))
                except bench.RunFailed as e:
                    failed += 1
                    print(f"  {tag} FAILED: {e}", file=sys.stderr)
    finally:
        bench.Daemon.stop_all()
    took = time.monotonic() - started
    if failed or any(not r for r in results.values()):
        print(f"pgbench.py: {failed} run(s) failed; logs in {outdir}", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    head = (f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC, commit {commit}, "
            f"{os.cpu_count()} cores, PostgreSQL {version} ({settings}), "
            f"{args.clients} clients, server pool {args.pool_size}, "
            f"{args.repeats} repeat(s) x {args.duration:g}s, "
            f"load average {os.getloadavg()[0]:.2f}, measuring took {took:.0f}s.")
    table = summarize(args, vs, results)
    md = head + "\n\n" + table + "\n"
    (outdir / "results.md").write_text(md)
    (outdir / "results.json").write_text(json.dumps(results, indent=1))
    print(md)
    print(f"raw numbers and logs: {outdir}", file=sys.stderr)
    return 1 if failed or any(not r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
