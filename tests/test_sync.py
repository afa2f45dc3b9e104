"""Tests for lichen.sync: each test names the one behaviour it checks.

Tests run in the main greenlet; `sleep(0)` lets every spawned greenlet run
until it blocks. Races between a hand-off and a waiter's timer are made
deterministic by blocking the whole thread (time.sleep) so that several timers
expire in one loop iteration: the hub dispatches them in expiry order.
"""
from __future__ import annotations

import queue
import time

import pytest

from lichen import sync
from lichen.hub import GreenletExit, Timeout, sleep, spawn
from lichen.sync import BoundedSemaphore, Event, Lock, Pool, Queue, RLock, Semaphore


def settle() -> None:
    """Let every ready greenlet run until it blocks (a few hub passes)."""
    for _ in range(3):
        sleep(0)


# Event ----------------------------------------------------------------------
def test_event_starts_unset():
    assert not Event().is_set()


def test_event_set_and_clear_toggle_flag():
    ev = Event()
    ev.set()
    assert ev.is_set()
    ev.clear()
    assert not ev.is_set()


def test_event_wait_returns_true_at_once_when_set():
    ev = Event()
    ev.set()
    assert ev.wait() is True
    assert ev.wait(0) is True


def test_event_set_wakes_all_waiters():
    ev = Event()
    gs = [spawn(ev.wait) for _ in range(3)]
    settle()
    assert not any(g.ready() for g in gs)
    ev.set()
    for g in gs:
        assert g.join(0.5)
        assert g.value is True


def test_event_wait_returns_false_on_timeout():
    ev = Event()
    t0 = time.monotonic()
    assert ev.wait(0.02) is False
    assert time.monotonic() - t0 >= 0.015


def test_event_wait_zero_timeout_returns_false_without_blocking():
    assert Event().wait(0) is False


def test_event_timed_out_waiter_leaves_nothing_behind():
    ev = Event()
    ev.wait(0.01)
    assert ev._waiters == []


def test_event_waiter_woken_by_set_returns_true_even_if_cleared_before_it_runs():
    ev = Event()
    g = spawn(ev.wait)
    settle()
    ev.set()
    ev.clear()
    assert g.join(0.5)
    assert g.value is True


def test_event_killed_waiter_is_removed():
    ev = Event()
    g = spawn(ev.wait)
    settle()
    g.kill()
    assert ev._waiters == []


# Lock -----------------------------------------------------------------------
def test_lock_acquire_and_release_toggle_locked():
    lock = Lock()
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


def test_lock_is_not_reentrant():
    lock = Lock()
    lock.acquire()
    assert lock.acquire(blocking=False) is False


def test_lock_nonblocking_acquire_with_timeout_raises_value_error():
    with pytest.raises(ValueError):
        Lock().acquire(False, 1.0)


def test_lock_acquire_timeout_returns_false():
    lock = Lock()
    lock.acquire()
    assert lock.acquire(timeout=0.01) is False
    assert not lock._waiters


def test_lock_release_unlocked_raises_runtime_error():
    with pytest.raises(RuntimeError):
        Lock().release()


def test_lock_context_manager_releases_on_exception():
    lock = Lock()
    with pytest.raises(KeyError):
        with lock:
            assert lock.locked()
            raise KeyError
    assert not lock.locked()


def test_lock_release_wakes_blocked_acquirer():
    lock = Lock()
    lock.acquire()
    g = spawn(lock.acquire)
    settle()
    assert not g.ready()
    lock.release()
    assert g.join(0.5) and g.value is True
    assert lock.locked()


def test_lock_waiters_acquire_in_fifo_order():
    lock = Lock()
    order = []

    def worker(n):
        with lock:
            order.append(n)
            sleep(0)

    lock.acquire()
    gs = [spawn(worker, n) for n in range(5)]
    settle()
    lock.release()
    for g in gs:
        g.join(0.5)
    assert order == [0, 1, 2, 3, 4]


def test_lock_released_lock_goes_to_waiter_not_to_barging_acquirer():
    lock = Lock()
    lock.acquire()
    g = spawn(lock.acquire)
    settle()
    lock.release()  # handed to g, which has not run yet
    assert lock.acquire(blocking=False) is False
    assert g.join(0.5) and g.value is True


def test_lock_waiter_killed_after_handoff_passes_lock_to_next_waiter():
    lock = Lock()
    lock.acquire()
    g1 = spawn(lock.acquire)
    g2 = spawn(lock.acquire)
    settle()
    g1.kill(block=False)  # its GreenletExit is queued before the hand-off wake-up
    lock.release()
    assert g1.join(0.5) and g2.join(0.5)
    assert g2.value is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


# RLock ----------------------------------------------------------------------
def test_rlock_is_reentrant():
    rl = RLock()
    assert rl.acquire() and rl.acquire()
    rl.release()
    assert rl.locked()
    rl.release()
    assert not rl.locked()


def test_rlock_release_by_non_owner_raises_runtime_error():
    rl = RLock()
    rl.acquire()
    g = spawn(rl.release)
    g.join()
    assert isinstance(g.exception, RuntimeError)


def test_rlock_blocks_other_greenlets_until_fully_released():
    rl = RLock()
    rl.acquire()
    rl.acquire()
    g = spawn(rl.acquire)
    settle()
    rl.release()
    settle()
    assert not g.ready()
    rl.release()
    assert g.join(0.5) and g.value is True


def test_rlock_acquire_timeout_returns_false():
    rl = RLock()
    rl.acquire()
    g = spawn(rl.acquire, timeout=0.01)
    assert g.join(0.5) and g.value is False


def test_rlock_context_manager():
    rl = RLock()
    with rl:
        with rl:
            assert rl.locked()
    assert not rl.locked()


# Semaphore ------------------------------------------------------------------
def test_semaphore_negative_value_raises_value_error():
    with pytest.raises(ValueError):
        Semaphore(-1)


def test_semaphore_allows_value_holders_then_refuses():
    sem = Semaphore(2)
    assert sem.acquire() and sem.acquire()
    assert sem.acquire(blocking=False) is False


def test_semaphore_acquire_timeout_returns_false():
    sem = Semaphore(0)
    assert sem.acquire(timeout=0.01) is False


def test_semaphore_acquire_zero_timeout_does_not_block():
    assert Semaphore(0).acquire(timeout=0) is False


def test_semaphore_release_without_waiters_increments_counter():
    sem = Semaphore(0)
    sem.release()
    sem.release()
    assert sem.acquire(False) and sem.acquire(False)
    assert not sem.acquire(False)


def test_semaphore_context_manager_releases():
    sem = Semaphore(1)
    with sem:
        assert sem.locked()
    assert not sem.locked()


def test_semaphore_waiters_are_served_fifo():
    sem = Semaphore(0)
    order = []

    def worker(n):
        sem.acquire()
        order.append(n)

    gs = [spawn(worker, n) for n in range(5)]
    settle()
    for _ in range(5):
        sem.release()
    for g in gs:
        g.join(0.5)
    assert order == [0, 1, 2, 3, 4]


def test_semaphore_release_after_waiter_timed_out_goes_to_next_waiter():
    sem = Semaphore(0)
    g1 = spawn(sem.acquire, timeout=0.01)
    g2 = spawn(sem.acquire)
    assert g1.join(0.5) and g1.value is False
    sem.release()
    assert g2.join(0.5) and g2.value is True
    assert sem._value == 0 and not sem._waiters


def test_semaphore_killed_waiter_is_removed_from_queue():
    sem = Semaphore(0)
    g = spawn(sem.acquire)
    settle()
    g.kill()
    assert not sem._waiters
    sem.release()
    assert sem._value == 1


def spy_pass_on(monkeypatch) -> list:
    """Record each time a granted-but-interrupted waiter passes its unit on."""
    calls: list = []
    orig = sync._Counter._pass_on

    def pass_on(self, w):
        calls.append(w)
        orig(self, w)

    monkeypatch.setattr(sync._Counter, "_pass_on", pass_on)
    return calls


def test_semaphore_waiter_killed_after_handoff_passes_unit_to_next_waiter(monkeypatch):
    passed = spy_pass_on(monkeypatch)
    sem = Semaphore(0)
    g1 = spawn(sem.acquire)
    g2 = spawn(sem.acquire)
    settle()
    g1.kill(block=False)
    sem.release()  # granted to g1, which dies before it can resume
    assert g1.join(0.5) and isinstance(g1.value, GreenletExit)
    assert g2.join(0.5) and g2.value is True
    assert len(passed) == 1


def test_semaphore_waiter_killed_after_handoff_without_next_waiter_returns_unit():
    sem = Semaphore(0)
    g = spawn(sem.acquire)
    settle()
    g.kill(block=False)
    sem.release()
    g.join(0.5)
    assert sem._value == 1


def test_semaphore_waiter_hit_by_timeout_after_handoff_passes_unit_on(monkeypatch):
    passed = spy_pass_on(monkeypatch)
    sem = Semaphore(0)

    def with_timeout():
        with Timeout(0.02):
            sem.acquire()

    def releaser():
        sleep(0.01)
        sem.release()

    g1 = spawn(with_timeout)
    g2 = spawn(sem.acquire)
    spawn(releaser)
    settle()
    time.sleep(0.04)  # both timers expire in one iteration: releaser first
    assert g1.join(0.5) and isinstance(g1.exception, Timeout)
    assert g2.join(0.5) and g2.value is True
    assert len(passed) == 1  # g1 had been granted the unit when the Timeout hit


def test_semaphore_waiter_whose_timer_fires_after_handoff_keeps_unit():
    sem = Semaphore(0)

    def releaser():
        sleep(0.01)
        sem.release()

    g1 = spawn(sem.acquire, timeout=0.02)
    r = spawn(releaser)
    settle()
    time.sleep(0.04)  # the hand-off and g1's timeout land in one iteration
    assert r.join(0.5) and g1.join(0.5)
    assert g1.value is True
    assert sem._value == 0 and not sem._waiters


def test_semaphore_acquire_from_main_greenlet_is_woken_by_release():
    sem = Semaphore(0)

    def releaser():
        sleep(0.005)
        sem.release()

    spawn(releaser)
    assert sem.acquire(timeout=0.5) is True


def test_bounded_semaphore_over_release_raises_value_error():
    sem = BoundedSemaphore(1)
    with pytest.raises(ValueError):
        sem.release()


def test_bounded_semaphore_release_within_bound_is_allowed():
    sem = BoundedSemaphore(2)
    sem.acquire()
    sem.acquire()
    sem.release()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


# Queue ----------------------------------------------------------------------
def test_queue_is_fifo():
    q = Queue()
    for i in range(5):
        q.put(i)
    assert [q.get() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_queue_unbounded_by_default():
    q = Queue()
    for i in range(1000):
        q.put_nowait(i)
    assert q.qsize() == 1000 and not q.full()


def test_queue_qsize_empty_full():
    q = Queue(2)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put(1)
    q.put(2)
    assert not q.empty() and q.full() and q.qsize() == 2


def test_queue_get_nowait_raises_empty():
    with pytest.raises(queue.Empty):
        Queue().get_nowait()


def test_queue_get_timeout_raises_empty():
    q = Queue()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    assert not q._getters


def test_queue_put_nowait_raises_full():
    q = Queue(1)
    q.put_nowait(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)


def test_queue_put_timeout_raises_full_and_item_is_not_added():
    q = Queue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.01)
    assert not q._putters
    assert q.get_nowait() == 1 and q.empty()


def test_queue_get_blocks_until_put():
    q = Queue()
    g = spawn(q.get)
    settle()
    assert not g.ready()
    q.put("x")
    assert g.join(0.5) and g.value == "x"
    assert q.empty()


def test_queue_getters_are_served_fifo():
    q = Queue()
    gs = [spawn(q.get) for _ in range(3)]
    settle()
    for i in range(3):
        q.put(i)
    for g in gs:
        g.join(0.5)
    assert [g.value for g in gs] == [0, 1, 2]


def test_queue_put_blocks_while_full():
    q = Queue(1)
    q.put(1)
    g = spawn(q.put, 2)
    settle()
    assert not g.ready()
    assert q.get() == 1
    assert g.join(0.5) and g.exception is None
    assert q.get_nowait() == 2


def test_queue_blocked_putters_are_admitted_in_fifo_order():
    q = Queue(1)
    q.put(0)
    gs = [spawn(q.put, i) for i in range(1, 4)]
    settle()
    got = [q.get(timeout=0.5) for _ in range(4)]
    assert got == [0, 1, 2, 3]
    for g in gs:
        assert g.join(0.5)


def test_queue_put_while_putters_wait_queues_behind_them():
    q = Queue(1)
    q.put(0)
    g = spawn(q.put, 1)
    settle()
    assert q.get() == 0  # admits 1 at once
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    g.join(0.5)


def test_queue_timed_out_getter_does_not_swallow_next_item():
    q = Queue()
    g = spawn(q.get, timeout=0.01)
    g.join(0.5)
    assert isinstance(g.exception, queue.Empty)
    q.put(1)
    assert q.get_nowait() == 1


def test_queue_getter_killed_after_handoff_passes_item_to_next_getter():
    q = Queue()
    g1 = spawn(q.get)
    g2 = spawn(q.get)
    settle()
    g1.kill(block=False)
    q.put("item")  # handed to g1, which dies before it resumes
    assert g1.join(0.5) and g2.join(0.5)
    assert g2.value == "item"


def test_queue_getter_killed_after_handoff_returns_item_to_head():
    q = Queue()
    g = spawn(q.get)
    settle()
    g.kill(block=False)
    q.put("first")
    q.put("second")
    g.join(0.5)
    assert [q.get_nowait(), q.get_nowait()] == ["first", "second"]


def test_queue_item_given_back_to_full_queue_keeps_fifo_order():
    q = Queue(1)
    g = spawn(q.get)
    settle()
    g.kill(block=False)
    q.put("a")  # handed to g, which dies before it resumes
    q.put("b")  # fills the queue
    p = spawn(q.put, "c")
    settle()  # "a" comes back at the head, one over maxsize; "c" must wait
    assert q.qsize() == 2 and not p.ready()
    assert [q.get(timeout=0.5) for _ in range(3)] == ["a", "b", "c"]
    assert p.join(0.5)


def test_queue_getter_whose_timer_fires_after_handoff_keeps_item():
    q = Queue()

    def putter():
        sleep(0.01)
        q.put("x")

    g = spawn(q.get, timeout=0.02)
    spawn(putter)
    settle()
    time.sleep(0.04)
    assert g.join(0.5) and g.value == "x"
    assert q.empty()


def test_queue_task_done_too_often_raises_value_error():
    q = Queue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_queue_join_returns_at_once_without_unfinished_tasks():
    assert Queue().join() is True


def test_queue_join_waits_for_all_task_done():
    q = Queue()
    for i in range(3):
        q.put(i)

    def consumer():
        while True:
            q.get()
            sleep(0)
            q.task_done()

    c = spawn(consumer)
    assert q.join(0.5) is True
    assert q.empty()
    c.kill()


def test_queue_join_returns_false_on_timeout():
    q = Queue()
    q.put(1)
    assert q.join(0.01) is False


def test_queue_join_counts_items_handed_directly_to_getters():
    q = Queue()
    g = spawn(q.get)
    settle()
    q.put(1)
    g.join(0.5)
    assert q.join(0.01) is False
    q.task_done()
    assert q.join(0.01) is True


# Pool -----------------------------------------------------------------------
def test_pool_invalid_size_raises_value_error():
    with pytest.raises(ValueError):
        Pool(0)


def test_pool_spawn_runs_function_with_args():
    pool = Pool(2)
    g = pool.spawn(lambda a, fn=None: (a, fn), 1, fn=2)
    assert g.join(0.5) and g.value == (1, 2)


def test_pool_greenlet_leaves_pool_when_finished():
    pool = Pool(2)
    g = pool.spawn(sleep, 0)
    assert g in pool and len(pool) == 1
    g.join(0.5)
    settle()  # link callbacks run in the hub
    assert len(pool) == 0 and pool.free_count() == 2


def test_pool_greenlet_leaves_pool_when_it_raises():
    pool = Pool(1)
    g = pool.spawn(lambda: 1 / 0)
    assert pool.join(0.5)
    assert isinstance(g.exception, ZeroDivisionError)
    assert len(pool) == 0 and pool.free_count() == 1


def test_pool_free_count_and_full():
    pool = Pool(2)
    ev = Event()
    assert pool.free_count() == 2 and not pool.full()
    pool.spawn(ev.wait)
    assert pool.free_count() == 1 and not pool.full()
    pool.spawn(ev.wait)
    assert pool.free_count() == 0 and pool.full()
    ev.set()
    assert pool.join(0.5)
    assert pool.free_count() == 2


def test_pool_spawn_blocks_while_full():
    pool = Pool(1)
    ev = Event()
    pool.spawn(ev.wait)
    spawner = spawn(pool.spawn, ev.wait)
    settle()
    assert not spawner.ready() and len(pool) == 1
    ev.set()
    assert spawner.join(0.5)
    assert pool.join(0.5)


def test_pool_blocked_spawns_proceed_in_fifo_order():
    pool = Pool(1)
    order = []
    ev = Event()
    pool.spawn(ev.wait)
    spawners = [spawn(pool.spawn, order.append, n) for n in range(4)]
    settle()
    ev.set()
    for s in spawners:
        s.join(0.5)
    assert pool.join(0.5)
    assert order == [0, 1, 2, 3]


def test_pool_killed_spawner_does_not_leak_slot():
    pool = Pool(1)
    ev = Event()
    pool.spawn(ev.wait)
    s1 = spawn(pool.spawn, ev.wait)
    s2 = spawn(pool.spawn, lambda: "ran")
    settle()
    s1.kill()
    ev.set()
    assert s2.join(0.5) and s2.value.join(0.5)
    assert s2.value.value == "ran"
    assert pool.join(0.5) and pool.free_count() == 1


def test_pool_unbounded_never_blocks():
    pool = Pool()
    ev = Event()
    gs = [pool.spawn(ev.wait) for _ in range(50)]
    assert len(pool) == 50 and not pool.full() and pool.wait_available(0)
    ev.set()
    assert pool.join(0.5) and all(g.value is True for g in gs)


def test_pool_wait_available_returns_when_slot_frees():
    pool = Pool(1)
    pool.spawn(sleep, 0.01)
    assert pool.wait_available(0.5) is True
    assert pool.free_count() == 1


def test_pool_wait_available_returns_false_on_timeout():
    pool = Pool(1)
    ev = Event()
    pool.spawn(ev.wait)
    assert pool.wait_available(0.01) is False
    ev.set()
    pool.join(0.5)


def test_pool_join_waits_for_all():
    pool = Pool(3)
    gs = [pool.spawn(sleep, 0.01 * n) for n in range(3)]
    assert pool.join(0.5) is True
    assert all(g.ready() for g in gs) and len(pool) == 0


def test_pool_join_returns_false_on_timeout():
    pool = Pool(1)
    ev = Event()
    pool.spawn(ev.wait)
    assert pool.join(0.01) is False
    ev.set()
    pool.join(0.5)


def test_pool_kill_kills_every_greenlet():
    pool = Pool(3)
    ev = Event()
    gs = [pool.spawn(ev.wait) for _ in range(3)]
    settle()
    pool.kill()
    assert len(pool) == 0
    assert all(isinstance(g.value, GreenletExit) for g in gs)


def test_pool_kill_nonblocking_returns_before_greenlets_die():
    pool = Pool(2)
    ev = Event()
    g = pool.spawn(ev.wait)
    settle()
    pool.kill(block=False)
    assert not g.ready()
    assert pool.join(0.5)


def test_pool_kill_returns_after_timeout_if_a_greenlet_lingers():
    pool = Pool(1)

    def stubborn():
        try:
            Event().wait()
        except GreenletExit:
            sleep(0.05)

    pool.spawn(stubborn)
    settle()
    t0 = time.monotonic()
    pool.kill(timeout=0.01)
    assert time.monotonic() - t0 < 0.04
    assert len(pool) == 1
    assert pool.join(0.5)


def test_pool_kill_from_a_pooled_greenlet_spares_the_caller():
    pool = Pool(3)
    ev = Event()
    others = [pool.spawn(ev.wait) for _ in range(2)]

    def killer():
        pool.kill()
        return "survived"

    k = pool.spawn(killer)
    assert k.join(0.5) and k.value == "survived"
    assert all(g.join(0.5) and isinstance(g.value, GreenletExit) for g in others)
    assert pool.join(0.5)


def test_pool_kill_kills_not_yet_started_greenlets():
    pool = Pool(2)
    ran = []
    g = pool.spawn(ran.append, 1)
    pool.kill()
    assert g.ready() and ran == []
    assert len(pool) == 0


def test_pool_iterates_over_running_greenlets_in_spawn_order():
    pool = Pool(3)
    ev = Event()
    gs = [pool.spawn(ev.wait) for _ in range(3)]
    assert list(pool) == gs and len(pool) == 3
    ev.set()
    pool.join(0.5)
    assert list(pool) == []
