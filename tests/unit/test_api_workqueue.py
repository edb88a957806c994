"""WorkQueue and rate limiters with client-go's semantics."""

import asyncio

import pytest

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
