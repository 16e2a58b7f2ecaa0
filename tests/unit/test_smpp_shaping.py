"""SMPP message shaping and receipt reading (pure)."""

from __future__ import annotations

import random

import pytest

from smsgw.adapters.providers.smpp import SmppConfig
from smsgw.adapters.providers.smpp.codec import (
    ESM_UDHI,
    TLV_MESSAGE_PAYLOAD,
    TLV_SAR_TOTAL_SEGMENTS,
    Concatenation,
    IdFormat,
    canonical_id,
    delivery_receipt,
    gsm7_bytes,
    parse_receipt,
    submit_parts,
)
from smsgw.domain.encoding import Encoding, measure
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt


def test_a_short_message_is_one_part_without_a_header() -> None:
    (part,) = submit_parts("Hello €", Encoding.GSM7, Concatenation.UDH16, 7)
    assert part.short_message == b"Hello \x1be" and part.esm_class == 0


@pytest.mark.parametrize(("mode", "header"), [
    (Concatenation.UDH8, bytes([5, 0, 3, 0x34])),
    (Concatenation.UDH16, bytes([6, 8, 4, 0x12, 0x34])),
])
def test_long_ucs2_is_split_with_a_udh_and_rejoins_exactly(mode: Concatenation,
                                                            header: bytes) -> None:
    text = "Привет 👋 " * 30
    parts = submit_parts(text, Encoding.UCS2, mode, 0x1234)
    assert len(parts) > 1
    body = b""
    for seq, part in enumerate(parts, start=1):
        udh_len = part.short_message[0] + 1
        assert part.esm_class == ESM_UDHI
        assert part.short_message[:len(header)] == header
        assert part.short_message[udh_len - 2:udh_len] == bytes([len(parts), seq])
        assert len(part.short_message) <= 140  # one SMS on the air
        body += part.short_message[udh_len:]
    assert body.decode("utf-16-be") == text  # no surrogate pair was cut


def test_gsm7_escapes_are_never_split_across_parts() -> None:
    text = "a" * 151 + "€" + "b" * 20
    parts = submit_parts(text, Encoding.GSM7, Concatenation.UDH16, 1)
    assert all(not p.short_message.endswith(b"\x1b") for p in parts)
    assert b"".join(p.short_message[7:] for p in parts) == gsm7_bytes(text)


def bodies() -> list[str]:
    """Around every part boundary: GSM-7 with escapes, UCS-2 with surrogate pairs."""
    rng = random.Random(7)
    pieces = ["a", "€", "{", "я", "😀", " "]
    found = [c * n for c in ("a", "я") for n in range(1, 700)]
    found += ["".join(rng.choices(pieces[:3], k=n)) for n in range(150, 1600, 7)]
    found += ["".join(rng.choices(pieces[2:], k=n)) for n in range(60, 700, 3)]
    return found


def test_the_default_concatenation_sends_the_parts_a_message_is_counted_for() -> None:
    """What accept counted (and limited, and prices) is what goes out."""
    default = SmppConfig("smsc", "127.0.0.1", 2775, "ghasi").concatenation
    assert default is Concatenation.UDH8
    for body in bodies():
        length = measure(body)
        for mode in (default, Concatenation.SAR):
            parts = submit_parts(body, length.encoding, mode, 1)
            assert len(parts) == length.segments, (mode, len(body), body[:20])


def test_udh16_may_take_a_part_more_and_never_fewer() -> None:
    assert len(submit_parts("я" * 200, Encoding.UCS2, Concatenation.UDH16, 1)) == 4
    assert len(submit_parts("я" * 200, Encoding.UCS2, Concatenation.UDH8, 1)) == 3
    assert len(submit_parts("a" * 459, Encoding.GSM7, Concatenation.UDH16, 1)) == 4
    assert len(submit_parts("a" * 459, Encoding.GSM7, Concatenation.UDH8, 1)) == 3
    for body in bodies():
        length = measure(body)
        parts = submit_parts(body, length.encoding, Concatenation.UDH16, 1)
        assert length.segments <= len(parts) <= length.segments + 1


def test_sar_and_payload_modes() -> None:
    text = "x" * 200
    sar = submit_parts(text, Encoding.GSM7, Concatenation.SAR, 9)
    assert len(sar) == 2 and all(p.esm_class == 0 for p in sar)
    assert dict(sar[1].tlvs)[TLV_SAR_TOTAL_SEGMENTS] == b"\x02"
    (payload,) = submit_parts(text, Encoding.GSM7, Concatenation.PAYLOAD, 9)
    assert payload.short_message == b"" and dict(payload.tlvs)[TLV_MESSAGE_PAYLOAD] == b"x" * 200


def test_receipt_tlvs_win_over_the_text() -> None:
    parsed = parse_receipt(b"id:999 stat:UNDELIV err:001",
                           {0x001E: b"1f\x00", 0x0427: bytes([2])})
    assert parsed is not None
    assert (parsed.message_id, parsed.state, parsed.status) == ("1f", "DELIVRD",
                                                                MessageStatus.DELIVERED)


def test_a_text_only_receipt_is_read() -> None:
    parsed = parse_receipt(b"id:0A1B sub:001 dlvrd:000 submit date:2611271200 "
                           b"done date:2611271201 stat:UNDELIV err:034 text:hello", {})
    assert parsed is not None
    assert (parsed.message_id, parsed.error, parsed.status) == ("0A1B", "034",
                                                                MessageStatus.UNDELIVERED)


def test_intermediate_states_and_mobile_originated_messages_settle_nothing() -> None:
    enroute = parse_receipt(b"id:1 stat:ENROUTE err:000", {})
    assert enroute is not None and enroute.status is None
    assert parse_receipt(b"hello there", {}) is None


@pytest.mark.parametrize(("text", "tlvs", "expected"), [
    (b"id:1A stat:DELIVRD err:000", {}, DeliveryReceipt("smsc", "26", MessageStatus.DELIVERED)),
    (b"", {0x001E: b"1a\x00", 0x0427: bytes([2])},
     DeliveryReceipt("smsc", "26", MessageStatus.DELIVERED)),
    (b"id:1A stat:UNDELIV err:034", {},
     DeliveryReceipt("smsc", "26", MessageStatus.UNDELIVERED, "SMPP_UNDELIV", "err:034")),
    (b"id:1A stat:EXPIRED", {},
     DeliveryReceipt("smsc", "26", MessageStatus.UNDELIVERED, "SMPP_EXPIRED", "")),
    (b"id:1A stat:REJECTD err:0x0B", {0x0427: bytes([8])},
     DeliveryReceipt("smsc", "26", MessageStatus.UNDELIVERED, "SMPP_REJECTD", "err:0x0B")),
    (b"id:1A stat:ENROUTE err:000", {}, None),
])
def test_a_receipt_settles_by_its_typed_state(text: bytes, tlvs: dict[int, bytes],
                                              expected: DeliveryReceipt | None) -> None:
    parsed = parse_receipt(text, tlvs)
    assert parsed is not None
    assert delivery_receipt(parsed, "smsc", IdFormat.HEX) == expected


@pytest.mark.parametrize(("raw", "fmt", "expected"), [
    ("1A2B", IdFormat.HEX, "6699"), ("001a2b", IdFormat.HEX, "6699"),
    ("6699", IdFormat.DECIMAL, "6699"), ("00006699", IdFormat.DECIMAL, "6699"),
    (" AbC-1\x00", IdFormat.TEXT, "abc-1"), ("not-hex", IdFormat.HEX, "not-hex"),
])
def test_ids_have_one_canonical_form(raw: str, fmt: IdFormat, expected: str) -> None:
    assert canonical_id(raw, fmt) == expected
