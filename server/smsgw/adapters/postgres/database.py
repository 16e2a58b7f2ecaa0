"""The connection pool, and the one place driver errors become domain errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg

from smsgw.domain.errors import Unavailable

# Errors that mean "the database is not there right now", as opposed to a bug.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc


async def _keep_session(_conn: asyncpg.Connection) -> None:
    return None


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        with translated_errors():
            self._pool = await asyncpg.create_pool(
                self.url, min_size=min(2, self._pool_size), max_size=self._pool_size,
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
            async with self.pool.acquire() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        with translated_errors():
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                return bool(await conn.fetchval("SELECT true"))
        except Unavailable:
            return False
