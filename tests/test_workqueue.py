# Spec tests for lichen.hub.WorkQueue: items put in one hub pass are served
# by one worker greenlet with one switch; a worker blocked in `serve` hands
# the rest of the queue to another; parked workers are capped, hold no item,
# and end on close(); failures of `serve` end or spare the worker as their
# kind says, and never strand the queue.
#
# Tests run in the main greenlet: `sleep(0)` lets the hub run the drain (and
# every worker it switches into) until each blocks or parks.
from __future__ import annotations

import logging
import time
import weakref
from typing import Any, Callable

import greenlet as greenlet_module
import pytest

from helpers import hub_hygiene  # noqa: F401  (autouse fixture)
from lichen.hub import GreenletExit, WorkQueue, get_hub, getcurrent, sleep, throw_if_alive


def settle(rounds: int = 3) -> None:
    for _ in range(rounds):
        sleep(0)


def wait_until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        sleep(0.005)


@pytest.fixture
def queues():
    """Make WorkQueues; each is closed after the test and its workers end."""
    made: list[WorkQueue] = []

    def make(serve: Callable[[Any], Any], **kw: Any) -> WorkQueue:
        q = WorkQueue(serve, **kw)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()
    settle()


class Recorder:
    """A serve function that records (item, worker) and can block or fail."""

    def __init__(self, block: dict[Any, float] | None = None, fail: dict[Any, BaseException] | None = None):
        self.seen: list[tuple[Any, Any]] = []
        self.block = block or {}
        self.fail = fail or {}

    def __call__(self, item: Any) -> None:
        self.seen.append((item, getcurrent()))
        if item in self.block:
            sleep(self.block[item])
        if item in self.fail:
            raise self.fail[item]

    @property
    def items(self) -> list[Any]:
        return [i for i, _ in self.seen]

    @property
    def workers(self) -> list[Any]:
        out: list[Any] = []
        for _, g in self.seen:
            if g not in out:
                out.append(g)
        return out


# Batching ---------------------------------------------------------------------------------
def test_items_put_in_one_pass_are_served_in_order_by_one_worker_with_one_switch(queues):
    hub = get_hub()
    rec = Recorder()
    q = queues(rec)
    for i in range(5):
        q.put(i)
    switches: list[tuple[Any, Any]] = []
    old = greenlet_module.settrace(lambda event, args: switches.append(args) if event == "switch" else None)
    try:
        sleep(0)
    finally:
        greenlet_module.settrace(old)
    assert rec.items == [0, 1, 2, 3, 4]
    (worker,) = rec.workers
    assert worker.parent is hub.glet and worker is not hub.root
    assert [s for s in switches if worker in s] == [(hub.glet, worker), (worker, hub.glet)]
    assert q.idle_workers == 1


def test_items_put_by_hub_callbacks_in_one_pass_share_one_worker(queues):
    rec = Recorder()
    q = queues(rec)
    hub = get_hub()
    for i in range(3):
        hub.run_callback(q.put, i)
    settle()
    assert rec.items == [0, 1, 2] and len(rec.workers) == 1


def test_a_parked_worker_serves_the_next_batch(queues):
    rec = Recorder()
    q = queues(rec)
    q.put("a")
    settle()
    q.put("b")
    settle()
    assert rec.items == ["a", "b"] and len(rec.workers) == 1
    assert q.idle_workers == 1


# Blocking -----------------------------------------------------------------------------
def test_a_worker_blocked_in_serve_hands_the_next_item_to_a_second_worker(queues):
    rec = Recorder(block={0: 0.02})
    q = queues(rec)
    q.put(0)
    q.put(1)
    settle()
    assert rec.items == [0, 1]  # 1 did not wait for 0's sleep
    first, second = rec.workers
    assert q.idle_workers == 1  # the second parked; the first still sleeps
    wait_until(lambda: q.idle_workers == 2)
    assert not first.dead and not second.dead


def test_workers_blocked_in_serve_share_one_switch_back_to_the_hub(queues):
    # (A request parked in the app holds its worker: nothing per worker
    # that could be shared, such as a bound method of the hub's switch.)
    rec = Recorder(block={0: 0.05, 1: 0.05})
    q = queues(rec)
    q.put(0)
    q.put(1)
    settle()

    def to_hub(worker):
        frame = worker.gr_frame
        while frame is not None and frame.f_code.co_name != "_work":
            frame = frame.f_back
        return frame.f_locals["to_hub"]

    first, second = rec.workers
    assert to_hub(first) is to_hub(second)
    wait_until(lambda: q.idle_workers == 2)


def test_a_worker_back_from_blocking_takes_what_is_queued(queues):
    rec = Recorder(block={0: 0.02})
    q = queues(rec, max_idle=0)  # no parked worker to take item 1
    q.put(0)
    settle()
    (first,) = rec.workers
    q.put(1)
    settle()
    # Item 1 went to a fresh worker at once; the first, back from its
    # sleep, found the queue empty and ended (max_idle=0).
    wait_until(lambda: first.dead)
    assert rec.items == [0, 1] and len(rec.workers) == 2


# The free list ------------------------------------------------------------------------
def test_parked_workers_are_capped_at_max_idle_and_the_rest_end(queues):
    rec = Recorder(block={i: 0.01 for i in range(4)})
    q = queues(rec, max_idle=2)
    for i in range(4):
        q.put(i)
    settle()
    assert len(rec.workers) == 4
    wait_until(lambda: sum(g.dead for g in rec.workers) == 2)
    assert q.idle_workers == 2


def test_max_idle_zero_keeps_no_worker(queues):
    rec = Recorder()
    q = queues(rec, max_idle=0)
    q.put(1)
    settle()
    assert rec.items == [1] and rec.workers[0].dead and q.idle_workers == 0


def test_a_negative_max_idle_is_refused():
    with pytest.raises(ValueError):
        WorkQueue(print, max_idle=-1)


def test_a_parked_worker_keeps_no_reference_to_its_last_item(queues):
    class Item:
        pass

    q = queues(lambda item: None)
    item = Item()
    ref = weakref.ref(item)
    q.put(item)
    del item
    settle()
    assert q.idle_workers == 1
    assert ref() is None


def test_a_worker_waiting_in_serve_saves_no_more_c_stack_than_a_greenlet_of_a_plain_function(queues):
    # A request waiting in the app (a long-poll) keeps its worker's saved C
    # stack for as long as it waits: the worker starts from a plain function,
    # so that starting it costs no C frame more than a greenlet needs.
    hub = get_hub()
    waiting: list = []

    def wait_in_the_hub() -> None:
        waiting.append(getcurrent())
        hub.switch()

    q = queues(lambda item: wait_in_the_hub())
    q.put(1)
    reference = greenlet_module.greenlet(wait_in_the_hub, parent=hub.glet)
    hub.run_callback(reference.switch)
    wait_until(lambda: len(waiting) == 2)
    worker = next(g for g in waiting if g is not reference)
    try:
        assert 0 < worker._stack_saved <= reference._stack_saved
    finally:
        for g in waiting:
            hub.run_callback(g.switch)
        settle()
    assert reference.dead and q.idle_workers == 1


# Failures of serve ----------------------------------------------------------------------
def test_an_exception_in_serve_is_logged_and_the_worker_goes_on(queues, caplog):
    rec = Recorder(fail={0: ValueError("broken item")})
    q = queues(rec)
    for i in range(3):
        q.put(i)
    with caplog.at_level(logging.ERROR, logger="lichen.hub"):
        settle()
    assert rec.items == [0, 1, 2] and len(rec.workers) == 1
    records = [r for r in caplog.records if r.name == "lichen.hub"]
    assert len(records) == 1 and records[0].exc_info[0] is ValueError
    assert q.idle_workers == 1


def test_greenlet_exit_from_serve_ends_that_worker_quietly(queues, caplog):
    rec = Recorder(fail={0: GreenletExit()})
    q = queues(rec)
    q.put(0)
    q.put(1)
    with caplog.at_level(logging.DEBUG, logger="lichen.hub"):
        settle()
    first, second = rec.workers
    assert rec.items == [0, 1] and first.dead and not second.dead
    assert not [r for r in caplog.records if r.name == "lichen.hub"]


def test_greenlet_exit_thrown_into_a_worker_blocked_in_serve_ends_it(queues, caplog):
    # What a server does at its stop deadline to a worker stuck on a
    # connection: find it with getcurrent() in serve, throw from the hub.
    rec = Recorder(block={0: 10})
    q = queues(rec)
    q.put(0)
    settle()
    (worker,) = rec.workers
    with caplog.at_level(logging.DEBUG, logger="lichen.hub"):
        get_hub().run_callback(throw_if_alive, worker, GreenletExit())
        settle()
    assert worker.dead and q.idle_workers == 0
    assert not [r for r in caplog.records if r.name == "lichen.hub"]
    q.put(1)
    settle()
    assert rec.items == [0, 1]


def test_a_kill_that_reaches_a_parked_worker_takes_it_off_the_free_list(queues):
    rec = Recorder()
    q = queues(rec)
    q.put(0)
    settle()
    (worker,) = rec.workers
    get_hub().run_callback(throw_if_alive, worker, GreenletExit())
    settle()
    assert worker.dead and q.idle_workers == 0
    q.put(1)
    settle()
    assert rec.items == [0, 1] and not rec.workers[1].dead


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_in_serve_reaches_the_main_greenlet_and_the_rest_is_served(queues, exc):
    rec = Recorder(fail={1: exc()})
    q = queues(rec)
    for i in range(4):
        q.put(i)
    with pytest.raises(exc):
        settle()
    assert rec.items == [0, 1]
    assert rec.workers[0].dead
    settle()
    assert rec.items == [0, 1, 2, 3]
    assert not rec.workers[1].dead and q.idle_workers == 1


# close() --------------------------------------------------------------------------------
def test_close_ends_parked_workers_and_refuses_new_items(queues):
    rec = Recorder(block={0: 0.01, 1: 0.01})
    q = queues(rec)
    q.put(0)
    q.put(1)
    settle()
    wait_until(lambda: q.idle_workers == 2)
    assert q.close() == []
    assert q.closed and q.idle_workers == 0
    settle()
    assert all(g.dead for g in rec.workers)
    with pytest.raises(RuntimeError):
        q.put(2)
    assert q.close() == []  # idempotent


def test_close_drops_and_returns_the_items_still_queued(queues):
    rec = Recorder()
    q = queues(rec)
    q.put("x")
    q.put("y")
    assert q.close() == ["x", "y"]
    settle()
    assert rec.items == [] and rec.workers == []


def test_a_worker_busy_at_close_ends_when_serve_returns(queues):
    rec = Recorder(block={0: 0.01})
    q = queues(rec)
    q.put(0)
    settle()
    (worker,) = rec.workers
    q.close()
    wait_until(lambda: worker.dead)
    assert q.idle_workers == 0
