"""Applies delivery receipts in batches, holding back those that came too early.

A carrier may report delivery before our SENT write-back has committed (the
receipt races the relay's batch). Such a receipt matches nothing yet, so it
is kept and tried again until ``match_window_seconds``; only then is it
counted as unmatched and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from smsgw import metrics
from smsgw.adapters.postgres.receipts import ReceiptRepository
from smsgw.domain.errors import Unavailable
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Held:
    receipt: DeliveryReceipt
    give_up_at: float


class ReceiptProcessor:
    def __init__(self, receipts: ReceiptRepository, match_window_seconds: float = 120.0,
                 retry_seconds: float = 0.5, coalesce_seconds: float = 0.05) -> None:
        self._coalesce = coalesce_seconds
        self._repo = receipts
        self._window = match_window_seconds
        self._retry = retry_seconds
        self._incoming: list[_Held] = []
        self._held: list[_Held] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def accept(self, receipt: DeliveryReceipt) -> None:
        """The ReceiptSink given to providers: cheap, never blocks the caller."""
        self._incoming.append(_Held(receipt, time.monotonic() + self._window))
        self._ready.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="receipts")

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Unavailable):
                await self._apply_once()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self._retry)
            await asyncio.sleep(self._coalesce)  # receipts come in bursts: take them together
            self._ready.clear()
            try:
                await self._apply_once()
            except Unavailable as exc:
                log.warning("cannot apply receipts", extra={"error": str(exc)})

    async def _apply_once(self) -> None:
        batch, self._held, self._incoming = self._held + self._incoming, [], []
        by_provider: dict[str, list[_Held]] = defaultdict(list)
        for held in batch:
            by_provider[held.receipt.provider].append(held)
        for provider, group in by_provider.items():
            try:
                await self._apply(provider, group)
            except Unavailable:
                self._held.extend(group)
                raise

    async def _apply(self, provider: str, group: list[_Held]) -> None:
        matched = await self._repo.apply(provider, [h.receipt for h in group])
        unmatched = [h for h in group if h.receipt.provider_message_id not in matched]
        for held in group:
            if held.receipt.provider_message_id in matched:
                metrics.RECEIPTS.labels(provider, _result(held.receipt.status)).inc()
        if not unmatched:
            return
        known = await self._repo.known(provider, [h.receipt.provider_message_id
                                                  for h in unmatched])
        now = time.monotonic()
        for held in unmatched:
            if held.receipt.provider_message_id in known:
                metrics.RECEIPTS.labels(provider, "duplicate").inc()
            elif now >= held.give_up_at:
                metrics.RECEIPTS.labels(provider, "unmatched").inc()
                log.warning("unmatched delivery receipt",
                            extra={"provider": provider,
                                   "provider_message_id": held.receipt.provider_message_id})
            else:
                self._held.append(held)


def _result(status: MessageStatus) -> str:
    return "delivered" if status is MessageStatus.DELIVERED else "undelivered"
