"""Shared fixtures: real stores, a fresh database per test, gateways in and out of process.

Stores come from ``SMSGW_TEST_DATABASE_URL`` / ``SMSGW_TEST_REDIS_URL`` when
set (CI points them at the machine's servers), or are started embedded for
the session. Every test gets its own database, cloned from a template that
has all migrations applied (procrastinate's approach): cheap, and no test
sees another's rows. Redis is shared; idempotency keys are namespaced by
tenant, and every test creates its own tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smsgw.adapters.postgres import migrator
from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.app import Gateway
from smsgw.proto import sms_pb2_grpc
from smsgw.settings import REPO_ROOT, Settings


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    database = os.environ.get("SMSGW_TEST_DATABASE_URL")
    redis = os.environ.get("SMSGW_TEST_REDIS_URL")
    embedded = None
    if not (database and redis):
        from smsgw.adapters.embedded import start_embedded

        started, embedded = start_embedded(Settings(
            data_dir=tmp_path_factory.mktemp("stores"), database_url=database, redis_url=redis))
        assert started.database_url and started.redis_url
        database, redis = started.database_url, started.redis_url
    yield database, redis
    if embedded is not None:
        embedded.stop()


@pytest_asyncio.fixture(scope="session")
async def template_database(stores: tuple[str, str]) -> AsyncIterator[str]:
    admin_url = stores[0]
    name = f"smsgw_template_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(admin_url, name))
    await migrator.migrate(conn, REPO_ROOT / "migrations")
    await conn.close()
    yield name
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest_asyncio.fixture
async def database_url(stores: tuple[str, str], template_database: str) -> AsyncIterator[str]:
    name = f"smsgw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stores[0])
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(stores[0], name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def redis_url(stores: tuple[str, str]) -> str:
    return stores[1]


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
        migrate_on_start=False, grpc_address="127.0.0.1:0", http_address="127.0.0.1:0",
        simulator_latency_ms=5, simulator_receipt_delay_ms=50, watch_poll_seconds=0.1,
        relay_poll_seconds=0.2, db_pool_size=6, log_level="WARNING", rest_enabled=False,
    )


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=4)
    await database.open()
    yield database
    await database.close()


@pytest_asyncio.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    started = Gateway(settings)
    await started.start()
    yield started
    await started.stop(grace=1)


@dataclass
class Client:
    """A gRPC client for one tenant."""

    channel: grpc.aio.Channel
    key: str
    stub: sms_pb2_grpc.SmsServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.stub = sms_pb2_grpc.SmsServiceStub(self.channel)

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.key}"),)


async def new_tenant_key(database_url: str, name: str | None = None,
                         scopes: tuple[str, ...] = ("send",)) -> str:
    database = Database(database_url, pool_size=1)
    await database.open()
    try:
        _tenant, key = await TenantDirectory(database).create(
            name or f"t-{uuid.uuid4().hex[:8]}", scopes)
    finally:
        await database.close()
    return key


@contextlib.asynccontextmanager
async def client_for(address: str, key: str) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield Client(channel, key)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all held open until all are chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class ServerProcess:
    """A real ``smsgw serve`` subprocess."""

    process: subprocess.Popen[bytes]
    address: str
    http_port: int
    log: Path
    rest_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _wait_serving(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server did not become ready:\n{log.read_text()[-3000:]}")


async def _wait_http(port: int, process: subprocess.Popen[bytes], log: Path,
                     expect: bytes = b"HTTP/1.1 200") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
            ok = (await reader.readline()).startswith(expect)
            writer.close()
            await writer.wait_closed()
            if ok:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"server's http listener did not come up:\n{log.read_text()[-3000:]}")


@pytest_asyncio.fixture
async def start_server(
    database_url: str, redis_url: str, tmp_path: Path,
) -> AsyncIterator[object]:
    """A factory: ``await start_server(**settings)`` -> a running ServerProcess."""
    started: list[ServerProcess] = []

    async def start(**overrides: object) -> ServerProcess:
        grpc_port, http_port, rest_port = free_ports(3)
        env = {
            **os.environ,
            "SMSGW_DATABASE_URL": database_url, "SMSGW_REDIS_URL": redis_url,
            "SMSGW_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
            "SMSGW_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
            "SMSGW_DATA_DIR": str(tmp_path / "data"), "SMSGW_LOG_LEVEL": "WARNING",
            "SMSGW_SIMULATOR_LATENCY_MS": "5", "SMSGW_SIMULATOR_RECEIPT_DELAY_MS": "50",
            "SMSGW_WATCH_POLL_SECONDS": "0.1", "SMSGW_RELAY_POLL_SECONDS": "0.2",
            "SMSGW_DB_POOL_SIZE": "6",
            "SMSGW_REST_ENABLED": "false", "SMSGW_REST_ADDRESS": f"127.0.0.1:{rest_port}",
        }
        env.update({f"SMSGW_{k.upper()}": str(v) for k, v in overrides.items()})
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: ASYNC220 - a child that outlives this call
                [sys.executable, "-m", "smsgw", "serve"], env=env, stdout=out, stderr=out)
        address = str(overrides.get("grpc_address", f"127.0.0.1:{grpc_port}"))
        server = ServerProcess(process, address, http_port, log, f"http://127.0.0.1:{rest_port}")
        started.append(server)
        await _wait_serving(server.address, process, log)
        await _wait_http(http_port, process, log)
        if str(overrides.get("rest_enabled", "")).lower() == "true":
            # Envoy starts after the ops server; any answer means it is up.
            await _wait_http(rest_port, process, log, expect=b"HTTP/1.1 ")
        return server

    yield start
    for server in started:
        await asyncio.to_thread(server.stop)


@dataclass
class SmscProcess:
    """The SMSC simulator, as its own process: the SMPP adapter's independent peer."""

    process: subprocess.Popen[bytes]
    port: int
    journal: Path
    stats_file: Path

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return json.loads(self.stats_file.read_text()) if self.stats_file.exists() else {}

    def messages(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines() if line]


@pytest_asyncio.fixture
async def start_smsc(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[SmscProcess]]]:
    """A factory: ``await start_smsc(throttle_rate=0.5)`` -> a running simulator."""
    started: list[SmscProcess] = []

    async def start(**options: object) -> SmscProcess:
        port, n = free_port(), len(started)
        journal, stats = tmp_path / f"smsc-{n}.jsonl", tmp_path / f"smsc-{n}.stats.json"
        argv = [sys.executable, "-m", "smsgw_simulators.smsc", "--port", str(port),
                "--journal", str(journal), "--stats", str(stats)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE)  # noqa: ASYNC220
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        assert line.startswith(b"SMSC listening"), line
        smsc = SmscProcess(process, port, journal, stats)
        started.append(smsc)
        return smsc

    yield start
    for smsc in started:
        await asyncio.to_thread(smsc.stop)
