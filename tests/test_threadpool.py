# Spec tests for lichen.threadpool: calls that would block the hub run in
# worker threads; the calling greenlet (only) waits for the outcome.
from __future__ import annotations

import threading
import time

import pytest

from helpers import Ticker, hub_hygiene, idle_hub  # noqa: F401  (fixtures)
from lichen.hub import LoopExit, Timeout, get_hub, joinall, sleep, spawn, wait
from lichen.threadpool import ThreadPool, get_threadpool


@pytest.fixture
def pool():
    p = ThreadPool(maxthreads=4, name="test-pool")
    yield p
    p.close()


def test_apply_returns_the_functions_value(pool):
    assert pool.apply(lambda a, b=0: a + b, 40, b=2) == 42


def test_apply_reraises_the_functions_exception(pool):
    err = LookupError("from the worker")

    def fail():
        raise err

    with pytest.raises(LookupError) as ei:
        pool.apply(fail)
    assert ei.value is err


def test_apply_runs_the_function_in_a_worker_thread(pool):
    ident = pool.apply(threading.get_ident)
    assert ident != threading.get_ident()
    assert pool.apply(lambda: threading.current_thread().name).startswith("test-pool-")


def test_the_hub_stays_responsive_while_a_job_sleeps_in_a_thread(pool):
    with Ticker(0.01) as ticker:
        before = ticker.count
        t0 = time.monotonic()
        pool.apply(time.sleep, 0.3)
        took = time.monotonic() - t0
        ticks = ticker.count - before
    assert 0.28 <= took < 1
    assert ticks >= 10  # ~30 expected: the ticker ran all along


def test_the_loop_is_kept_alive_while_a_job_is_outstanding(pool, idle_hub):
    # Nothing but the job is pending: without the hub's reference the loop
    # would run dry and raise LoopExit before the result came back.
    t0 = time.monotonic()
    assert pool.apply(lambda: (time.sleep(0.2), "late result")[1]) == "late result"
    assert time.monotonic() - t0 >= 0.18


def test_wait_returns_only_after_an_outstanding_job_is_delivered(pool, idle_hub):
    g = spawn(pool.apply, lambda: (time.sleep(0.2), "done")[1])
    t0 = time.monotonic()
    wait()
    assert g.ready() and g.value == "done"
    assert time.monotonic() - t0 >= 0.18


def test_the_hub_reference_is_released_after_each_job(pool, idle_hub):
    hub = idle_hub
    refs = hub._refs
    pool.apply(lambda: None)
    with pytest.raises(ValueError):
        pool.apply(int, "not a number")
    assert hub._refs == refs
    with pytest.raises(LoopExit):  # nothing keeps the loop alive any more
        hub.switch()


def test_a_caller_interrupted_by_timeout_leaves_no_reference_behind(pool):
    hub = get_hub()
    refs = hub._refs
    with pytest.raises(Timeout):
        with Timeout(0.05):
            pool.apply(time.sleep, 0.2)
    assert hub._refs == refs + 1  # the job is still out...
    sleep(0.3)
    assert hub._refs == refs  # ...and its late result released the reference


def test_jobs_run_in_parallel_up_to_maxthreads(pool):
    t0 = time.monotonic()
    gs = [spawn(pool.apply, time.sleep, 0.2) for _ in range(4)]
    assert len(joinall(gs, timeout=3)) == 4
    assert time.monotonic() - t0 < 0.38


def test_jobs_beyond_maxthreads_queue_and_still_all_complete():
    pool = ThreadPool(maxthreads=2)
    try:
        t0 = time.monotonic()
        gs = [spawn(pool.apply, lambda i=i: (time.sleep(0.05), i)[1]) for i in range(6)]
        joinall(gs, timeout=3)
        assert [g.value for g in gs] == list(range(6))
        assert len(pool._threads) <= 2
        assert time.monotonic() - t0 >= 0.14  # 3 rounds of 2
    finally:
        pool.close()


def test_maxthreads_must_be_at_least_one():
    with pytest.raises(ValueError):
        ThreadPool(maxthreads=0)


def test_close_stops_the_worker_threads():
    pool = ThreadPool(maxthreads=2)
    joinall([spawn(pool.apply, time.sleep, 0.02) for _ in range(2)])
    threads = list(pool._threads)
    assert threads
    pool.close()
    for t in threads:
        t.join(2)
    assert not any(t.is_alive() for t in threads)


def test_results_go_back_to_the_hub_of_the_thread_that_asked(pool):
    out = {}

    def other_thread():
        from lichen.hub import get_hub as hub_here

        out["value"] = pool.apply(lambda: "for the other hub")
        out["hub"] = hub_here()
        out["thread"] = threading.get_ident()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(5)
    assert out["value"] == "for the other hub"
    assert out["hub"] is not get_hub() and out["hub"].thread_ident == out["thread"]


def test_get_threadpool_returns_one_shared_pool():
    assert get_threadpool() is get_threadpool()
