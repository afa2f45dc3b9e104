# lichen.hub: one hub greenlet per thread that schedules every other greenlet.
#
# Strategy: the hub only schedules; it never does I/O itself (see
# lichen.hub.scheduler for the theory of operation and its invariants). The
# package is split by job, each module importing only those before it here:
#
#   signals    the wake-up pipe that lets Python signal handlers run
#   scheduler  Hub (callbacks, the loop, Hub.block: the one arm/switch/
#              clean-up of every wait), get_hub, the fork handler
#   waiting    Waiter, sleep, wait, wait_read, wait_write
#   timeouts   Timeout, with_timeout
#   greenlets  Greenlet, spawn, spawn_later, joinall, killall
#   workqueue  WorkQueue: items served in turn by parked worker greenlets
#
# This file only re-exports; no module of the package imports it.
from __future__ import annotations

from greenlet import GreenletExit, getcurrent

from lichen.hub.greenlets import Greenlet, joinall, killall, spawn, spawn_later
from lichen.hub.scheduler import (
    CALLBACK_BUDGET, TIMEOUT, Callback, Hub, LoopExit, call_soon_threadsafe, get_hub, throw_if_alive,
)
from lichen.hub.timeouts import Timeout, with_timeout
from lichen.hub.waiting import Waiter, sleep, wait, wait_read, wait_write
from lichen.hub.workqueue import WorkQueue

__all__ = [
    "Hub", "Greenlet", "Timeout", "LoopExit", "GreenletExit", "Waiter", "get_hub",
    "spawn", "spawn_later", "sleep", "with_timeout", "wait_read", "wait_write",
    "call_soon_threadsafe", "wait", "joinall", "killall", "getcurrent", "throw_if_alive",
    "WorkQueue", "Callback", "CALLBACK_BUDGET", "TIMEOUT",
]
