"""GSM-7 / UCS-2 detection, segment counting and splitting."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from smsgw.domain.encoding import EncodedLength, Encoding, measure, split
from smsgw.proto import sms_pb2

# Written out here rather than imported, so a change to the alphabet tables fails a test.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = "\f^{}\\[~]|€"
EMOJI = "😀"  # U+1F600: a surrogate pair in UTF-16


def gsm7(n: int) -> EncodedLength:
    return EncodedLength(Encoding.GSM7, n, _segments(n, 160, 153))


def ucs2(n: int) -> EncodedLength:
    return EncodedLength(Encoding.UCS2, n, _segments(n, 70, 67))


def _segments(units: int, single: int, multi: int) -> int:
    if units <= single:
        return 1 if units else 0
    return -(-units // multi)


def _septets(text: str) -> int:
    return sum(2 if c in EXTENSION else 1 for c in text)


def _code_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_encoding_numbers_match_the_protobuf_enum() -> None:
    assert int(Encoding.GSM7) == int(sms_pb2.ENCODING_GSM7) == 1
    assert int(Encoding.UCS2) == int(sms_pb2.ENCODING_UCS2) == 2


def test_basic_alphabet_has_127_characters_of_one_septet_each() -> None:
    assert len(set(BASIC)) == 127
    assert measure(BASIC) == EncodedLength(Encoding.GSM7, 127, 1)


@pytest.mark.parametrize("char", list(BASIC))
def test_each_basic_character_is_one_septet(char: str) -> None:
    assert measure(char) == EncodedLength(Encoding.GSM7, 1, 1)


@pytest.mark.parametrize("char", list(EXTENSION))
def test_each_extension_character_is_two_septets(char: str) -> None:
    assert measure(char) == EncodedLength(Encoding.GSM7, 2, 1)
    assert measure("a" * 158 + char) == EncodedLength(Encoding.GSM7, 160, 1)
    assert measure("a" * 159 + char) == EncodedLength(Encoding.GSM7, 161, 2)


def test_all_extension_characters_together() -> None:
    assert measure(EXTENSION) == EncodedLength(Encoding.GSM7, 20, 1)
    assert measure(BASIC + EXTENSION) == EncodedLength(Encoding.GSM7, 147, 1)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (159, 1), (160, 1), (161, 2), (305, 2), (306, 2), (307, 3),
     (459, 3), (460, 4), (612, 4), (613, 5), (1530, 10), (1531, 11)],
)
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    assert measure("a" * length) == EncodedLength(Encoding.GSM7, length, segments)


@pytest.mark.parametrize(
    ("count", "segments"), [(80, 1), (81, 2), (152, 2), (153, 3)],
)
def test_extension_only_bodies_pack_whole_escape_pairs(count: int, segments: int) -> None:
    # A concatenated segment holds 76 escape pairs (152 septets), never 76.5.
    assert measure("€" * count) == EncodedLength(Encoding.GSM7, 2 * count, segments)


def test_extension_character_straddling_a_boundary_moves_to_the_next_segment() -> None:
    body = "a" * 152 + "€" + "a" * 152
    assert measure(body) == EncodedLength(Encoding.GSM7, 306, 3)
    assert split(body) == ["a" * 152, "€" + "a" * 151, "a"]


def test_extension_character_ending_exactly_on_a_boundary_stays() -> None:
    body = "a" * 151 + "€" + "a" * 153
    assert measure(body) == EncodedLength(Encoding.GSM7, 306, 2)
    assert split(body) == ["a" * 151 + "€", "a" * 153]


def test_extension_character_at_the_start_of_a_segment() -> None:
    body = "a" * 153 + "€" + "a" * 151
    assert measure(body) == EncodedLength(Encoding.GSM7, 306, 2)
    assert split(body) == ["a" * 153, "€" + "a" * 151]


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (670, 10), (671, 11)],
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    assert measure("я" * length) == EncodedLength(Encoding.UCS2, length, segments)


@pytest.mark.parametrize(
    ("count", "units", "segments"),
    [(1, 2, 1), (35, 70, 1), (36, 72, 2), (66, 132, 2), (67, 134, 3)],
)
def test_emoji_count_two_code_units(count: int, units: int, segments: int) -> None:
    # 33 pairs (66 units) fill a concatenated segment; a 34th would need 68.
    assert measure(EMOJI * count) == EncodedLength(Encoding.UCS2, units, segments)


def test_emoji_straddling_a_boundary_is_not_split() -> None:
    body = "я" * 66 + EMOJI + "я" * 66
    assert measure(body) == EncodedLength(Encoding.UCS2, 134, 3)
    assert split(body) == ["я" * 66, EMOJI + "я" * 65, "я"]


def test_emoji_ending_exactly_on_a_boundary_stays() -> None:
    body = "я" * 65 + EMOJI + "я" * 67
    assert measure(body) == EncodedLength(Encoding.UCS2, 134, 2)
    assert split(body) == ["я" * 65 + EMOJI, "я" * 67]


@pytest.mark.parametrize(
    ("body", "units"),
    [
        ("Hello Ж", 7),  # Cyrillic
        ("Hello مرحبا", 11),  # Arabic
        ("Hello 你好", 8),  # Chinese
        ("Price: 5€ Ж", 11),  # extension characters cost one unit in UCS-2
        ("a" * 69 + "Ж", 70),
        (EMOJI + "a", 3),
    ],
)
def test_one_non_gsm_character_forces_ucs2(body: str, units: int) -> None:
    assert measure(body) == ucs2(units)


def test_one_non_gsm_character_turns_160_septets_into_three_segments() -> None:
    assert measure("a" * 159 + "Ж") == EncodedLength(Encoding.UCS2, 160, 3)


@pytest.mark.parametrize("char", ["`", "\t", "á", "â", "ê", "õ", "ç", "Ω̃", "\u00a0", "«"])
def test_characters_outside_gsm7_are_ucs2(char: str) -> None:
    assert measure("abc" + char).encoding is Encoding.UCS2


def test_empty_body_has_no_segments() -> None:
    assert measure("") == EncodedLength(Encoding.GSM7, 0, 0)
    assert split("") == [""]


@pytest.mark.parametrize("body", ["a", "a" * 160, "€" * 80, "я" * 70, EMOJI * 35])
def test_single_segment_bodies_are_not_split(body: str) -> None:
    assert split(body) == [body]


def _capacity(body: str) -> tuple[int, Callable[[str], int]]:
    if measure(body).encoding is Encoding.GSM7:
        return 153, _septets
    return 67, _code_units


def _random_body(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


ALPHABETS = {
    "basic": BASIC,
    "extension-heavy": "ab" + EXTENSION,
    "cyrillic": "абвгд €{",
    "emoji-heavy": "ab" + EMOJI + "👍🏽",
}


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("alphabet", sorted(ALPHABETS))
def test_split_reassembles_and_each_part_fits(alphabet: str, seed: int) -> None:
    rng = random.Random(f"{alphabet}-{seed}")
    body = _random_body(rng, ALPHABETS[alphabet], rng.randint(1, 700))
    parts = split(body)
    length = measure(body)
    assert "".join(parts) == body
    assert len(parts) == max(length.segments, 1)
    if len(parts) == 1:
        return
    capacity, cost = _capacity(body)
    costs = [cost(p) for p in parts]
    assert all(0 < c <= capacity for c in costs)
    assert sum(costs) == length.units
    # Greedy: no part could have taken the first character of the next one.
    for part, nxt in itertools.pairwise(parts):
        assert cost(part + nxt[0]) > capacity
