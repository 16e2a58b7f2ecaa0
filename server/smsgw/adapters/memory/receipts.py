"""In-memory receipts: matching, multipart settling, held receipts (see state.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from smsgw.adapters.memory.state import HeldReceipt, MemoryState, MessageRow
from smsgw.domain.records import DeliveryReceipt
from smsgw.domain.status import MessageStatus


class MemoryReceiptStore:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def apply(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> set[str]:
        self._s.begin()
        matched = self._settle(provider, receipts, multipart=False)
        rest = [r for r in receipts if r.provider_message_id not in matched]
        touched: list[MessageRow] = []
        for receipt in rest:
            row = self._part_owner(provider, receipt.provider_message_id)
            if row is None:
                continue
            matched.add(receipt.provider_message_id)
            if row.parts[receipt.provider_message_id] is None:
                row.parts[receipt.provider_message_id] = receipt.status
                row.part_errors[receipt.provider_message_id] = (
                    receipt.error_code, receipt.error_description)
            touched.append(row)
        settled = [_settled(row) for row in {r.message.id: r for r in touched}.values()
                   if row.message.status is MessageStatus.SENT]
        self._settle(provider, [r for r in settled if r is not None], multipart=True)
        return matched

    async def known(self, provider: str, provider_message_ids: Sequence[str]) -> set[str]:
        wanted = set(provider_message_ids) - {""}
        return {r.message.provider_message_id for r in self._s.messages.values()
                if r.message.provider == provider and r.message.provider_message_id in wanted
                and r.message.status is not MessageStatus.SENT}

    async def hold(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> None:
        now = self._s.clock()
        for receipt in receipts:
            key = (provider, receipt.provider_message_id, receipt.status)
            self._s.held.setdefault(key, HeldReceipt(receipt, now))

    async def retry_held(self, window_seconds: float, limit: int = 1000
                         ) -> tuple[list[DeliveryReceipt], list[DeliveryReceipt]]:
        now = self._s.clock()
        oldest = sorted(self._s.held.items(), key=lambda kv: kv[1].received_at)[:limit]
        matched: list[DeliveryReceipt] = []
        for provider in dict.fromkeys(key[0] for key, _ in oldest):
            group = [h.receipt for key, h in oldest if key[0] == provider]
            ids = await self.apply(provider, group)
            matched += [r for r in group if r.provider_message_id in ids]
        done = {(r.provider, r.provider_message_id) for r in matched}
        cutoff = now - dt.timedelta(seconds=window_seconds)
        given_up = [h.receipt for key, h in oldest
                    if h.received_at < cutoff and key[:2] not in done]
        for receipt in matched + given_up:
            self._s.held.pop((receipt.provider, receipt.provider_message_id, receipt.status),
                             None)
        return matched, given_up

    async def expire_unreceipted(self, timeout_seconds: float, limit: int = 1000) -> int:
        cutoff = self._s.clock() - dt.timedelta(seconds=timeout_seconds)
        due = sorted((r for r in self._s.messages.values()
                      if r.message.status is MessageStatus.SENT and r.message.sent_at
                      and r.message.sent_at < cutoff),
                     key=lambda r: r.message.sent_at or cutoff)[:limit]
        self._s.begin()
        for row in due:
            self._s.move(row, MessageStatus.EXPIRED, error_code="RECEIPT_TIMEOUT",
                         error_description="no delivery receipt within the receipt timeout")
        return len(due)

    def _settle(self, provider: str, receipts: Sequence[DeliveryReceipt], *,
                multipart: bool) -> set[str]:
        """Applies receipts to SENT messages under their own provider id."""
        by_id = {r.provider_message_id: r for r in receipts if r.provider_message_id}
        matched = set()
        for row in self._s.messages.values():
            m = row.message
            receipt = by_id.get(m.provider_message_id)
            if receipt is None or m.provider != provider or bool(row.parts) != multipart:
                continue
            delivered = receipt.status is MessageStatus.DELIVERED
            if self._s.move(row, receipt.status, error_code=receipt.error_code,
                            error_description=receipt.error_description,
                            delivered_at=self._s.clock() if delivered else None):
                matched.add(m.provider_message_id)
        return matched

    def _part_owner(self, provider: str, part_id: str) -> MessageRow | None:
        for row in self._s.messages.values():
            if part_id in row.parts and row.message.provider == provider:
                return row
        return None


def _settled(row: MessageRow) -> DeliveryReceipt | None:
    """One receipt for a multipart message once every part reported, or one failed."""
    reports = row.parts.values()
    failed = [pid for pid, status in row.parts.items() if status is MessageStatus.UNDELIVERED]
    if failed:
        code, description = max(row.part_errors[pid] for pid in failed)
        return DeliveryReceipt(row.message.provider, row.message.provider_message_id,
                               MessageStatus.UNDELIVERED, code, description)
    if all(status is not None for status in reports):
        return DeliveryReceipt(row.message.provider, row.message.provider_message_id,
                               MessageStatus.DELIVERED)
    return None
