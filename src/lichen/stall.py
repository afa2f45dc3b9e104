# lichen.stall: notice when a greenlet keeps the hub from running.
#
# Strategy: a watchdog thread samples the hub's progress marks (`ticks`, and
# `polling` while ev_run waits for I/O). If the hub is not polling and its
# ticks have not moved for longer than the threshold, some greenlet is
# running without yielding (blocking I/O, time.sleep, a CPU loop): the
# watchdog logs that thread's current stack once per stall, on `lichen.stall`.
# It costs the hub nothing but two attribute writes per loop pass.
from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import Any

__all__ = ["StallDetector"]

log = logging.getLogger("lichen.stall")


class StallDetector:
    """Watch `hub` from a daemon thread; `start()`/`stop()`."""

    def __init__(self, hub: Any, threshold: float = 1.0) -> None:
        if threshold <= 0:
            raise ValueError("the stall threshold must be > 0")
        self.hub = hub
        self.threshold = threshold
        self.stalls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StallDetector:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="lichen-stall", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.threshold + 1.0)
        self._thread = None

    def _watch(self) -> None:
        hub = self.hub
        interval = min(self.threshold / 4.0, 0.25)
        last = hub.ticks
        still = 0.0
        reported = False
        while not self._stop.wait(interval):
            ticks = hub.ticks
            if ticks != last or hub.polling:
                last, still, reported = ticks, 0.0, False
                continue
            still += interval
            if still >= self.threshold and not reported:
                reported = True
                self.stalls += 1
                self._report(still)

    def _report(self, seconds: float) -> None:
        frame = sys._current_frames().get(self.hub.thread_ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(stack unavailable)\n"
        log.warning("the hub has not run for %.1f s: a greenlet is blocking it (blocking I/O, time.sleep "
                    "or a long computation; run it with threads=N or lichen.blocking). Its stack:\n%s",
                    seconds, stack.rstrip())
