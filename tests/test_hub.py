# Spec tests for lichen.hub: spawning and the greenlet handle, sleeping and
# scheduling order, timeouts, fd waits and the wait helper under them all
# (Hub.block), cross-thread callbacks, error reporting, LoopExit/wait(), and
# one independent hub per thread.
from __future__ import annotations

import gc
import logging
import socket
import threading
import time

import pytest

from helpers import fd_count, hub_hygiene, idle_hub  # noqa: F401  (fixtures)
from lichen.hub import (
    TIMEOUT, Greenlet, GreenletExit, LoopExit, Timeout, Waiter, call_soon_threadsafe, get_hub, getcurrent,
    joinall, killall, sleep, spawn, spawn_later, wait, wait_read, wait_write, with_timeout,
)
from lichen.loop import READ


def elapsed_since(t0: float) -> float:
    return time.monotonic() - t0


# spawn and the handle -----------------------------------------------------------
def test_spawn_returns_a_greenlet_handle_that_has_not_run_yet():
    ran = []
    g = spawn(ran.append, 1)
    assert isinstance(g, Greenlet)
    assert ran == [] and not g.ready() and not g.dead
    g.join()
    assert ran == [1]


def test_spawn_passes_positional_and_keyword_arguments():
    g = spawn(lambda a, b, *, c: (a, b, c), 1, 2, c=3)
    assert g.get() == (1, 2, 3)


def test_spawned_greenlets_start_in_spawn_order():
    order = []
    gs = [spawn(order.append, i) for i in range(5)]
    joinall(gs)
    assert order == [0, 1, 2, 3, 4]


def test_get_blocks_until_the_greenlet_returns_and_gives_its_value():
    def work():
        sleep(0.02)
        return 42

    g = spawn(work)
    assert g.get() == 42
    assert g.value == 42 and g.exception is None


def test_successful_value_and_dead_after_a_normal_return():
    g = spawn(lambda: "ok")
    g.join()
    assert g.ready() and g.dead and g.successful()
    assert g.value == "ok"


def test_exception_attribute_holds_the_error_and_get_reraises_it():
    err = ValueError("boom")

    def fail():
        raise err

    g = spawn(fail)
    g.join()
    assert g.dead and not g.successful()
    assert g.exception is err
    with pytest.raises(ValueError) as ei:
        g.get()
    assert ei.value is err


def test_get_without_blocking_on_an_unfinished_greenlet_raises_timeout():
    g = spawn(sleep, 1)
    try:
        with pytest.raises(Timeout):
            g.get(block=False)
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            g.get(timeout=0.05)
        assert 0.04 <= elapsed_since(t0) < 0.5
    finally:
        g.kill()


def test_join_returns_false_on_timeout_and_true_once_finished():
    g = spawn(sleep, 0.1)
    t0 = time.monotonic()
    assert g.join(0.02) is False
    assert elapsed_since(t0) < 0.09
    assert g.join(2) is True
    assert g.join(0) is True  # already finished: immediate


def test_a_greenlet_cannot_join_itself():
    def selfjoin():
        getcurrent().join()

    g = spawn(selfjoin)
    g.join()
    assert isinstance(g.exception, RuntimeError)


def test_link_calls_back_with_the_greenlet_once_it_finishes():
    seen = []
    g = spawn(sleep, 0.01)
    g.link(seen.append)
    assert seen == []
    g.join()
    sleep(0)  # link callbacks run in the hub
    assert seen == [g]


def test_link_on_a_finished_greenlet_still_calls_back():
    g = spawn(lambda: None)
    g.join()
    seen = []
    g.link(seen.append)
    sleep(0)
    assert seen == [g]


def test_unlink_removes_a_callback():
    seen = []
    g = spawn(sleep, 0.01)
    g.link(seen.append)
    g.unlink(seen.append)
    g.join()
    sleep(0)
    assert seen == []


# kill ----------------------------------------------------------------------------
def test_kill_raises_greenlet_exit_in_a_blocked_greenlet_and_waits_for_it():
    cleaned = []

    def victim():
        try:
            sleep(10)
        finally:
            cleaned.append(True)

    g = spawn(victim)
    sleep(0)
    t0 = time.monotonic()
    g.kill()
    assert elapsed_since(t0) < 0.5
    assert g.dead and cleaned == [True]
    assert g.successful() and isinstance(g.value, GreenletExit) and g.exception is None


def test_kill_with_an_exception_instance_raises_that_instance():
    err = KeyError("k")
    g = spawn(sleep, 10)
    sleep(0)
    g.kill(exception=err)
    assert g.exception is err and not g.successful()
    with pytest.raises(KeyError):
        g.get()


def test_kill_with_an_exception_class_raises_an_instance_of_it():
    g = spawn(sleep, 10)
    sleep(0)
    g.kill(ValueError)
    assert isinstance(g.exception, ValueError)


def test_kill_without_block_returns_before_the_greenlet_dies():
    g = spawn(sleep, 10)
    sleep(0)
    g.kill(block=False)
    assert not g.ready()
    g.join(1)
    assert g.ready()


def test_kill_with_timeout_gives_up_waiting_on_a_greenlet_that_refuses_to_die():
    def stubborn():
        try:
            sleep(10)
        except GreenletExit:
            sleep(10)  # ignores the first kill

    g = spawn(stubborn)
    sleep(0)
    t0 = time.monotonic()
    g.kill(block=True, timeout=0.05)
    assert 0.04 <= elapsed_since(t0) < 0.5
    assert not g.ready()
    g.kill()  # the second one lands in the inner sleep
    assert g.ready()


def test_kill_before_start_means_the_function_never_runs():
    ran = []
    g = spawn(ran.append, 1)
    g.kill()
    assert g.ready() and g.dead
    assert ran == []
    assert isinstance(g.value, GreenletExit)


def test_kill_before_start_of_a_spawn_later_greenlet_returns_at_once():
    ran = []
    g = spawn_later(5, ran.append, 1)
    t0 = time.monotonic()
    g.kill()
    assert elapsed_since(t0) < 0.5
    assert g.ready() and ran == []


def test_kill_of_a_finished_greenlet_is_a_no_op():
    g = spawn(lambda: 7)
    g.join()
    g.kill(ValueError)
    assert g.successful() and g.value == 7


def test_killall_kills_every_greenlet():
    gs = [spawn(sleep, 10) for _ in range(5)]
    sleep(0)
    killall(gs)
    assert all(g.ready() for g in gs)


# spawn_later and sleep --------------------------------------------------------------
def test_spawn_later_runs_the_function_after_the_delay():
    t0 = time.monotonic()
    g = spawn_later(0.1, time.monotonic)
    sleep(0.05)
    assert not g.ready()
    assert g.get() - t0 >= 0.09


def test_sleep_blocks_the_caller_for_the_given_time():
    t0 = time.monotonic()
    sleep(0.1)
    assert 0.09 <= elapsed_since(t0) < 0.5


def test_sleeping_greenlets_sleep_concurrently():
    t0 = time.monotonic()
    joinall([spawn(sleep, 0.1) for _ in range(20)])
    assert elapsed_since(t0) < 0.3


def test_sleep_zero_lets_every_other_ready_greenlet_run_first():
    order = []

    def first():
        order.append("first:before")
        sleep(0)
        order.append("first:after")

    gs = [spawn(first), spawn(order.append, "second"), spawn(order.append, "third")]
    joinall(gs)
    assert order == ["first:before", "second", "third", "first:after"]


def test_sleep_zero_in_the_main_greenlet_runs_all_spawned_greenlets():
    ran = []
    gs = [spawn(ran.append, i) for i in range(3)]
    sleep(0)
    assert ran == [0, 1, 2]
    joinall(gs)


def test_a_greenlet_spinning_on_sleep_zero_does_not_starve_io_waiters():
    a, b = socket.socketpair()
    try:
        got = []

        def reader():
            wait_read(a.fileno())
            got.append(a.recv(10))

        r = spawn(reader)
        sleep(0)
        b.send(b"x")
        spins = 0
        while not got and spins < 1000:
            sleep(0)
            spins += 1
        assert got == [b"x"]
        r.join()
    finally:
        a.close()
        b.close()


def test_negative_sleep_acts_like_sleep_zero():
    ran = []
    g = spawn(ran.append, 1)
    t0 = time.monotonic()
    sleep(-1)
    assert ran == [1] and elapsed_since(t0) < 0.1
    g.join()


# Timeout ---------------------------------------------------------------------------
def test_timeout_as_context_manager_raises_itself_when_the_block_runs_long():
    t0 = time.monotonic()
    with pytest.raises(Timeout) as ei:
        with Timeout(0.05) as t:
            sleep(1)
    assert ei.value is t
    assert 0.04 <= elapsed_since(t0) < 0.5
    assert not t.pending


def test_timeout_does_not_fire_when_the_block_finishes_in_time():
    with Timeout(0.2) as t:
        sleep(0.01)
    assert not t.pending
    sleep(0.25)  # nothing is raised later either


def test_timeout_raises_in_the_waiting_greenlet_that_started_it():
    def waiter():
        try:
            with Timeout(0.05):
                sleep(1)
        except Timeout:
            return "timed out"
        return "not timed out"

    g = spawn(waiter)
    sleep(0.15)  # the main greenlet is not the one interrupted
    assert g.get() == "timed out"


def test_timeout_started_and_cancelled_explicitly_never_fires():
    t = Timeout(0.05)
    assert t.start() is t
    assert t.pending
    t.cancel()
    assert not t.pending
    sleep(0.1)


def test_timeout_started_explicitly_fires_during_a_later_wait():
    t = Timeout.start_new(0.05)
    try:
        with pytest.raises(Timeout) as ei:
            sleep(1)
        assert ei.value is t
    finally:
        t.cancel()


def test_a_started_timeout_cannot_be_started_again():
    t = Timeout(1).start()
    try:
        with pytest.raises(RuntimeError):
            t.start()
    finally:
        t.cancel()


def test_timeout_with_false_silently_leaves_the_block():
    reached = []
    t0 = time.monotonic()
    with Timeout(0.05, False):
        sleep(1)
        reached.append(True)
    assert reached == []
    assert elapsed_since(t0) < 0.5


def test_timeout_with_an_exception_class_raises_that_instead():
    with pytest.raises(ValueError):
        with Timeout(0.02, ValueError):
            sleep(1)


def test_timeout_with_an_exception_instance_raises_that_instance():
    err = OSError("custom")
    with pytest.raises(OSError) as ei:
        with Timeout(0.02, err):
            sleep(1)
    assert ei.value is err


def test_timeout_of_none_never_fires():
    with Timeout(None) as t:
        sleep(0.02)
    assert not t.pending


def test_timeout_is_not_caught_by_except_exception():
    caught = []
    with pytest.raises(Timeout):
        with Timeout(0.02):
            try:
                sleep(1)
            except Exception:  # noqa: BLE001 - the point of the test
                caught.append(True)
    assert caught == []


def test_only_the_timeout_that_fired_is_silenced():
    with pytest.raises(Timeout) as ei:
        with Timeout(0.03) as outer:
            with Timeout(1, False):
                sleep(1)
    assert ei.value is outer


def test_with_timeout_returns_the_value_when_in_time():
    assert with_timeout(0.5, lambda x: x * 2, 21) == 42


def test_with_timeout_raises_timeout_when_too_slow():
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        with_timeout(0.05, sleep, 1)
    assert elapsed_since(t0) < 0.5


def test_with_timeout_returns_timeout_value_instead_of_raising():
    assert with_timeout(0.05, sleep, 1, timeout_value="late") == "late"


def test_with_timeout_reraises_a_different_timeout_from_inside():
    def inner():
        with Timeout(0.02) as t:
            sleep(1)
        return t

    with pytest.raises(Timeout) as ei:
        with_timeout(1, inner, timeout_value="late")
    assert ei.value.seconds == 0.02


# wait_read / wait_write ------------------------------------------------------------
@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_wait_read_returns_once_the_fd_is_readable(pair):
    a, b = pair
    spawn_later(0.02, b.send, b"x")
    t0 = time.monotonic()
    wait_read(a.fileno(), timeout=1)
    assert 0.01 <= elapsed_since(t0) < 0.5
    assert a.recv(1) == b"x"


def test_wait_read_with_timeout_raises_timeout_error(pair):
    a, _ = pair
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_read(a.fileno(), timeout=0.05)
    assert 0.04 <= elapsed_since(t0) < 0.5


def test_wait_write_returns_at_once_on_a_writable_fd(pair):
    a, _ = pair
    t0 = time.monotonic()
    wait_write(a.fileno(), timeout=1)
    assert elapsed_since(t0) < 0.1


def test_wait_write_with_timeout_raises_timeout_error_on_a_full_socket(pair):
    a, _ = pair
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_write(a.fileno(), timeout=0.05)
    assert 0.04 <= elapsed_since(t0) < 0.5



# Hub.block: the one arm/switch/clean-up ------------------------------------------------
def test_block_returns_the_io_flags_or_timeout(pair):
    a, b = pair
    hub = get_hub()
    io = hub.loop.io(a.fileno(), READ)
    try:
        b.send(b"x")
        assert hub.block(io, READ, 1.0) == READ
        a.recv(1)
        assert hub.block(io, READ, 0.01) == TIMEOUT == 0
    finally:
        io.close()


def test_a_throw_into_a_blocked_greenlet_disarms_its_io_and_its_timer(pair):
    a, _ = pair
    hub = get_hub()
    io = hub.loop.io(a.fileno(), READ)
    timer = hub.loop.timer()

    def waiter():
        hub.block(io, READ, 10, timer)

    g = spawn(waiter)
    sleep(0)
    assert io.active and timer.active and io.waiter is g
    g.kill()
    assert g.dead and not io.active and not timer.active and io.waiter is None
    assert not io.libev_active and not timer.libev_active
    io.close()
    timer.close()


def test_a_waiter_switched_with_zero_before_its_timeout_did_not_time_out():
    # 0 is also what a timer resumes a greenlet with: the Waiter must tell
    # its waker's 0 from its own timeout.
    waiter = Waiter()
    get_hub().run_callback(waiter.switch, 0)
    assert waiter.get(timeout=5) == 0 and not waiter.timed_out
    assert Waiter().get(timeout=0.01) is None


def test_wait_read_gives_its_watcher_back_to_the_pool_holding_no_greenlet(pair):
    a, b = pair
    hub = get_hub()
    b.send(b"x")
    g = spawn(wait_read, a.fileno(), 1)
    g.join()
    io = hub.io_pool[-1]
    assert not io.active and io.callback is None and io.waiter is None
    assert io.token not in hub.loop.watchers


# Stale events of a batch --------------------------------------------------------
# libev runs the pending watchers of one iteration last-in first-out, so when an
# fd turns readable and a timer expires in the same iteration, the timer's item
# precedes the io's in the batch the hub drains. Whoever the first item wakes
# may re-arm the other watcher before the hub reaches its (now stale) item.
def test_a_stale_io_event_cannot_wake_the_watcher_re_armed_in_the_same_batch(pair):
    a, b = pair
    hub = get_hub()
    io = hub.loop.io(a.fileno(), READ)
    timer = hub.loop.timer()
    seen: dict = {}

    def waiter():
        b.send(b"x")  # readable before the hub polls
        # A 0 s timeout: the timer is due in the very iteration that reports the fd.
        seen["first"] = hub.wait_io(io, READ, 0, timer)
        a.recv(1)  # nothing left to read: only a stale event could report READ now
        # Re-armed (same watcher, same token) while the hub is still in that batch.
        seen["second"] = hub.wait_io(io, READ, 0.05, timer)

    try:
        spawn(waiter).get(timeout=2)
        assert seen["first"] == 0, "precondition: the timer's item came first"
        assert seen["second"] == 0, "a stale READ woke the re-armed watcher"
        assert (io.active, io.libev_active) == (False, False)
        io.start(READ)  # armed again, then closed while libev holds it
        assert io.active and io.libev_active
    finally:
        io.close()
        timer.close()
    assert not io.libev_active and not timer.libev_active


def test_a_stale_timer_event_cannot_wake_the_timer_restarted_in_the_same_batch():
    hub = get_hub()
    t1, t2 = hub.loop.timer(), hub.loop.timer()
    fired = []

    def callback_of(me, other):
        def callback(_flags):
            fired.append(me)
            if other not in fired:
                other.start(10.0)  # its own item, queued in this batch, is now stale
        return callback

    t1.callback = callback_of(t1, t2)
    t2.callback = callback_of(t2, t1)
    t1.start(0.0)
    t2.start(0.0)  # both due in the next iteration
    try:
        sleep(0.02)
        assert len(fired) == 1
        other = t2 if fired == [t1] else t1
        assert other.active and other.libev_active
    finally:
        t1.close()
        t2.close()
    assert not t1.libev_active and not t2.libev_active


# Cross-thread callbacks -----------------------------------------------------------
def test_call_soon_threadsafe_from_another_thread_runs_the_callback_in_the_hub_thread():
    hub = get_hub()
    waiter = Waiter()
    ran_in = []

    def callback(tag):
        ran_in.append(threading.get_ident())
        waiter.switch(tag)

    other = threading.Timer(0.05, call_soon_threadsafe, args=(callback, "hello"), kwargs={"hub": hub})
    other.start()
    t0 = time.monotonic()
    try:
        assert waiter.get(timeout=2) == "hello"
    finally:
        other.join()
    assert ran_in == [threading.get_ident()]
    assert elapsed_since(t0) < 1


def test_call_soon_threadsafe_wakes_a_hub_blocked_in_the_loop():
    hub = get_hub()
    waiter = Waiter()
    hub.ref()  # outstanding work elsewhere: the loop blocks instead of exiting
    try:
        other = threading.Timer(0.05, hub.call_soon_threadsafe, args=(waiter.switch, "woken"))
        other.start()
        t0 = time.monotonic()
        assert waiter.get() == "woken"
        assert elapsed_since(t0) < 1
        other.join()
    finally:
        hub.unref()


# Errors ---------------------------------------------------------------------------
def test_an_exception_escaping_a_spawned_greenlet_is_logged_with_traceback(caplog):
    def exploding_function():
        raise ValueError("kaboom")

    with caplog.at_level(logging.ERROR, logger="lichen.hub"):
        g = spawn(exploding_function)
        g.join()
    records = [r for r in caplog.records if r.name == "lichen.hub"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.exc_info and rec.exc_info[0] is ValueError
    assert "exploding_function" in rec.getMessage()
    assert "Traceback" in caplog.text and "kaboom" in caplog.text


def test_the_hub_keeps_running_after_a_greenlet_fails(caplog):
    with caplog.at_level(logging.CRITICAL, logger="lichen.hub"):
        bad = spawn(lambda: 1 / 0)
        good = spawn(lambda: (sleep(0.02), "still running")[1])
        assert good.get() == "still running"
    assert isinstance(bad.exception, ZeroDivisionError)
    sleep(0.01)


def test_an_exception_in_a_hub_callback_is_logged_and_the_hub_continues(caplog):
    hub = get_hub()

    def bad_callback():
        raise RuntimeError("callback failure")

    with caplog.at_level(logging.ERROR, logger="lichen.hub"):
        hub.run_callback(bad_callback)
        sleep(0.01)
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_a_blocking_call_inside_a_hub_callback_is_refused_not_deadlocked(caplog):
    hub = get_hub()
    with caplog.at_level(logging.ERROR, logger="lichen.hub"):
        hub.run_callback(sleep, 1)
        t0 = time.monotonic()
        sleep(0.01)
    assert elapsed_since(t0) < 0.5
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# LoopExit and wait() ------------------------------------------------------------------
def test_loop_exit_is_raised_when_the_main_greenlet_waits_for_something_that_cannot_happen(idle_hub):
    t0 = time.monotonic()
    with pytest.raises(LoopExit):
        Waiter().get()
    assert elapsed_since(t0) < 0.5


def test_loop_exit_when_joining_a_greenlet_that_is_blocked_forever(idle_hub):
    stuck = spawn(lambda: Waiter().get())
    try:
        with pytest.raises(LoopExit):
            stuck.join()
    finally:
        stuck.kill()


def test_the_hub_works_normally_after_a_loop_exit(idle_hub):
    with pytest.raises(LoopExit):
        Waiter().get()
    assert spawn(lambda: (sleep(0.01), 5)[1]).get() == 5


def test_wait_runs_everything_and_returns_when_idle(idle_hub):
    done = []
    for i in range(5):
        spawn(lambda i=i: (sleep(0.01 * i), done.append(i)))
    t0 = time.monotonic()
    wait()
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert elapsed_since(t0) < 0.5


def test_wait_with_timeout_returns_as_soon_as_the_hub_is_idle(idle_hub):
    spawn(sleep, 0.02)
    t0 = time.monotonic()
    wait(timeout=2)
    assert elapsed_since(t0) < 0.5


def test_wait_with_timeout_returns_after_the_timeout_while_work_remains():
    g = spawn(sleep, 5)
    try:
        t0 = time.monotonic()
        wait(timeout=0.05)
        assert 0.04 <= elapsed_since(t0) < 0.5
        assert not g.ready()
    finally:
        g.kill()


def test_wait_that_ends_idle_keeps_nothing_of_its_caller_alive(idle_hub):
    # The hub stays suspended in the throw of its LoopExit; the exception's
    # traceback once kept the caller's frames, and all their locals, alive.
    import weakref

    class Marker:
        pass

    def caller() -> weakref.ref:
        marker = Marker()
        spawn(sleep, 0.01)
        wait()
        return weakref.ref(marker)

    ref = caller()
    gc.collect()
    assert ref() is None


def test_wait_from_a_spawned_greenlet_is_refused():
    g = spawn(wait)
    g.join()
    assert isinstance(g.exception, RuntimeError)


# Hubs per thread -------------------------------------------------------------------------
def _thread_body(results: dict, key: str, start: threading.Barrier) -> None:
    from lichen.hub import get_hub as this_threads_hub

    hub = this_threads_hub()
    start.wait(timeout=5)
    t0 = time.monotonic()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    def pinger():
        for i in range(20):
            b.send(b"%d;" % i)
            sleep(0.005)
        b.close()

    def ponger():
        data = b""
        while True:
            wait_read(a.fileno(), timeout=2)
            chunk = a.recv(1024)
            if not chunk:
                return data
            data += chunk

    sleeper = spawn(sleep, 0.2)
    p = spawn(pinger)
    q = spawn(ponger)
    wait()
    a.close()
    results[key] = {
        "hub": hub,
        "thread": threading.get_ident(),
        "data": q.get(),
        "ok": sleeper.successful() and p.successful(),
        "elapsed": time.monotonic() - t0,
    }


def test_two_threads_each_run_their_own_hub_at_the_same_time():
    main_hub = get_hub()
    results: dict = {}
    start = threading.Barrier(2)
    threads = [threading.Thread(target=_thread_body, args=(results, k, start)) for k in ("t1", "t2")]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["t1", "t2"]
    r1, r2 = results["t1"], results["t2"]
    assert r1["hub"] is not r2["hub"] and main_hub not in (r1["hub"], r2["hub"])
    assert r1["hub"].thread_ident == r1["thread"] and r2["hub"].thread_ident == r2["thread"]
    expected = b"".join(b"%d;" % i for i in range(20))
    assert r1["data"] == expected and r2["data"] == expected
    assert r1["ok"] and r2["ok"]
    # Both ran at once: two 0.2 s hubs finishing in well under 0.4 s.
    assert elapsed_since(t0) < 0.38


def test_a_threads_hub_is_destroyed_with_its_thread():
    get_hub()
    gc.collect()
    before = fd_count()
    hubs = []

    def body():
        hubs.append(get_hub())
        sleep(0.01)

    t = threading.Thread(target=body)
    t.start()
    t.join(5)
    gc.collect()
    assert hubs and hubs[0].loop.destroyed
    assert fd_count() == before
