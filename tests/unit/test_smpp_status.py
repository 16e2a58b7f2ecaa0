"""What an SMSC's refusal means: typed command_status, however smpp34 reported it.

The library's own end of the mapping (a real ``submit_sm_resp`` and a real
``generic_nack`` for every status here) is proved in
tests/integration/test_smpp_adapter.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import smpp34

from smsgw.adapters.providers.smpp.status import (
    PERMANENT,
    THROTTLING,
    CommandStatus,
    Refusal,
    describe,
)

# Every status the adapter branches on, and what it must become.
BRANCHES = [
    (0x58, None, True),  # ESME_RTHROTTLED: slow down, submit again
    (0x14, None, True),  # ESME_RMSGQFUL: the same
    (0x01, "SMPP_INVALID_LENGTH", False),
    (0x0A, "SMPP_INVALID_SOURCE", False),
    (0x0B, "SMPP_INVALID_DESTINATION", False),
    (0x40, "SMPP_INVALID_DESTINATION_FLAG", False),
    (0x48, "SMPP_INVALID_SOURCE_TON", False),
    (0x49, "SMPP_INVALID_SOURCE_NPI", False),
    (0x50, "SMPP_INVALID_DESTINATION_TON", False),
    (0x51, "SMPP_INVALID_DESTINATION_NPI", False),
    (0x66, "SMPP_RECEIVER_REJECTED", False),
    (0x08, "SMPP_ERROR", False),  # ESME_RSYSERR: the SMSC's trouble, retried later
    (0x45, "SMPP_ERROR", False),
    (0x400, "SMPP_ERROR", False),  # vendor-specific
]


@dataclass
class Response:
    """What ``Smsc.submit_sm`` returns, for a refusal (the real class has no constructor)."""

    command_status: int
    is_success: bool = False
    message_id: str | None = None


def expected(status: int, code: str | None, throttling: bool, refusal: Refusal) -> None:
    assert refusal.status == status
    assert refusal.throttling is throttling
    if throttling:
        return
    error = refusal.error()
    assert error.code == code
    assert error.retryable is (code == "SMPP_ERROR")
    assert not error.throttled


@pytest.mark.parametrize(("status", "code", "throttling"), BRANCHES)
def test_a_refusing_response_maps_by_its_typed_status(status: int, code: str | None,
                                                       throttling: bool) -> None:
    response: Any = Response(status)
    expected(status, code, throttling, Refusal.of_response(response))


@pytest.mark.parametrize(("status", "code", "throttling"), BRANCHES)
def test_a_generic_nack_maps_to_the_same_status(status: int, code: str | None,
                                                throttling: bool) -> None:
    # smpp34 names a status it does not know ESME_RUNKNOWNERR; the text is its format.
    name = describe(status) if status in CommandStatus._value2member_map_ else "ESME_RUNKNOWNERR"
    value = status if status in CommandStatus._value2member_map_ else 0xFF
    refusal = Refusal.of_error(smpp34.SmppError(f"{name} (0x{value:08X})"))
    if value == status:
        expected(status, code, throttling, refusal)
    else:
        assert refusal.status == CommandStatus.ESME_RUNKNOWNERR
        assert refusal.error().code == "SMPP_ERROR" and refusal.error().retryable


@pytest.mark.parametrize("text", [
    "no response within 5000ms",
    "channel closed",
    "TCP connect to 127.0.0.1:2775 failed: Connection refused (os error 111)",
    # A hex number in parentheses is not a status unless it is the whole of the library's form.
    "received generic_nack in response to submit_sm with sequence_number 88 (0x00000058)",
    "",
])
def test_an_error_that_names_no_status_is_a_retryable_one_without_a_status(text: str) -> None:
    refusal = Refusal.of_error(smpp34.SmppError(text))
    assert refusal.status is None and not refusal.throttling
    error = refusal.error()
    assert (error.code, error.retryable) == ("SMPP_ERROR", True)
    assert error.description == (text or "SmppError")


def test_the_description_names_the_status_for_both_paths() -> None:
    response: Any = Response(0x0B)
    assert Refusal.of_response(response).description == "ESME_RINVDSTADR"
    nack = Refusal.of_error(smpp34.SmppError("ESME_RINVDSTADR (0x0000000B)"))
    assert nack.description == "ESME_RINVDSTADR"
    assert describe(0x400) == "0x00000400"


def test_the_statuses_agree_with_the_ones_smpp34_exports() -> None:
    exported = {name: getattr(smpp34, name) for name in dir(smpp34) if name.startswith("ESME_")}
    assert exported  # the library still exports them
    for name, value in exported.items():
        assert CommandStatus[name] == value, name


def test_every_status_branched_on_is_a_named_smpp_status() -> None:
    assert THROTTLING | set(PERMANENT) <= set(CommandStatus)
    assert not THROTTLING & set(PERMANENT)
