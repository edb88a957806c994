"""WorkQueue and rate limiters with client-go's semantics."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap.api.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)

pytestmark = pytest.mark.timeout(20)


async def test_dedup_while_queued_and_requeue_after_processing():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    key = await q.get()
    assert key == "a"
    q.add("a")          # while processing: not handed out again until done()
    assert len(q) == 1
    assert await q.get() == "b"
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    q.done("b")
    assert len(q) == 0


async def test_exponential_backoff_per_item():
    rl = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [rl.when("x") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert rl.when("y") == 0.005
    assert rl.num_requeues("x") == 4
    for _ in range(40):
        rl.when("x")
    assert rl.when("x") == 1000.0
    rl.forget("x")
    assert rl.num_requeues("x") == 0 and rl.when("x") == 0.005


async def test_bucket_and_max_of():
    now = [0.0]
    bucket = BucketRateLimiter(10.0, 100, clock=lambda: now[0])
    assert all(bucket.when(i) == 0.0 for i in range(100))
    assert bucket.when("over") == pytest.approx(0.1)
    assert bucket.when("over2") == pytest.approx(0.2)
    now[0] = 10.0  # refilled
    assert bucket.when("z") == 0.0
    rl = MaxOfRateLimiter(ItemExponentialFailureRateLimiter(1.0, 8.0),
                          BucketRateLimiter(10.0, 100, clock=lambda: 0.0))
    assert rl.when("k") == 1.0 and rl.when("k") == 2.0 and rl.num_requeues("k") == 2
    rl.forget("k")
    assert rl.num_requeues("k") == 0
    assert default_controller_rate_limiter().when("first") == 0.005


async def test_add_after_orders_by_ready_time_and_keeps_the_earlier():
    q = WorkQueue()
    q.add_after("late", 0.2)
    q.add_after("soon", 0.02)
    q.add_after("late", 0.01)   # earlier ready time wins
    q.add_after("soon", 5)      # later: ignored
    first = await asyncio.wait_for(q.get(), 5)
    second = await asyncio.wait_for(q.get(), 5)
    assert (first, second) == ("late", "soon")


async def test_shutdown_hands_out_queued_then_raises():
    q = WorkQueue()
    q.add("a")
    q.add_after("never", 60)
    waiter = asyncio.create_task(WorkQueue().get())
    q.shutdown()
    q.add("ignored")
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()
    waiter.cancel()


def sample(name, queue, suffix=""):
    from bootstrap.api.metrics import REGISTRY
    return REGISTRY.get_sample_value(name + suffix, {"name": queue}) or 0


async def test_metrics_for_named_queues_only():
    q = WorkQueue("metrics-test")
    adds = sample("workqueue_adds_total", "metrics-test")
    q.add("a")
    q.add("a")  # deduplicated: not an add
    q.add("b")
    assert sample("workqueue_adds_total", "metrics-test") - adds == 2
    assert sample("workqueue_depth", "metrics-test") == 2
    key = await q.get()
    assert sample("workqueue_depth", "metrics-test") == 1
    assert sample("workqueue_longest_running_processor_seconds", "metrics-test") > 0
    q.done(key)
    assert sample("workqueue_unfinished_work_seconds", "metrics-test") == 0
    assert sample("workqueue_work_duration_seconds", "metrics-test", "_count") >= 1
    assert sample("workqueue_queue_duration_seconds", "metrics-test", "_count") >= 1
    retries = sample("workqueue_retries_total", "metrics-test")
    q.add_rate_limited("c")
    assert sample("workqueue_retries_total", "metrics-test") - retries == 1
    unnamed = WorkQueue()
    unnamed.add("x")
    assert sample("workqueue_adds_total", "") == 0


async def test_rate_limited_requeue_counts_and_forget():
    q = WorkQueue(rate_limiter=ItemExponentialFailureRateLimiter(0.001, 0.004))
    for _ in range(3):
        q.add_rate_limited("k")
        assert await asyncio.wait_for(q.get(), 5) == "k"
        q.done("k")
    assert q.num_requeues("k") == 3
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_concurrent_getters_get_distinct_keys():
    q = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for key in ("a", "b", "c"):
        q.add(key)
    got = await asyncio.wait_for(asyncio.gather(*getters), 5)
    assert sorted(got) == ["a", "b", "c"]


async def test_shutdown_with_drain_waits_for_in_flight():
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("b")
    drained = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    q.done(key)
    assert await q.get() == "b"
    assert not drained.done()
    q.done("b")
    await asyncio.wait_for(drained, 5)
    with pytest.raises(ShutDown):
        await q.get()


@given(st.lists(st.tuples(st.sampled_from(["add", "get", "done"]),
                          st.sampled_from("abc")), max_size=60))
@settings(max_examples=200, deadline=None)
def test_queue_matches_client_go_model(ops):
    """Random add/get/done sequences against a model of client-go's queue: FIFO of
    distinct keys, a key in processing is not handed out again until done()."""
    async def play():
        q = WorkQueue()
        queue, dirty, processing = [], set(), set()
        for op, key in ops:
            if op == "add":
                q.add(key)
                if key not in dirty:
                    dirty.add(key)
                    if key not in processing:
                        queue.append(key)
            elif op == "get" and queue:
                got = await q.get()
                want = queue.pop(0)
                assert got == want
                dirty.discard(want)
                processing.add(want)
            elif op == "done" and key in processing:
                q.done(key)
                processing.discard(key)
                if key in dirty:
                    queue.append(key)
            assert len(q) == len(queue)
    asyncio.run(play())
