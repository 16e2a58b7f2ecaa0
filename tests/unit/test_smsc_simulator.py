"""The SMSC simulator's pure parts: text codecs, concatenation, receipts, ids, rate limit.

The simulator is the independent peer the SMPP adapter is checked against, so
these tests pin it to the specifications (3GPP TS 23.038/23.040, SMPP 3.4)
with hand-written vectors rather than round-trips through our own encoder.
"""

from __future__ import annotations

import json
import re
from calendar import timegm

import pytest

from smsgw_simulators.smsc import (
    GSM7_BASIC,
    TAG_MESSAGE_PAYLOAD,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    Completed,
    Part,
    Reassembler,
    SegmentError,
    TokenBucket,
    decode_gsm7,
    decode_text,
    format_message_id,
    iso_utc,
    parse_args,
    parse_udh,
    receipt_text,
    smpp_date,
    split_part,
)
from smsgw_simulators.smsc.tap import relative_seconds

# ── GSM 03.38 ─────────────────────────────────────────────────────────────────


def test_gsm7_basic_table_spot_checks() -> None:
    # Code points straight from TS 23.038 table 6.2.1.
    assert decode_gsm7(bytes([0x00, 0x01, 0x02, 0x03])) == "@£$¥"
    assert decode_gsm7(bytes([0x10, 0x11, 0x12, 0x1A])) == "Δ_ΦΞ"
    assert decode_gsm7(bytes([0x1C, 0x1D, 0x1E, 0x1F])) == "ÆæßÉ"
    assert decode_gsm7(bytes([0x24, 0x40, 0x5F, 0x60, 0x7F])) == "¤¡§¿à"
    assert decode_gsm7(bytes([0x5B, 0x5C, 0x5D, 0x5E])) == "ÄÖÑÜ"
    assert decode_gsm7(bytes([0x7B, 0x7C, 0x7D, 0x7E])) == "äöñü"
    assert decode_gsm7(b"Hello, World! 0123?") == "Hello, World! 0123?"
    assert decode_gsm7(bytes([0x0A, 0x0D])) == "\n\r"


def test_gsm7_basic_table_is_complete_and_distinct() -> None:
    assert len(GSM7_BASIC) == 128
    printable = [c for i, c in enumerate(GSM7_BASIC) if i != 0x1B]
    assert len(set(printable)) == 127


def test_gsm7_extension_table() -> None:
    assert decode_gsm7(b"\x1b\x65") == "€"
    assert decode_gsm7(b"\x1b\x28\x1b\x29\x1b\x3c\x1b\x3e") == "{}[]"
    assert decode_gsm7(b"\x1b\x14\x1b\x2f\x1b\x3d\x1b\x40\x1b\x0a") == "^\\~|\f"
    assert decode_gsm7(b"5\x1b\x65 a\x1b\x40b") == "5€ a|b"


def test_gsm7_unknown_escape_falls_back_to_basic_and_lone_escape_is_dropped() -> None:
    assert decode_gsm7(b"\x1bA") == "A"
    assert decode_gsm7(b"ok\x1b") == "ok"


def test_gsm7_octets_above_0x7f_are_not_septets() -> None:
    assert decode_gsm7(b"a\x80") == "a\ufffd"


# ── other codings ─────────────────────────────────────────────────────────────


def test_ucs2_with_a_surrogate_pair() -> None:
    data = b"\x00H\x00i\x00 \xd8\x3d\xde\x00\x04\x1f"  # "Hi 😀П"
    assert decode_text(data, 8) == "Hi \U0001f600П"


def test_latin1_and_ascii() -> None:
    assert decode_text(b"caf\xe9", 3) == "café"
    assert decode_text(b"plain", 1) == "plain"
    assert decode_text(b"\x1b\x65", 0) == "€"


# ── UDH / SAR / payload ───────────────────────────────────────────────────────


def test_udh_8bit_reference() -> None:
    assert parse_udh(b"\x05\x00\x03\x2a\x03\x02body") == (0x2A, 3, 2, "udh8", b"body")


def test_udh_16bit_reference() -> None:
    assert parse_udh(b"\x06\x08\x04\x12\x34\x02\x01xy") == (0x1234, 2, 1, "udh16", b"xy")


def test_udh_skips_other_information_elements() -> None:
    # 0x24 (national language single shift, 1 octet) precedes the concat IE.
    assert parse_udh(b"\x08\x24\x01\x02\x00\x03\x07\x02\x01z") == (7, 2, 1, "udh8", b"z")
    assert parse_udh(b"\x03\x24\x01\x02z") == (0, 1, 1, None, b"z")


@pytest.mark.parametrize("data", [b"", b"\x05\x00\x03\x01", b"\x02\x00\x03", b"\x03\x00\x05\x01"])
def test_truncated_udh_is_rejected(data: bytes) -> None:
    with pytest.raises(SegmentError):
        parse_udh(data)


def test_split_part_modes() -> None:
    assert split_part(0, b"hi", {}) == Part("single", b"hi")
    assert split_part(0, b"", {TAG_MESSAGE_PAYLOAD: b"long"}) == Part("payload", b"long")
    assert split_part(0x40, b"\x05\x00\x03\x09\x02\x02yo", {}) == Part("udh8", b"yo", 9, 2, 2)
    sar = {TAG_SAR_MSG_REF_NUM: b"\x01\x02", TAG_SAR_TOTAL_SEGMENTS: b"\x03",
           TAG_SAR_SEGMENT_SEQNUM: b"\x01"}
    assert split_part(0, b"abc", sar) == Part("sar", b"abc", 0x0102, 3, 1)
    # UDH inside message_payload.
    udh_payload = {TAG_MESSAGE_PAYLOAD: b"\x05\x00\x03\x09\x02\x01AB"}
    assert split_part(0x40, b"", udh_payload) == Part("udh8", b"AB", 9, 2, 1)


@pytest.mark.parametrize("seq, total", [(0, 2), (3, 2)])
def test_segment_number_out_of_range_is_rejected(seq: int, total: int) -> None:
    with pytest.raises(SegmentError):
        split_part(0x40, bytes([5, 0, 3, 1, total, seq]) + b"x", {})


def _udh8(ref: int, total: int, seq: int, body: bytes) -> bytes:
    return bytes([5, 0, 3, ref, total, seq]) + body


def test_udh8_reassembly_out_of_order_ucs2_with_a_pair_split_across_parts() -> None:
    text = "ab\U0001f600cd"
    raw = text.encode("utf-16-be")  # the surrogate pair spans bytes 4..7
    chunks = [raw[:6], raw[6:10], raw[10:]]  # part 1 ends inside the pair
    r = Reassembler()
    done = None
    for seq in (3, 1, 2):
        part = split_part(0x40, _udh8(7, 3, seq, chunks[seq - 1]), {})
        done = r.add("esme", "GW", "316", part, 8, f"id{seq}", "ref-1")
        if seq != 2:
            assert done is None
    assert done is not None
    assert done.text == text
    assert (done.parts, done.mode, done.client_ref) == (3, "udh8", "ref-1")
    assert done.message_ids == ["id1", "id2", "id3"]
    assert r.pending == {}


def test_udh16_reassembly_gsm7() -> None:
    r = Reassembler()
    first = split_part(0x40, b"\x06\x08\x04\x01\x00\x02\x01" + b"price: 5\x1b", {})
    second = split_part(0x40, b"\x06\x08\x04\x01\x00\x02\x02" + b"\x65 only", {})
    assert r.add("s", "a", "b", first, 0, "1", None) is None
    done = r.add("s", "a", "b", second, 0, "2", None)
    assert done is not None
    assert (done.text, done.mode) == ("price: 5€ only", "udh16")


def test_sar_reassembly() -> None:
    r = Reassembler()

    def sar(seq: int, body: bytes) -> Part:
        return split_part(0, body, {TAG_SAR_MSG_REF_NUM: b"\x00\x05",
                                    TAG_SAR_TOTAL_SEGMENTS: b"\x02",
                                    TAG_SAR_SEGMENT_SEQNUM: bytes([seq])})

    assert r.add("s", "a", "b", sar(2, b"world"), 3, "2", "x") is None
    done = r.add("s", "a", "b", sar(1, b"hello "), 3, "1", "x")
    assert done is not None
    assert (done.text, done.mode, done.data_coding) == ("hello world", "sar", 3)


def test_a_repeated_part_is_a_duplicate_and_the_first_copy_wins() -> None:
    r = Reassembler()
    assert r.add("s", "a", "b", Part("udh8", b"one ", 1, 2, 1), 0, "1", "m") is None
    assert r.add("s", "a", "b", Part("udh8", b"ONE ", 1, 2, 1), 0, "1b", "m") is None
    done = r.add("s", "a", "b", Part("udh8", b"two", 1, 2, 2), 0, "2", "m")
    assert done is not None
    assert (done.text, done.duplicate_parts, done.message_ids) == ("one two", 1, ["1", "2"])
    assert r.duplicate_parts == 1


def test_a_retransmitted_part_after_completion_is_a_duplicate() -> None:
    r = Reassembler()
    r.add("s", "a", "b", Part("udh8", b"x", 4, 2, 1), 0, "1", "m")
    assert r.add("s", "a", "b", Part("udh8", b"y", 4, 2, 2), 0, "2", "m") is not None
    assert r.add("s", "a", "b", Part("udh8", b"y", 4, 2, 2), 0, "3", "m") is None
    assert (r.duplicate_parts, r.pending) == (1, {})
    # The same reference for a different message starts a new one.
    assert r.add("s", "a", "b", Part("udh8", b"p", 4, 2, 1), 0, "4", "n") is None
    assert len(r.pending) == 1


def test_parts_are_keyed_by_addresses_and_total() -> None:
    r = Reassembler()
    r.add("s", "a", "dest1", Part("udh8", b"1", 9, 2, 1), 0, "1", None)
    r.add("s", "a", "dest2", Part("udh8", b"2", 9, 2, 1), 0, "2", None)
    r.add("s", "a", "dest1", Part("udh8", b"3", 9, 3, 1), 0, "3", None)
    assert len(r.pending) == 3
    done = r.add("s", "a", "dest2", Part("udh8", b"!", 9, 2, 2), 0, "4", None)
    assert done is not None
    assert (done.to, done.from_, done.text) == ("dest2", "a", "2!")


def test_reusing_a_reference_with_another_client_ref_abandons_the_old_parts() -> None:
    r = Reassembler()
    r.add("s", "a", "b", Part("udh8", b"old", 2, 2, 1), 0, "1", "first")
    r.add("s", "a", "b", Part("udh8", b"new ", 2, 2, 1), 0, "2", "second")
    done = r.add("s", "a", "b", Part("udh8", b"msg", 2, 2, 2), 0, "3", "second")
    assert done is not None
    assert (done.text, done.client_ref, r.abandoned) == ("new msg", "second", 1)


def test_single_part_completes_at_once() -> None:
    done = Reassembler().add("s", "GW", "316", Part("single", b"hi"), 0, "ab", "r")
    assert done == Completed("r", "316", "GW", "hi", 0, 1, ["ab"], "single")


def test_journal_line_is_one_json_object() -> None:
    line = Completed('q"1', "316", "GW", 'a\n"€😀', 8, 2, ["1", "2"], "udh8", 1).journal_line(
        "2024-05-01T12:00:00.000+00:00")
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "client_ref": 'q"1', "to": "316", "from": "GW", "text": 'a\n"€😀',
        "data_coding": 8, "parts": 2, "message_ids": ["1", "2"], "mode": "udh8",
        "duplicate_parts": 1, "received_at": "2024-05-01T12:00:00.000+00:00"}
    no_ref = Completed(None, "1", "2", "t", 0, 1, ["x"], "single").journal_line("now")
    assert json.loads(no_ref)["client_ref"] is None


# ── receipts, ids, dates ──────────────────────────────────────────────────────

SUBMITTED = timegm((2024, 5, 1, 12, 34, 56)) + 0.5
DONE = timegm((2024, 5, 1, 12, 35, 1))


def test_receipt_text_delivered() -> None:
    text = receipt_text("a1b2", SUBMITTED, DONE, True, "Hello there, this is a long message")
    assert text == ("id:a1b2 sub:001 dlvrd:001 submit date:2405011234 done date:2405011235 "
                    "stat:DELIVRD err:000 text:Hello there, this is")


def test_receipt_text_undelivered_and_non_ascii() -> None:
    text = receipt_text("99", SUBMITTED, SUBMITTED, False, "€uro ünïcode")
    assert text == ("id:99 sub:001 dlvrd:000 submit date:2405011234 done date:2405011234 "
                    "stat:UNDELIV err:001 text:?uro ?n?code")
    pattern = (r"id:(\S+) sub:\d{3} dlvrd:\d{3} submit date:\d{10} done date:\d{10} "
               r"stat:(DELIVRD|UNDELIV) err:\d{3} text:.{0,20}")
    assert re.fullmatch(pattern, text)


def test_smpp_and_iso_dates_are_utc() -> None:
    assert smpp_date(SUBMITTED) == "2405011234"
    assert iso_utc(SUBMITTED) == "2024-05-01T12:34:56.500+00:00"


def test_message_id_formats() -> None:
    assert format_message_id(255, "hex") == "ff"
    assert format_message_id(255, "upper-hex") == "FF"
    assert format_message_id(255, "decimal") == "255"
    with pytest.raises(ValueError, match="unknown"):
        format_message_id(1, "base64")


def test_token_bucket() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=4, burst=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 0.25  # one token
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 10  # refills only up to the burst
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_cli_options() -> None:
    o = parse_args(["--port", "2775"])
    assert (o.port, o.id_format, o.receipt_id_format, o.receipt_tlvs) == (2775, "hex", None, True)
    assert o.receipt_delay_ms == 50
    o = parse_args(["--port", "1", "--no-receipt-tlvs", "--receipt-id-format", "decimal",
                    "--receipt-before-resp", "--max-tps", "50", "--throttle-rate", "0.1"])
    assert (o.receipt_tlvs, o.receipt_id_format, o.receipt_before_resp) == (False, "decimal", True)
    assert (o.max_tps, o.throttle_rate) == (50, 0.1)


@pytest.mark.parametrize("argv", [
    ["--port", "1", "--reject-rate", "1.5"],
    ["--port", "1", "--throttle-rate", "0.6", "--reject-rate", "0.6"],
    ["--port", "1", "--id-format", "octal"],
])
def test_cli_rejects_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_receipt_text_expired() -> None:
    text = receipt_text("1f", 0.0, 60.0, False, "late", expired=True)
    assert " stat:EXPIRED err:000 " in text and " dlvrd:000 " in text


@pytest.mark.parametrize(("validity", "seconds"), [
    ("000000001000000R", 600.0), ("000001020304000R", 93784.0),
    ("010200000000000R", (365 + 60) * 86400.0),
    ("", None), ("300601120000000+", None), ("0000000010000R", None)])
def test_relative_validity_periods(validity: str, seconds: float | None) -> None:
    assert relative_seconds(validity) == seconds
