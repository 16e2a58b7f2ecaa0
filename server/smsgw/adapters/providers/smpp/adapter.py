"""SMPP 3.4 adapter: one bound session to an SMSC, behind the send port.

The session engine (framing, sequence numbers, the window of outstanding
``submit_sm``, ``enquire_link`` keep-alives and timers) is smpp34's Rust
core; this adapter adds what a gateway needs on top: rebinding with backoff
when the session drops, slowing down when the SMSC says it is throttled or
its queue is full (instead of failing messages), splitting long messages,
our message id on every part (vendor TLV 0x1501) so a duplicate can be
traced, and reading delivery receipts in whatever form the SMSC writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import smpp34

from smsgw.adapters.providers.smpp.codec import (
    DATA_CODING,
    TLV_CLIENT_REFERENCE,
    Concatenation,
    IdFormat,
    SubmitPart,
    canonical_id,
    parse_receipt,
    submit_parts,
)
from smsgw.domain.errors import Unavailable
from smsgw.ports import DeliveryReceipt, OutboundMessage, ProviderError, ReceiptSink, SendResult
from smsgw.supervision import Backoff, HealthBoard, Supervised

log = logging.getLogger(__name__)

THROTTLED, QUEUE_FULL = 0x58, 0x14
# Refusals about the message itself: sending it again cannot help.
PERMANENT = {0x01: "INVALID_LENGTH", 0x0A: "INVALID_SOURCE", 0x0B: "INVALID_DESTINATION",
             0x48: "INVALID_SOURCE_TON", 0x49: "INVALID_SOURCE_NPI",
             0x50: "INVALID_DESTINATION_TON", 0x51: "INVALID_DESTINATION_NPI",
             0x66: "INVALID_DESTINATION_FLAG"}
_STATUS = re.compile(r"\(0x([0-9a-fA-F]+)\)")


@dataclass(frozen=True, slots=True)
class SmppConfig:
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)
    system_type: str = ""
    bind_type: str = "TRX"
    window: int = 10
    default_sender: str = ""
    concatenation: Concatenation = Concatenation.UDH16
    id_format: IdFormat = IdFormat.HEX  # how submit_sm_resp writes ids
    receipt_id_format: IdFormat | None = None  # how receipts do; default: the same
    throttle_retries: int = 5
    throttle_backoff_seconds: float = 0.05
    rebind_min_seconds: float = 0.2
    rebind_max_seconds: float = 30.0
    bind_wait_seconds: float = 5.0
    connect_timeout_ms: int = 5000
    inbound_capacity: int = 65536
    receipt_readers: int = 4
    sessions: int = 1  # binds to open; each has its own window

    def __post_init__(self) -> None:
        # SMPP 3.4 fixes these sizes (C-Octet-Strings, NUL included); a longer
        # value would be refused by the SMSC, so it is refused at start-up.
        for field_name, limit in (("system_id", 16), ("password", 9), ("system_type", 13)):
            if len(getattr(self, field_name).encode()) >= limit:
                raise ValueError(f"provider {self.name}: SMPP {field_name} may have at most "
                                 f"{limit - 1} characters")
        if not 1 <= self.window <= 1024:
            raise ValueError(f"provider {self.name}: window must be between 1 and 1024")

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> SmppConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = set(options) - set(known)
        if unknown:
            raise ValueError(f"provider {name}: unknown SMPP options {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in options.items():
            default = getattr(_DEFAULTS, key)
            values[key] = value if default is None else type(default)(value)
        return cls(name=name, **values)


_DEFAULTS = SmppConfig("", "", 0, "", receipt_id_format=IdFormat.HEX)


class SmppProvider:
    """One provider: ``sessions`` binds to the SMSC, each with its own window.

    A message goes whole (all its parts) through the bound session with the
    most room. Throttling slows every session of the provider: the SMSC's
    limit is usually per account, not per bind.
    """

    def __init__(self, config: SmppConfig, rng: random.Random | None = None,
                 board: HealthBoard | None = None) -> None:
        self.name = config.name
        self._config = config
        self._receipt_format = config.receipt_id_format or config.id_format
        self._rng = rng or random.Random()
        self._references = itertools.count(self._rng.randrange(1 << 16))
        board = board or HealthBoard()
        self._sessions = [_Session(config, n, self._receipt, board)
                          for n in range(config.sessions)]
        self._on_receipt: ReceiptSink | None = None
        self._calm_at = 0.0  # while throttled, no part goes out before this
        self._backoff = config.throttle_backoff_seconds

    async def start(self, on_receipt: ReceiptSink) -> None:
        self._on_receipt = on_receipt
        for session in self._sessions:
            await session.start()

    async def stop(self) -> None:
        await asyncio.gather(*(session.stop() for session in self._sessions))

    async def send(self, message: OutboundMessage) -> SendResult:
        reference = next(self._references) & 0xFFFF
        parts = submit_parts(message.body, message.encoding, self._config.concatenation,
                             reference)
        session = await self._pick()
        ids = []
        session.in_use += 1
        try:
            async with session.window:
                for part in parts:
                    ids.append(await self._submit(session, message, part))
        finally:
            session.in_use -= 1
        return SendResult(provider_message_id=ids[0], part_ids=tuple(ids) if len(ids) > 1 else ())

    async def _pick(self) -> _Session:
        bound = [s for s in self._sessions if s.smsc is not None]
        if not bound:
            waits = [asyncio.create_task(s.bound.wait()) for s in self._sessions]
            _done, pending = await asyncio.wait(waits, timeout=self._config.bind_wait_seconds,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            bound = [s for s in self._sessions if s.smsc is not None]
            if not bound:
                raise ProviderError("SMPP_NOT_BOUND", f"no session with {self._config.host}",
                                    retryable=True)
        return min(bound, key=lambda s: s.in_use)

    async def _submit(self, session: _Session, message: OutboundMessage,
                      part: SubmitPart) -> str:
        for _ in range(self._config.throttle_retries + 1):
            smsc = session.smsc
            if smsc is None:
                raise ProviderError("SMPP_CONNECTION", "session lost", retryable=True)
            if (pause := self._calm_at - time.monotonic()) > 0:
                await asyncio.sleep(pause)
            try:
                response = await smsc.submit_sm(
                    message.to.lstrip("+"), part.short_message,
                    source_addr=message.sender or self._config.default_sender,
                    source_addr_ton=_ton(message.sender or self._config.default_sender),
                    source_addr_npi=1, dest_addr_ton=1, dest_addr_npi=1,
                    esm_class=part.esm_class, data_coding=DATA_CODING[message.encoding],
                    registered_delivery=1,
                    tlvs=[smpp34.Tlv(TLV_CLIENT_REFERENCE, str(message.id).encode()),
                          *(smpp34.Tlv(tag, value) for tag, value in part.tlvs)])
            except smpp34.SmppError as exc:
                status, text = _status_of(exc), str(exc)
            except (ConnectionError, OSError, RuntimeError) as exc:
                raise ProviderError("SMPP_CONNECTION", f"session lost: {exc}",
                                    retryable=True) from exc
            else:
                if response.is_success:
                    self._backoff = self._config.throttle_backoff_seconds
                    return canonical_id(response.message_id or "", self._config.id_format)
                status, text = response.command_status, f"0x{response.command_status:08x}"
            if status not in (THROTTLED, QUEUE_FULL):
                raise _error(status, text)
            self._slow_down()
        raise ProviderError("SMPP_THROTTLED", "the SMSC kept throttling", retryable=True,
                            throttled=True)

    def _slow_down(self) -> None:
        """Throttled: pause every session, twice as long each time in a row."""
        self._calm_at = max(self._calm_at, time.monotonic() + self._backoff)
        self._backoff = min(self._backoff * 2, 5.0)

    def _receipt(self, event: smpp34.DeliverSmEvent) -> None:
        parsed = parse_receipt(event.short_message, {t.tag: t.value for t in event.tlvs})
        if parsed is None or parsed.status is None or self._on_receipt is None:
            return  # a mobile-originated message, or an intermediate state
        failed = parsed.status.name != "DELIVERED"
        self._on_receipt(DeliveryReceipt(
            provider=self.name,
            provider_message_id=canonical_id(parsed.message_id, self._receipt_format),
            status=parsed.status,
            error_code=f"SMPP_{parsed.state}" if failed else "",
            error_description=f"err:{parsed.error}" if failed and parsed.error else ""))


class _Session:
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


def _ton(sender: str) -> int:
    """International (1) for a number, alphanumeric (5) for a name."""
    return 1 if sender.lstrip("+").isdigit() else 5


def _status_of(exc: smpp34.SmppError) -> int:
    found = _STATUS.search(str(exc))
    return int(found.group(1), 16) if found else -1


def _error(status: int, text: str) -> ProviderError:
    name = text.split(" ", maxsplit=1)[0] or f"0x{status:08x}"
    if status in PERMANENT:
        return ProviderError(f"SMPP_{PERMANENT[status]}", name, retryable=False)
    return ProviderError("SMPP_ERROR", name, retryable=True)
