"""An SMPP provider's settings: the bind, the window, how messages are shaped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from smsgw.adapters.providers.smpp.codec import Concatenation, IdFormat


@dataclass(frozen=True, slots=True)
class SmppConfig:
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(default="", repr=False)
    system_type: str = ""
    bind_type: str = "TRX"
    window: int = 10
    default_sender: str = ""
    # udh8 parts hold what a message is counted for at accept (153 GSM-7, 67 UCS-2);
    # udh16 parts hold one character less, so a message may take a part more.
    concatenation: Concatenation = Concatenation.UDH8
    id_format: IdFormat = IdFormat.HEX  # how submit_sm_resp writes ids
    receipt_id_format: IdFormat | None = None  # how receipts do; default: the same
    throttle_retries: int = 5
    throttle_backoff_seconds: float = 0.05
    rebind_min_seconds: float = 0.2
    rebind_max_seconds: float = 30.0
    bind_wait_seconds: float = 5.0
    connect_timeout_ms: int = 5000
    inbound_capacity: int = 65536
    receipt_readers: int = 4
    sessions: int = 1  # binds to open; each has its own window

    def __post_init__(self) -> None:
        # SMPP 3.4 fixes these sizes (C-Octet-Strings, NUL included); a longer
        # value would be refused by the SMSC, so it is refused at start-up.
        for field_name, limit in (("system_id", 16), ("password", 9), ("system_type", 13)):
            if len(getattr(self, field_name).encode()) >= limit:
                raise ValueError(f"provider {self.name}: SMPP {field_name} may have at most "
                                 f"{limit - 1} characters")
        if not 1 <= self.window <= 1024:
            raise ValueError(f"provider {self.name}: window must be between 1 and 1024")

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> SmppConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = set(options) - set(known)
        if unknown:
            raise ValueError(f"provider {name}: unknown SMPP options {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in options.items():
            default = getattr(_DEFAULTS, key)
            values[key] = value if default is None else type(default)(value)
        return cls(name=name, **values)


_DEFAULTS = SmppConfig("", "", 0, "", receipt_id_format=IdFormat.HEX)
