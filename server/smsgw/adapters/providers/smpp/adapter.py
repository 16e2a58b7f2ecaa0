"""SMPP 3.4 adapter: binds to an SMSC, behind the send port.

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
import datetime as dt
import itertools
import random
import time

import smpp34

from smsgw.adapters.providers.smpp.codec import (
    DATA_CODING,
    TLV_CLIENT_REFERENCE,
    SubmitPart,
    canonical_id,
    delivery_receipt,
    parse_receipt,
    submit_parts,
    validity_period,
)
from smsgw.adapters.providers.smpp.config import SmppConfig
from smsgw.adapters.providers.smpp.session import Session
from smsgw.adapters.providers.smpp.status import Refusal
from smsgw.ports import OutboundMessage, ProviderError, ReceiptSink, SendResult
from smsgw.supervision import HealthBoard


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
        self._sessions = [Session(config, n, self._receipt, board)
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
        """Sends every part; ``part_ids`` names each part the SMSC took when there are several.

        The parts sent are the parts the message costs: their number follows
        the provider's ``concatenation`` and may differ from the count made at
        accept (``udh16`` fits one character less per part than ``udh8``).
        """
        reference = next(self._references) & 0xFFFF
        parts = submit_parts(message.body, message.encoding, self._config.concatenation,
                             reference)
        session = await self._pick()
        # Computed once, after any wait for a session: every part says the same.
        validity = validity_period(message.expire_at, dt.datetime.now(dt.UTC))
        ids = []
        session.in_use += 1
        try:
            async with session.window:
                for part in parts:
                    ids.append(await self._submit(session, message, part, validity))
        finally:
            session.in_use -= 1
        return SendResult(provider_message_id=ids[0], part_ids=tuple(ids) if len(ids) > 1 else ())

    async def _pick(self) -> Session:
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

    async def _submit(self, session: Session, message: OutboundMessage,
                      part: SubmitPart, validity: str) -> str:
        for _ in range(self._config.throttle_retries + 1):
            smsc = session.smsc
            if smsc is None:
                raise ProviderError("SMPP_CONNECTION", "session lost", retryable=True)
            if (pause := self._calm_at - time.monotonic()) > 0:
                await asyncio.sleep(pause)
            try:
                response = await self._submit_sm(smsc, message, part, validity)
            except smpp34.SmppError as exc:  # a generic_nack, or the library's own failure
                refusal = Refusal.of_error(exc)
                if not refusal.throttling:
                    raise refusal.error() from exc
            except (ConnectionError, OSError, RuntimeError) as exc:
                raise ProviderError("SMPP_CONNECTION", f"session lost: {exc}",
                                    retryable=True) from exc
            else:
                if response.is_success:
                    self._backoff = self._config.throttle_backoff_seconds
                    return canonical_id(response.message_id or "", self._config.id_format)
                refusal = Refusal.of_response(response)
                if not refusal.throttling:
                    raise refusal.error()
            self._slow_down()
        raise ProviderError("SMPP_THROTTLED", "the SMSC kept throttling", retryable=True,
                            throttled=True)

    async def _submit_sm(self, smsc: smpp34.Smsc, message: OutboundMessage,
                         part: SubmitPart, validity: str) -> smpp34.SubmitSmResp:
        sender = message.sender or self._config.default_sender
        return await smsc.submit_sm(
            message.to.lstrip("+"), part.short_message,
            source_addr=sender, source_addr_ton=_ton(sender), source_addr_npi=1,
            dest_addr_ton=1, dest_addr_npi=1, esm_class=part.esm_class,
            data_coding=DATA_CODING[message.encoding], registered_delivery=1,
            validity_period=validity,
            tlvs=[smpp34.Tlv(TLV_CLIENT_REFERENCE, str(message.id).encode()),
                  *(smpp34.Tlv(tag, value) for tag, value in part.tlvs)])

    def _slow_down(self) -> None:
        """Throttled: pause every session, twice as long each time in a row."""
        self._calm_at = max(self._calm_at, time.monotonic() + self._backoff)
        self._backoff = min(self._backoff * 2, 5.0)

    def _receipt(self, event: smpp34.DeliverSmEvent) -> None:
        parsed = parse_receipt(event.short_message, {t.tag: t.value for t in event.tlvs})
        on_receipt = self._on_receipt
        if parsed is None or on_receipt is None:
            return  # a mobile-originated message, or not running
        receipt = delivery_receipt(parsed, self.name, self._receipt_format)
        if receipt is not None:  # None: an intermediate state (ENROUTE, ACCEPTD)
            on_receipt(receipt)


def _ton(sender: str) -> int:
    """International (1) for a number, alphanumeric (5) for a name."""
    return 1 if sender.lstrip("+").isdigit() else 5
