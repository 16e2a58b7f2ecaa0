"""In-memory fakes of every store port, sharing one ``MemoryState``.

For unit tests of the services (and anything else that wants a gateway
without Postgres or Redis): ``MemoryStores()`` gives one of each, over one
state, as the Postgres adapters share one database. The contract suites in
``tests/contract`` hold them to the Postgres adapters' behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smsgw.adapters.memory.cache import (
    MemoryIdempotencyCache,
    MemoryRateLimiter,
    MemoryTenantRateLimiter,
)
from smsgw.adapters.memory.dead_letters import MemoryDeadLetterStore
from smsgw.adapters.memory.events import MemoryEventLog
from smsgw.adapters.memory.messages import MemoryMessageStore, MemoryTenantDirectory
from smsgw.adapters.memory.outbox import MemoryOutbox
from smsgw.adapters.memory.receipts import MemoryReceiptStore
from smsgw.adapters.memory.state import MemoryState
from smsgw.adapters.memory.webhooks import MemoryWebhookStore
from smsgw.ports import (
    DeadLetterStore,
    EventLog,
    IdempotencyCache,
    MessageStore,
    Outbox,
    RateLimiter,
    ReceiptStore,
    TenantDirectory,
    TenantRateLimiter,
    WebhookStore,
)


def rate_limiter(rate: float, burst: int) -> RateLimiter:
    return MemoryRateLimiter(rate, burst)


@dataclass
class MemoryStores:
    state: MemoryState = field(default_factory=MemoryState)

    def __post_init__(self) -> None:
        # Typed as the ports: mypy proves each fake implements its Protocol.
        self.messages: MessageStore = MemoryMessageStore(self.state)
        self.outbox: Outbox = MemoryOutbox(self.state)
        self.events: EventLog = MemoryEventLog(self.state)
        self.receipts: ReceiptStore = MemoryReceiptStore(self.state)
        self.webhooks: WebhookStore = MemoryWebhookStore(self.state)
        self.dead_letters: DeadLetterStore = MemoryDeadLetterStore(self.state)
        self.tenants: TenantDirectory = MemoryTenantDirectory(self.state)
        self.cache: IdempotencyCache = MemoryIdempotencyCache()
        self.tenant_rates: TenantRateLimiter = MemoryTenantRateLimiter()


__all__ = ["MemoryDeadLetterStore", "MemoryEventLog", "MemoryIdempotencyCache",
           "MemoryMessageStore", "MemoryOutbox", "MemoryRateLimiter", "MemoryReceiptStore",
           "MemoryState", "MemoryStores", "MemoryTenantDirectory", "MemoryTenantRateLimiter",
           "MemoryWebhookStore"]
