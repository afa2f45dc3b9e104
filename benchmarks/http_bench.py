# benchmarks/http_bench.py: the HTTP benchmark driver: lichen against its peers with wrk (`make bench`).
#
# Strategy: for each repetition, start every server in turn (rotating the order each time),
# pinned to CPU 0, warm it up, run each wrk scenario pinned to CPU 1, stop it; report medians.
# Then the idle scenario: per server, idle.py client processes open and hold N keep-alive
# connections while we read the server's RSS growth and run wrk alongside them. Results go to
# results/http-DATE.{md,csv,png}; ratios are stated both ways (peer/lichen and lichen/peer).
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import servers  # noqa: E402
from servers import SERVERS, Running, ServerFailed  # noqa: E402

QUICK = os.environ.get("QUICK", "") not in ("", "0")
RESULTS = os.path.join(HERE, "results")
WANTED_IDLE = (10_000, 50_000)  # what the issue asks for; capped by the fd limit below
FD_RESERVE = 1000  # fds kept free in the server for wrk, the listener and its own files
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
    lua: bool = False


SCENARIOS = [
    Scenario("keepalive", "keep-alive GET / (hello), 50 connections"),
    Scenario("close", "GET / with `Connection: close`, 50 connections", headers=("Connection: close",)),
    Scenario("64k", "keep-alive GET /64k (64 KiB response), 50 connections", path="/64k"),
    Scenario("post16k", "keep-alive POST /post with a 16 KiB body, 50 connections", path="/post", lua=True),
    Scenario("c1000", "keep-alive GET / (hello), 1000 connections", conns=1000),
]


@dataclass
class WrkResult:
    rps: float
    p99_ms: float | None
    requests: int
    errors: int  # socket errors + non-2xx/3xx
    error_text: str = ""
    other_cpu: float | None = None  # CPUs used by processes other than the server and wrk meanwhile


@dataclass
class IdleResult:
    server: str
    level: int
    opened: int = 0
    open_seconds: float = 0.0
    established: int | None = None  # server-side ESTABLISHED sockets on its port, before wrk
    still_open: int | None = None  # client view after wrk
    answered: int | None = None  # answered one more request at the end
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    wrk: WrkResult | None = None  # keep-alive hello while the idle connections are held
    baseline: WrkResult | None = None  # the same, on the same server start, before opening them
    errors: dict = field(default_factory=dict)
    note: str = ""

    @property
    def held(self) -> int:
        vals = [v for v in (self.established, self.still_open) if v is not None]
        return min(vals) if vals else 0

    @property
    def kib_per_conn(self) -> float | None:
        if self.opened <= 0:
            return None
        return (self.rss_after_kib - self.rss_before_kib) / self.opened


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
    pids = run.pids()
    busy0, srv0, kids0 = _busy_jiffies(), _proc_jiffies(pids), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    wall = time.monotonic() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    wrk_cpu = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    other = ((_busy_jiffies() - busy0) - (_proc_jiffies(pids) - srv0)) / _HZ - wrk_cpu
    other_cpu = max(0.0, other / wall) if wall > 0 else None
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
def _busy_mark(w: WrkResult | None) -> str:
    return f" [other {w.other_cpu:.2f} CPU]" if w and (w.other_cpu or 0) > BUSY else ""


def log(msg: str = "") -> None:
    print(msg, flush=True)


def established(port: int) -> int | None:
    """Server-side ESTABLISHED TCP sockets on `port` (from ss)."""
    if not shutil.which("ss"):
        return None
    r = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True)
    return sum(1 for line in r.stdout.splitlines() if line.strip())


def fd_situation() -> tuple[int, list[str]]:
    """The fd limit servers get (after trying to raise it) and what we learned, for the report."""
    notes = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = WANTED_IDLE[-1] + FD_RESERVE
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except OSError:
        nr_open = -1
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            notes.append(f"raised RLIMIT_NOFILE to {want}")
        except (ValueError, OSError) as e:
            notes.append(f"RLIMIT_NOFILE hard limit is {hard} and cannot be raised here "
                         f"(setrlimit to {want}: {e}; /proc/sys/fs/nr_open = {nr_open})")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0], notes


def idle_levels(limit: int, quick: bool) -> tuple[list[int], list[str]]:
    if quick:
        return [2000, 4000], ["QUICK mode: idle levels 2,000 and 4,000 instead of 10,000 and 50,000"]
    levels, notes = [], []
    cap = (limit - FD_RESERVE) // 1000 * 1000
    for want in WANTED_IDLE:
        if want <= cap:
            levels.append(want)
        else:
            notes.append(f"{want:,} idle connections are NOT possible on this machine: a server process may "
                         f"open only {limit:,} files (RLIMIT_NOFILE), so {cap:,} idle connections "
                         f"(leaving {FD_RESERVE} fds for wrk and the server itself) are measured instead")
            if cap > (levels[-1] if levels else 0):
                levels.append(cap)
    return levels, notes


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------- the runs
def check_server(run: Running) -> list[str]:
    """What differs from the expected answers (checked once per server)."""
    notes = []
    hello = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    big = b"GET /64k HTTP/1.1\r\nHost: bench\r\n\r\n"
    post = (b"POST /post HTTP/1.1\r\nHost: bench\r\nContent-Length: 16384\r\n\r\n" + b"x" * 16384)
    close = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    try:
        status, body, _ = servers.http_exchange(run.port, hello)
        if " 200" not in status or body != b"Hello, World!":
            notes.append(f"GET / answered {status!r} {body[:40]!r}")
        status, body, _ = servers.http_exchange(run.port, big)
        if " 200" not in status or len(body) != 65536:
            notes.append(f"GET /64k answered {status!r} with {len(body)} bytes")
        status, body, _ = servers.http_exchange(run.port, post)
        if " 200" not in status or body != b"16384":
            notes.append(f"POST /post answered {status!r} {body[:40]!r}" + (" (static ceiling)" if run.server.name == "nginx" else ""))
        status, body, closed = servers.http_exchange(run.port, close, check_close=True)
        if closed is False:
            notes.append("keeps the connection open after `Connection: close` (so wrk reuses it: "
                         "its `close` figure is really keep-alive)")
    except OSError as e:
        notes.append(f"check request failed: {e}")
    return notes


def run_throughput(names: list[str], reps: int, seconds: float, warm: float, tmp: str,
                   results: dict, notes: dict, failures: dict, scenarios: list[Scenario]) -> None:
    for rep in range(reps):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        if rep % 2:
            order.reverse()
        log(f"-- repetition {rep + 1}/{reps}: {', '.join(order)}")
        for name in order:
            try:
                run = servers.start(SERVERS[name])
            except ServerFailed as e:
                failures.setdefault(name, str(e).splitlines()[0])
                log(f"   {name}: FAILED to start: {str(e).splitlines()[0]}")
                continue
            try:
                if name not in notes:
                    notes[name] = check_server(run)
                run_wrk(run, SCENARIOS[0], warm, tmp)  # warm-up, not recorded
                line = []
                for sc in scenarios:
                    if not run.alive():
                        failures.setdefault(name, f"died during {sc.name}: {run.log_tail(3).strip()}")
                        break
                    w = run_wrk(run, sc, seconds, tmp)
                    results.setdefault((name, sc.name), []).append(w)
                    line.append(f"{sc.name} {w.rps / 1000:.1f}k" + (f" ({w.errors} err)" if w.errors else "")
                                + (f" [other {w.other_cpu:.2f} CPU]" if (w.other_cpu or 0) > BUSY else ""))
                log(f"   {name:15s} " + ", ".join(line))
            finally:
                run.stop()


def run_idle(names: list[str], levels: list[int], seconds: float, warm: float, tmp: str) -> list[IdleResult]:
    out = []
    per_proc = 10_000
    for name in names:
        try:
            run = servers.start(SERVERS[name])
        except ServerFailed as e:
            log(f"   {name}: FAILED to start: {str(e).splitlines()[0]}")
            continue
        clients: list[subprocess.Popen] = []
        try:
            run_wrk(run, SCENARIOS[0], warm, tmp)  # warm-up
            baseline = run_wrk(run, SCENARIOS[0], seconds, tmp)  # no-idle figure, same start
            time.sleep(0.5)
            rss0 = run.rss_kib()
            opened = 0
            open_seconds = 0.0
            errors: dict = {}
            for level in levels:
                res = IdleResult(name, level, rss_before_kib=rss0, baseline=baseline)
                t0 = time.monotonic()
                todo = level - opened  # the new connections go to new client processes
                new = []
                while todo > 0:
                    n = min(per_proc, todo)
                    argv = [sys.executable, os.path.join(HERE, "idle.py"), "--port", str(run.port),
                            "--count", str(n), "--timeout", "30", "--stall", "5"]
                    if shutil.which("taskset"):
                        argv = ["taskset", "-c", "1", *argv]
                    new.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                text=True, start_new_session=True))
                    todo -= n
                for p in new:  # one at a time would be slower; they share CPU 1 anyway
                    line = p.stdout.readline()
                    msg = json.loads(line) if line else {"ok": 0, "errors": {"client died": 1}}
                    opened += msg["ok"]
                    for k, v in msg.get("errors", {}).items():
                        errors[k] = errors.get(k, 0) + v
                clients += new
                open_seconds += time.monotonic() - t0
                res.opened, res.open_seconds, res.errors = opened, open_seconds, dict(errors)
                time.sleep(1.0)  # let the server settle (lazy frees, timers)
                if not run.alive():
                    res.note = f"server died: {run.log_tail(3).strip()}"
                    out.append(res)
                    break
                res.rss_after_kib = run.rss_kib()
                res.established = established(run.port)
                res.wrk = run_wrk(run, SCENARIOS[0], seconds, tmp)
                still, answered = 0, 0
                for p in clients:
                    p.stdin.write("check\n")
                    p.stdin.flush()
                    still += json.loads(p.stdout.readline() or '{"open": 0}')["open"]
                res.still_open = still
                for p in clients:  # every held connection makes one more request
                    p.stdin.write("verify 10\n")
                    p.stdin.flush()
                for p in clients:
                    msg = json.loads(p.stdout.readline() or '{"answered": 0}')
                    answered += msg["answered"]
                    for k, v in msg.get("errors", {}).items():
                        res.errors[f"verify {k}"] = res.errors.get(f"verify {k}", 0) + v
                res.answered = answered
                out.append(res)
                kib = res.kib_per_conn
                log(f"   {name:15s} idle {level:>6,}: opened {opened:,} in {open_seconds:.1f}s, "
                    f"ESTABLISHED {res.established}, open after wrk {still:,}, answered {answered:,}, "
                    f"RSS +{(res.rss_after_kib - rss0) / 1024:.1f} MiB"
                    + (f" = {kib:.2f} KiB/conn" if kib is not None else "")
                    + f", wrk {res.wrk.rps / 1000:.1f}k rps{_busy_mark(res.wrk)} "
                    f"(no idle: {baseline.rps / 1000:.1f}k{_busy_mark(baseline)})"
                    + (f" ({res.wrk.errors} err)" if res.wrk.errors else "")
                    + (f", errors {res.errors}" if res.errors else ""))
                if res.held < 0.9 * level or answered < 0.9 * level:
                    if level != levels[-1]:
                        log(f"   {name:15s} holds fewer than 90% of {level:,}: higher levels skipped")
                    break
        finally:
            for p in clients:
                try:
                    p.stdin.write("quit\n")
                    p.stdin.close()
                except OSError:
                    pass
            for p in clients:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait()
            run.stop()
    return out


# --------------------------------------------------------------------------- report
def fmt_rps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f} ms" if x < 100 else f"{x:,.0f} ms"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.2f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarize(results: dict, names: list[str], scenarios: list[Scenario]) -> dict:
    """(server, scenario) -> dict of medians and ratios to lichen."""
    out = {}
    for sc in scenarios:
        base = median([w.rps for w in results.get(("lichen", sc.name), [])])
        for name in names:
            ws = results.get((name, sc.name), [])
            if not ws:
                continue
            rps = median([w.rps for w in ws])
            p99s = [w.p99_ms for w in ws if w.p99_ms is not None]
            out[(name, sc.name)] = {
                "rps": rps, "p99_ms": median(p99s), "reps": len(ws), "errors": sum(w.errors for w in ws),
                "requests": sum(w.requests for w in ws), "peer_over_lichen": ratio(rps, base),
                "lichen_over_peer": ratio(base, rps), "all_rps": [w.rps for w in ws],
                "error_text": "; ".join(sorted({w.error_text for w in ws if w.error_text})),
            }
    return out


TARGETS = [  # (scenario, peer, minimum lichen/peer) from issue #5
    ("keepalive", "granian", 1.0), ("keepalive", "meinheld", 2.0), ("close", "meinheld", 1.0),
    ("64k", "bjoern", 0.8), ("post16k", "meinheld", 2.0),
]


def targets_lines(summary: dict, idle: list[IdleResult]) -> list[str]:
    lines = ["| target (issue #5) | measured | met? |", "|---|---|---|"]
    for scn, peer, need in TARGETS:
        r = summary.get((peer, scn), {}).get("lichen_over_peer")
        lines.append(f"| {scn}: lichen/{peer} ≥ {need:.1f} | {fmt_ratio(r)} | "
                     f"{'—' if r is None else ('yes' if r >= need else '**no**')} |")
    for res in [r for r in idle if r.server == "lichen"]:
        ka = res.baseline.rps if res.baseline else None
        kib = res.kib_per_conn
        lines.append(f"| {res.level:,} idle: ≤ 1.5 KiB RSS per connection | {fmt_ratio(kib)} KiB | "
                     f"{'—' if kib is None else ('yes' if kib <= 1.5 else '**no**')} |")
        all_held = res.held >= res.level and (res.answered or 0) >= res.level
        lines.append(f"| {res.level:,} idle: all held and answering | held {res.held:,}, answered "
                     f"{res.answered or 0:,} | {'yes' if all_held else '**no**'} |")
        r = ratio(res.wrk.rps if res.wrk else None, ka)
        lines.append(f"| {res.level:,} idle: keep-alive req/s within 10% of no-idle | {fmt_ratio(r)} × | "
                     f"{'—' if r is None else ('yes' if r >= 0.9 else '**no**')} |")
    return lines


def markdown(meta: dict, names: list[str], scenarios: list[Scenario], summary: dict, idle: list[IdleResult],
             notes: dict, failures: dict, unavailable: dict, fd_notes: list[str], results: dict) -> str:
    L = [f"# lichen HTTP benchmark, {meta['date']}", ""]
    L += [f"- {meta['machine']}", f"- mode: {meta['mode']}", f"- pinning: servers `taskset -c 0`, "
          f"wrk and idle clients `taskset -c 1`; wrk -t1, {meta['seconds']} s per run after a {meta['warm']} s "
          "warm-up per server start; --timeout 5s", f"- tools: {meta['wrk']}, {meta['python']}", f"- {meta['load']}",
          f"- total time: {meta['elapsed']}", ""]
    L += ["Versions and settings:", "", "| server | version | settings |", "|---|---|---|"]
    for name in names:
        s = SERVERS[name]
        L.append(f"| {name} | {meta['versions'].get(name, '')} | {s.config} |")
    L.append("")
    if unavailable:
        L += ["Not run:", ""] + [f"- **{n}**: {why}" for n, why in unavailable.items()] + [""]
    L += ["## Requests/s (median) and peer/lichen", "",
          "Each cell: median requests/s, then (peer/lichen): below 1.00 the peer is slower than lichen, "
          "above 1.00 faster. lichen/peer is in the per-scenario tables below.", ""]
    keeps = {n for n, v in notes.items() if any("Connection: close" in x for x in v)}

    def mark(name: str, scn: str) -> str:
        return " †" if scn == "close" and name in keeps else ""

    L.append("| server | " + " | ".join(sc.name for sc in scenarios) + " |")
    L.append("|---|" + "---|" * len(scenarios))
    for name in names:
        cells = []
        for sc in scenarios:
            d = summary.get((name, sc.name))
            cells.append("—" if not d else f"{fmt_rps(d['rps'])} ({fmt_ratio(d['peer_over_lichen'])}){mark(name, sc.name)}")
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    if keeps:
        L += ["", "† keeps the connection open after `Connection: close`, so wrk reuses it: a keep-alive figure."]
    L.append("")
    for sc in scenarios:
        L += [f"### {sc.name}: {sc.title}", "",
              "| server | req/s | p99 latency | req/s peer/lichen | req/s lichen/peer | errors | reps |",
              "|---|---|---|---|---|---|---|"]
        for name in names:
            d = summary.get((name, sc.name))
            if not d:
                continue
            L.append(f"| {name} | {fmt_rps(d['rps'])}{mark(name, sc.name)} | {fmt_ms(d['p99_ms'])} | {fmt_ratio(d['peer_over_lichen'])} "
                     f"| {fmt_ratio(d['lichen_over_peer'])} | {d['errors']:,} | {d['reps']} |")
        L.append("")
    if idle:
        L += ["## Idle keep-alive connections", "",
              "Each idle connection made one `GET /` and then stays open. RSS growth = server VmRSS "
              "(all its processes) after opening them minus before, divided by the connections opened. "
              "held = min(server-side ESTABLISHED before wrk, client-side still open after wrk); "
              "answered = connections that answered one more request at the end. "
              "req/s = keep-alive hello with 50 wrk connections while the idle ones are held; "
              "no-idle req/s = the same wrk run on the same server start just before the idle connections "
              "were opened; vs no-idle = the first / the second.", ""]
        L += fd_notes + [""] if fd_notes else []
        L += ["| server | idle conns | opened | held | answered | RSS growth | KiB/conn | req/s while held "
              "| no-idle req/s | vs no-idle | p99 while held | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in idle:
            ka = r.baseline.rps if r.baseline else None
            rps = r.wrk.rps if r.wrk else None
            errs = ", ".join(f"{k} {v}" for k, v in r.errors.items())
            busy = [f"{what}: other processes used {w.other_cpu:.2f} CPUs" for what, w in
                    (("while held", r.wrk), ("no-idle run", r.baseline)) if _busy_mark(w)]
            note = "; ".join(x for x in (r.note, errs, r.wrk.error_text if r.wrk else "", *busy) if x)
            L.append(f"| {r.server} | {r.level:,} | {r.opened:,} | {r.held:,} | {'—' if r.answered is None else f'{r.answered:,}'} "
                     f"| {(r.rss_after_kib - r.rss_before_kib) / 1024:,.1f} MiB | {fmt_ratio(r.kib_per_conn)} "
                     f"| {fmt_rps(rps)} | {fmt_rps(ka)} | {fmt_ratio(ratio(rps, ka))} | {fmt_ms(r.wrk.p99_ms if r.wrk else None)} | {note} |")
        L.append("")
    L += ["## Targets", ""] + targets_lines(summary, idle) + [""]
    flagged = {n: v for n, v in notes.items() if v}
    if flagged or failures:
        L += ["## Notes", ""]
        L += [f"- **{n}**: " + "; ".join(v) for n, v in flagged.items()]
        L += [f"- **{n}** failed: {v}" for n, v in failures.items()]
        errs = [(n, sc.name, d["error_text"]) for (n, scn), d in summary.items() for sc in scenarios
                if sc.name == scn and d["error_text"]]
        L += [f"- wrk errors, {n} {s}: {t}" for n, s, t in errs]
        L.append("")
    L += ["## Every repetition (req/s)", "", f"`*`: other processes used more than {BUSY} CPUs during that run.", ""]
    for sc in scenarios:
        for name in names:
            ws = results.get((name, sc.name))
            if ws:
                L.append(f"- {sc.name} {name}: " + ", ".join(
                    f"{w.rps:,.0f}" + ("*" if (w.other_cpu or 0) > BUSY else "") for w in ws))
    L += ["", f"Chart: `{meta['png']}`. Total time: {meta['elapsed']}.", ""]
    return "\n".join(L)


def write_csv(path: str, meta: dict, names: list[str], scenarios: list[Scenario], summary: dict,
              idle: list[IdleResult]) -> None:
    cols = ["date", "mode", "scenario", "server", "version", "reps", "rps_median", "p99_ms_median",
            "rps_peer_over_lichen", "rps_lichen_over_peer", "errors", "rps_each",
            "idle_connections", "idle_opened", "idle_held", "idle_answered", "rss_growth_kib", "rss_kib_per_conn",
            "idle_no_idle_rps"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for sc in scenarios:
            for name in names:
                d = summary.get((name, sc.name))
                if d:
                    w.writerow({"date": meta["date"], "mode": meta["mode"], "scenario": sc.name, "server": name,
                                "version": meta["versions"].get(name, ""), "reps": d["reps"],
                                "rps_median": round(d["rps"], 1),
                                "p99_ms_median": None if d["p99_ms"] is None else round(d["p99_ms"], 3),
                                "rps_peer_over_lichen": None if d["peer_over_lichen"] is None else round(d["peer_over_lichen"], 4),
                                "rps_lichen_over_peer": None if d["lichen_over_peer"] is None else round(d["lichen_over_peer"], 4),
                                "errors": d["errors"], "rps_each": " ".join(f"{x:.0f}" for x in d["all_rps"])})
        base = {r.level: r.wrk.rps for r in idle if r.server == "lichen" and r.wrk}
        for r in idle:
            rps = r.wrk.rps if r.wrk else None
            w.writerow({"date": meta["date"], "mode": meta["mode"], "scenario": f"idle-{r.level}", "server": r.server,
                        "version": meta["versions"].get(r.server, ""), "reps": 1, "rps_median": rps,
                        "p99_ms_median": r.wrk.p99_ms if r.wrk else None,
                        "rps_peer_over_lichen": None if ratio(rps, base.get(r.level)) is None else round(ratio(rps, base.get(r.level)), 4),
                        "rps_lichen_over_peer": None if ratio(base.get(r.level), rps) is None else round(ratio(base.get(r.level), rps), 4),
                        "errors": r.wrk.errors if r.wrk else None, "idle_connections": r.level,
                        "idle_opened": r.opened, "idle_held": r.held, "idle_answered": r.answered,
                        "rss_growth_kib": r.rss_after_kib - r.rss_before_kib,
                        "rss_kib_per_conn": None if r.kib_per_conn is None else round(r.kib_per_conn, 3),
                        "idle_no_idle_rps": r.baseline.rps if r.baseline else None})


def chart(path: str, meta: dict, names: list[str], scenarios: list[Scenario], summary: dict,
          idle: list[IdleResult]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as e:
        return f"no chart: matplotlib is not importable ({e})"
    panels = len(scenarios) + (1 if idle else 0)
    cols = 3
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 4.6 * rows), squeeze=False)
    order = list(reversed(names))  # lichen on top

    def color(n: str) -> str:
        return "#2a9d4a" if n == "lichen" else ("#999999" if n == "nginx" else "#4a78b5")

    for ax, sc in zip(axes.flat, scenarios):
        ys = [n for n in order if (n, sc.name) in summary]
        vals = [summary[(n, sc.name)]["rps"] for n in ys]
        bars = ax.barh(ys, vals, color=[color(n) for n in ys])
        top = max(vals, default=1) or 1
        for b, n, v in zip(bars, ys, vals):
            r = summary[(n, sc.name)]["peer_over_lichen"]
            ax.text(v + top * 0.01, b.get_y() + b.get_height() / 2,
                    f"{v / 1000:.1f}k" + (f"  ({r:.2f}× lichen)" if r and n != "lichen" else ""),
                    va="center", fontsize=8)
        ax.set_xlim(0, top * 1.45)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.set_title(sc.title, fontsize=10)
        ax.set_xlabel("requests/s (median)")
        ax.tick_params(axis="y", labelsize=9)
    if idle:
        ax = axes.flat[len(scenarios)]
        level = max(r.level for r in idle)
        best = {}
        for r in idle:  # each server's largest level measured
            if r.kib_per_conn is not None and (r.server not in best or r.level > best[r.server].level):
                best[r.server] = r
        ys = [n for n in order if n in best]
        vals = [max(best[n].kib_per_conn, 0.01) for n in ys]
        held_all = [best[n].held >= 0.9 * best[n].level for n in ys]
        bars = ax.barh(ys, vals, color=[color(n) if ok else "#e8b4b4" for n, ok in zip(ys, held_all)],
                       hatch=[None if ok else "//" for ok in held_all])
        ax.set_xscale("log")
        for b, n, v, ok in zip(bars, ys, vals, held_all):
            r = best[n]
            label = (f"{r.kib_per_conn:.2f} KiB  (held {r.held:,}/{r.level:,})" if ok else
                     f"{r.kib_per_conn:.2f} KiB, but held only {r.held:,}/{r.level:,}")
            ax.text(v * 1.1, b.get_y() + b.get_height() / 2, label, va="center", fontsize=8)
        ax.set_xlim(min(vals, default=0.1) / 2, max(vals, default=1) * 60)
        ax.set_title(f"server RSS per idle keep-alive connection (up to {level:,}; log scale)", fontsize=10)
        ax.set_xlabel("KiB per connection (lower is better)")
        ax.tick_params(axis="y", labelsize=9)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(f"lichen vs peers, {meta['date']} ({meta['mode']}; server on CPU 0, wrk on CPU 1; "
                 "nginx = static ceiling)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- main
def main() -> int:
    t_start = time.monotonic()
    ap = argparse.ArgumentParser(description="lichen vs peers under wrk (see benchmarks/README.md)")
    ap.add_argument("--only", nargs="+", metavar="SERVER", help=f"servers to run (lichen always): {', '.join(SERVERS)}")
    ap.add_argument("--skip", nargs="+", metavar="SERVER", default=[], help="servers to leave out")
    ap.add_argument("--scenarios", nargs="+", metavar="NAME", help=f"subset of: {', '.join(s.name for s in SCENARIOS)}")
    ap.add_argument("--reps", type=int, default=1 if QUICK else 3)
    ap.add_argument("--seconds", type=float, default=1 if QUICK else 2, help="wrk duration per run")
    ap.add_argument("--warm", type=float, default=1, help="wrk warm-up after each server start")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-connections scenario")
    ap.add_argument("--idle-levels", type=int, nargs="+", help="idle connection counts (default 10,000 and 50,000, capped by the fd limit)")
    args = ap.parse_args()

    for tool in ("wrk",):
        if not shutil.which(tool):
            log(f"{tool} not found: run `make -C benchmarks` (it installs wrk and nginx with apt-get)")
            return 2
    names = [n for n in SERVERS if (not args.only or n in args.only or n == "lichen") and n not in args.skip]
    unavailable = {}
    failed_installs = {}
    fail_file = os.path.join(HERE, ".venv", "install-failed.txt")
    if os.path.exists(fail_file):
        with open(fail_file) as f:
            for line in f:
                pkg, _, why = line.strip().partition(" ")
                if pkg:
                    failed_installs[pkg] = why
    for n in list(names):
        why = SERVERS[n].unavailable()
        if why:
            extra = [f"{p}: {w}" for p, w in failed_installs.items() if p in SERVERS[n].dists or p == n]
            unavailable[n] = why + (f" (install failed: {'; '.join(extra)})" if extra else "")
            names.remove(n)
    if "lichen" not in names:
        log(f"lichen cannot run: {unavailable.get('lichen')}")
        return 2
    scenarios = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    limit, fd_notes = fd_situation()
    levels, level_notes = (args.idle_levels, []) if args.idle_levels else idle_levels(limit, QUICK)
    fd_notes += level_notes
    mode = "QUICK" if QUICK else "default"
    log(f"lichen HTTP benchmark ({mode}): {len(names)} servers x {len(scenarios)} scenarios x {args.reps} reps, "
        f"{args.seconds:g} s per wrk run; idle levels {', '.join(f'{x:,}' for x in levels) if not args.no_idle else 'skipped'}")
    other_start = other_cpu_now()
    if other_start > BUSY:
        log(f"WARNING: other processes keep {other_start:.2f} CPUs busy: they share these CPUs with the "
            "benchmark and the figures will be noisy (see `other CPU` in the result file)")
    for n, why in unavailable.items():
        log(f"NOTE: {n} is not available and is skipped: {why}")
    for note in fd_notes:
        log(f"NOTE: {note}")
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    meta = {
        "date": date, "mode": f"{mode}, {args.reps} reps" if args.reps != 1 else f"{mode}, 1 rep",
        "seconds": f"{args.seconds:g}", "warm": f"{args.warm:g}",
        "machine": f"{platform.system()} {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs"
                   f" ({_cpu_model()}), RLIMIT_NOFILE {limit}",
        "python": f"Python {platform.python_version()}",
        "wrk": ((wrk_v.stdout or wrk_v.stderr).splitlines() or ["wrk ?"])[0].split(" [")[0],
        "versions": {n: SERVERS[n].version() for n in names},
    }
    for n in names:
        log(f"  {n:15s} {meta['versions'][n]}")
    tmp = tempfile.mkdtemp(prefix="lichen-bench-")
    results: dict = {}
    notes: dict = {}
    failures: dict = {}
    idle: list[IdleResult] = []
    try:
        run_throughput(names, args.reps, args.seconds, args.warm, tmp, results, notes, failures, scenarios)
        log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
        if not args.no_idle:
            log(f"-- idle keep-alive connections: {', '.join(f'{x:,}' for x in levels)}")
            idle = run_idle(names, levels, args.seconds, args.warm, tmp)
            log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(results, names, scenarios)
    os.makedirs(RESULTS, exist_ok=True)
    partial = bool(args.only or args.skip or args.scenarios or args.no_idle or args.idle_levels)
    stem = os.path.join(RESULTS, f"http-{date[:10]}" + ("-quick" if QUICK else "") + ("-partial" if partial else ""))
    meta["png"] = os.path.relpath(stem + ".png", os.path.dirname(HERE))
    elapsed = time.monotonic() - t_start
    meta["elapsed"] = f"{elapsed / 60:.1f} min"
    others = [w.other_cpu for ws in results.values() for w in ws if w.other_cpu is not None]
    others += [r.wrk.other_cpu for r in idle if r.wrk and r.wrk.other_cpu is not None]
    flagged = sum(1 for x in others if x > BUSY)
    meta["load"] = (f"other processes (not the server, not wrk): {other_start:.2f} CPUs busy at start; "
                    f"during the wrk runs median {median(others) or 0:.2f}, max {max(others, default=0):.2f} CPUs; "
                    f"{flagged} of {len(others)} runs had more than {BUSY} CPUs of other work "
                    "(marked * in 'Every repetition')")
    text = markdown(meta, names, scenarios, summary, idle, notes, failures, unavailable, fd_notes, results)
    problem = chart(stem + ".png", meta, names, scenarios, summary, idle)
    with open(stem + ".md", "w") as f:
        f.write(text)
    write_csv(stem + ".csv", meta, names, scenarios, summary, idle)
    log("")
    log(text)
    if problem:
        log(problem)
    log(f"written: {os.path.relpath(stem, os.path.dirname(HERE))}.md, .csv" + ("" if problem else ", .png"))
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
