"""The harness's tables: medians per variant and the targets, as ratios of one invocation."""

from __future__ import annotations

import statistics


def med(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def fmt(x, digits=0) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:,.{digits}f}"


def summarize(variants: list[dict], results: dict[str, list[dict]], args) -> tuple[str, list]:
    key = lambda v: f"{v['case']}:{v['name']}"  # noqa: E731
    rows = []
    lines = [
        "| case | variant | req/s | p50 ms | p99 ms | errors | oversold | server µs/req "
        "| server RSS MB | load µs/req | load RSS MB | p99 / (inflight/tput) | load avg "
        "| others (cores) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in variants:
        runs = results.get(key(v), [])
        if not runs:
            continue
        row = {k: med(runs, k) for k in (
            "rps", "p50_ms", "p99_ms", "errors", "server_us_per_req", "server_rss_mb",
            "load_us_per_req", "load_rss_mb", "tail_ratio", "loadavg", "others_cores")}
        row["errors"] = max(r["errors"] for r in runs)
        oversold = [r["oversold"] for r in runs if r["oversold"] is not None]
        row["oversold"] = max(oversold) if oversold else None
        row["server_rss_mb"] = max(r["server_rss_mb"] for r in runs)
        row["load_rss_mb"] = max(r["load_rss_mb"] for r in runs)
        rows.append((v, row, runs))
        lines.append(
            f"| {v['case']} | {v['name']} | {fmt(row['rps'])} | {fmt(row['p50_ms'], 1)} "
            f"| {fmt(row['p99_ms'], 1)} | {row['errors']} | {fmt(row['oversold'])} "
            f"| {fmt(row['server_us_per_req'], 1)} | {fmt(row['server_rss_mb'], 1)} "
            f"| {fmt(row['load_us_per_req'], 1)} | {fmt(row['load_rss_mb'], 1)} "
            f"| {fmt(row['tail_ratio'], 2)} | {fmt(row['loadavg'], 2)} "
            f"| {fmt(row['others_cores'], 2)} |"
        )
    lines += [
        "",
        "req/s: requests the server's ledger (GetStock orders) took during the measured window, "
        "whoever sent them (GetStock's baseline: its own count); µs/req: CPU time (utime + "
        "stime of the process tree) during that window / those requests; latencies: the "
        "generator's own report (h2load gives none). Medians of the repeats; errors, oversold "
        "and RSS: the worst repeat. load avg: 1-minute load average before the run; others: "
        "cores' worth of CPU neither the server nor the generator used during the window.",
    ]

    by = {(v["case"], v["name"]): (row, runs) for v, row, runs in rows}
    targets = []

    def ratio(a, b, field="rps"):
        """Ratio of medians, plus the range of the per-repeat ratios (paired by repeat)."""
        (ra, runs_a), (rb, runs_b) = by[a], by[b]
        paired = [x[field] / y[field] for x, y in zip(runs_a, runs_b) if y[field]]
        return ra[field] / rb[field], (min(paired), max(paired)) if paired else (None, None)

    def target(name, value, goal, ok, spread=None):
        targets.append({"target": name, "value": value, "goal": goal, "met": bool(ok),
                        "spread": spread})

    cases = set(args.cases)
    drv, eq = (1, "driver"), (1, f"driver {args.users} conns")
    if 1 in cases and (1, "k6") in by and drv in by:
        r, s = ratio(drv, (1, "k6"))
        target("1. driver / k6 req/s, default shapes (10 conns vs 1 per VU)", r, "≥ 5", r >= 5, s)
        if eq in by:
            r, s = ratio(eq, (1, "k6"))
            target(f"1. driver / k6 req/s, equal connections ({args.users} each): compare "
                   "this one", r, "(report)", True, s)
    if 1 in cases and (1, "h2load") in by and drv in by:
        h2 = (1, "h2load")
        r, s = ratio(drv, h2)
        target("1. driver / h2load req/s (one-core server)", r, "≥ 0.9", r >= 0.9, s)
        r, s = ratio(drv, h2, "load_us_per_req")
        target("1. driver / h2load client CPU per request", r, "≤ 2", r <= 2, s)
        r, s = ratio(drv, h2, "server_us_per_req")
        target("1. server CPU per request, under driver / under h2load", r, "≤ 1.1", r <= 1.1,
               s)
        tonic = (1, "driver (tonic client)")
        if tonic in by:
            r, s = ratio(tonic, drv, "load_us_per_req")
            target("1. A/B: client CPU per request, tonic client / lean client", r,
                   "(report)", True, s)
            r, s = ratio(drv, tonic)
            target("1. A/B: req/s, lean client / tonic client", r, "(report)", True, s)
    if 2 in cases and (2, "GetStock") in by:
        for name, goal in (("buggy", 0.9), ("unstable (rate 0)", None), ("safe/mutex", None),
                           ("safe/atomic", 0.9)):
            if (2, name) not in by:
                continue
            r, s = ratio((2, name), (2, "GetStock"))
            cost = by[(2, name)][0]["server_us_per_req"] / by[(2, "GetStock")][0][
                "server_us_per_req"]
            label = f"2. {name} / GetStock req/s (0 ms; server CPU/req ×{cost:.2f})"
            target(label, r, f"≥ {goal}" if goal else "(report)", goal is None or r >= goal, s)
    if 3 in cases and (3, "buggy") in by and (3, "safe/atomic") in by:
        r, s = ratio((3, "safe/atomic"), (3, "buggy"))
        target("3. atomic / buggy req/s at 10 ms", r, "≥ 0.9", r >= 0.9, s)
        ov = by[(3, "safe/atomic")][0]["oversold"]
        target("3. atomic oversold units", ov, "0", ov == 0)
        if (3, "safe/mutex") in by:
            mx = by[(3, "safe/mutex")][0]
            target("3. mutex req/s at 10 ms (cap ≈ 100)", mx["rps"], "(report)", True)
    big = (4, f"{args.scale_users} streams")
    if 4 in cases and big in by:
        row = by[big][0]
        target(f"4. server peak RSS MB, {args.scale_users} streams", row["server_rss_mb"],
               "≤ 100", row["server_rss_mb"] <= 100)
        target(f"4. driver peak RSS MB, {args.scale_users} streams", row["load_rss_mb"],
               "≤ 150", row["load_rss_mb"] <= 150)
        target(f"4. errors, {args.scale_users} streams", row["errors"], "0", row["errors"] == 0)
    if 5 in cases and (5, "distributed 3w") in by and (5, "standalone") in by:
        r, s = ratio((5, "distributed 3w"), (5, "standalone"))
        target("5. distributed / standalone req/s", r, "≥ 0.9", r >= 0.9, s)
    for v, row, _ in rows:
        saturated = not (v["case"] == 3 and v["name"] == "safe/mutex")
        if saturated and row["tail_ratio"] == row["tail_ratio"]:
            target(f"tails: case {v['case']} {v['name']} p99 / (inflight/tput)",
                   row["tail_ratio"], "≤ 2.5", row["tail_ratio"] <= 2.5)

    lines += ["", "| target | measured | goal | met | per-repeat range |", "|---|--:|--|--|--|"]
    for t in targets:
        spread = "" if not t["spread"] or t["spread"][0] is None else \
            f"{t['spread'][0]:.2f} – {t['spread'][1]:.2f}"
        val = t["value"]
        val = fmt(val, 2) if isinstance(val, float) and val < 100 else fmt(val, 1)
        lines.append(f"| {t['target']} | {val} | {t['goal']} | "
                     f"{'yes' if t['met'] else '**no**'} | {spread} |")
    return "\n".join(lines), targets
