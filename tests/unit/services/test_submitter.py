"""The submitter's group commit and idempotency resolution, on the in-memory stores."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

import pytest

from smsgw.adapters.memory import MemoryIdempotencyCache, MemoryMessageStore, MemoryStores
from smsgw.domain.errors import IdempotencyKeyReused
from smsgw.services.submitter import Submitter
from tests.unit.services.conftest import submission


class CountingStore(MemoryMessageStore):
    """The in-memory store, counting round trips: what group commit saves."""

    def __init__(self, memory: MemoryStores) -> None:
        super().__init__(memory.state)
        self.batches: list[int] = []

    async def insert(self, tenant_id, ids, items):  # type: ignore[no-untyped-def]
        self.batches.append(len(items))
        await asyncio.sleep(0.001)  # a round trip, during which more calls gather
        return await super().insert(tenant_id, ids, items)


async def test_concurrent_calls_are_committed_together(memory, tenant) -> None:
    store = CountingStore(memory)
    submitter = Submitter(store, None, flushers=1)
    outcomes = await asyncio.gather(*(submitter.submit(tenant, submission(f"k{i}"))
                                      for i in range(200)))
    assert all(o.message is not None for o in outcomes)
    assert sum(store.batches) == 200 and len(store.batches) < 20  # batches grew by themselves
    assert store.batches[0] == 1  # a quiet server writes at once, without waiting


async def test_a_replay_returns_the_original_and_a_reused_key_is_refused(
        memory, tenant) -> None:
    for cache in (None, MemoryIdempotencyCache()):
        submitter = Submitter(memory.messages, cache)
        key = uuid.uuid4().hex
        [first] = await submitter.submit_many(tenant, [submission(key)])
        [again] = await submitter.submit_many(tenant, [submission(key)])
        [other] = await submitter.submit_many(tenant, [submission(key, body="different")])
        assert again.replayed and again.message.id == first.message.id
        assert isinstance(other.error, IdempotencyKeyReused)


async def test_repeats_within_one_batch_are_one_message(memory, tenant) -> None:
    submitter = Submitter(memory.messages, MemoryIdempotencyCache())
    outcomes = await submitter.submit_many(tenant, [
        submission("a"), submission("a"), submission("a", body="other"), submission("b")])
    first, repeat, reused, b = outcomes
    assert repeat.replayed and repeat.message.id == first.message.id
    assert isinstance(reused.error, IdempotencyKeyReused)
    assert b.message is not None and not b.replayed
    assert await memory.outbox.depth() == 2


async def test_a_cache_that_forgot_or_lies_never_causes_a_second_message(
        memory, tenant) -> None:
    cache = MemoryIdempotencyCache()
    submitter = Submitter(memory.messages, cache)
    [first] = await submitter.submit_many(tenant, [submission("k")])
    await cache.release(tenant, ["k"])  # Redis lost the key (restart without persistence)
    [again] = await submitter.submit_many(tenant, [submission("k")])
    assert again.replayed and again.message.id == first.message.id
    # A stale claim naming a message that never landed: the store decides.
    await cache.claim(tenant, [("fresh", f"{submission('fresh').fingerprint}:{uuid.uuid4()}")])
    [fresh] = await submitter.submit_many(tenant, [submission("fresh")])
    assert fresh.message is not None and not fresh.replayed
    assert await memory.outbox.depth() == 2


async def test_claims_are_released_when_the_write_fails(memory, tenant) -> None:
    class Broken(MemoryMessageStore):
        async def insert(self, tenant_id, ids, items):  # type: ignore[no-untyped-def]
            raise RuntimeError("the store went away")

    cache = MemoryIdempotencyCache()
    submitter = Submitter(Broken(memory.state), cache)
    with pytest.raises(RuntimeError):
        await submitter.submit_many(tenant, [submission("k")])
    assert await cache.claim(tenant, [("k", "x")]) == [None]  # free again


async def test_the_accepted_message_is_the_one_stored(memory, tenant) -> None:
    """What a send answers equals what a later get returns: class, schedule, validity."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    item = dataclasses.replace(submission("k-otp"), traffic_class="otp", send_at=later,
                               expire_at=later + dt.timedelta(minutes=10))
    accepted = (await Submitter(memory.messages, None).submit_many(tenant, [item]))[0].message
    assert accepted is not None
    assert [accepted] == await memory.messages.get_many(tenant, [accepted.id])
