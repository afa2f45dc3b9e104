# benchmarks/sse.py: the server-sent-events scenario of held.py: many clients on a
# `text/event-stream` response, events broadcast through the server library's own Event.
#
# Strategy: idle.py client processes subscribe (one request each, held open) while the driver
# reads the server's RSS before and after; then each broadcast sets the app's event and every
# client reports its receive time minus the server's send time (one monotonic clock: same
# machine), from which come p50, p99 and the time until every client has it.
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import servers
from held import SSE_TARGET_MS, Clients, each_server, kib_each, merge_errors, wait_count
from measure import (BUSY, KEEPALIVE, OtherCPU, fmt_count, fmt_errors, fmt_growth, fmt_met, fmt_ms, fmt_ratio, log,
                     run_wrk)
from servers import Running


# --------------------------------------------------------------------------- server-sent events
@dataclass
class Broadcast:
    woken: int | None  # subscribers the app counted when it set the event
    latencies_ms: list[float]  # receive - send, of every client that got it, sorted
    errors: dict = field(default_factory=dict)
    other_cpu: float | None = None

    def pct(self, q: float, of: int) -> float | None:
        """The q-quantile (nearest rank) over `of` clients, those that never got it counted as
        infinitely late (None if it falls on one of them)."""
        k = max(1, math.ceil(q * of)) - 1
        return self.latencies_ms[k] if k < len(self.latencies_ms) else None


@dataclass
class SSEResult:
    server: str
    count: int  # clients wanted
    opened: int = 0  # subscribed (client view: header and ": subscribed" received)
    open_seconds: float = 0.0
    subscribers: int | None = None  # the app's count
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    broadcasts: list[Broadcast] = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    note: str = ""

    @property
    def kib_per_client(self) -> float | None:
        return kib_each(self.rss_before_kib, self.rss_after_kib, self.opened)

    def summary(self, b: Broadcast) -> tuple[float | None, float | None, float | None]:
        """p50, p99 over the clients subscribed, and the time until every one of them had it."""
        return b.pct(0.5, self.opened), b.pct(0.99, self.opened), b.pct(1.0, self.opened)


def run_sse(names: list[str], count: int, broadcasts: int, warm: float, tmp: str) -> list[SSEResult]:
    request = b"GET /broadcast HTTP/1.1\r\nHost: bench\r\n\r\n"

    def measure(name: str, run: Running, clients: Clients) -> SSEResult:
        res = SSEResult(name, count)
        run_wrk(run, KEEPALIVE, warm, tmp)  # warm-up, as for every other scenario
        time.sleep(0.5)
        res.rss_before_kib = run.rss_kib()
        res.opened, res.errors, res.open_seconds = clients.open(count, "/events", "stream")
        res.subscribers = wait_count(run.port, "/subscribers", res.opened)
        time.sleep(1.0)  # let the server settle (lazy frees, timers)
        res.rss_after_kib = run.rss_kib()
        for _ in range(broadcasts):
            clients.ask("event 10", {})  # each answers "armed" once it reads every stream
            cpu = OtherCPU(run.pids() + clients.pids())
            try:
                status, body, _ = servers.http_exchange(run.port, request, timeout=10)
                woken = int(body) if " 200" in status else None
            except (OSError, ValueError) as e:
                woken, res.note = None, f"/broadcast failed: {e}"
            b = Broadcast(woken, [])
            for msg in clients.replies({"latencies_ms": [], "errors": {"client died": 1}}):
                b.latencies_ms += msg["latencies_ms"]
                merge_errors(b.errors, msg.get("errors"))
            b.latencies_ms.sort()
            b.other_cpu = cpu.stop()
            res.broadcasts.append(b)
            time.sleep(0.5)
        if not run.alive():
            res.note = f"server died: {run.log_tail(3).strip()}"
        kib = res.kib_per_client
        log(f"   {name:15s} sse {count:,}: subscribed {res.opened:,} in {res.open_seconds:.1f}s "
            f"(app counts {res.subscribers}), RSS +{(res.rss_after_kib - res.rss_before_kib) / 1024:.1f} MiB"
            + (f" = {kib:.2f} KiB/client" if kib is not None else "") + "; broadcasts: "
            + ", ".join(f"got {len(b.latencies_ms):,} p50/p99/all {'/'.join(fmt_ms(x) for x in res.summary(b))}"
                        + (f" [other {b.other_cpu:.2f} CPU]" if (b.other_cpu or 0) > 0.2 else "")
                        for b in res.broadcasts)
            + (f", errors {res.errors}" if res.errors else "") + (f" ({res.note})" if res.note else ""))
        return res

    return each_server(names, measure)


def sse_markdown(sse: list[SSEResult], note: str) -> list[str]:
    count = max(r.count for r in sse)
    L = [f"## Server-sent events: one broadcast to {count:,} clients", "",
         "Each client connection sends `GET /events` and reads a `text/event-stream` response whose body "
         "iterator waits for the next broadcast on the server's own Event (`lichen.sync.Event`, "
         "`gevent.event.Event`) and yields `data: T` per event. `GET /broadcast` sets it, T being the server's "
         "`time.monotonic()` at that moment; each client notes its own `time.monotonic()` before the read that "
         "completes the event (same machine, one clock). latency = receive − T; p50 and p99 over all the "
         "clients subscribed (one that never got the event counts as infinitely late), \"all have it\" = the "
         "latest. Clients: idle.py processes on CPU 1, so the latest figures include the time the client "
         "takes to read every stream. subscribed = clients that got the header and `: subscribed`, then the "
         "app's own count (`/subscribers`); woken = subscribers the app counted when it set the event. RSS "
         "growth = server VmRSS with the clients subscribed minus before, per client. Only greenlet servers "
         "(lichen, gevent) run it, for the same reason as long-poll.", "", note, "",
         "| server | subscribed (app) | RSS growth | KiB per client | broadcast | woken | got it | p50 | p99 "
         "| all have it | notes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sse:
        for i, b in enumerate(r.broadcasts):
            first = i == 0
            errs = fmt_errors({**(r.errors if first else {}), **b.errors})
            busy = f"other processes used {b.other_cpu:.2f} CPUs" if (b.other_cpu or 0) > BUSY else ""
            p50, p99, last = r.summary(b)
            L.append(f"| {r.server if first else ''} | "
                     + (f"{r.opened:,} ({r.subscribers if r.subscribers is not None else '—'}) | "
                        f"{fmt_growth(r.rss_before_kib, r.rss_after_kib)} | {fmt_ratio(r.kib_per_client)} | "
                        if first else "| | | ")
                     + f"{i + 1} | {fmt_count(b.woken)} | {len(b.latencies_ms):,} "
                     f"| {fmt_ms(p50)} | {fmt_ms(p99)} | {fmt_ms(last)} "
                     f"| {'; '.join(x for x in ((r.note if first else ''), errs, busy) if x)} |")
    return L + [""]


def sse_targets(sse: list[SSEResult]) -> list[str]:
    lines = []
    for r in [r for r in sse if r.server == "lichen"]:
        p99s = [r.summary(b)[1] for b in r.broadcasts]
        met = bool(p99s) and r.opened == r.count and all(x is not None and x < SSE_TARGET_MS for x in p99s)
        lines.append(f"| #14 | SSE: a broadcast reaches all {r.count:,} clients, p99 < {SSE_TARGET_MS / 1000:g} s "
                     f"| subscribed {r.opened:,}; p99 {' / '.join(fmt_ms(x) for x in p99s)} "
                     f"| {fmt_met(met)} |")
    return lines


def sse_csv(sse: list[SSEResult], row: Callable[..., dict]) -> list[dict]:
    out = []
    for r in sse:
        for i, b in enumerate(r.broadcasts):
            p50, p99, last = r.summary(b)
            out.append(row(f"sse-{r.count}", r.server, reps=len(r.broadcasts), rep=i + 1, connections=r.count,
                           opened=r.opened, held=r.subscribers, received=len(b.latencies_ms),
                           latency_p50_ms=p50, latency_p99_ms=p99, latency_max_ms=last,
                           rss_growth_kib=r.rss_after_kib - r.rss_before_kib, rss_kib_per_conn=r.kib_per_client,
                           errors=sum(b.errors.values())))
    return out


def sse_panel(ax: Any, sse: list[SSEResult], order: list[str], color: Callable[[str], str]) -> None:
    res = {r.server: r for r in sse}
    ys = [n for n in order if n in res]
    pos = range(len(ys))

    def worst(n: str, k: int) -> float:  # over the broadcasts; a client that never got it: the 10 s wait
        vals = [res[n].summary(b)[k] for b in res[n].broadcasts]
        return max((10_000.0 if v is None else v for v in vals), default=0.0)

    p50 = [worst(n, 0) for n in ys]
    p99 = [worst(n, 1) for n in ys]
    ax.barh([p + 0.2 for p in pos], p50, height=0.4, color="#cccccc", label="p50")
    ax.barh([p - 0.2 for p in pos], p99, height=0.4, color=[color(n) for n in ys], label="p99")
    top = max(p99 + p50, default=1) or 1
    for p, n, v in zip(pos, ys, p99):
        r = res[n]
        ax.text(v + top * 0.01, p - 0.2, f"p99 {fmt_ms(v)}, all {fmt_ms(worst(n, 2))}; "
                f"{fmt_ratio(r.kib_per_client)} KiB/client", va="center", fontsize=8)
    ax.axvline(SSE_TARGET_MS, color="#cc4444", linestyle=":", linewidth=1)
    ax.set_yticks(list(pos), ys)
    ax.set_xlim(0, max(top, SSE_TARGET_MS) * 1.9)
    count = max((r.count for r in sse), default=0)
    ax.set_title(f"SSE: one broadcast to {count:,} clients, receive − send (worst of "
                 f"{max((len(r.broadcasts) for r in sse), default=0)} broadcasts)", fontsize=10)
    ax.set_xlabel("ms (lower is better; dotted: 1 s)")
    ax.legend(fontsize=8, loc="lower right")
    ax.tick_params(axis="y", labelsize=9)


# --------------------------------------------------------------------------- all of them
