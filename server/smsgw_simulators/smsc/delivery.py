"""Sending delivery receipts back as ``deliver_sm``: due, late, parked and retried.

Receipts fall due after the configured delay (or much later, when a late
receipt is injected) and go out in gathered chunks. A receipt whose session
has gone is routed to another bind of the same system_id, or parked until
one binds; a failed ``deliver_sm`` is retried a few times.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Final

import smpp34
from smpp34 import Esme, Tlv

from smsgw_simulators.smsc.codec import ESM_DELIVERY_RECEIPT
from smsgw_simulators.smsc.output import warn

RECEIPT_CHUNK: Final = 256
PUMP_IDLE_S: Final = 0.005
PUMP_MAX_IDLE_S: Final = 1.0
MAX_RECEIPT_ATTEMPTS: Final = 5
RETRY_AFTER_S: Final = 1.0
MAX_PENDING_PER_SYSTEM: Final = 100_000


@dataclass(slots=True)
class Receipt:
    session_id: str
    system_id: str
    source: str  # the receipt's source: the submit's destination
    destination: str
    body: bytes
    tlvs: list[Tlv]
    attempts: int = 0


class ReceiptPump:
    """The receipts not yet sent, and the loop that sends them as they fall due.

    ``sessions`` is the simulator's own map of bound sessions and ``counts``
    its counters: the pump reads the one and adds to the other.
    """

    def __init__(self, sessions: dict[str, Esme], counts: collections.Counter[str]) -> None:
        self._sessions = sessions
        self._counts = counts
        self._loop = asyncio.get_running_loop()
        self.due: collections.deque[tuple[float, Receipt]] = collections.deque()
        self.later: list[tuple[float, int, Receipt]] = []
        self._later_seq = 0
        self.in_flight = 0
        self._answered = asyncio.Event()  # set while no deliver_sm awaits its answer
        self._answered.set()
        self._wake = asyncio.Event()
        self.waiting: dict[str, collections.deque[Receipt]] = {}  # system_id -> no session

    def after(self, delay: float, receipt: Receipt) -> None:
        """Due ``delay`` seconds from now; every receipt of the normal path has the same delay."""
        if not self.due:
            self._wake.set()
        self.due.append((self._loop.time() + delay, receipt))

    def later_by(self, delay: float, receipt: Receipt) -> None:
        """Due at an arbitrary time (late receipts, retries, a parked system binding)."""
        self._later_seq += 1
        heapq.heappush(self.later, (self._loop.time() + delay, self._later_seq, receipt))
        self._wake.set()

    def bound(self, esme: Esme) -> None:
        """A session bound: receipts parked for its system_id may go now."""
        waiting = self.waiting.pop(esme.system_id, None)
        if waiting and esme.can_receive:
            for receipt in waiting:
                self.later_by(0.0, receipt)

    def pending(self) -> int:
        return len(self.due) + len(self.later) + sum(len(w) for w in self.waiting.values())

    async def settle(self, seconds: float) -> None:
        """At stop: receipts already on the wire get up to ``seconds`` for their answers.

        Cancelling the pump mid-send would leave receipts the ESME has
        already acknowledged out of ``receipts_sent``.
        """
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), seconds)

    async def run(self) -> None:
        """Send receipts as they fall due, in gathered chunks, every few ms."""
        due, later = self.due, self.later
        while True:
            now = self._loop.time()
            batch: list[Receipt] = []
            while due and due[0][0] <= now:
                batch.append(due.popleft()[1])
            while later and later[0][0] <= now:
                batch.append(heapq.heappop(later)[2])
            if not batch:
                await self._idle(now)
                continue
            for start in range(0, len(batch), RECEIPT_CHUNK):
                try:
                    await self.send(batch[start : start + RECEIPT_CHUNK])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._counts["event_errors"] += 1
                    warn(f"receipt batch failed: {exc!r}")

    async def _idle(self, now: float) -> None:
        # New entries of `due` fall due after its head, so sleeping until the
        # earliest head is safe; when both queues are empty, wait to be woken
        # by the first new entry (no polling while idle).
        heads = [q[0][0] for q in (self.due, self.later) if q]
        if heads:
            await asyncio.sleep(max(PUMP_IDLE_S, min(heads) - now))
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PUMP_MAX_IDLE_S):
                await self._wake.wait()

    async def send(self, receipts: Sequence[Receipt]) -> None:
        sends: list[Awaitable[smpp34.DeliverSmResp]] = []
        routed: list[Receipt] = []
        for receipt in receipts:
            esme = self._route(receipt)
            if esme is None:
                self._park(receipt)
                continue
            try:
                sends.append(esme.deliver_sm(
                    receipt.destination, receipt.body, source_addr=receipt.source,
                    esm_class=ESM_DELIVERY_RECEIPT, tlvs=receipt.tlvs))
            except Exception:
                self._retry(receipt)
                continue
            routed.append(receipt)
        if not sends:
            return
        self.in_flight += len(sends)
        self._answered.clear()
        try:
            results = await asyncio.gather(*sends, return_exceptions=True)
        finally:
            self.in_flight -= len(sends)
            if not self.in_flight:
                self._answered.set()
        sent = 0
        for receipt, result in zip(routed, results, strict=True):
            if isinstance(result, BaseException) or not result.is_success:
                if self._counts["receipt_retries"] < 5:
                    warn(f"deliver_sm failed: {result!r}")
                self._retry(receipt)
            else:
                sent += 1
        self._counts["receipts_sent"] += sent

    def _route(self, receipt: Receipt) -> Esme | None:
        esme = self._sessions.get(receipt.session_id)
        if esme is not None and esme.can_receive:
            return esme
        for other in self._sessions.values():
            if other.system_id == receipt.system_id and other.can_receive:
                return other
        return None

    def _park(self, receipt: Receipt) -> None:
        """No session can take it: hold it until one of its system_id binds."""
        waiting = self.waiting.setdefault(receipt.system_id, collections.deque())
        if len(waiting) >= MAX_PENDING_PER_SYSTEM:
            self._counts["receipts_dropped"] += 1
            return
        self._counts["receipts_parked"] += 1
        waiting.append(receipt)

    def _retry(self, receipt: Receipt) -> None:
        receipt.attempts += 1
        if receipt.attempts >= MAX_RECEIPT_ATTEMPTS:
            self._counts["receipts_failed"] += 1
            return
        self._counts["receipt_retries"] += 1
        self.later_by(RETRY_AFTER_S, receipt)

