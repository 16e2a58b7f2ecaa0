"""MessageStore quotas: counted with the accept, exactly, only for what was written.

Part of the message store's contract suite: Postgres and the in-memory fake alike.
"""

from __future__ import annotations

import datetime as dt
import uuid

from smsgw.app import Stores
from smsgw.domain.quota import DAY, MONTH, SegmentQuota, period_end
from tests.contract.conftest import new_tenant, submission

LONG = "x" * 200  # two GSM-7 segments


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


async def used(stores: Stores, tenant: uuid.UUID) -> dict[str, int]:
    return {u.period: u.used for u in await stores.messages.usage(tenant)}


async def test_without_a_quota_usage_is_read_from_the_messages(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    assert await used(store_ports, tenant) == {DAY: 0, MONTH: 0}
    await store_ports.messages.insert(tenant, ids(2), [submission(0), submission(1, body=LONG)])
    usage = await store_ports.messages.usage(tenant)
    assert [(u.period, u.used) for u in usage] == [(DAY, 3), (MONTH, 3)]
    today = dt.datetime.now(dt.UTC).date()
    assert usage[0].start == today and usage[1].start == today.replace(day=1)
    assert usage[0].resets_at == dt.datetime.combine(today + dt.timedelta(days=1), dt.time(),
                                                     dt.UTC)


async def test_the_items_that_fit_are_written_and_counted_the_rest_refused(
        store_ports: Stores) -> None:
    tenant, quota = await new_tenant(store_ports), SegmentQuota(daily=3)
    first = ids(2)
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, first, [submission(0), submission(1)], quota)
    assert set(written) == set(first) and refusal is None
    more = ids(3)
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, more, [submission(n) for n in (2, 3, 4)], quota)
    assert set(written) == {more[0]}
    assert refusal is not None and refusal.ids == {more[1], more[2]}
    assert (refusal.period.period, refusal.limit, refusal.period.used) == (DAY, 3, 3)
    assert refusal.period.resets_at == period_end(DAY, dt.datetime.now(dt.UTC).date())
    assert await used(store_ports, tenant) == {DAY: 3, MONTH: 3}
    assert not await store_ports.messages.find_by_keys(tenant, ["key-3", "key-4"])


async def test_a_replayed_key_is_neither_counted_nor_refused(store_ports: Stores) -> None:
    tenant, quota = await new_tenant(store_ports), SegmentQuota(daily=2)
    original = ids(1)
    await store_ports.messages.insert_within_quota(tenant, original, [submission(0)], quota)
    again = ids(2)
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, again, [submission(0), submission(1)], quota)
    assert set(written) == {again[1]} and refusal is None
    assert await used(store_ports, tenant) == {DAY: 2, MONTH: 2}
    # Full now: a replay still is no refusal, only a new key is.
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, ids(2), [submission(1), submission(7)], quota)
    assert not written and refusal is not None and len(refusal.ids) == 1
    assert await used(store_ports, tenant) == {DAY: 2, MONTH: 2}


async def test_the_monthly_quota_binds_and_resets_at_the_next_month(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, ids(2), [submission(0, body=LONG), submission(1)], SegmentQuota(monthly=2))
    assert len(written) == 1 and refusal is not None
    assert (refusal.period.period, refusal.limit) == (MONTH, 2)
    reset = refusal.period.resets_at
    assert (reset.day, reset.hour, reset > dt.datetime.now(dt.UTC)) == (1, 0, True)


async def test_order_is_kept_an_item_that_does_not_fit_stops_the_rest(
        store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    batch = ids(3)
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, batch, [submission(0), submission(1, body=LONG), submission(2)],
        SegmentQuota(daily=2))
    assert set(written) == {batch[0]}
    assert refusal is not None and refusal.ids == {batch[1], batch[2]}


async def test_a_quota_set_part_way_counts_what_the_period_already_accepted(
        store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    await store_ports.messages.insert(tenant, ids(2), [submission(0), submission(1)])
    written, refusal = await store_ports.messages.insert_within_quota(
        tenant, ids(2), [submission(2), submission(3)], SegmentQuota(daily=3, monthly=100))
    assert len(written) == 1 and refusal is not None and refusal.period.period == DAY
    assert await used(store_ports, tenant) == {DAY: 3, MONTH: 3}
