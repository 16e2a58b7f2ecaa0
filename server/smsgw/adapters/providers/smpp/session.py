"""One bind to the SMSC, kept up by a supervised loop that rebinds with backoff.

The session engine (framing, sequence numbers, the window of outstanding
``submit_sm``, ``enquire_link`` keep-alives and timers) is smpp34's Rust
core; a :class:`Session` binds, reads receipts until the SMSC closes the
session, and binds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import smpp34

from smsgw.adapters.providers.smpp.config import SmppConfig
from smsgw.domain.errors import Unavailable
from smsgw.supervision import Backoff, HealthBoard, Supervised

log = logging.getLogger(__name__)


class Session:
    """One bind, kept up by a supervised loop: rebinds with backoff whenever it drops.

    A session that cannot bind is reported on the health board but is not
    critical: the gateway still accepts and queues, and the provider's
    breaker and the failover chain decide where messages go meanwhile.
    """

    def __init__(self, config: SmppConfig, number: int,
                 on_deliver: Callable[[smpp34.DeliverSmEvent], None],
                 board: HealthBoard) -> None:
        self._config = config
        self._label = f"{config.name}#{number}"
        self._on_deliver = on_deliver
        self.window = asyncio.Semaphore(config.window)
        self.in_use = 0  # messages holding or waiting for this session's window
        self.smsc: smpp34.Smsc | None = None
        self.bound = asyncio.Event()
        self._client: smpp34.Client | None = None
        self._loop = Supervised(
            f"smpp-{self._label}", self._bound_session, board, critical=False,
            backoff=Backoff(config.rebind_min_seconds, config.rebind_max_seconds))

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._unbind()

    async def _bound_session(self) -> None:
        """One bind, read until it closes; a closed session is a failure to back off from."""
        try:
            try:
                await self._bind()
            except (smpp34.SmppError, ConnectionError, OSError, RuntimeError) as exc:
                raise SessionLost(f"bind failed: {str(exc)[:200]}") from exc
            self._loop.healthy()
            await self._read_until_closed()
        finally:
            await self._unbind()
        if not self._loop.stopping.is_set():
            raise SessionLost("the SMSC closed the session")

    async def _bind(self) -> None:
        c = self._config
        self._client = smpp34.Client(
            host=c.host, port=c.port, system_id=c.system_id, password=c.password,
            bind_type=c.bind_type, system_type=c.system_type, window_size=c.window,
            connect_timeout_ms=c.connect_timeout_ms,
            # Receipts queue here until we read them; a full queue makes the
            # library refuse them (ESME_RMSGQFUL), so leave room for bursts.
            inbound_capacity=c.inbound_capacity)
        self.smsc = await self._client.connect()
        self.bound.set()
        log.info("smpp bound", extra={"provider": self._label})

    async def _read_until_closed(self) -> None:
        """Reads receipts with several pulls outstanding: one pull at a time lets
        the library's inbound queue back up, and a full queue stalls the session."""
        readers = [asyncio.create_task(self._read()) for _ in range(self._config.receipt_readers)]
        stopping = asyncio.create_task(self._loop.stopping.wait())
        try:
            await asyncio.wait([*readers, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*readers, stopping):
                task.cancel()
            await asyncio.gather(*readers, stopping, return_exceptions=True)

    async def _read(self) -> None:
        assert self.smsc is not None
        smsc = self.smsc
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                return
            self._on_deliver(event)

    async def _unbind(self) -> None:
        self.bound.clear()
        smsc, client = self.smsc, self._client
        self.smsc = self._client = None
        if smsc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smsc.unbind(), 2)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()


class SessionLost(Unavailable):
    """The bind failed or the SMSC closed it: the supervisor rebinds after a backoff."""

