"""SMPP constants and the text codecs of a ``submit_sm`` body (GSM 03.38, UCS-2, ...).

Numeric constants, so nothing depends on smpp34's dynamic exports; written
independently of the gateway's own encoder, so the two cross-check.
"""

from __future__ import annotations

from typing import Final

ESME_RINVBNDSTS: Final = 0x04
ESME_RINVDSTADR: Final = 0x0B
ESME_RMSGQFUL: Final = 0x14
ESME_RINVESMCLASS: Final = 0x43
ESME_RTHROTTLED: Final = 0x58
ESME_RINVOPTPARAMVAL: Final = 0xC4

TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_SAR_MSG_REF_NUM: Final = 0x020C
TAG_SAR_TOTAL_SEGMENTS: Final = 0x020E
TAG_SAR_SEGMENT_SEQNUM: Final = 0x020F
TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_MESSAGE_STATE: Final = 0x0427
TAG_CLIENT_REF: Final = 0x1501  # vendor-specific: the gateway's message id, ASCII

STATE_DELIVERED: Final = 2
STATE_EXPIRED: Final = 3
STATE_UNDELIVERABLE: Final = 5

ESM_UDHI: Final = 0x40
ESM_DELIVERY_RECEIPT: Final = 0x04

# ── GSM 03.38 default alphabet (3GPP TS 23.038), unpacked: one septet per byte ──

GSM7_ESCAPE: Final = 0x1B
# Index = septet value. Position 0x1B is the escape to the extension table.
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128
GSM7_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
# Byte -> character for the escape-free fast path; bytes above 0x7F are not septets.
_GSM7_TRANSLATE: Final[dict[int, str]] = {
    **{i: GSM7_BASIC[i] for i in range(128)},
    **{i: "\ufffd" for i in range(128, 256)},
}


def decode_gsm7(data: bytes) -> str:
    """Decode unpacked GSM 7-bit default alphabet, with the 0x1B extension table.

    An escape followed by a code with no extension character shows the basic
    character (TS 23.038's fallback); a trailing lone escape is dropped.
    Octets above 0x7F are not septets and decode to U+FFFD.
    """
    if GSM7_ESCAPE not in data:
        return data.decode("latin-1").translate(_GSM7_TRANSLATE)
    out: list[str] = []
    escaped = False
    for byte in data:
        if escaped:
            escaped = False
            char = GSM7_EXTENSION.get(byte)
            if char is None:
                char = " " if byte == GSM7_ESCAPE else _GSM7_TRANSLATE[byte]
            out.append(char)
        elif byte == GSM7_ESCAPE:
            escaped = True
        else:
            out.append(_GSM7_TRANSLATE[byte])
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    """The text of a message body for an SMPP ``data_coding``.

    0 GSM 03.38 (unpacked), 1 IA5/ASCII, 3 Latin-1, 8 UCS-2/UTF-16BE (surrogate
    pairs allowed); anything else decodes as Latin-1 so the journal still shows
    something. Undecodable input is replaced, never raised.
    """
    if data_coding == 0:
        return decode_gsm7(data)
    if data_coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == 1:
        return data.decode("ascii", errors="replace")
    return data.decode("latin-1")
