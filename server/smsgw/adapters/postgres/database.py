"""The connection pool, and the one place driver errors become domain errors.

Every way a connection can break (the server restarted or shut down, the
session was terminated, the socket died, the protocol is stuck after any of
these: asyncpg's "cannot switch to state" InternalClientError) becomes
``Unavailable``, and the connection it happened on is terminated rather
than handed back to the pool for the next caller to trip over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg

from smsgw.domain.errors import Unavailable

# Errors that mean "the database is not there right now", as opposed to a bug.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect, acquire or command timeout: a server that does not answer
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.exceptions.InternalClientError,  # a protocol stuck after its session was killed
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cannot
    # connect now, query canceled, idle session timeout
    asyncpg.TooManyConnectionsError,
)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}: {exc}"[:300]) from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every wait for the database, so an outage fails calls instead of hanging them."""

    connect_seconds: float = 5.0
    acquire_seconds: float = 10.0
    command_seconds: float = 60.0


class Database:
    def __init__(self, url: str, pool_size: int = 10, timeouts: Timeouts = Timeouts()) -> None:
        self.url = url
        self._pool_size = pool_size
        self._timeouts = timeouts
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        with translated_errors():
            self._pool = await asyncpg.create_pool(
                self.url, min_size=min(2, self._pool_size), max_size=self._pool_size,
                timeout=self._timeouts.connect_seconds,
                command_timeout=self._timeouts.command_seconds,
                # Our statements are few and hot: keep them all prepared.
                statement_cache_size=256,
                # Batch statements take arrays of any length; a generic plan
                # guesses ten rows per array and picks nested loops that turn
                # quadratic on a 1,000-row batch. Planning each call is cheaper.
                server_settings={"plan_cache_mode": "force_custom_plan"},
                # Sessions carry no state of ours (no LISTEN, locks or SETs on
                # pooled connections), so skip the reset round trip on release.
                reset=_keep_session,
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        with translated_errors():
            async with self.pool.acquire(timeout=self._timeouts.acquire_seconds) as conn:
                with _discarded_when_broken(conn):
                    yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        with translated_errors():
            async with self.pool.acquire(timeout=self._timeouts.acquire_seconds) as conn:
                with _discarded_when_broken(conn):
                    async with conn.transaction():
                        yield conn

    async def ping(self, timeout_seconds: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_seconds), self.connection() as conn:
                return bool(await conn.fetchval("SELECT true"))
        except (Unavailable, TimeoutError):
            return False


@contextlib.contextmanager
def _discarded_when_broken(conn: asyncpg.Connection) -> Iterator[None]:
    """A connection that failed like a lost one is terminated, never reused.

    Released as it is, its broken protocol would fail the next caller too.
    """
    try:
        yield
    except UNAVAILABLE_ERRORS:
        conn.terminate()
        raise
