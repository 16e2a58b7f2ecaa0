"""E.164 normalisation and masking."""

from __future__ import annotations

import pytest

from smsgw.domain.errors import FieldViolation
from smsgw.domain.phone import mask, normalize

E164_FORM = "must be in E.164 form, starting with '+'"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 650-253-0000", "+16502530000"),  # United States
        ("+16502530000", "+16502530000"),
        ("+1 (650) 253-0000", "+16502530000"),
        ("+44 20 7946 0958", "+442079460958"),  # United Kingdom, London
        ("+93 70 123 4567", "+93701234567"),  # Afghanistan, mobile
        ("+49 30 123456", "+4930123456"),  # Germany, Berlin
        ("+33 6 12 34 56 78", "+33612345678"),  # France, mobile
        ("+91 98765 43210", "+919876543210"),  # India, mobile
        ("+81 3-1234-5678", "+81312345678"),  # Japan, Tokyo
        ("  +44 20 7946 0958  ", "+442079460958"),
    ],
)
def test_valid_international_numbers_normalise_to_e164(raw: str, e164: str) -> None:
    assert normalize(raw, "to", None) == e164


@pytest.mark.parametrize("region", ["US", "GB", "AF", "DE"])
def test_numbers_with_plus_ignore_the_default_region(region: str) -> None:
    assert normalize("+44 20 7946 0958", "to", region) == "+442079460958"


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("650-253-0000", "US", "+16502530000"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("070 123 4567", "AF", "+93701234567"),
        ("030 123456", "DE", "+4930123456"),
    ],
)
def test_national_numbers_use_the_default_region(raw: str, region: str, e164: str) -> None:
    assert normalize(raw, "to", region) == e164


@pytest.mark.parametrize("raw", ["650-253-0000", "16502530000", "00442079460958", "0"])
def test_national_numbers_are_rejected_without_a_default_region(raw: str) -> None:
    assert normalize(raw, "to", None) == FieldViolation("to", E164_FORM)


@pytest.mark.parametrize("raw", ["", " ", "\t\n"])
def test_blank_is_required(raw: str) -> None:
    assert normalize(raw, "to", "US") == FieldViolation("to", "is required")


@pytest.mark.parametrize(
    ("raw", "description"),
    [
        ("+1 650", "is not a possible phone number (wrong length)"),
        ("+44 20 7946 09580000", "is not a possible phone number (wrong length)"),
        ("+1 555 0100", "is not a valid phone number"),
        ("+1 111 253 0000", "is not a valid phone number"),  # no area code starts with 1
        ("+44 00 0000 0000", "is not a valid phone number"),
    ],
)
def test_impossible_or_invalid_numbers_are_rejected(raw: str, description: str) -> None:
    assert normalize(raw, "to", None) == FieldViolation("to", description)


@pytest.mark.parametrize("raw", ["+", "+999 1234", "+abc", "hello", "+1 650 253 0000; drop table"])
def test_unparseable_text_is_not_a_phone_number(raw: str) -> None:
    result = normalize(raw, "to", "US")
    assert isinstance(result, FieldViolation)
    assert result.field == "to"
    assert result.description.startswith(("is not a phone number", "is not a valid",
                                          "is not a possible"))


@pytest.mark.parametrize(
    "raw",
    [
        "+1 650 253 0000 ext. 12",  # an extension cannot be texted; dropped
        "+1 650 253 0000 !!",
        "+\uff11\uff16\uff15\uff10\uff12\uff15\uff13\uff10\uff10\uff10\uff10",  # fullwidth
        "+1.650.253.0000",
    ],
)
def test_lenient_inputs_still_normalise_to_bare_e164(raw: str) -> None:
    # phonenumbers forgives decoration; what comes out must be plain E.164 all the same.
    assert normalize(raw, "to", None) == "+16502530000"


def test_violation_names_the_field_it_was_given() -> None:
    assert normalize("+1 650", "sender", None) == FieldViolation(
        "sender", "is not a possible phone number (wrong length)")
    assert normalize("", "recipients[3]", None) == FieldViolation("recipients[3]", "is required")


def test_length_limit_is_32_characters_after_stripping() -> None:
    thirty_two = "+1" + " " * 20 + "6502530000"
    assert len(thirty_two) == 32
    assert normalize(f"  {thirty_two}  ", "to", None) == "+16502530000"
    assert normalize(thirty_two + " 0", "to", None) == FieldViolation(
        "to", "is too long to be a phone number")


@pytest.mark.parametrize("raw", ["+" + "1" * 40, "+1 650-253-0000" * 10, "9" * 1000])
def test_very_long_strings_are_rejected_before_parsing(raw: str) -> None:
    assert normalize(raw, "to", "US") == FieldViolation(
        "to", "is too long to be a phone number")


def test_mask_keeps_country_prefix_and_last_two_digits() -> None:
    assert mask("+16502530000") == "+165***00"
    assert mask("+442079460958") == "+442***58"
    assert mask("+93701234567") == "+937***67"


@pytest.mark.parametrize("e164", ["", "+1", "+12345"])
def test_mask_hides_short_values_entirely(e164: str) -> None:
    assert mask(e164) == "***"


@pytest.mark.parametrize(
    "e164",
    ["+16502530000", "+442079460958", "+93701234567", "+4930123456", "+6834002", "+1234567"],
)
def test_mask_never_reveals_the_full_number(e164: str) -> None:
    masked = mask(e164)
    digits = e164.lstrip("+")
    assert e164 not in masked
    assert digits not in masked
    assert sum(c.isdigit() for c in masked) < len(digits)
    assert sum(c.isdigit() for c in masked) <= 5
