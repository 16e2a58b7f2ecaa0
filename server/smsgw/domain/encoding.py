"""GSM 03.38 / UCS-2 detection and segment counting.

A message that fits the GSM-7 alphabet costs one septet per character, two
for the extension table (an escape plus the character). Anything else goes as
UCS-2, counted in UTF-16 code units, so characters outside the BMP (most
emoji) cost two. Concatenated segments lose room to the UDH: 153 septets or
67 code units each. Neither an escape pair nor a surrogate pair may be split
across segments, so long messages are packed greedily rather than divided.

This count, made at accept (the segment limit, and whatever is priced or
rate-limited per segment), assumes the common 6-octet UDH of an 8-bit
reference: what the SMPP adapter sends by default. A provider shaped
otherwise (SMPP ``udh16``: 152 or 66 per part) may send a part more; its
adapter reports every part it sent (``SendResult.part_ids``): the parts that
went out are the ones a message costs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

CostFn = Callable[[str], int]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_ALPHABET = GSM7_BASIC | GSM7_EXTENSION

# One message alone, and each part of a concatenated one (a 6-octet UDH).
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


class Encoding(enum.IntEnum):
    """Numbered as in the protobuf enum."""

    GSM7 = 1
    UCS2 = 2


@dataclass(frozen=True, slots=True)
class EncodedLength:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def measure(body: str) -> EncodedLength:
    chars = set(body)
    if chars <= GSM7_BASIC:
        return _measured(Encoding.GSM7, len(body), GSM7_SINGLE, GSM7_MULTI, body, _gsm7_cost)
    if chars <= GSM7_ALPHABET:
        units = len(body) + sum(body.count(c) for c in chars & GSM7_EXTENSION)
        return _measured(Encoding.GSM7, units, GSM7_SINGLE, GSM7_MULTI, body, _gsm7_cost)
    units = len(body.encode("utf-16-le")) // 2
    return _measured(Encoding.UCS2, units, UCS2_SINGLE, UCS2_MULTI, body, _ucs2_cost)


def _gsm7_cost(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def _ucs2_cost(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _measured(
    encoding: Encoding, units: int, single: int, multi: int, body: str, cost: CostFn
) -> EncodedLength:
    if units <= single:
        return EncodedLength(encoding, units, 1 if units else 0)
    return EncodedLength(encoding, units, len(_chunks(body, multi, cost)))


def _chunks(body: str, capacity: int, cost: CostFn) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in body:
        step = cost(char)
        if used + step > capacity:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += step
    parts.append("".join(current))
    return parts


def split(body: str) -> list[str]:
    """The text of each segment, as a provider adapter must send it."""
    length = measure(body)
    if length.segments <= 1:
        return [body]
    if length.encoding is Encoding.GSM7:
        return _chunks(body, GSM7_MULTI, _gsm7_cost)
    return _chunks(body, UCS2_MULTI, _ucs2_cost)


def chunks(body: str, encoding: Encoding, capacity: int) -> list[str]:
    """Splits ``body`` into parts of at most ``capacity`` units, never inside a pair."""
    return _chunks(body, capacity, _gsm7_cost if encoding is Encoding.GSM7 else _ucs2_cost)
