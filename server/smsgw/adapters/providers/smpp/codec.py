"""SMPP 3.4 message shaping and receipt reading: pure functions, no sockets.

The adapter turns one message into the ``submit_sm`` parts a carrier
expects (GSM 03.38 or UCS-2, concatenated by UDH, SAR or message_payload),
and reads delivery receipts, which carriers report in TLVs, in the
``id:… stat:… err:…`` text, or both, with message ids in whatever case and
base they like.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from smsgw.domain.encoding import (
    GSM7_MULTI,
    GSM7_SINGLE,
    UCS2_MULTI,
    UCS2_SINGLE,
    Encoding,
    chunks,
)
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt

# GSM 03.38 basic table, in code order (0x00 to 0x7F); 0x1B is the escape.
_GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
              "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
                  "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
_GSM_ENCODE = {char: bytes([code]) for code, char in enumerate(_GSM_BASIC) if code != 0x1B}
_GSM_ENCODE.update({char: bytes([0x1B, code]) for char, code in _GSM_EXTENSION.items()})

# Printable ASCII that GSM 03.38 codes with the same value (not @ $ _ ` and the
# bracket/brace characters, which move or need the escape table).
_ASCII_SAFE = frozenset(c for c in map(chr, range(0x20, 0x7F)) if _GSM_ENCODE.get(c) == c.encode())
_ASCII_SAFE |= {"\n", "\r"}

DATA_CODING = {Encoding.GSM7: 0x00, Encoding.UCS2: 0x08}
_MAX_RELATIVE = dt.timedelta(days=99, hours=23, minutes=59, seconds=59)


def validity_period(expire_at: dt.datetime | None, now: dt.datetime) -> str:
    """What is left of a message's validity in SMPP 3.4's relative time format
    (section 7.1.1: ``YYMMDDhhmmss000R``), rounded down; "" (the SMSC's default)
    without one. Years and months stay zero (their length is the SMSC's guess):
    the days count up to 99, and a message about to expire still gets a second."""
    if expire_at is None:
        return ""
    left = min(max(expire_at - now, dt.timedelta(seconds=1)), _MAX_RELATIVE)
    hours, rest = divmod(left.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{left.days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
ESM_UDHI = 0x40
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427
# Vendor-specific range: carries our message id as the client reference.
TLV_CLIENT_REFERENCE = 0x1501


class Concatenation(enum.StrEnum):
    """How the parts of a long message are tied together.

    ``udh8`` (the default) and ``sar`` fill a part as the count at accept
    assumes (153 GSM-7 or 67 UCS-2 characters); ``udh16``'s header is one
    octet longer, so its parts hold 152 or 66 and a message may need one more.
    """

    UDH8 = "udh8"  # 8-bit reference information element (IEI 0x00)
    UDH16 = "udh16"  # 16-bit reference (IEI 0x08): 65,536 references before reuse
    SAR = "sar"  # sar_* TLVs; the SMSC builds the UDH
    PAYLOAD = "payload"  # the whole text in message_payload; the SMSC splits


def gsm7_bytes(text: str) -> bytes:
    """GSM 03.38, unpacked (one septet per octet), as SMPP data_coding 0 carries it."""
    if text.isascii() and _ASCII_SAFE.issuperset(text):
        return text.encode("ascii")  # where GSM 03.38 and ASCII agree: most traffic
    return b"".join(_GSM_ENCODE[char] for char in text)


def encode_text(text: str, encoding: Encoding) -> bytes:
    return gsm7_bytes(text) if encoding is Encoding.GSM7 else text.encode("utf-16-be")


@dataclass(frozen=True, slots=True)
class SubmitPart:
    short_message: bytes
    esm_class: int = 0
    tlvs: tuple[tuple[int, bytes], ...] = ()


_SINGLE = {Encoding.GSM7: GSM7_SINGLE, Encoding.UCS2: UCS2_SINGLE}
# Per part, once a UDH takes its room: the segment count's (a 6-octet UDH) for
# udh8, and for SAR, whose UDH the SMSC builds alike; the 7-octet UDH of a
# 16-bit reference leaves 133 octets, one GSM-7 or UCS-2 character less.
_CAPACITY = {
    (Encoding.GSM7, Concatenation.UDH8): GSM7_MULTI,
    (Encoding.GSM7, Concatenation.UDH16): GSM7_MULTI - 1,
    (Encoding.GSM7, Concatenation.SAR): GSM7_MULTI,
    (Encoding.UCS2, Concatenation.UDH8): UCS2_MULTI,
    (Encoding.UCS2, Concatenation.UDH16): UCS2_MULTI - 1,
    (Encoding.UCS2, Concatenation.SAR): UCS2_MULTI,
}


def submit_parts(text: str, encoding: Encoding, mode: Concatenation,
                 reference: int) -> list[SubmitPart]:
    """The ``submit_sm`` bodies for one message; ``reference`` ties the parts together."""
    whole = encode_text(text, encoding)
    units = len(whole) if encoding is Encoding.GSM7 else len(whole) // 2
    if units <= _SINGLE[encoding]:
        return [SubmitPart(whole)]
    if mode is Concatenation.PAYLOAD:
        return [SubmitPart(b"", tlvs=((TLV_MESSAGE_PAYLOAD, whole),))]
    pieces = chunks(text, encoding, _CAPACITY[encoding, mode])
    total = len(pieces)
    if total > 255:
        raise ValueError("a message may have at most 255 parts")
    return [_part(encode_text(piece, encoding), mode, reference, total, seq)
            for seq, piece in enumerate(pieces, start=1)]


def _part(body: bytes, mode: Concatenation, ref: int, total: int, seq: int) -> SubmitPart:
    if mode is Concatenation.UDH8:
        return SubmitPart(bytes([5, 0x00, 3, ref & 0xFF, total, seq]) + body, ESM_UDHI)
    if mode is Concatenation.UDH16:
        header = bytes([6, 0x08, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq])
        return SubmitPart(header + body, ESM_UDHI)
    return SubmitPart(body, tlvs=(
        (TLV_SAR_MSG_REF_NUM, (ref & 0xFFFF).to_bytes(2, "big")),
        (TLV_SAR_TOTAL_SEGMENTS, bytes([total])),
        (TLV_SAR_SEGMENT_SEQNUM, bytes([seq]))))


class IdFormat(enum.StrEnum):
    """How a carrier writes its message ids; they are stored in one canonical form."""

    TEXT = "text"  # opaque: only case and blanks are normalised
    HEX = "hex"
    DECIMAL = "decimal"


def canonical_id(raw: str, fmt: IdFormat) -> str:
    """One spelling per id, so a receipt in another case or base still matches.

    Carriers differ in how they write the same id in ``submit_sm_resp`` and in
    the receipt (``1A2B`` vs ``1a2b``, or hex in one and decimal in the other):
    numeric ids are stored in decimal, opaque ones lower-cased.
    """
    text = raw.strip().strip("\x00").lower()
    if fmt is IdFormat.TEXT or not text:
        return text
    try:
        return str(int(text, 16 if fmt is IdFormat.HEX else 10))
    except ValueError:
        return text


_RECEIPT_TEXT = re.compile(
    rb"id:\s*(?P<id>[^\s]+).*?stat:\s*(?P<stat>[A-Za-z]+)(?:.*?err:\s*(?P<err>[^\s]+))?",
    re.DOTALL)
_STATE_BY_NUMBER = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                    6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
_FINAL = {"DELIVRD": MessageStatus.DELIVERED, "UNDELIV": MessageStatus.UNDELIVERED,
          "EXPIRED": MessageStatus.UNDELIVERED, "DELETED": MessageStatus.UNDELIVERED,
          "REJECTD": MessageStatus.UNDELIVERED, "UNDELIVERABLE": MessageStatus.UNDELIVERED}


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    message_id: str  # as the carrier wrote it
    state: str  # DELIVRD, UNDELIV, …
    error: str
    status: MessageStatus | None  # None while the message is still on its way


def parse_receipt(short_message: bytes, tlvs: dict[int, bytes]) -> ParsedReceipt | None:
    """Reads a ``deliver_sm`` receipt: the TLVs first, the text for what they lack."""
    raw_id, raw_state = tlvs.get(TLV_RECEIPTED_MESSAGE_ID), tlvs.get(TLV_MESSAGE_STATE)
    if raw_id and raw_state:
        state = _STATE_BY_NUMBER.get(raw_state[0], "UNKNOWN")
        if state == "DELIVRD":  # the common case: no need to read the text at all
            return ParsedReceipt(raw_id.rstrip(b"\x00").decode("ascii", "replace"), state, "",
                                 MessageStatus.DELIVERED)
    text = _RECEIPT_TEXT.search(short_message)
    message_id = raw_id.rstrip(b"\x00").decode("ascii", "replace") if raw_id else ""
    if not message_id and text:
        message_id = text["id"].decode("ascii", "replace")
    if not message_id:
        return None
    if raw_state:
        state = _STATE_BY_NUMBER.get(raw_state[0], "UNKNOWN")
    elif text:
        state = text["stat"].decode("ascii", "replace").upper()
    else:
        return None
    error = text["err"].decode("ascii", "replace") if text and text["err"] else ""
    return ParsedReceipt(message_id, state, error, _FINAL.get(state))


def delivery_receipt(parsed: ParsedReceipt, provider: str,
                     id_format: IdFormat) -> DeliveryReceipt | None:
    """The final outcome a receipt reports, or None while the message is still on its way."""
    if parsed.status is None:
        return None
    failed = parsed.status is not MessageStatus.DELIVERED
    return DeliveryReceipt(
        provider=provider, provider_message_id=canonical_id(parsed.message_id, id_format),
        status=parsed.status, error_code=f"SMPP_{parsed.state}" if failed else "",
        error_description=f"err:{parsed.error}" if failed and parsed.error else "")
