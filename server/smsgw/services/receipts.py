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
import contextlib
import logging
from collections import defaultdict

from smsgw import metrics
from smsgw.adapters.postgres.receipts import ReceiptRepository
from smsgw.domain.errors import Unavailable
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt

log = logging.getLogger(__name__)


class ReceiptProcessor:
    def __init__(self, receipts: ReceiptRepository, match_window_seconds: float = 120.0,
                 retry_seconds: float = 0.5, coalesce_seconds: float = 0.05) -> None:
        self._coalesce = coalesce_seconds
        self._repo = receipts
        self._window = match_window_seconds
        self._retry = retry_seconds
        self._incoming: list[DeliveryReceipt] = []
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def accept(self, receipt: DeliveryReceipt) -> None:
        """The ReceiptSink given to providers: cheap, never blocks the caller."""
        self._incoming.append(receipt)
        self._ready.set()

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(), name="receipts"),
                           asyncio.create_task(self._run_held(), name="receipts-held")]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            with contextlib.suppress(Unavailable):
                await self._apply_incoming()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            await asyncio.sleep(self._coalesce)  # receipts come in bursts: take them together
            self._ready.clear()
            try:
                await self._apply_incoming()
            except Unavailable as exc:
                log.warning("cannot apply receipts", extra={"error": str(exc)})
                await asyncio.sleep(self._retry)

    async def _apply_incoming(self) -> None:
        batch, self._incoming = self._incoming, []
        by_provider: dict[str, list[DeliveryReceipt]] = defaultdict(list)
        for receipt in batch:
            by_provider[receipt.provider].append(receipt)
        for provider, group in by_provider.items():
            try:
                await self._apply(provider, group)
            except Unavailable:
                self._incoming.extend(group)
                raise

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

    async def _run_held(self) -> None:
        while True:
            await asyncio.sleep(self._retry)
            try:
                matched, given_up = await self._repo.retry_held(self._window)
            except Unavailable as exc:
                log.warning("cannot retry held receipts", extra={"error": str(exc)})
                continue
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
