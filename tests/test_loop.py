# Spec tests for lichen.loop: the libev loop, its backends and watchers, and
# the C ready array that carries events back to Python.
#
# These tests drive a private Loop directly (never the thread's hub): each
# `run_once` returns `token << 3 | flags` items, and a test plays the drainer
# (claiming each item with `Loop.claim`) where the hub normally would.
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from helpers import hub_hygiene  # noqa: F401  (autouse fixture)
from lichen.loop import BACKENDS, READ, WRITE, Loop, libev_version, supported_backends


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.destroy()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def reraise(_watcher: Any, exc: BaseException) -> None:
    raise exc


def poll(lp: Loop, timeout: float = 2.0) -> list[int]:
    """One blocking iteration bounded by a guard timer; returns the items,
    minus the guard's own."""
    guard = lp.timer(timeout)
    guard.start()
    try:
        items, _alive = lp.run_once(True)
    finally:
        guard.close()
    return [i for i in items if i >> 3 != guard.token]


def drain(lp: Loop, items: list[int]) -> None:
    """What the hub does for each item before calling back: sync `active`."""
    for item in items:
        lp.claim(item)


# Backends ---------------------------------------------------------------------
def test_supported_backends_lists_epoll_poll_and_select_on_linux():
    names = supported_backends()
    assert {"epoll", "poll", "select"} <= set(names)
    assert set(names) <= set(BACKENDS)


def test_libev_version_is_4_or_newer():
    major, minor = libev_version()
    assert major >= 4 and minor >= 0


def test_default_backend_is_epoll_on_linux(loop):
    assert loop.backend == "epoll"


@pytest.mark.parametrize("backend", ["epoll", "poll", "select"])
def test_a_backend_selected_by_name_is_used_and_delivers_io_events(backend, pair):
    lp = Loop(backend)
    try:
        assert lp.backend == backend
        a, b = pair
        w = lp.io(a.fileno(), READ)
        w.start()
        b.send(b"x")
        assert poll(lp) == [w.token << 3 | READ]
    finally:
        lp.destroy()


def test_an_unknown_backend_name_raises_value_error():
    with pytest.raises(ValueError, match="unknown libev backend 'nope'"):
        Loop("nope")


def test_a_backend_this_system_lacks_raises_value_error():
    with pytest.raises(ValueError, match="not supported here"):
        Loop("kqueue")


def test_destroy_is_idempotent_and_marks_the_loop_destroyed():
    lp = Loop()
    assert not lp.destroyed
    lp.destroy()
    lp.destroy()
    assert lp.destroyed


def test_now_advances_after_update_now(loop):
    before = loop.now()
    time.sleep(0.02)
    loop.update_now()
    assert loop.now() - before >= 0.015


# io watchers ------------------------------------------------------------------
def test_io_watcher_fires_with_read_flag_once_its_fd_becomes_readable(loop, pair):
    a, b = pair
    w = loop.io(a.fileno(), READ)
    w.start()
    items, alive = loop.run_once(False)
    assert items == [] and alive
    b.send(b"x")
    assert poll(loop) == [w.token << 3 | READ]


def test_io_watcher_for_write_fires_with_write_flag_on_a_writable_fd(loop, pair):
    a, _ = pair
    w = loop.io(a.fileno(), WRITE)
    w.start()
    assert poll(loop) == [w.token << 3 | WRITE]


def test_io_watcher_is_one_shot_until_started_again(loop, pair):
    a, b = pair
    w = loop.io(a.fileno(), READ)
    w.start()
    b.send(b"x")
    items = poll(loop)
    assert items == [w.token << 3 | READ]
    drain(loop, items)
    assert not w.active
    # The byte is still unread, yet a stopped watcher reports nothing.
    assert poll(loop, timeout=0.05) == []
    w.start()
    assert poll(loop) == [w.token << 3 | READ]


def test_io_watcher_start_can_switch_the_events_it_waits_for(loop, pair):
    a, _ = pair
    w = loop.io(a.fileno(), READ)
    w.start()
    assert poll(loop, timeout=0.05) == []
    w.start(WRITE)
    assert w.events == WRITE
    assert poll(loop) == [w.token << 3 | WRITE]


def test_a_stopped_io_watcher_does_not_fire(loop, pair):
    a, b = pair
    w = loop.io(a.fileno(), READ)
    w.start()
    w.stop()
    b.send(b"x")
    assert poll(loop, timeout=0.05) == []


# Timers -------------------------------------------------------------------------
def test_timer_fires_once_after_its_delay(loop):
    t = loop.timer(0.1)
    t.start()
    t0 = time.monotonic()
    items, alive = loop.run_once(True)
    elapsed = time.monotonic() - t0
    assert items == [t.token << 3]
    assert 0.09 <= elapsed < 0.5
    drain(loop, items)
    assert not t.active
    assert loop.run_once(False) == ([], False)


def test_timer_start_measures_its_delay_from_now_even_after_blocking_work(loop):
    loop.run_once(False)  # libev caches "now" here...
    time.sleep(0.2)  # ...then the thread blocks without iterating
    t = loop.timer(0.1)
    t.start()
    t0 = time.monotonic()
    items = poll(loop)
    assert items == [t.token << 3]
    assert time.monotonic() - t0 >= 0.09


def test_timer_again_pushes_its_expiry_back(loop):
    t = loop.timer(repeat=0.2)
    t0 = time.monotonic()
    t.again()  # start: due 0.2 s from now
    assert t.active
    time.sleep(0.1)
    t.again()  # activity: due 0.2 s from *now*, i.e. ~0.3 s after t0
    assert 0.15 < t.remaining() <= 0.2 + 1e-6
    items, _ = loop.run_once(True)
    assert items == [t.token << 3]
    assert time.monotonic() - t0 >= 0.28
    t.close()


def test_timer_again_with_zero_repeat_stops_it(loop):
    t = loop.timer(repeat=0.05)
    t.again()
    t.again(0.0)
    assert not t.active
    assert loop.run_once(False) == ([], False)


def test_repeating_timer_stays_active_and_fires_again(loop):
    t = loop.timer(0.02, 0.02)
    t.start()
    for _ in range(3):
        items = poll(loop)
        assert items == [t.token << 3]
        drain(loop, items)
        assert t.active
    t.close()


# Async, prepare, check, idle -------------------------------------------------------
def test_async_send_from_another_thread_wakes_a_blocking_iteration(loop):
    a = loop.async_()
    a.start()
    sender = threading.Timer(0.1, a.send)
    t0 = time.monotonic()
    sender.start()
    try:
        items = poll(loop, timeout=3)
    finally:
        sender.join()
    assert items == [a.token << 3]
    assert 0.05 <= time.monotonic() - t0 < 1.5


def test_prepare_and_check_watchers_fire_on_every_iteration_prepare_first(loop):
    p, c = loop.prepare(), loop.check()
    p.start()
    c.start()
    for _ in range(2):
        items, alive = loop.run_once(False)
        assert alive
        assert items == [p.token << 3, c.token << 3]


def test_idle_watcher_fires_and_keeps_a_blocking_iteration_from_sleeping(loop):
    far = loop.timer(5)
    far.start()
    i = loop.idle()
    i.start()
    t0 = time.monotonic()
    items, _ = loop.run_once(True)
    assert items == [i.token << 3]
    assert time.monotonic() - t0 < 0.5


def test_stopped_prepare_check_and_idle_watchers_do_not_fire(loop):
    ws = [loop.prepare(), loop.check(), loop.idle()]
    for w in ws:
        w.start()
        w.stop()
    assert loop.run_once(False) == ([], False)


# Reference counting -----------------------------------------------------------------
def test_an_unrefd_watcher_does_not_keep_the_loop_alive(loop):
    t = loop.timer(5)
    t.unref()
    t.start()
    t0 = time.monotonic()
    items, alive = loop.run_once(True)  # would sleep 5 s if t held the loop
    assert (items, alive) == ([], False)
    assert time.monotonic() - t0 < 0.5
    assert t.active


def test_a_referenced_watcher_keeps_the_loop_alive(loop):
    t = loop.timer(5)
    t.start()
    assert loop.run_once(False) == ([], True)


def test_starting_and_stopping_unrefd_watchers_keeps_the_ref_count_balanced(loop, pair):
    a, b = pair
    t = loop.timer(5)
    t.unref()
    for _ in range(3):
        t.start()
        t.stop()
    io = loop.io(a.fileno(), READ)
    io.unref()
    io.start()
    b.send(b"x")
    drain(loop, poll(loop))  # the one-shot io stops itself in C
    assert not io.active
    assert loop.run_once(False) == ([], False)
    held = loop.timer(5)
    held.start()
    assert loop.run_once(False) == ([], True)
    held.stop()
    assert loop.run_once(False) == ([], False)


def test_loop_ref_counts_outstanding_work_until_unref(loop):
    loop.ref()
    assert loop.run_once(False)[1] is True
    loop.unref()
    assert loop.run_once(False)[1] is False


# Tokens and dropped events -------------------------------------------------------------
def test_tokens_are_unique_and_never_reused(loop):
    seen = set()
    for _ in range(5):
        w = loop.timer(1)
        w.start()
        w.close()
        assert w.token not in seen
        seen.add(w.token)
    assert loop.timer().token not in seen


def test_a_closed_watcher_is_forgotten_by_the_loop(loop):
    t = loop.timer(1)
    t.start()
    assert loop.watchers[t.token] is t
    t.close()
    assert t.token not in loop.watchers
    assert not t.active and t.callback is None


def test_a_watcher_closed_while_its_event_is_queued_is_never_called(loop):
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        calls = []
        ws = []
        for a, b in pairs:
            w = loop.io(a.fileno(), READ)
            ws.append(w)
            b.send(b"x")

        def make_cb(me):
            def cb(flags):
                calls.append(me)
                for other in ws:  # whichever runs first closes the other
                    if other is not me:
                        other.close()
            return cb

        for w in ws:
            w.callback = make_cb(w)
            w.start()
        items = poll(loop)
        assert sorted(i >> 3 for i in items) == sorted(w.token for w in ws)  # both queued
        loop.dispatch(items, reraise)  # the drain the hub runs
        assert len(calls) == 1
    finally:
        for a, b in pairs:
            a.close()
            b.close()



# Dispatch: the loop drains its own ready items ------------------------------------------
def test_dispatch_reports_a_failing_callback_and_goes_on_with_the_next_item(loop):
    timers = [loop.timer(0.0) for _ in range(3)]
    calls, errors = [], []

    def cb(flags):
        calls.append(flags)
        if len(calls) == 1:
            raise ValueError("first")

    for t in timers:
        t.callback = cb
        t.start()
    items = poll(loop)
    loop.dispatch(items, lambda w, exc: errors.append((w, exc)))
    assert calls == [0, 0, 0]
    assert len(errors) == 1 and errors[0][0] in timers and isinstance(errors[0][1], ValueError)
    assert not any(t.active for t in timers)  # one-shot: claimed


def test_a_drain_ended_by_on_error_resumes_from_last_items_without_repeats(loop):
    timers = [loop.timer(0.0) for _ in range(3)]
    called = []

    def make_cb(t):
        def cb(_flags):
            called.append(t)
            if len(called) == 1:
                raise KeyboardInterrupt
        return cb

    for t in timers:
        t.callback = make_cb(t)
        t.start()
    items = poll(loop)
    with pytest.raises(KeyboardInterrupt):
        loop.dispatch(items, reraise)
    assert len(called) == 1
    assert loop.last_items() == items  # still in the C array until the next run
    loop.dispatch(loop.last_items(), reraise)
    assert sorted(t.token for t in called) == sorted(t.token for t in timers)  # each once


def test_dispatch_balances_the_ref_of_an_unrefd_one_shot_watcher(loop):
    keep = loop.timer(10)
    keep.start()
    t = loop.timer(0.0)
    t.unref()
    t.callback = lambda _flags: None
    t.start()
    loop.dispatch(poll(loop), reraise)
    keep.close()
    # Had the claim not re-counted it, libev's count would be off by one and
    # the loop would report itself dead, or alive, wrongly.
    assert loop.run_once(False) == ([], False)


def test_abandon_frees_the_c_loop_but_keeps_the_watchers():
    lp = Loop()
    t = lp.timer(5)
    t.start()
    lp.abandon()
    lp.abandon()
    assert lp.destroyed and lp.watchers == {t.token: t}


# Stale items: the active flag never disagrees with libev -------------------------------
@pytest.mark.parametrize("stop_first", [True, False], ids=["stop-start", "start"])
@pytest.mark.parametrize("unref", [False, True], ids=["ref", "unref"])
def test_an_item_queued_before_its_watcher_was_re_armed_is_stale(loop, pair, stop_first, unref):
    a, b = pair
    io = loop.io(a.fileno(), READ)
    timer = loop.timer(0.0)
    if unref:
        io.unref()
    io.start()
    timer.start()
    b.send(b"x")
    items, _alive = loop.run_once(True)
    # One iteration, pending watchers run last-in first-out: the timer first.
    assert items == [timer.token << 3, io.token << 3 | READ]
    assert loop.claim(items[0]) is timer
    # What the greenlet woken by the timer does before the io item is reached.
    if stop_first:
        io.stop()
    io.start()
    assert loop.claim(items[1]) is None
    assert io.active and io.libev_active
    # Held by libev, counted once: an unref'd watcher lets the loop exit.
    a.recv(1)
    assert loop.run_once(False) == ([], not unref)
    io.close()
    assert not io.libev_active


@pytest.mark.parametrize("kind", ["io", "timer"])
def test_close_stops_the_watcher_in_libev_even_when_its_flag_says_stopped(loop, pair, kind):
    w = loop.io(pair[0].fileno(), READ) if kind == "io" else loop.timer(5)
    w.start()
    w.active = False  # out of step with libev, as a stale item once left it
    w.close()
    assert loop.run_once(False) == ([], False)  # nothing holds the loop any more
    assert not w.libev_active


# The ready array -------------------------------------------------------------------------
def test_ready_array_grows_past_256_events_in_one_iteration():
    # poll(2) reports every ready fd in one call, so all 1000 events land in
    # the C ready array during a single ev_run.
    lp = Loop("poll")
    pairs = [socket.socketpair() for _ in range(1000)]
    try:
        ws = []
        for a, b in pairs:
            w = lp.io(a.fileno(), READ)
            w.start()
            ws.append(w)
            b.send(b"x")
        items, alive = lp.run_once(True)
        assert len(items) == 1000
        assert sorted(i >> 3 for i in items) == sorted(w.token for w in ws)
        assert all(i & 7 == READ for i in items)
        assert lp._ready.cap >= 1000 and lp._ready.overflow == 0
    finally:
        lp.destroy()
        for a, b in pairs:
            a.close()
            b.close()


def test_a_thousand_timers_expiring_together_arrive_in_one_iteration(loop):
    ts = [loop.timer(0.01) for _ in range(1000)]
    for t in ts:
        t.start()
    time.sleep(0.03)
    items, _ = loop.run_once(True)
    assert sorted(i >> 3 for i in items) == [t.token for t in ts]
    assert loop._ready.overflow == 0


def test_epoll_delivers_each_of_1000_ready_fds_exactly_once(loop):
    pairs = [socket.socketpair() for _ in range(1000)]
    try:
        ws = []
        for a, b in pairs:
            w = loop.io(a.fileno(), READ)
            w.start()
            ws.append(w)
            b.send(b"x")
        got: list[int] = []
        while len(got) < 1000:
            items = poll(loop)
            assert items, "ready fds were lost"
            drain(loop, items)
            got.extend(i >> 3 for i in items)
        assert sorted(got) == sorted(w.token for w in ws)
        assert poll(loop, timeout=0.05) == []  # one-shot: nothing more
    finally:
        for a, b in pairs:
            a.close()
            b.close()
