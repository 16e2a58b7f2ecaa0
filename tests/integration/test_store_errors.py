"""Store errors are translated once, at the adapter: every broken connection is Unavailable.

Against real servers: a pooled Postgres session killed by the server (what a
restart does to every pooled connection), a database that is not there, and
a Redis port nobody listens on.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from smsgw.adapters import redis_client
from smsgw.adapters.postgres.database import Database, translated_errors
from smsgw.adapters.redis_idempotency import RedisIdempotencyCache
from smsgw.adapters.redis_rate import SharedTokenBucket
from smsgw.domain.breaker import BreakerConfig, CircuitBreaker
from smsgw.domain.encoding import Encoding
from smsgw.domain.errors import Unavailable
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.ports import OutboundMessage
from smsgw.services.dispatch import Deferred, Dispatcher, ProviderSlot
from smsgw_bench.drills.stores import free_port
from smsgw_simulators.carrier import CarrierSimulator, SimulatorConfig


async def test_a_session_the_server_ended_is_unavailable_then_replaced(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    await db.open()
    try:
        async with db.connection() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        killer = await asyncpg.connect(database_url)
        await killer.execute("SELECT pg_terminate_backend($1)", pid)
        await killer.close()
        # Whether the pool noticed the close first (and reconnected) or the query found
        # it, the caller sees a new session or Unavailable: never a driver error.
        try:
            async with db.connection() as conn:
                assert await conn.fetchval("SELECT pg_backend_pid()") != pid
        except Unavailable:
            pass
        # The broken connection was discarded, not handed to the next caller.
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != pid
        assert await db.ping()
    finally:
        await db.close()


async def test_a_database_that_is_not_there_is_unavailable_and_not_ready() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1)
    with pytest.raises(Unavailable):
        await db.open()


async def test_a_transaction_broken_midway_is_unavailable(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    await db.open()
    try:
        with pytest.raises(Unavailable):
            async with db.transaction() as conn:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert await db.ping()
    finally:
        await db.close()


async def test_redis_away_costs_no_exception_to_idempotency_and_is_unavailable_to_buckets() -> None:
    client = redis_client.connect(f"redis://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    try:
        cache = RedisIdempotencyCache(client, 60)
        assert await cache.claim(uuid.uuid4(), [("k1", "v"), ("k2", "v")]) == [None, None]
        assert not await cache.ping()
        bucket = SharedTokenBucket(client, "p", rate=100, burst=100)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await bucket.acquire(0.25)
        assert time.monotonic() - started < 5  # fails fast, not after ten client retries
        assert bucket.room(time.monotonic()) == 0  # no probe for a moment
        assert bucket.room(time.monotonic() + 1.1) == 1  # then one probe
    finally:
        await client.aclose()


async def test_an_unreachable_bucket_defers_the_message_without_calling_the_carrier() -> None:
    client = redis_client.connect(f"redis://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    carrier = CarrierSimulator(SimulatorConfig(latency_ms=0), name="limited")
    slot = ProviderSlot(carrier, CircuitBreaker(BreakerConfig()), RetryPolicy(3, 1, 10),
                        bucket=SharedTokenBucket(client, "limited", rate=50, burst=50))
    dispatcher = Dispatcher(Router((RouteRule("default", (WeightedProvider("limited", 1),)),)),
                            {"limited": slot})
    try:
        message = OutboundMessage(uuid.uuid4(), uuid.uuid4(), "+16502530000", "hi", "GHASI",
                                  1, Encoding.GSM7)
        outcome = await dispatcher.dispatch(message, "transactional")
        assert isinstance(outcome, Deferred) and outcome.wait_seconds >= 1
        assert carrier.sent == 0 and dispatcher.capacity() == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
])
def test_every_way_a_connection_breaks_becomes_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable) as caught, translated_errors():
        raise error
    assert caught.value.__cause__ is error


def test_a_bug_is_not_mistaken_for_an_outage() -> None:
    with pytest.raises(asyncpg.exceptions.UndefinedColumnError), translated_errors():
        raise asyncpg.exceptions.UndefinedColumnError("column x does not exist")
