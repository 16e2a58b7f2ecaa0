"""Message ids: UUIDv7, so ids sort by creation time and index pages stay hot."""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = 0xFFF << 64
_RAND_B = (1 << 62) - 1


def new_ids(count: int) -> list[uuid.UUID]:
    millis = time.time_ns() // 1_000_000
    prefix = (millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | _VARIANT
    pool = os.urandom(10 * count)
    ids = []
    for offset in range(0, 10 * count, 10):
        rand = int.from_bytes(pool[offset:offset + 10])
        ids.append(uuid.UUID(int=prefix | (rand << 56) & _RAND_A | rand & _RAND_B))
    return ids
