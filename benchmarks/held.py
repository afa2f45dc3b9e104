# benchmarks/held.py: the HTTP scenarios that hold many connections on one server start: idle
# keep-alive connections, long-poll requests parked in the app, server-sent-event streams.
#
# Strategy: idle.py client processes (pinned to CPU 1, at most 10,000 connections each) open
# and hold the connections while the driver reads the server's RSS before and after (all the
# processes of its group) and checks on the server's side that they really are held (ESTABLISHED
# sockets, the app's own count of parked requests or subscribers). Idle and long-poll then run
# the keep-alive wrk on other connections beside them, against the same wrk on the same server
# start before they were opened; SSE broadcasts events and collects, per client, the receive
# time minus the server's send time (one monotonic clock: same machine). Long-poll and SSE run
# only on greenlet servers whose app uses its own library's sleep and Event
# (servers.Server.cooperative). Each scenario's results, markdown, CSV rows, chart panel and
# target lines live here; http_bench.py calls them.
from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import apps
import servers
from measure import (KEEPALIVE, WrkResult, busy_mark, established, fmt_count, fmt_errors, fmt_growth, fmt_met,
                     fmt_ms, fmt_ratio, fmt_rps, log, median, ratio, run_wrk)
from servers import SERVERS, Running, ServerFailed

HERE = os.path.dirname(os.path.abspath(__file__))
WANTED_IDLE = (10_000, 50_000)  # what issue #5 asks for; capped by the fd limit below
FD_RESERVE = 1000  # fds kept free in the server for wrk, the listener and its own files
PER_PROCESS = 10_000  # connections per idle.py client process
PARK_TARGET_KIB, PARK_TARGET_RATIO, SSE_TARGET_MS = 8.0, 0.9, 1000.0  # issue #14


# --------------------------------------------------------------------------- clients
def merge_errors(into: dict, errors: dict | None, prefix: str = "") -> None:
    for k, v in (errors or {}).items():
        into[prefix + k] = into.get(prefix + k, 0) + v


class Clients:
    """The idle.py processes holding connections to one server; commands go to all of them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.procs: list[subprocess.Popen] = []

    def open(self, count: int, path: str = "/", expect: str = "response") -> tuple[int, dict, float]:
        """Open `count` more connections in new processes: (opened, errors, seconds)."""
        t0 = time.monotonic()
        new = []
        while count > 0:
            n = min(PER_PROCESS, count)
            argv = [sys.executable, os.path.join(HERE, "idle.py"), "--port", str(self.port), "--count", str(n),
                    "--timeout", "30", "--stall", "5", "--path", path, "--expect", expect]
            if shutil.which("taskset"):
                argv = ["taskset", "-c", "1", *argv]
            new.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, start_new_session=True))
            count -= n
        self.procs += new
        opened, errors = 0, {}
        for msg in self._replies(new, {"ok": 0, "errors": {"client died": 1}}):  # they open side by side
            opened += msg["ok"]
            merge_errors(errors, msg.get("errors"))
        return opened, errors, time.monotonic() - t0

    def tell(self, command: str) -> None:
        for p in self.procs:
            p.stdin.write(command + "\n")
            p.stdin.flush()

    def replies(self, default: dict) -> list[dict]:
        """One JSON line from each process (`default` for one that died)."""
        return self._replies(self.procs, default)

    @staticmethod
    def _replies(procs: list[subprocess.Popen], default: dict) -> list[dict]:
        return [json.loads(line) if (line := p.stdout.readline()) else dict(default) for p in procs]

    def ask(self, command: str, default: dict) -> list[dict]:
        self.tell(command)
        return self.replies(default)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            try:
                p.stdin.write("quit\n")
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        self.procs = []


@contextlib.contextmanager
def serving(name: str) -> Iterator[tuple[Running, Clients]]:
    """Start `name` (ServerFailed if it cannot), with a Clients group; afterwards close the
    clients and stop the server."""
    run = servers.start(SERVERS[name])
    clients = Clients(run.port)
    try:
        yield run, clients
    finally:
        clients.close()
        run.stop()


def each_server(names: list[str], measure: Callable[[str, Running, Clients], Any]) -> list:
    """measure(name, run, clients) on a fresh start of each server; the results in order."""
    out = []
    for name in names:
        try:
            with serving(name) as (run, clients):
                out.append(measure(name, run, clients))
        except ServerFailed as e:
            log(f"   {name}: FAILED to start: {str(e).splitlines()[0]}")
    return out


def app_count(port: int, path: str) -> int | None:
    """The number the app answers at /parked or /subscribers."""
    try:
        status, body, _ = servers.http_exchange(port, f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode(),
                                                timeout=10)
        return int(body) if " 200" in status else None
    except (OSError, ValueError):
        return None


def wait_count(port: int, path: str, want: int, timeout: float = 10.0, down: bool = False) -> int | None:
    """Poll app_count until it reaches `want` (or `timeout` passes): up to
    it, or with `down` down to it. The last answer."""
    deadline = time.monotonic() + timeout
    while ((n := app_count(port, path)) is not None and (n > want if down else n < want)
           and time.monotonic() < deadline):
        time.sleep(0.1)
    return n


def kib_each(before: int, after: int, n: int) -> float | None:
    return (after - before) / n if n > 0 else None


# --------------------------------------------------------------------------- fd limit
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


def fitting(want: int, limit: int, what: str) -> tuple[int, str]:
    """`want` connections, or fewer if the server's fd limit cannot take them; and a note."""
    cap = limit - FD_RESERVE
    if want <= cap:
        return want, f"{want:,} {what} fit in the server's RLIMIT_NOFILE of {limit:,}"
    return cap, f"{want:,} {what} do NOT fit in the server's RLIMIT_NOFILE of {limit:,}: {cap:,} measured"


# --------------------------------------------------------------------------- idle
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
        return kib_each(self.rss_before_kib, self.rss_after_kib, self.opened)


def run_idle(names: list[str], levels: list[int], seconds: float, warm: float, tmp: str) -> list[IdleResult]:
    def measure(name: str, run: Running, clients: Clients) -> list[IdleResult]:
        out = []
        run_wrk(run, KEEPALIVE, warm, tmp)  # warm-up
        baseline = run_wrk(run, KEEPALIVE, seconds, tmp)  # no-idle figure, same start
        time.sleep(0.5)
        rss0 = run.rss_kib()
        opened = 0
        open_seconds = 0.0
        errors: dict = {}
        for level in levels:
            res = IdleResult(name, level, rss_before_kib=rss0, baseline=baseline)
            ok, errs, secs = clients.open(level - opened)  # the new connections go to new client processes
            opened += ok
            open_seconds += secs
            merge_errors(errors, errs)
            res.opened, res.open_seconds, res.errors = opened, open_seconds, dict(errors)
            time.sleep(1.0)  # let the server settle (lazy frees, timers)
            if not run.alive():
                res.note = f"server died: {run.log_tail(3).strip()}"
                out.append(res)
                break
            res.rss_after_kib = run.rss_kib()
            res.established = established(run.port)
            res.wrk = run_wrk(run, KEEPALIVE, seconds, tmp)
            res.still_open = sum(m["open"] for m in clients.ask("check", {"open": 0}))
            answered = 0
            for msg in clients.ask("verify 10", {"answered": 0}):  # every held connection: one more request
                answered += msg["answered"]
                merge_errors(res.errors, msg.get("errors"), "verify ")
            res.answered = answered
            out.append(res)
            kib = res.kib_per_conn
            log(f"   {name:15s} idle {level:>6,}: opened {opened:,} in {open_seconds:.1f}s, "
                f"ESTABLISHED {res.established}, open after wrk {res.still_open:,}, answered {answered:,}, "
                f"RSS +{(res.rss_after_kib - rss0) / 1024:.1f} MiB"
                + (f" = {kib:.2f} KiB/conn" if kib is not None else "")
                + f", wrk {res.wrk.rps / 1000:.1f}k rps{busy_mark(res.wrk)} "
                f"(no idle: {baseline.rps / 1000:.1f}k{busy_mark(baseline)})"
                + (f" ({res.wrk.errors} err)" if res.wrk.errors else "")
                + (f", errors {res.errors}" if res.errors else ""))
            if res.held < 0.9 * level or answered < 0.9 * level:
                if level != levels[-1]:
                    log(f"   {name:15s} holds fewer than 90% of {level:,}: higher levels skipped")
                break
        return out

    return [r for rs in each_server(names, measure) for r in rs]


def idle_markdown(idle: list[IdleResult], fd_notes: list[str]) -> list[str]:
    L = ["## Idle keep-alive connections", "",
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
        errs = fmt_errors(r.errors)
        busy = [f"{what}: other processes used {w.other_cpu:.2f} CPUs" for what, w in
                (("while held", r.wrk), ("no-idle run", r.baseline)) if busy_mark(w)]
        note = "; ".join(x for x in (r.note, errs, r.wrk.error_text if r.wrk else "", *busy) if x)
        L.append(f"| {r.server} | {r.level:,} | {r.opened:,} | {r.held:,} | {fmt_count(r.answered)} "
                 f"| {fmt_growth(r.rss_before_kib, r.rss_after_kib)} | {fmt_ratio(r.kib_per_conn)} "
                 f"| {fmt_rps(rps)} | {fmt_rps(ka)} | {fmt_ratio(ratio(rps, ka))} | {fmt_ms(r.wrk.p99_ms if r.wrk else None)} | {note} |")
    return L + [""]


def idle_targets(idle: list[IdleResult]) -> list[str]:
    lines = []
    for res in [r for r in idle if r.server == "lichen"]:
        ka = res.baseline.rps if res.baseline else None
        kib = res.kib_per_conn
        lines.append(f"| #5 | {res.level:,} idle: ≤ 1.5 KiB RSS per connection | {fmt_ratio(kib)} KiB | "
                     f"{fmt_met(None if kib is None else kib <= 1.5)} |")
        all_held = res.held >= res.level and (res.answered or 0) >= res.level
        lines.append(f"| #5 | {res.level:,} idle: all held and answering | held {res.held:,}, answered "
                     f"{res.answered or 0:,} | {fmt_met(all_held)} |")
        r = ratio(res.wrk.rps if res.wrk else None, ka)
        lines.append(f"| #5 | {res.level:,} idle: keep-alive req/s within 10% of no-idle | {fmt_ratio(r)} × | "
                     f"{fmt_met(None if r is None else r >= 0.9)} |")
    return lines


def idle_csv(idle: list[IdleResult], row: Callable[..., dict]) -> list[dict]:
    base = {r.level: r.wrk.rps for r in idle if r.server == "lichen" and r.wrk}
    out = []
    for r in idle:
        rps = r.wrk.rps if r.wrk else None
        out.append(row(f"idle-{r.level}", r.server, reps=1, rps_median=rps,
                       p99_ms_median=r.wrk.p99_ms if r.wrk else None,
                       rps_peer_over_lichen=ratio(rps, base.get(r.level)),
                       rps_lichen_over_peer=ratio(base.get(r.level), rps),
                       errors=r.wrk.errors if r.wrk else None, connections=r.level,
                       opened=r.opened, held=r.held, answered=r.answered,
                       rss_growth_kib=r.rss_after_kib - r.rss_before_kib, rss_kib_per_conn=r.kib_per_conn,
                       baseline_rps=r.baseline.rps if r.baseline else None))
    return out


def idle_panel(ax: Any, idle: list[IdleResult], order: list[str], color: Callable[[str], str]) -> None:
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


# --------------------------------------------------------------------------- long-poll
@dataclass
class LongPollResult:
    server: str
    count: int  # /park requests wanted
    opened: int = 0  # sent (client view)
    open_seconds: float = 0.0
    parked: int | None = None  # the app's count before the wrk runs
    parked_after: int | None = None  # ... and after them
    pending: int | None = None  # client view after the wrk runs: open and still unanswered
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    none: list[WrkResult] = field(default_factory=list)  # keep-alive wrk, none parked (same start, before)
    parked_runs: list[WrkResult] = field(default_factory=list)  # the same while they are parked
    errors: dict = field(default_factory=dict)
    note: str = ""
    seconds: float = 0.0  # each wrk run
    warm: float = 0.0  # the warm-up before the first

    @property
    def kib_per_request(self) -> float | None:
        return kib_each(self.rss_before_kib, self.rss_after_kib, self.opened)

    @property
    def ratios(self) -> list[float | None]:
        """Each run while parked over the mean of the runs with none parked
        just before and just after it (A-B-A: a drift of the machine's speed
        over the minute cancels; a one-run dip of the baseline counts half)."""
        out = []
        for i, p in enumerate(self.parked_runs):
            around = [w.rps for w in self.none[i:i + 2] if w.rps]
            out.append(ratio(p.rps, sum(around) / len(around)) if len(around) == 2 else None)
        return out

    @property
    def all_parked(self) -> bool:
        return self.opened == self.count and all(x == self.count for x in (self.parked, self.parked_after,
                                                                          self.pending))


def run_longpoll(names: list[str], count: int, reps: int, seconds: float, warm: float,
                 tmp: str) -> list[LongPollResult]:
    """Repetitions interleaved: a run with none parked, then `count` parked
    for a run and let go, and again, and a last run with none parked, so
    that each parked run has one with none parked on either side. On the
    machines measured, a server's speed drifts: windows of several seconds
    in which the whole core (kernel time included) serves 30-50 % fewer
    requests, with none parked as with 10,000, for granian as for lichen.
    All none-parked runs first would compare two different moments. `warm`: the wrk warm-up after the server
    starts. The RSS per parked request is measured in the first repetition."""
    settle = 1.0  # after parking, before measuring (lazy frees, timers)
    hold = min(settle + seconds + 4.0, apps.PARK_SECONDS)  # each parked request sleeps past its run

    def measure(name: str, run: Running, clients: Clients) -> LongPollResult:
        res = LongPollResult(name, count, seconds=seconds, warm=warm)
        run_wrk(run, KEEPALIVE, warm, tmp)  # warm-up
        parked, parked_after, pending = [], [], []
        for rep in range(reps):
            res.none.append(run_wrk(run, KEEPALIVE, seconds, tmp))
            time.sleep(0.5)
            rss_before = run.rss_kib()
            t0 = time.monotonic()
            opened, errors, open_seconds = clients.open(count, f"/park?seconds={hold:g}", "pending")
            merge_errors(res.errors, errors)
            parked.append(wait_count(run.port, "/parked", opened))
            time.sleep(settle)
            if rep == 0:
                res.opened, res.open_seconds = opened, open_seconds
                res.rss_before_kib, res.rss_after_kib = rss_before, run.rss_kib()
            res.parked_runs.append(run_wrk(run, KEEPALIVE, seconds, tmp))
            parked_after.append(app_count(run.port, "/parked"))
            checks = clients.ask("check", {"open": 0, "data": 0, "dropped": 0})
            # (open but answered already: no longer parked)
            pending.append(sum(m["open"] for m in checks) - sum(m["data"] for m in checks))
            dropped = sum(m["dropped"] for m in checks)
            if dropped:
                merge_errors(res.errors, {"dropped by the server": dropped})
            if time.monotonic() - t0 > hold:
                res.note = "the measurement outlasted the park time: some requests were no longer parked"
            clients.close()
            # Their sleeps end at `hold`: the next run starts with none parked.
            if wait_count(run.port, "/parked", 0, timeout=hold + 10, down=True) != 0:
                res.note = "parked requests did not finish between repetitions"
            time.sleep(1.0)  # (their connections close)
        res.none.append(run_wrk(run, KEEPALIVE, seconds, tmp))  # (the last parked run's "after")
        res.parked, res.parked_after, res.pending = _least(parked), _least(parked_after), _least(pending)
        if not run.alive():
            res.note = f"server died: {run.log_tail(3).strip()}"
        kib = res.kib_per_request
        log(f"   {name:15s} park {count:,}: sent {res.opened:,} in {res.open_seconds:.1f}s, parked {res.parked} "
            f"(after wrk {res.parked_after}, still pending {res.pending}; fewest of {reps}), RSS "
            f"+{(res.rss_after_kib - res.rss_before_kib) / 1024:.1f} MiB"
            + (f" = {kib:.2f} KiB/request" if kib is not None else "")
            + "; req/s none parked " + " ".join(f"{w.rps / 1000:.1f}k{busy_mark(w)}" for w in res.none)
            + ", parked " + " ".join(f"{w.rps / 1000:.1f}k{busy_mark(w)}" for w in res.parked_runs)
            + " = " + " ".join(fmt_ratio(r) for r in res.ratios)
            + (f", errors {res.errors}" if res.errors else "") + (f" ({res.note})" if res.note else ""))
        return res

    return each_server(names, measure)


def _least(xs: list[int | None]) -> int | None:
    """The fewest of the repetitions' counts (None if any is unknown)."""
    return None if not xs or any(x is None for x in xs) else min(xs)


def _each(ws: list[WrkResult]) -> str:
    return " / ".join(fmt_rps(w.rps) + ("*" if busy_mark(w) else "") for w in ws)


def longpoll_markdown(lp: list[LongPollResult], note: str) -> list[str]:
    count = max(r.count for r in lp)
    timing = f"runs of {lp[0].seconds:g} s, after a warm-up of {lp[0].warm:g} s"
    L = [f"## Long-poll: {count:,} requests parked in the app", "",
         f"Each client connection sends one `GET /park?seconds=N`; the app sleeps N s on the "
         "server's own cooperative sleep (`lichen.sleep`, `gevent.sleep`) before answering, N past the end of "
         "the run that measures them, so the requests stay parked in the app for the whole run. Only greenlet "
         "servers can park that many requests in a WSGI app cheaply (a thread or process per request is the "
         "alternative), so only lichen and gevent run it. Repetitions alternate within one server start: a "
         f"run with none parked, then {count:,} parked for a run, let go and drained, and again, ending with a "
         f"run with none parked ({timing}). "
         "parked = the app's own count (`/parked`) before and after the run while parked; pending = client "
         "connections still open and unanswered after it (the fewest over the repetitions). RSS growth = "
         "server VmRSS after parking minus before, per request sent (the connection's own cost included; "
         "first repetition). req/s: keep-alive `GET /` with 50 wrk connections beside them; parked/none is "
         "given for each run while parked, over the mean of the runs with none parked just before and just "
         "after it. `*`: other processes "
         "used more than 0.2 CPUs during that run.", "", note, "",
         "| server | parked (before / after wrk) | pending at the end | RSS growth | KiB per parked request "
         "| req/s none parked | req/s while parked | parked/none, each repetition | p99 while parked | notes |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in lp:
        errs = fmt_errors(r.errors)
        wrk_errs = "; ".join(w.error_text for w in r.none + r.parked_runs if w.error_text)
        L.append(f"| {r.server} | {r.parked if r.parked is not None else '—'} / "
                 f"{r.parked_after if r.parked_after is not None else '—'} of {r.count:,} | "
                 f"{fmt_count(r.pending)} "
                 f"| {fmt_growth(r.rss_before_kib, r.rss_after_kib)} | {fmt_ratio(r.kib_per_request)} "
                 f"| {_each(r.none)} | {_each(r.parked_runs)} | {' / '.join(fmt_ratio(x) for x in r.ratios)} "
                 f"| {fmt_ms(median([w.p99_ms for w in r.parked_runs if w.p99_ms is not None]))} "
                 f"| {'; '.join(x for x in (r.note, errs, wrk_errs) if x)} |")
    return L + [""]


def longpoll_targets(lp: list[LongPollResult]) -> list[str]:
    lines = []
    for r in [r for r in lp if r.server == "lichen"]:
        kib = r.kib_per_request
        lines.append(f"| #14 | {r.count:,} parked requests: ≤ {PARK_TARGET_KIB:g} KiB RSS each | {fmt_ratio(kib)} KiB "
                     f"| {fmt_met(None if kib is None else kib <= PARK_TARGET_KIB)} |")
        lines.append(f"| #14 | {r.count:,} parked requests: all parked throughout | parked {r.parked} / {r.parked_after}, "
                     f"pending {r.pending} | {fmt_met(r.all_parked)} |")
        rs = r.ratios
        met = bool(rs) and all(x is not None and x >= PARK_TARGET_RATIO for x in rs)
        lines.append(f"| #14 | {r.count:,} parked: keep-alive req/s ≥ {PARK_TARGET_RATIO}× none parked, every "
                     f"repetition | {' / '.join(fmt_ratio(x) for x in rs)} | {fmt_met(met)} |")
    return lines


def longpoll_csv(lp: list[LongPollResult], row: Callable[..., dict]) -> list[dict]:
    return [row(f"longpoll-{r.count}", r.server, reps=len(r.parked_runs),
                rps_median=median([w.rps for w in r.parked_runs]),
                p99_ms_median=median([w.p99_ms for w in r.parked_runs if w.p99_ms is not None]),
                errors=sum(w.errors for w in r.parked_runs), rps_each=" ".join(f"{w.rps:.0f}" for w in r.parked_runs),
                connections=r.count, opened=r.opened, held=min((x for x in (r.parked, r.parked_after, r.pending)
                                                               if x is not None), default=None),
                rss_growth_kib=r.rss_after_kib - r.rss_before_kib, rss_kib_per_conn=r.kib_per_request,
                baseline_rps=median([w.rps for w in r.none]),
                baseline_rps_each=" ".join(f"{w.rps:.0f}" for w in r.none),
                ratio_each=" ".join("" if x is None else f"{x:.4f}" for x in r.ratios)) for r in lp]


def longpoll_panel(ax: Any, lp: list[LongPollResult], order: list[str], color: Callable[[str], str]) -> None:
    ys = [n for n in order if any(r.server == n for r in lp)]
    res = {r.server: r for r in lp}
    pos = range(len(ys))
    none = [median([w.rps for w in res[n].none]) or 0 for n in ys]
    parked = [median([w.rps for w in res[n].parked_runs]) or 0 for n in ys]
    ax.barh([p + 0.2 for p in pos], none, height=0.4, color="#cccccc", label="none parked")
    ax.barh([p - 0.2 for p in pos], parked, height=0.4, color=[color(n) for n in ys],
            label=f"{res[ys[0]].count:,} parked" if ys else "parked")
    top = max(none + parked, default=1) or 1
    for p, n, v in zip(pos, ys, parked):
        r = res[n]
        ax.text(v + top * 0.01, p - 0.2, f"×{' '.join(fmt_ratio(x) for x in r.ratios)}; "
                f"{fmt_ratio(r.kib_per_request)} KiB/parked", va="center", fontsize=8)
    ax.set_yticks(list(pos), ys)
    ax.set_xlim(0, top * 1.8)
    ax.set_title("long-poll: keep-alive req/s beside parked requests (medians; ×: each repetition)", fontsize=10)
    ax.set_xlabel("requests/s")
    ax.legend(fontsize=8, loc="lower right")
    ax.tick_params(axis="y", labelsize=9)
