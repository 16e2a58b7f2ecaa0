"""Applies delivery receipts in batches; those that come too early wait in the database.

A carrier may report delivery before our SENT write-back has committed (the
receipt races the relay's batch), or for a part whose id is not recorded
yet. Such a receipt matches nothing yet, so it is held in
``pending_receipts`` (not in this process's memory: a carrier that got its
acknowledgement will not send it again) and tried again, by any process,
until ``match_window_seconds``; only then is it counted as unmatched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from smsgw import metrics
from smsgw.domain.errors import Unavailable
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt, ReceiptStore
from smsgw.supervision import HealthBoard, Supervised, wait_for_event

log = logging.getLogger(__name__)


class ReceiptProcessor:
    def __init__(self, receipts: ReceiptStore, match_window_seconds: float = 120.0,
                 retry_seconds: float = 0.5, coalesce_seconds: float = 0.05,
                 board: HealthBoard | None = None, stop_timeout_seconds: float = 10.0) -> None:
        self._coalesce = coalesce_seconds
        self._repo = receipts
        self._window = match_window_seconds
        self._retry = retry_seconds
        self._stop_timeout = stop_timeout_seconds
        self._incoming: list[DeliveryReceipt] = []
        self._ready = asyncio.Event()
        board = board or HealthBoard()
        self._applier = Supervised("receipts", self._apply_step, board)
        self._retrier = Supervised("receipts-held", self._retry_held_step, board)

    def accept(self, receipt: DeliveryReceipt) -> None:
        """The ReceiptSink given to providers: cheap, never blocks the caller."""
        self._incoming.append(receipt)
        self._ready.set()

    async def start(self) -> None:
        await self._applier.start()
        await self._retrier.start()

    async def stop(self) -> None:
        """Stops both loops, then applies what came in, retrying while the database is away."""
        if not self._applier.running:
            return
        await self._applier.stop()
        await self._retrier.stop()
        deadline = time.monotonic() + self._stop_timeout
        while self._incoming:
            try:
                await self._apply_incoming()
            except Unavailable as exc:
                if time.monotonic() >= deadline:
                    log.error("receipts not applied at stop", extra={
                        "receipts": len(self._incoming), "error": str(exc)})
                    return
                await asyncio.sleep(0.2)

    async def _apply_step(self) -> None:
        await wait_for_event(self._ready, self._applier.stopping)
        await asyncio.sleep(self._coalesce)  # receipts come in bursts: take them together
        self._ready.clear()
        await self._apply_incoming()

    async def _apply_incoming(self) -> None:
        """Applies what came in; on failure puts back what was not applied, and raises."""
        batch, self._incoming = self._incoming, []
        by_provider: dict[str, list[DeliveryReceipt]] = defaultdict(list)
        for receipt in batch:
            by_provider[receipt.provider].append(receipt)
        pending = list(by_provider.items())
        while pending:
            provider, group = pending[0]
            try:
                await self._apply(provider, group)
            except BaseException:
                self._incoming[:0] = [r for _, g in pending for r in g]
                self._ready.set()
                raise
            pending.pop(0)

    async def _apply(self, provider: str, group: list[DeliveryReceipt]) -> None:
        matched = await self._repo.apply(provider, group)
        _count(provider, [r for r in group if r.provider_message_id in matched])
        unmatched = [r for r in group if r.provider_message_id not in matched]
        if not unmatched:
            return
        known = await self._repo.known(provider, [r.provider_message_id for r in unmatched])
        for receipt in unmatched:
            if receipt.provider_message_id in known:
                metrics.RECEIPTS.labels(provider, "duplicate").inc()
        held = [r for r in unmatched if r.provider_message_id not in known]
        if held:
            await self._repo.hold(provider, held)

    async def _retry_held_step(self) -> None:
        await self._retrier.pause(self._retry)
        matched, given_up = await self._repo.retry_held(self._window)
        for provider in {r.provider for r in matched}:
            _count(provider, [r for r in matched if r.provider == provider])
        for receipt in given_up:
            metrics.RECEIPTS.labels(receipt.provider, "unmatched").inc()
            log.warning("unmatched delivery receipt",
                        extra={"provider": receipt.provider,
                               "provider_message_id": receipt.provider_message_id})


def _count(provider: str, receipts: list[DeliveryReceipt]) -> None:
    for receipt in receipts:
        result = "delivered" if receipt.status is MessageStatus.DELIVERED else "undelivered"
        metrics.RECEIPTS.labels(provider, result).inc()
