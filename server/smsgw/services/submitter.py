"""The submit path: stores validated submissions, exactly once per idempotency key.

Unary calls are group-committed. A call parks its submission; if no flush
is running it is written at once, otherwise it waits for the running flush
to finish and goes out with everything that gathered meanwhile. Batches
therefore grow with load by themselves, and a quiet server adds no delay.
A second flush runs in parallel only once a sizeable batch is waiting, so
durable commits never cap throughput. Bulk callers hand in whole batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from smsgw.domain.errors import IdempotencyKeyReused
from smsgw.domain.ids import new_ids
from smsgw.domain.model import Message, Submission, SubmitOutcome
from smsgw.domain.policy import PolicyOf, unlimited
from smsgw.domain.quota import QuotaRefusal, SegmentQuota, quota_exceeded
from smsgw.domain.status import MessageStatus
from smsgw.ports import IdempotencyCache, MessageStore

# A parallel flush is worth its round trips only for a batch at least this big.
PARALLEL_FLUSH_MIN = 32


@dataclass(slots=True)
class _Parked:
    tenant: uuid.UUID
    submission: Submission
    done: asyncio.Future[SubmitOutcome]


class Submitter:
    def __init__(
        self, messages: MessageStore, cache: IdempotencyCache | None,
        batch_max: int = 1000, flushers: int = 3, policy_of: PolicyOf | None = None,
    ) -> None:
        self._messages = messages
        self._policy_of = policy_of or unlimited
        self._cache = cache
        self._batch_max = batch_max
        self._max_flushes = flushers
        self._parked: list[_Parked] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Nothing runs in the background until there is something to write."""

    async def stop(self) -> None:
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def submit(self, tenant: uuid.UUID, submission: Submission) -> SubmitOutcome:
        """One submission, committed together with whatever else is waiting."""
        done: asyncio.Future[SubmitOutcome] = asyncio.get_running_loop().create_future()
        self._parked.append(_Parked(tenant, submission, done))
        self._start_flushes()
        return await done

    def _start_flushes(self) -> None:
        while self._parked and (
            not self._flushes
            or (len(self._parked) >= PARALLEL_FLUSH_MIN and len(self._flushes) < self._max_flushes)
        ):
            batch = self._parked[: self._batch_max]
            del self._parked[: self._batch_max]
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._start_flushes()

    async def _flush(self, batch: list[_Parked]) -> None:
        by_tenant: dict[uuid.UUID, list[_Parked]] = defaultdict(list)
        for parked in batch:
            by_tenant[parked.tenant].append(parked)
        for tenant, group in by_tenant.items():
            try:
                outcomes = await self.submit_many(tenant, [p.submission for p in group])
            except Exception as exc:
                for parked in group:
                    if not parked.done.done():
                        parked.done.set_exception(exc)
                continue
            for parked, outcome in zip(group, outcomes, strict=True):
                if not parked.done.done():
                    parked.done.set_result(outcome)

    async def submit_many(
        self, tenant: uuid.UUID, items: Sequence[Submission]
    ) -> list[SubmitOutcome]:
        """Stores a batch in one transaction; one outcome per item, in order."""
        firsts, repeats = _split_repeats(items)
        ids = new_ids(len(firsts))
        outcomes: dict[int, SubmitOutcome] = {}
        to_insert = await self._consult_cache(tenant, items, firsts, ids, outcomes)
        claimed = [items[i].idempotency_key for i in to_insert]
        try:
            await self._insert(tenant, items, to_insert, dict(zip(firsts, ids, strict=True)),
                               outcomes)
        except BaseException:
            if self._cache is not None:
                await self._cache.release(tenant, claimed)
            raise
        for index, first in repeats.items():
            outcomes[index] = _repeat_of(items[index], items[first], outcomes[first])
        return [outcomes[i] for i in range(len(items))]

    async def _consult_cache(
        self, tenant: uuid.UUID, items: Sequence[Submission], firsts: list[int],
        ids: list[uuid.UUID], outcomes: dict[int, SubmitOutcome],
    ) -> list[int]:
        """Answers what Redis already knows; returns the indexes left to insert."""
        if self._cache is None:
            return firsts
        claims = [(items[i].idempotency_key, f"{items[i].fingerprint}:{mid}")
                  for i, mid in zip(firsts, ids, strict=True)]
        taken = await self._cache.claim(tenant, claims)
        replay_ids: dict[int, uuid.UUID] = {}
        remaining = []
        for index, previous in zip(firsts, taken, strict=True):
            fingerprint, _, stored_id = (previous or "").partition(":")
            if previous is None:
                remaining.append(index)
            elif fingerprint != items[index].fingerprint:
                outcomes[index] = SubmitOutcome(None, _reused(items[index]))
            else:
                replay_ids[index] = uuid.UUID(stored_id)
        found = await self._load(tenant, list(replay_ids.values()))
        for index, message_id in replay_ids.items():
            if message_id in found:
                outcomes[index] = SubmitOutcome(found[message_id], replayed=True)
            else:  # the original is still in flight, or never landed: the database decides
                remaining.append(index)
        return sorted(remaining)

    async def _insert(
        self, tenant: uuid.UUID, items: Sequence[Submission], indexes: list[int],
        ids: dict[int, uuid.UUID], outcomes: dict[int, SubmitOutcome],
    ) -> None:
        if not indexes:
            return
        written, refusal = await self._write(tenant, [ids[i] for i in indexes],
                                             [items[i] for i in indexes])
        conflicts = []
        refused = refusal.ids if refusal is not None else frozenset()
        for index in indexes:
            created = written.get(ids[index])
            if ids[index] in refused:
                assert refusal is not None
                outcomes[index] = SubmitOutcome(None, quota_exceeded(
                    tenant, refusal, dt.datetime.now(dt.UTC)))
            elif created is None:
                conflicts.append(index)
            else:
                outcomes[index] = SubmitOutcome(_new_message(tenant, ids[index], items[index],
                                                             created))
        if refused and self._cache is not None:  # not sent: the key is free to use again
            await self._cache.release(tenant, [items[i].idempotency_key for i in indexes
                                               if ids[i] in refused])
        if conflicts:
            await self._resolve_conflicts(tenant, items, conflicts, outcomes)

    async def _write(self, tenant: uuid.UUID, ids: list[uuid.UUID], items: list[Submission]
                     ) -> tuple[dict[uuid.UUID, dt.datetime], QuotaRefusal | None]:
        """Counted against the tenant's quotas only when it has one: no cost otherwise."""
        quota = SegmentQuota.of(self._policy_of(tenant))
        if quota is None:
            return await self._messages.insert(tenant, ids, items), None
        return await self._messages.insert_within_quota(tenant, ids, items, quota)

    async def _resolve_conflicts(
        self, tenant: uuid.UUID, items: Sequence[Submission], indexes: list[int],
        outcomes: dict[int, SubmitOutcome],
    ) -> None:
        keys = await self._messages.find_by_keys(tenant, [items[i].idempotency_key
                                                          for i in indexes])
        found = await self._load(tenant, [mid for _, mid in keys.values()])
        for index in indexes:
            fingerprint, message_id = keys[items[index].idempotency_key]
            if fingerprint != items[index].fingerprint:
                outcomes[index] = SubmitOutcome(None, _reused(items[index]))
            else:
                outcomes[index] = SubmitOutcome(found[message_id], replayed=True)

    async def _load(self, tenant: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
        if not ids:
            return {}
        return {m.id: m for m in await self._messages.get_many(tenant, ids)}


def _split_repeats(items: Sequence[Submission]) -> tuple[list[int], dict[int, int]]:
    """Indexes of first uses of each key, and each repeat mapped to its first use."""
    first_of: dict[str, int] = {}
    firsts: list[int] = []
    repeats: dict[int, int] = {}
    for index, item in enumerate(items):
        first = first_of.setdefault(item.idempotency_key, index)
        if first == index:
            firsts.append(index)
        else:
            repeats[index] = first
    return firsts, repeats


def _repeat_of(item: Submission, first: Submission, outcome: SubmitOutcome) -> SubmitOutcome:
    if item.fingerprint != first.fingerprint:
        return SubmitOutcome(None, _reused(item))
    if outcome.message is None:
        return outcome
    return SubmitOutcome(outcome.message, replayed=True)


def _reused(item: Submission) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"idempotency key {item.idempotency_key!r} was already used for a different message")


def _new_message(tenant: uuid.UUID, message_id: uuid.UUID, item: Submission,
                 created: dt.datetime) -> Message:
    return Message(
        id=message_id, tenant_id=tenant, to=item.to, body=item.body, sender=item.sender,
        encoding=item.encoding, segments=item.segments, status=MessageStatus.QUEUED, attempts=0,
        client_reference=item.client_reference, idempotency_key=item.idempotency_key,
        created_at=created, updated_at=created, metadata=item.metadata,
        traffic_class=item.traffic_class, send_at=item.send_at, expire_at=item.expire_at,
    )
