"""The submit path against real Postgres and Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from smsgw.adapters.postgres.messages import MessageRepository
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.adapters.redis_idempotency import RedisIdempotencyCache
from smsgw.domain.errors import IdempotencyKeyReused
from smsgw.domain.validation import Limits, SendRequest, validate
from smsgw.services.submitter import Submitter

pytestmark = pytest.mark.integration


def submission(key: str, body: str = "hello", to: str = "+16502530000"):
    return validate(SendRequest(to=to, body=body, idempotency_key=key), Limits())


@pytest.fixture
async def tenant(db):
    created, _key = await TenantDirectory(db).create(f"t-{uuid.uuid4().hex[:6]}")
    return created.id


@pytest.fixture
async def cache(redis_url):
    client = aioredis.from_url(redis_url)
    yield RedisIdempotencyCache(client, 3600)
    await client.aclose()


async def counts(db) -> tuple[int, int, int]:
    async with db.connection() as conn:
        return tuple(await conn.fetchrow(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM outbox), "
            "(SELECT count(*) FROM message_events)"))


async def test_a_batch_writes_message_outbox_row_and_event_together(db, cache, tenant):
    submitter = Submitter(MessageRepository(db), cache)
    outcomes = await submitter.submit_many(tenant, [submission(f"k{i}") for i in range(50)])
    assert all(o.message is not None and not o.replayed for o in outcomes)
    assert len({o.message.id for o in outcomes}) == 50
    assert await counts(db) == (50, 50, 50)


async def test_replay_returns_the_original_and_writes_nothing(db, cache, tenant):
    submitter = Submitter(MessageRepository(db), cache)
    [first] = await submitter.submit_many(tenant, [submission("same")])
    [again] = await submitter.submit_many(tenant, [submission("same")])
    [other] = await submitter.submit_many(tenant, [submission("same", body="different")])
    assert again.replayed and again.message.id == first.message.id
    assert isinstance(other.error, IdempotencyKeyReused)
    assert await counts(db) == (1, 1, 1)


async def test_repeats_inside_one_batch(db, cache, tenant):
    submitter = Submitter(MessageRepository(db), cache)
    outcomes = await submitter.submit_many(
        tenant, [submission("dup"), submission("dup"), submission("dup", body="changed")])
    assert outcomes[1].message.id == outcomes[0].message.id and outcomes[1].replayed
    assert isinstance(outcomes[2].error, IdempotencyKeyReused)
    assert await counts(db) == (1, 1, 1)


async def test_without_redis_the_database_still_prevents_double_sends(db, tenant):
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    submitter = Submitter(MessageRepository(db), RedisIdempotencyCache(dead, 3600))
    [first] = await submitter.submit_many(tenant, [submission("k")])
    [again] = await submitter.submit_many(tenant, [submission("k")])
    [other] = await submitter.submit_many(tenant, [submission("k", body="x")])
    await dead.aclose()
    assert again.replayed and again.message.id == first.message.id
    assert isinstance(other.error, IdempotencyKeyReused)
    assert await counts(db) == (1, 1, 1)


async def test_redis_answers_a_replay_the_database_never_committed(db, cache, tenant):
    """A claim left behind by a failed insert must not block or fake the real one."""
    submitter = Submitter(MessageRepository(db), cache)
    item = submission("orphan")
    await cache.claim(tenant, [("orphan", f"{item.fingerprint}:{uuid.uuid4()}")])
    [outcome] = await submitter.submit_many(tenant, [item])
    assert outcome.message is not None and not outcome.replayed
    assert await counts(db) == (1, 1, 1)


async def test_concurrent_submits_of_one_key_store_one_message(db, cache, tenant):
    submitter = Submitter(MessageRepository(db), cache, flushers=3)
    await submitter.start()
    outcomes = await asyncio.gather(*(submitter.submit(tenant, submission("race"))
                                      for _ in range(40)))
    await submitter.stop()
    assert len({o.message.id for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    assert await counts(db) == (1, 1, 1)


async def test_group_commit_answers_every_caller(db, cache, tenant):
    submitter = Submitter(MessageRepository(db), cache)
    await submitter.start()
    outcomes = await asyncio.gather(*(submitter.submit(tenant, submission(f"g{i}"))
                                      for i in range(300)))
    await submitter.stop()
    assert len({o.message.id for o in outcomes}) == 300
    assert await counts(db) == (300, 300, 300)
