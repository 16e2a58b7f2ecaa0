"""MessageStore and TenantDirectory: the same behaviour from Postgres and from the fake."""

from __future__ import annotations

import datetime as dt
import uuid

from smsgw.app import Stores
from smsgw.domain.model import MessageFilter, PageRequest
from smsgw.domain.status import MessageStatus
from smsgw.services.claims import claim_due
from tests.contract.conftest import accepted, submission


async def test_insert_writes_new_keys_and_leaves_taken_ones_out(store_ports: Stores) -> None:
    tenant, (first,) = await accepted(store_ports)
    again = uuid.uuid4()
    written = await store_ports.messages.insert(tenant, [again, uuid.uuid4()],
                                           [submission(0), submission(1)])
    assert again not in written and len(written) == 1
    keys = await store_ports.messages.find_by_keys(tenant, ["key-0", "key-1", "nope"])
    assert keys["key-0"] == (submission(0).fingerprint, first) and set(keys) == {
        "key-0", "key-1"}


async def test_keys_and_reads_are_per_tenant(store_ports: Stores) -> None:
    tenant, (mine,) = await accepted(store_ports)
    other, _ = await accepted(store_ports)  # the same key, another tenant: a new message
    assert [m.id for m in await store_ports.messages.get_many(tenant, [mine])] == [mine]
    assert await store_ports.messages.get_many(other, [mine]) == []
    stored = (await store_ports.messages.get_many(tenant, [mine]))[0]
    assert (stored.status, stored.attempts, stored.body) == (MessageStatus.QUEUED, 0, "hello 0")


async def test_list_is_newest_first_filtered_and_paged(store_ports: Stores) -> None:
    tenant, ids = await accepted(store_ports, 5)
    everything = await store_ports.messages.list(tenant, MessageFilter(), PageRequest(10, None))
    assert {m.id for m in everything} == set(ids)
    keys = [(m.created_at, m.id) for m in everything]
    assert keys == sorted(keys, reverse=True)
    first = await store_ports.messages.list(tenant, MessageFilter(), PageRequest(2, None))
    rest = await store_ports.messages.list(tenant, MessageFilter(), PageRequest(
        10, (first[-1].created_at, first[-1].id)))
    assert [m.id for m in first + rest] == [m.id for m in everything]
    queued = MessageFilter(statuses=(MessageStatus.QUEUED,), to="+16502530000")
    assert len(await store_ports.messages.list(tenant, queued, PageRequest(10, None))) == 5
    later = MessageFilter(created_from=everything[0].created_at + dt.timedelta(seconds=1))
    assert await store_ports.messages.list(tenant, later, PageRequest(10, None)) == []
    sent = MessageFilter(statuses=(MessageStatus.SENT,))
    assert await store_ports.messages.list(tenant, sent, PageRequest(10, None)) == []


async def test_only_a_queued_message_not_yet_leased_can_be_canceled(store_ports: Stores) -> None:
    tenant, (first, second) = await accepted(store_ports, 2)
    canceled = await store_ports.messages.cancel(tenant, first)
    assert canceled is not None and canceled.status is MessageStatus.CANCELED
    assert canceled.error_code == "CANCELED"
    assert await store_ports.messages.cancel(tenant, first) is None  # already final
    assert await store_ports.outbox.depth() == 1
    await claim_due(store_ports.outbox, "relay", 10, 60)
    assert await store_ports.messages.cancel(tenant, second) is None  # handed to the relay
    assert await store_ports.messages.cancel(uuid.uuid4(), second) is None


async def test_tenants_issue_keys_that_find_them_with_their_scopes(store_ports: Stores) -> None:
    tenant, key = await store_ports.tenants.create("acme", ("send", "admin"))
    found = await store_ports.tenants.by_key(key)
    assert found is not None and found.id == tenant.id and found.scopes == {"send", "admin"}
    again, second_key = await store_ports.tenants.create("acme")
    assert again.id == tenant.id and second_key != key
    by_second = await store_ports.tenants.by_key(second_key)
    assert by_second is not None and by_second.scopes == {"send"}
    assert await store_ports.tenants.by_key("sk_not-a-key") is None
