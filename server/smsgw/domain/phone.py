"""E.164 normalisation: the only form a number is stored, routed or sent in."""

from __future__ import annotations

import phonenumbers

from smsgw.domain.errors import FieldViolation

_E164 = phonenumbers.PhoneNumberFormat.E164


def normalize(raw: str, field: str, default_region: str | None) -> str | FieldViolation:
    """Returns the E.164 form, or the violation that explains why there is none."""
    text = raw.strip()
    if not text:
        return FieldViolation(field, "is required")
    if len(text) > 32:
        return FieldViolation(field, "is too long to be a phone number")
    region = None if text.startswith("+") else default_region
    if region is None and not text.startswith("+"):
        return FieldViolation(field, "must be in E.164 form, starting with '+'")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return FieldViolation(field, f"is not a phone number ({exc._msg})")
    if not phonenumbers.is_possible_number(number):
        return FieldViolation(field, "is not a possible phone number (wrong length)")
    if not phonenumbers.is_valid_number(number):
        return FieldViolation(field, "is not a valid phone number")
    return phonenumbers.format_number(number, _E164)


def mask(e164: str) -> str:
    """For logs: never a full number, enough to tell destinations apart."""
    if len(e164) <= 6:
        return "***"
    return f"{e164[:4]}***{e164[-2:]}"
