# benchmarks/measure.py: what every HTTP measurement shares: one wrk run, and the CPU time
# other processes take meanwhile; plus the formatting helpers of the reports.
#
# Strategy: `run_wrk` runs wrk pinned to CPU 1 against a running server and parses its
# summary; around it, the machine's busy jiffies (/proc/stat) minus the server's processes
# and wrk's own rusage give the CPUs that *other* work used meanwhile, so a noisy figure
# can be flagged (`busy_mark`). Used by http_bench.py (throughput) and held.py (the
# scenarios that hold many connections).
from __future__ import annotations

import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass

import servers
from servers import Running

BUSY = 0.2  # CPUs used by other processes during a wrk run above which the run is flagged
POST_LUA = """\
wrk.method = "POST"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


@dataclass
class Scenario:
    name: str
    title: str
    path: str = "/"
    conns: int = 50
    headers: tuple[str, ...] = ()
    lua: bool = False  # POST a 16 KiB body (POST_LUA)
    wsgi: bool = False  # needs the WSGI app (Flask): servers that do not run apps.py skip it


KEEPALIVE = Scenario("keepalive", "keep-alive GET / (hello), 50 connections")


@dataclass
class WrkResult:
    rps: float
    p99_ms: float | None
    requests: int
    errors: int  # socket errors + non-2xx/3xx
    error_text: str = ""
    other_cpu: float | None = None  # CPUs used by processes other than the server and wrk meanwhile


# --------------------------------------------------------------------------- wrk
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


_HZ = os.sysconf("SC_CLK_TCK")


def _busy_jiffies() -> int:
    """user + nice + system CPU time of the whole machine (irq, softirq, steal left out)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    return int(fields[0]) + int(fields[1]) + int(fields[2])


def _proc_jiffies(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def other_cpu_now(seconds: float = 1.0) -> float:
    """CPUs busy over `seconds` (call it while nothing of ours runs)."""
    b0, t0 = _busy_jiffies(), time.monotonic()
    time.sleep(seconds)
    return (_busy_jiffies() - b0) / _HZ / (time.monotonic() - t0)


class OtherCPU:
    """CPUs used from now until stop() by processes other than `pids` (read from /proc) and the
    children we reap meanwhile (their rusage): the machine's busy time minus ours."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.busy0, self.own0 = _busy_jiffies(), _proc_jiffies(pids)
        self.kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.monotonic()

    def stop(self) -> float | None:
        wall = time.monotonic() - self.t0
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        kids = (kids1.ru_utime - self.kids0.ru_utime) + (kids1.ru_stime - self.kids0.ru_stime)
        other = ((_busy_jiffies() - self.busy0) - (_proc_jiffies(self.pids) - self.own0)) / _HZ - kids
        return max(0.0, other / wall) if wall > 0 else None


def run_wrk(run: Running, sc: Scenario, seconds: float, tmp: str) -> WrkResult:
    port = run.port
    argv = ["wrk", "-t1", f"-c{sc.conns}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for h in sc.headers:
        argv += ["-H", h]
    if sc.lua:
        lua = os.path.join(tmp, "post16k.lua")
        if not os.path.exists(lua):
            with open(lua, "w") as f:
                f.write(POST_LUA)
        argv += ["-s", lua]
    argv.append(f"http://{servers.HOST}:{port}{sc.path}")
    if shutil.which("taskset"):
        argv = ["taskset", "-c", "1", *argv]
    cpu = OtherCPU(run.pids())
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    other_cpu = cpu.stop()  # wrk is the only child reaped meanwhile
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or not m:
        return WrkResult(0.0, None, 0, 1, f"wrk failed ({r.returncode}): {(r.stderr or out).strip()[-300:]}",
                         other_cpu)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    reqs = re.search(r"(\d+) requests in", out)
    errors = 0
    texts = []
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if se:
        errors += sum(int(x) for x in se.groups())
        texts.append(se.group(0))
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n2:
        errors += int(n2.group(1))
        texts.append(n2.group(0))
    return WrkResult(float(m.group(1)), _to_ms(p99.group(1)) if p99 else None,
                     int(reqs.group(1)) if reqs else 0, errors, "; ".join(texts), other_cpu)


# --------------------------------------------------------------------------- helpers
def busy_mark(w: WrkResult | None) -> str:
    return f" [other {w.other_cpu:.2f} CPU]" if w and (w.other_cpu or 0) > BUSY else ""


def fmt_errors(errors: dict) -> str:
    """Error counts for a report's notes column: 'timeout 3, reset 1'."""
    return ", ".join(f"{k} {v}" for k, v in errors.items())


def fmt_growth(before_kib: int, after_kib: int) -> str:
    """An RSS growth for a report's table: '12.5 MiB'."""
    return f"{(after_kib - before_kib) / 1024:,.1f} MiB"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def established(port: int) -> int | None:
    """Server-side ESTABLISHED TCP sockets on `port` (from ss)."""
    if not shutil.which("ss"):
        return None
    r = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True)
    return sum(1 for line in r.stdout.splitlines() if line.strip())


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt_rps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f} ms" if x < 100 else f"{x:,.0f} ms"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.2f}"


def fmt_count(n: int | None) -> str:
    """A count for a report's table: '10,000', or '—' when it is unknown."""
    return "—" if n is None else f"{n:,}"


def fmt_met(met: bool | None) -> str:
    """A target's 'met?' cell: yes, **no**, or '—' when nothing was measured."""
    return "—" if met is None else ("yes" if met else "**no**")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None

