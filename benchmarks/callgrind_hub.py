# Instructions per operation of the hub's hot paths, counted by callgrind:
# the figures to compare before and after a change to lichen.loop/lichen.hub.
#
# Strategy: as benchmarks/callgrind.py, each workload runs twice under
# `valgrind --tool=callgrind` (N1 and N2 operations) and the difference
# divided by N2 - N1 is the cost of one operation, start-up cancelled out.
# One more source of variation has to go: CPython's method cache is indexed
# by type version tags and by the addresses of name strings, so any code
# change (even elsewhere) reshuffles its collisions, which moves a count by
# a few hundred instructions either way. Each workload therefore runs under
# PERTURBS layouts, shifted by allocating some types and objects before
# lichen is imported, and the median is reported (with all values). Hash
# randomization is off, and the objects of the imports are frozen out of GC.
#
#   .venv/bin/python benchmarks/callgrind_hub.py              # every workload
#   .venv/bin/python benchmarks/callgrind_hub.py sleep0 pingpong
#   PERTURBS=3 ...                                            # quicker, rougher
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile

WORK = r"""
import os, sys
# The layout shift (see the strategy above).
_k = int(os.environ.get("PERTURB", "0"))
_types = [type("_Pad%d" % i, (), {}) for i in range(_k * 7)]
for _t in _types: getattr(_t, "x", None)
_junk = [bytes(48 + 16 * (i % 5)) for i in range(_k * 301)]
from lichen.hub import spawn, sleep, joinall, wait_read, Waiter, get_hub, Greenlet
from lichen import socket as lsock
name, n = sys.argv[1], int(sys.argv[2])
import gc; gc.freeze()

def noop(): pass

if name == "sleep0":
    def f(k):
        for _ in range(k): sleep(0)
    joinall([spawn(f, n // 10) for _ in range(10)])
elif name == "spawn_join":
    def f():
        for _ in range(n): spawn(noop).join()
    spawn(f).join()
elif name == "join_timeout":
    def f():
        for _ in range(n): spawn(noop).join(10.0)
    spawn(f).join()
elif name == "sleep_timer":
    def f():
        for _ in range(n): sleep(1e-7)
    spawn(f).join()
elif name in ("pingpong", "pingpong_timeout"):
    a, b = lsock.socketpair()
    if name == "pingpong_timeout":
        a.settimeout(30); b.settimeout(30)
    def ping():
        for _ in range(n):
            a.sendall(b"x"); a.recv(1)
    def pong():
        for _ in range(n):
            b.recv(1); b.sendall(b"y")
    joinall([spawn(ping), spawn(pong)])
elif name == "pingpong_wait_read":
    import socket
    a, b = socket.socketpair(); a.setblocking(False); b.setblocking(False)
    fa, fb = a.fileno(), b.fileno()
    def ping():
        for _ in range(n):
            os.write(fa, b"x"); wait_read(fa); os.read(fa, 1)
    def pong():
        for _ in range(n):
            wait_read(fb); os.read(fb, 1); os.write(fb, b"y")
    joinall([spawn(ping), spawn(pong)])
elif name == "pingpong_wait_read_timeout":
    import socket
    a, b = socket.socketpair(); a.setblocking(False); b.setblocking(False)
    fa, fb = a.fileno(), b.fileno()
    def ping():
        for _ in range(n):
            os.write(fa, b"x"); wait_read(fa, 30); os.read(fa, 1)
    def pong():
        for _ in range(n):
            wait_read(fb, 30); os.read(fb, 1); os.write(fb, b"y")
    joinall([spawn(ping), spawn(pong)])
elif name.startswith(("wq_", "srv_")):
    # WorkQueue against an inline copy of WSGIServer's own mechanism
    # (dispatch/_drain/_worker, minus the connection specifics).
    from collections import deque
    from greenlet import greenlet, getcurrent
    batch = int(name.rsplit("_", 1)[1])
    def serve(item): pass
    if name.startswith("wq_"):
        from lichen.hub import WorkQueue
        q = WorkQueue(serve)
        put = q.put
    else:
        class Server:  # WSGIServer.dispatch/_drain/_worker, minus the connection
            closed = stopping = False
            def __init__(self):
                self._hub = get_hub()
                self._free = []
                self._ready = deque()
                self._drain_pending = False
            def dispatch(self, item):
                self._ready.append(item)
                if not self._drain_pending:
                    self._drain_pending = True
                    self._hub.run_callback(self._drain)
            def _drain(self):
                self._drain_pending = False
                ready = self._ready
                try:
                    while ready:
                        free = self._free
                        if free:
                            g = free.pop()
                        else:
                            g = greenlet(self._worker, parent=self._hub.glet)
                        g.switch()
                finally:
                    if ready and not self._drain_pending:
                        self._drain_pending = True
                        self._hub.run_callback(self._drain)
            def _worker(self):
                ready = self._ready
                me = getcurrent()
                hub_switch = self._hub.glet.switch
                while True:
                    while ready:
                        item = ready.popleft()
                        try:
                            serve(item)
                        except GreenletExit:
                            return
                        except (KeyboardInterrupt, SystemExit):
                            raise
                        except BaseException:
                            pass
                        item = None
                    free = self._free
                    if len(free) >= 128 or self.closed or self.stopping:
                        return
                    free.append(me)
                    hub_switch()
        put = Server().dispatch
    from greenlet import GreenletExit
    def f():
        for i in range(n // batch):
            for j in range(batch):
                put(j)
            sleep(0)
    spawn(f).join()
else:
    raise SystemExit("unknown " + name)
"""
# name -> what one operation is
WORKLOADS = {
    "sleep0": "sleep(0), 10 greenlets taking turns",
    "spawn_join": "spawn a no-op greenlet and join it",
    "join_timeout": "the same, join(10.0): a Waiter with a timer",
    "sleep_timer": "sleep(1e-7): a timer sleep",
    "pingpong": "1-byte round trip over a lichen socketpair (recv, sendall)",
    "pingpong_timeout": "the same with settimeout(30) on both ends",
    "pingpong_wait_read": "round trip with wait_read(fd) and os.read/os.write",
    "pingpong_wait_read_timeout": "the same, wait_read(fd, 30)",
    "wq_1": "WorkQueue: put one item, sleep(0)",
    "srv_1": "the same through a copy of WSGIServer's own worker mechanism",
    "wq_10": "WorkQueue: put ten items, sleep(0) (per item)",
    "srv_10": "the same through the copy of WSGIServer's mechanism (per item)",
}
N1, N2 = 2000, 8000
PERTURBS = int(os.environ.get("PERTURBS", "5"))


def count(python: str, name: str, n: int, shift: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python, "-c", WORK, name, str(n)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900,
            env=dict(os.environ, PYTHONHASHSEED="0", PERTURB=str(shift)))
        if proc.returncode:
            raise RuntimeError(proc.stderr.decode()[-3000:])
        m = re.search(rb"Collected : (\d+)", proc.stderr)
        if m is None:
            raise RuntimeError(f"no callgrind total in: {proc.stderr.decode()[-2000:]}")
        return int(m.group(1))


def per_op(name: str, python: str = sys.executable) -> list[float]:
    """The cost of one operation under each layout shift, sorted."""
    return sorted((count(python, name, N2, k) - count(python, name, N1, k)) / (N2 - N1) for k in range(PERTURBS))


def main(argv: list[str]) -> None:
    for name in argv or list(WORKLOADS):
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
        per = per_op(name)
        values = ", ".join(f"{x:,.0f}" for x in per)
        print(f"{name}: {statistics.median(per):,.0f} instructions per op  [{values}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
