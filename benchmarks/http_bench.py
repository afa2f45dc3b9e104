# benchmarks/http_bench.py: the HTTP benchmark driver: lichen against its peers with wrk (`make bench`).
#
# Strategy: for each repetition, start every server in turn (rotating the order each time),
# pinned to CPU 0, warm it up, run each wrk scenario pinned to CPU 1, stop it; report medians.
# Then the idle scenario: per server, idle.py client processes open and hold N keep-alive
# connections while we read the server's RSS growth and run wrk alongside them. Results go to
# results/http-DATE.{md,csv,png}; ratios are stated both ways (peer/lichen and lichen/peer).
# benchmarks/http_bench.py: the HTTP benchmark driver: lichen against its peers with wrk (`make bench`).
#
# Strategy: for each repetition, start every server in turn (rotating the order each time),
# pinned to CPU 0, warm it up, run each wrk scenario pinned to CPU 1 (the flask-* ones on the
# same start, against the Flask app that apps.py mounts under /flask/), stop it; report medians.
# Then the scenarios that hold many connections on one server start (held.py): idle keep-alive
# connections (every server), long-poll requests parked in the app and server-sent events (the
# greenlet servers). Results go to results/http-DATE.{md,csv,png}; ratios are stated both ways
# (peer/lichen and lichen/peer).
from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import apps  # noqa: E402
import held  # noqa: E402
import sse  # noqa: E402
import servers  # noqa: E402
from measure import (BUSY, KEEPALIVE, Scenario, WrkResult, busy_mark, fmt_met, fmt_ms, fmt_ratio,  # noqa: E402
                     fmt_rps, log, median, other_cpu_now, ratio, run_wrk)
from servers import SERVERS, Running, ServerFailed  # noqa: E402

QUICK = os.environ.get("QUICK", "") not in ("", "0")
RESULTS = os.path.join(HERE, "results")
WANTED_PARKED = WANTED_SSE = 10_000  # issue #14 (QUICK: 1,000)
SSE_BROADCASTS = 3

SCENARIOS = [
    KEEPALIVE,
    Scenario("close", "GET / with `Connection: close`, 50 connections", headers=("Connection: close",)),
    Scenario("64k", "keep-alive GET /64k (64 KiB response), 50 connections", path="/64k"),
    Scenario("post16k", "keep-alive POST /post with a 16 KiB body, 50 connections", path="/post", lua=True),
    Scenario("c1000", "keep-alive GET / (hello), 1000 connections", conns=1000),
    Scenario("flask", "Flask: keep-alive GET /flask/ (hello), 50 connections", path="/flask/", wsgi=True),
    Scenario("flask-post16k", "Flask: keep-alive POST /flask/post with a 16 KiB body, 50 connections",
             path="/flask/post", lua=True, wsgi=True),
]
HELD = ("idle", "longpoll", "sse")  # scenario names of held.py, for --scenarios


# --------------------------------------------------------------------------- the runs
def check_server(run: Running) -> list[str]:
    """What differs from the expected answers (checked once per server)."""
    notes = []
    hello = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    big = b"GET /64k HTTP/1.1\r\nHost: bench\r\n\r\n"
    post = (b"POST /post HTTP/1.1\r\nHost: bench\r\nContent-Length: 16384\r\n\r\n" + b"x" * 16384)
    close = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    flask_hello = b"GET /flask/ HTTP/1.1\r\nHost: bench\r\n\r\n"
    flask_post = post.replace(b"/post", b"/flask/post", 1)
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
        if run.server.wsgi and apps.flask_app is not None:
            for raw, want in ((flask_hello, b"Hello, World!"), (flask_post, b"16384")):
                status, body, _ = servers.http_exchange(run.port, raw)
                if " 200" not in status or body != want:
                    notes.append(f"{raw.split(b' HTTP')[0].decode()} (Flask) answered {status!r} {body[:40]!r}")
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
                run_wrk(run, KEEPALIVE, warm, tmp)  # warm-up, not recorded
                line = []
                for sc in scenarios:
                    if sc.wsgi and not run.server.wsgi:
                        continue
                    if not run.alive():
                        failures.setdefault(name, f"died during {sc.name}: {run.log_tail(3).strip()}")
                        break
                    w = run_wrk(run, sc, seconds, tmp)
                    results.setdefault((name, sc.name), []).append(w)
                    line.append(f"{sc.name} {w.rps / 1000:.1f}k" + (f" ({w.errors} err)" if w.errors else "")
                                + busy_mark(w))
                log(f"   {name:15s} " + ", ".join(line))
            finally:
                run.stop()


# --------------------------------------------------------------------------- report
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


TARGETS = [  # (issue, scenario, peer, minimum lichen/peer)
    ("#5", "keepalive", "granian", 1.0), ("#5", "keepalive", "meinheld", 2.0), ("#5", "close", "meinheld", 1.0),
    ("#5", "64k", "bjoern", 0.8), ("#5", "post16k", "meinheld", 2.0),
    ("#14", "flask", "bjoern", 1.0), ("#14", "flask", "uwsgi", 1.0), ("#14", "flask-post16k", "bjoern", 1.0),
    ("#14", "keepalive", "granian", 1.2), ("#14", "post16k", "granian", 1.0),
]


@dataclass
class HeldResults:
    idle: list[held.IdleResult] = field(default_factory=list)
    longpoll: list[held.LongPollResult] = field(default_factory=list)
    sse: list[sse.SSEResult] = field(default_factory=list)
    fd_notes: list[str] = field(default_factory=list)  # idle levels and the fd limit
    longpoll_note: str = ""  # whether the parked requests fit in the fd limit
    sse_note: str = ""

    def markdown(self) -> list[str]:
        return ((held.idle_markdown(self.idle, self.fd_notes) if self.idle else [])
                + (held.longpoll_markdown(self.longpoll, self.longpoll_note) if self.longpoll else [])
                + (sse.sse_markdown(self.sse, self.sse_note) if self.sse else []))

    def targets(self) -> list[str]:
        return held.idle_targets(self.idle) + held.longpoll_targets(self.longpoll) + sse.sse_targets(self.sse)

    def csv_rows(self, row: Callable[..., dict]) -> list[dict]:
        return held.idle_csv(self.idle, row) + held.longpoll_csv(self.longpoll, row) + sse.sse_csv(self.sse, row)

    def panels(self) -> list[Callable[[Any, list[str], Callable[[str], str]], None]]:
        """Chart panels: each draws on (ax, servers top to bottom, colour of a server)."""
        return [lambda ax, order, color, fn=fn, rs=rs: fn(ax, rs, order, color)
                for fn, rs in ((held.idle_panel, self.idle), (held.longpoll_panel, self.longpoll), (sse.sse_panel, self.sse)) if rs]

    def wrk_runs(self) -> list[WrkResult]:
        return ([r.wrk for r in self.idle if r.wrk] + [w for r in self.longpoll for w in r.none + r.parked_runs])

    def other_cpu(self) -> list[float]:
        """Other processes' CPU during every measured run (wrk runs and broadcasts)."""
        return ([w.other_cpu for w in self.wrk_runs() if w.other_cpu is not None]
                + [b.other_cpu for r in self.sse for b in r.broadcasts if b.other_cpu is not None])


def targets_lines(summary: dict, held_results: HeldResults) -> list[str]:
    lines = ["| issue | target | measured | met? |", "|---|---|---|---|"]
    for issue, scn, peer, need in TARGETS:
        r = summary.get((peer, scn), {}).get("lichen_over_peer")
        lines.append(f"| {issue} | {scn}: lichen/{peer} ≥ {need:.1f} | {fmt_ratio(r)} | "
                     f"{fmt_met(None if r is None else r >= need)} |")
    return lines + held_results.targets()


def markdown(meta: dict, names: list[str], scenarios: list[Scenario], summary: dict, held_results: HeldResults,
             notes: dict, failures: dict, unavailable: dict, results: dict) -> str:
    L = [f"# lichen HTTP benchmark, {meta['date']}", ""]
    L += [f"- {meta['machine']}", f"- mode: {meta['mode']}", f"- pinning: servers `taskset -c 0`, "
          f"wrk and the clients of the idle, long-poll and SSE scenarios `taskset -c 1`; wrk -t1, {meta['seconds']} s per run after a {meta['warm']} s "
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
          "above 1.00 faster. lichen/peer is in the per-scenario tables below. flask and flask-post16k: "
          "the same Flask app (`/flask/`, `/flask/post`) on every server; nginx runs no Python (—).", ""]
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
    L += held_results.markdown()
    L += ["## Targets", ""] + targets_lines(summary, held_results) + [""]
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


CSV_COLUMNS = [
    "date", "mode", "scenario", "server", "version", "reps", "rps_median", "p99_ms_median",
    "rps_peer_over_lichen", "rps_lichen_over_peer", "errors", "rps_each",
    # the scenarios that hold connections (idle-N, longpoll-N, sse-N): see README
    "connections", "opened", "held", "answered", "rss_growth_kib", "rss_kib_per_conn",
    "baseline_rps", "baseline_rps_each", "ratio_each", "rep", "received", "latency_p50_ms", "latency_p99_ms",
    "latency_max_ms",
]


def write_csv(path: str, meta: dict, names: list[str], scenarios: list[Scenario], summary: dict,
              held_results: HeldResults) -> None:
    def row(scenario: str, server: str, **values) -> dict:
        values = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        return {"date": meta["date"], "mode": meta["mode"], "scenario": scenario, "server": server,
                "version": meta["versions"].get(server, ""), **values}

    rows = [row(sc.name, name, reps=d["reps"], rps_median=d["rps"], p99_ms_median=d["p99_ms"],
                rps_peer_over_lichen=d["peer_over_lichen"], rps_lichen_over_peer=d["lichen_over_peer"],
                errors=d["errors"], rps_each=" ".join(f"{x:.0f}" for x in d["all_rps"]))
            for sc in scenarios for name in names if (d := summary.get((name, sc.name)))]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows + held_results.csv_rows(row))


def chart(path: str, meta: dict, names: list[str], scenarios: list[Scenario], summary: dict,
          held_results: HeldResults) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as e:
        return f"no chart: matplotlib is not importable ({e})"
    extra = held_results.panels()
    panels = len(scenarios) + len(extra)
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
    for ax, draw in zip(list(axes.flat)[len(scenarios):], extra):
        draw(ax, order, color)
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
    ap.add_argument("--scenarios", nargs="+", metavar="NAME",
                    help=f"subset of: {', '.join([s.name for s in SCENARIOS] + list(HELD))}")
    ap.add_argument("--reps", type=int, default=1 if QUICK else 3)
    ap.add_argument("--seconds", type=float, default=1 if QUICK else 2, help="wrk duration per run")
    ap.add_argument("--warm", type=float, default=1, help="wrk warm-up after each server start")
    ap.add_argument("--steady-warm", type=float, default=1 if QUICK else 6,
                    help="long-poll: wrk warm-up before the none-parked baseline")
    ap.add_argument("--steady-seconds", type=float, default=1 if QUICK else 4,
                    help="long-poll: wrk duration per run, none parked and parked")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-connections scenario")
    ap.add_argument("--idle-levels", type=int, nargs="+", help="idle connection counts (default 10,000 and 50,000, capped by the fd limit)")
    ap.add_argument("--parked", type=int, default=1000 if QUICK else WANTED_PARKED, help="long-poll requests to park")
    ap.add_argument("--sse-clients", type=int, default=1000 if QUICK else WANTED_SSE, help="server-sent-event clients")
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
    if apps.flask_app is None and any(s.wsgi for s in scenarios):
        unavailable["flask scenarios"] = "Flask is not installed in the benchmark venv"
        scenarios = [s for s in scenarios if not s.wsgi]
    wanted = {h for h in HELD if not args.scenarios or h in args.scenarios} - ({"idle"} if args.no_idle else set())
    cooperative = [n for n in names if SERVERS[n].cooperative]
    held_results = HeldResults()
    limit, held_results.fd_notes = held.fd_situation()
    levels, level_notes = (args.idle_levels, []) if args.idle_levels else held.idle_levels(limit, QUICK)
    held_results.fd_notes += level_notes
    parked, held_results.longpoll_note = held.fitting(args.parked, limit, "parked requests")
    sse_clients, held_results.sse_note = held.fitting(args.sse_clients, limit, "SSE clients")
    mode = "QUICK" if QUICK else "default"
    log(f"lichen HTTP benchmark ({mode}): {len(names)} servers x {len(scenarios)} scenarios x {args.reps} reps, "
        f"{args.seconds:g} s per wrk run; idle levels {', '.join(f'{x:,}' for x in levels) if 'idle' in wanted else 'skipped'}"
        f"; long-poll {f'{parked:,} parked' if 'longpoll' in wanted else 'skipped'}"
        f"; SSE {f'{sse_clients:,} clients' if 'sse' in wanted else 'skipped'}")
    other_start = other_cpu_now()
    if other_start > BUSY:
        log(f"WARNING: other processes keep {other_start:.2f} CPUs busy: they share these CPUs with the "
            "benchmark and the figures will be noisy (see `other CPU` in the result file)")
    for n, why in unavailable.items():
        log(f"NOTE: {n} is not available and is skipped: {why}")
    for note in held_results.fd_notes + [held_results.longpoll_note, held_results.sse_note]:
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
    try:
        if scenarios:
            run_throughput(names, args.reps, args.seconds, args.warm, tmp, results, notes, failures, scenarios)
            log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
        if "idle" in wanted:
            log(f"-- idle keep-alive connections: {', '.join(f'{x:,}' for x in levels)}")
            held_results.idle = held.run_idle(names, levels, args.seconds, args.warm, tmp)
            log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
        if "longpoll" in wanted:
            log(f"-- long-poll: {parked:,} requests parked in the app ({', '.join(cooperative)})")
            held_results.longpoll = held.run_longpoll(cooperative, parked, args.reps, args.steady_seconds,
                                                      args.steady_warm, tmp)
            log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
        if "sse" in wanted:
            log(f"-- server-sent events: {sse_clients:,} clients, {SSE_BROADCASTS} broadcasts ({', '.join(cooperative)})")
            held_results.sse = sse.run_sse(cooperative, sse_clients, SSE_BROADCASTS, args.warm, tmp)
            log(f"   ({(time.monotonic() - t_start) / 60:.1f} min so far)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(results, names, scenarios)
    os.makedirs(RESULTS, exist_ok=True)
    partial = bool(args.only or args.skip or args.scenarios or args.no_idle or args.idle_levels
                   or args.parked != ap.get_default("parked") or args.sse_clients != ap.get_default("sse_clients"))
    stem = os.path.join(RESULTS, f"http-{date[:10]}" + ("-quick" if QUICK else "") + ("-partial" if partial else ""))
    meta["png"] = os.path.relpath(stem + ".png", os.path.dirname(HERE))
    elapsed = time.monotonic() - t_start
    meta["elapsed"] = f"{elapsed / 60:.1f} min"
    others = [w.other_cpu for ws in results.values() for w in ws if w.other_cpu is not None]
    others += held_results.other_cpu()
    flagged = sum(1 for x in others if x > BUSY)
    meta["load"] = (f"other processes (not the server, not wrk, not our clients): {other_start:.2f} CPUs busy "
                    f"at start; during the wrk runs and broadcasts median {median(others) or 0:.2f}, max {max(others, default=0):.2f} CPUs; "
                    f"{flagged} of {len(others)} runs had more than {BUSY} CPUs of other work "
                    "(marked * in 'Every repetition')")
    text = markdown(meta, names, scenarios, summary, held_results, notes, failures, unavailable, results)
    problem = chart(stem + ".png", meta, names, scenarios, summary, held_results)
    with open(stem + ".md", "w") as f:
        f.write(text)
    write_csv(stem + ".csv", meta, names, scenarios, summary, held_results)
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
