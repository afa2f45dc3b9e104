# benchmarks/micro.py: lichen vs gevent micro-benchmarks (spawn, switch, io wait, echo).
#
# Strategy: the parent process only orchestrates. Each (benchmark, implementation,
# repetition) runs in a fresh worker subprocess of this same file (`--worker`),
# pinned with `taskset -c 0` when available, so the two event loops never share a
# process or a core. Repetitions alternate lichen/gevent (ABBA order, so drift in
# machine load hits both alike); the table reports median throughput and the
# ratio lichen/gevent (>= 1.0: lichen is at least as fast).
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket as _stdlib_socket
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = os.environ.get("QUICK", "") not in ("", "0")
IMPLS = ("lichen", "gevent")

# name -> (default size, quick size, unit, description)
BENCHES: dict[str, tuple[int, int, str, str]] = {
    "spawn_join": (100_000, 20_000, "greenlets/s", "spawn 100k, then joinall"),
    "spawn_run": (100_000, 20_000, "greenlets/s", "spawn 100k trivial, sleep(0) until all ran"),
    "sleep0": (30_000, 5_000, "switches/s", "10 greenlets x N sleep(0)"),
    "pingpong_sock": (30_000, 5_000, "round trips/s", "socketpair 1-byte ping-pong, cooperative recv/sendall"),
    "pingpong_wait_read": (30_000, 5_000, "round trips/s", "socketpair 1-byte ping-pong, wait_read(fd) + os.read/os.write"),
    "echo_100": (300, 60, "round trips/s", "TCP echo, 100 concurrent clients x M round trips of 64 B"),
}
SLEEP0_GREENLETS = 10
ECHO_CLIENTS = 100
ECHO_PAYLOAD = b"x" * 64


# --------------------------------------------------------------------------- worker side
def load_api(impl: str) -> SimpleNamespace:
    """The handful of calls the benchmarks need, from exactly one implementation."""
    if impl == "lichen":
        from lichen import hub
        from lichen import socket as lsock

        return SimpleNamespace(
            spawn=hub.spawn, joinall=hub.joinall, sleep=hub.sleep, wait_read=hub.wait_read,
            socketpair=lsock.socketpair, create_server=lsock.create_server,
            create_connection=lsock.create_connection,
        )
    if impl == "gevent":
        import gevent
        import gevent.socket as gsock

        def create_server(addr: Any) -> Any:
            # gevent.socket.create_server is the stdlib's own function and
            # returns a *blocking* stdlib socket; build a gevent one instead.
            s = gsock.socket(gsock.AF_INET, gsock.SOCK_STREAM)
            s.setsockopt(gsock.SOL_SOCKET, gsock.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(128)
            return s

        return SimpleNamespace(
            spawn=gevent.spawn, joinall=gevent.joinall, sleep=gevent.sleep, wait_read=gsock.wait_read,
            socketpair=gsock.socketpair, create_server=create_server,
            create_connection=gsock.create_connection,
        )
    raise SystemExit(f"unknown implementation {impl!r}")


def _noop() -> None:
    pass


def bench_spawn_join(api: SimpleNamespace, n: int) -> tuple[int, float]:
    spawn = api.spawn
    t0 = time.perf_counter()
    gs = [spawn(_noop) for _ in range(n)]
    api.joinall(gs)
    dt = time.perf_counter() - t0
    assert all(g.dead for g in gs)
    return n, dt


def bench_spawn_run(api: SimpleNamespace, n: int) -> tuple[int, float]:
    spawn = api.spawn
    t0 = time.perf_counter()
    gs = [spawn(_noop) for _ in range(n)]
    api.sleep(0)  # queued after every spawn: returns once all have run
    dt = time.perf_counter() - t0
    assert all(g.dead for g in gs)
    return n, dt


def bench_sleep0(api: SimpleNamespace, n: int) -> tuple[int, float]:
    sleep = api.sleep

    def worker() -> None:
        for _ in range(n):
            sleep(0)

    t0 = time.perf_counter()
    api.joinall([api.spawn(worker) for _ in range(SLEEP0_GREENLETS)])
    return SLEEP0_GREENLETS * n, time.perf_counter() - t0


def bench_pingpong_sock(api: SimpleNamespace, n: int) -> tuple[int, float]:
    a, b = api.socketpair()

    def ping() -> None:
        for _ in range(n):
            a.sendall(b"x")
            a.recv(1)

    def pong() -> None:
        for _ in range(n):
            b.recv(1)
            b.sendall(b"x")

    t0 = time.perf_counter()
    api.joinall([api.spawn(pong), api.spawn(ping)])
    dt = time.perf_counter() - t0
    a.close()
    b.close()
    return n, dt


def bench_pingpong_wait_read(api: SimpleNamespace, n: int) -> tuple[int, float]:
    sa, sb = _stdlib_socket.socketpair()
    sa.setblocking(False)
    sb.setblocking(False)
    fa, fb = sa.fileno(), sb.fileno()
    wait_read, read, write = api.wait_read, os.read, os.write

    def ping() -> None:
        for _ in range(n):
            write(fa, b"x")
            wait_read(fa)
            read(fa, 1)

    def pong() -> None:
        for _ in range(n):
            wait_read(fb)
            read(fb, 1)
            write(fb, b"x")

    t0 = time.perf_counter()
    api.joinall([api.spawn(pong), api.spawn(ping)])
    dt = time.perf_counter() - t0
    sa.close()
    sb.close()
    return n, dt


def bench_echo_100(api: SimpleNamespace, m: int) -> tuple[int, float]:
    server = api.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    handlers = []

    def handle(conn: Any) -> None:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        finally:
            conn.close()

    def acceptor() -> None:
        for _ in range(ECHO_CLIENTS):
            conn, _addr = server.accept()
            conn.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, 1)
            handlers.append(api.spawn(handle, conn))

    conns: list[Any] = []

    def connect() -> None:
        c = api.create_connection(("127.0.0.1", port))
        c.setsockopt(_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY, 1)
        conns.append(c)

    acc = api.spawn(acceptor)
    api.joinall([api.spawn(connect) for _ in range(ECHO_CLIENTS)])
    api.joinall([acc])
    assert len(conns) == ECHO_CLIENTS and len(handlers) == ECHO_CLIENTS

    size = len(ECHO_PAYLOAD)

    def client(c: Any) -> None:
        for _ in range(m):
            c.sendall(ECHO_PAYLOAD)
            got = len(c.recv(size))
            while got < size:
                got += len(c.recv(size - got))

    t0 = time.perf_counter()  # connection set-up is not timed
    api.joinall([api.spawn(client, c) for c in conns])
    dt = time.perf_counter() - t0
    for c in conns:
        c.close()
    api.joinall(handlers)
    server.close()
    return ECHO_CLIENTS * m, dt


BENCH_FUNCS: dict[str, Callable[[SimpleNamespace, int], tuple[int, float]]] = {
    "spawn_join": bench_spawn_join,
    "spawn_run": bench_spawn_run,
    "sleep0": bench_sleep0,
    "pingpong_sock": bench_pingpong_sock,
    "pingpong_wait_read": bench_pingpong_wait_read,
    "echo_100": bench_echo_100,
}


def run_worker(impl: str, bench: str, n: int) -> None:
    import gc

    api = load_api(impl)
    fn = BENCH_FUNCS[bench]
    fn(api, max(1, n // 10))  # warm-up: first-use allocations, hub creation
    gc.collect()
    ops, dt = fn(api, n)
    print(json.dumps({"impl": impl, "bench": bench, "ops": ops, "seconds": dt}))


# --------------------------------------------------------------------------- parent side
def version_of(dist: str) -> str:
    import importlib.metadata  # parent only: keeps worker start-up light

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_one(impl: str, bench: str, n: int, pin: list[str]) -> float:
    """Run one worker subprocess; returns throughput in ops/s."""
    cmd = [*pin, sys.executable, os.path.abspath(__file__), "--worker", impl, bench, "--n", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)  # kills the child on timeout
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {bench} failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return res["ops"] / res["seconds"]


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "BENCH"), help="internal: run one measurement")
    ap.add_argument("--n", type=int, default=0, help="iterations (default: per benchmark)")
    ap.add_argument("--reps", type=int, default=2 if QUICK else 5, help="repetitions per implementation")
    ap.add_argument("--only", nargs="*", choices=list(BENCHES), help="run only these benchmarks")
    ap.add_argument("--no-save", action="store_true", help="don't write benchmarks/results/")
    args = ap.parse_args()

    if args.worker:
        impl, bench = args.worker
        run_worker(impl, bench, args.n or BENCHES[bench][1 if QUICK else 0])
        return 0

    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and sys.platform.startswith("linux") else []
    benches = args.only or list(BENCHES)
    rates: dict[tuple[str, str], list[float]] = {(b, i): [] for b in benches for i in IMPLS}
    t_start = time.monotonic()
    for rep in range(args.reps):
        order = IMPLS if rep % 2 == 0 else IMPLS[::-1]  # ABBA: neither always goes first
        for bench in benches:
            n = args.n or BENCHES[bench][1 if QUICK else 0]
            for impl in order:
                rates[(bench, impl)].append(run_one(impl, bench, n, pin))
        print(f"  rep {rep + 1}/{args.reps} done ({time.monotonic() - t_start:.0f}s)", file=sys.stderr)

    lines = [
        "| benchmark | lichen median | gevent median | ratio (lichen/gevent) |",
        "|---|---|---|---|",
    ]
    raw = []
    for bench in benches:
        unit = BENCHES[bench][2]
        ml = statistics.median(rates[(bench, "lichen")])
        mg = statistics.median(rates[(bench, "gevent")])
        lines.append(f"| {bench} | {fmt_rate(ml)} {unit} | {fmt_rate(mg)} {unit} | {ml / mg:.2f} |")
        for impl in IMPLS:
            raw.append(f"- {bench} {impl}: " + ", ".join(fmt_rate(r) for r in rates[(bench, impl)]))
    table = "\n".join(lines)

    now = datetime.datetime.now()
    header = [
        f"# lichen micro-benchmarks, {now:%Y-%m-%d %H:%M}",
        "",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.machine()}, "
        f"{os.cpu_count()} CPUs, pinned: {' '.join(pin) or 'no (taskset not found)'}",
        f"- lichen {version_of('lichen')}, gevent {version_of('gevent')}, greenlet {version_of('greenlet')}",
        f"- mode: {'QUICK' if QUICK else 'default'}, {args.reps} reps per implementation, each in its own subprocess",
        "",
    ]
    desc = ["", "Benchmarks:", ""] + [
        f"- {b}: {BENCHES[b][3]} (N={args.n or BENCHES[b][1 if QUICK else 0]})" for b in benches
    ]
    report = "\n".join(header) + "\n" + table + "\n" + "\n".join(desc) + "\n\nPer-repetition throughput:\n\n" + "\n".join(raw) + "\n"
    print(table)
    if not args.no_save:
        outdir = os.path.join(HERE, "results")
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, f"micro-{now:%Y-%m-%d}.md")
        with open(path, "w") as f:
            f.write(report)
        print(f"\nwritten to {os.path.relpath(path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
