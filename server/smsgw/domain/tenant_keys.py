"""API keys: how they look and how they are stored (hashed: a key is shown once)."""

from __future__ import annotations

import hashlib

KEY_PREFIX = "sk_"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
