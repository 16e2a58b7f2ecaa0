"""A SendRequest becomes a Submission, or a ValidationFailed naming every bad field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types

import pytest

from smsgw.domain.encoding import Encoding
from smsgw.domain.errors import FieldViolation, ValidationFailed
from smsgw.domain.model import Submission
from smsgw.domain.validation import Limits, SendRequest, fingerprint, validate

LIMITS = Limits()
GOOD = SendRequest(
    to="+1 650-253-0000",
    body="Your code is 1234",
    sender="Ghasi",
    client_reference="order-42",
    metadata={"campaign": "spring", "team": "ops"},
    idempotency_key="3f0c9a1e-key",
)
SENDER_RULE = "must be up to 11 letters and digits, a short code or an E.164 number"
KEY_RULE = "must be 1 to 255 printable ASCII characters without spaces"


def _request(**changes: object) -> SendRequest:
    return dataclasses.replace(GOOD, **changes)  # type: ignore[arg-type]


def _violations(request: SendRequest, limits: Limits = LIMITS) -> list[FieldViolation]:
    with pytest.raises(ValidationFailed) as info:
        validate(request, limits)
    return info.value.violations


def _fields(request: SendRequest, limits: Limits = LIMITS) -> list[str]:
    return [v.field for v in _violations(request, limits)]


def test_good_request_becomes_a_submission() -> None:
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    assert validate(GOOD, LIMITS, now) == Submission(
        to="+16502530000",
        body="Your code is 1234",
        sender="Ghasi",
        client_reference="order-42",
        metadata={"campaign": "spring", "team": "ops"},
        idempotency_key="3f0c9a1e-key",
        encoding=Encoding.GSM7,
        segments=1,
        fingerprint=fingerprint("+16502530000", "Your code is 1234", "Ghasi", "order-42",
                                {"campaign": "spring", "team": "ops"}),
        # No validity asked for: the class's default (transactional: a day).
        expire_at=now + dt.timedelta(days=1),
    )


def test_minimal_request_needs_only_to_body_and_key() -> None:
    submission = validate(SendRequest(to="+442079460958", body="hi", idempotency_key="k"), LIMITS)
    assert (submission.sender, submission.client_reference, submission.metadata) == ("", "", {})


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("{}" * 40, Encoding.GSM7, 1),
        ("{}" * 41, Encoding.GSM7, 2),
        ("Привет", Encoding.UCS2, 1),
        ("я" * 71, Encoding.UCS2, 2),
        ("😀" * 36, Encoding.UCS2, 2),
        ("a" * 1530, Encoding.GSM7, 10),
        ("я" * 670, Encoding.UCS2, 10),
    ],
)
def test_submission_carries_encoding_and_segments(
    body: str, encoding: Encoding, segments: int
) -> None:
    submission = validate(_request(body=body), LIMITS)
    assert (submission.encoding, submission.segments) == (encoding, segments)


def test_national_number_uses_the_default_region_limit() -> None:
    limits = Limits(default_region="GB")
    assert validate(_request(to="020 7946 0958"), limits).to == "+442079460958"


def test_metadata_is_copied_into_a_plain_dict() -> None:
    source = {"a": "1"}
    submission = validate(_request(metadata=types.MappingProxyType(source)), LIMITS)
    source["a"] = "changed"
    assert submission.metadata == {"a": "1"}
    assert type(submission.metadata) is dict


@pytest.mark.parametrize(
    ("to", "description"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("650-253-0000", "must be in E.164 form, starting with '+'"),
        ("+1 650", "is not a possible phone number (wrong length)"),
        ("+1 555 0100", "is not a valid phone number"),
        ("+" + "1" * 40, "is too long to be a phone number"),
    ],
)
def test_bad_to(to: str, description: str) -> None:
    assert _violations(_request(to=to)) == [FieldViolation("to", description)]


def test_empty_body_is_required() -> None:
    assert _violations(_request(body="")) == [FieldViolation("body", "is required")]


@pytest.mark.parametrize("body", ["\x00", "hello\x00", "\x00world", "Привет\x00"])
def test_nul_in_body(body: str) -> None:
    assert _violations(_request(body=body)) == [
        FieldViolation("body", "must not contain NUL characters")]


@pytest.mark.parametrize(
    ("body", "limits", "description"),
    [
        ("a" * 1531, LIMITS, "needs 11 segments; at most 10 allowed"),
        ("я" * 671, LIMITS, "needs 11 segments; at most 10 allowed"),
        ("a" * 161, Limits(max_segments=1), "needs 2 segments; at most 1 allowed"),
        ("a" * 307, Limits(max_segments=2), "needs 3 segments; at most 2 allowed"),
        ("a" * 152 + "€" + "a" * 152, Limits(max_segments=2),
         "needs 3 segments; at most 2 allowed"),
    ],
)
def test_body_over_max_segments(body: str, limits: Limits, description: str) -> None:
    assert _violations(_request(body=body), limits) == [FieldViolation("body", description)]


def test_body_exactly_at_max_segments_passes() -> None:
    assert validate(_request(body="a" * 160), Limits(max_segments=1)).segments == 1
    assert validate(_request(body="a" * 306), Limits(max_segments=2)).segments == 2


@pytest.mark.parametrize(
    "sender",
    ["", "Ghasi", "12345", "+16502530000", "+442079460958", "Ghasi Bank", "ABCDEFGHIJK",
     "A.B_C-D&E", "123", "12345678", "12345678901"],
)
def test_good_senders(sender: str) -> None:
    assert validate(_request(sender=sender), LIMITS).sender == sender


@pytest.mark.parametrize(
    "sender",
    [
        "ABCDEFGHIJKL",  # 12 characters
        "Ghasi!",
        "Gh@si",
        "Ghäsi",
        "Гхаси",
        "123456789012",  # a number without '+' and too long for an id
        "+1 650",
        "+",
        "+16502530000x",
        "+1 650-253-0000",  # a number, but not in E.164 form
        " +16502530000",
        "Ghasi\n",
        "12345\n",
        "+16502530000\n",
        "Gha\x00si",
    ],
)
def test_bad_senders(sender: str) -> None:
    assert _violations(_request(sender=sender)) == [FieldViolation("sender", SENDER_RULE)]


@pytest.mark.parametrize("reference", ["x" * 128, "", "ref with spaces and ünïcode"])
def test_good_client_reference(reference: str) -> None:
    assert validate(_request(client_reference=reference), LIMITS).client_reference == reference


@pytest.mark.parametrize(
    ("reference", "description"),
    [
        ("x" * 129, "must be at most 128 characters"),
        ("ref\x00", "must not contain NUL characters"),
        ("\x00", "must not contain NUL characters"),
    ],
)
def test_bad_client_reference(reference: str, description: str) -> None:
    assert _violations(_request(client_reference=reference)) == [
        FieldViolation("client_reference", description)]


def test_client_reference_limit_is_configurable() -> None:
    assert _fields(_request(client_reference="abcd"), Limits(max_client_reference=3)) == [
        "client_reference"]


def test_metadata_at_the_limits_passes() -> None:
    metadata = {f"k{i}": "v" for i in range(15)} | {"k" * 64: "v" * 512}
    assert validate(_request(metadata=metadata), LIMITS).metadata == metadata


def test_too_many_metadata_entries() -> None:
    metadata = {f"k{i}": "v" for i in range(17)}
    assert _violations(_request(metadata=metadata)) == [
        FieldViolation("metadata", "must have at most 16 entries")]


def test_too_many_entries_is_reported_once_not_per_bad_entry() -> None:
    metadata = {f"k{i}\x00": "v\x00" for i in range(20)}
    assert _fields(_request(metadata=metadata)) == ["metadata"]


KEY_DESCRIPTION = "keys must be 1 to 64 characters without NUL"


@pytest.mark.parametrize(
    ("metadata", "field", "description"),
    [
        ({"k" * 65: "v"}, f"metadata[{'k' * 64!r}]", KEY_DESCRIPTION),
        ({"": "v"}, "metadata['']", KEY_DESCRIPTION),
        ({"a\x00b": "v"}, "metadata['a\\x00b']", KEY_DESCRIPTION),
        ({"k": "v" * 513}, "metadata['k']", "must be at most 512 characters"),
        ({"k": "v\x00"}, "metadata['k']", "must not contain NUL characters"),
    ],
)
def test_bad_metadata_entry(metadata: dict[str, str], field: str, description: str) -> None:
    assert _violations(_request(metadata=metadata)) == [FieldViolation(field, description)]


def test_each_bad_metadata_entry_is_reported() -> None:
    metadata = {"ok": "fine", "": "v", "bad": "\x00", "long": "v" * 513}
    assert _fields(_request(metadata=metadata)) == [
        "metadata['']", "metadata['bad']", "metadata['long']"]


def test_metadata_limits_are_configurable() -> None:
    limits = Limits(max_metadata_entries=1, max_metadata_key=2, max_metadata_value=3)
    assert _fields(_request(metadata={"a": "1", "b": "2"}), limits) == ["metadata"]
    assert _fields(_request(metadata={"abc": "1"}), limits) == ["metadata['abc']"]
    assert _fields(_request(metadata={"ab": "1234"}), limits) == ["metadata['ab']"]
    assert validate(_request(metadata={"ab": "123"}), limits).metadata == {"ab": "123"}


def test_missing_idempotency_key() -> None:
    assert _violations(_request(idempotency_key="")) == [
        FieldViolation("idempotency_key", "is required")]


@pytest.mark.parametrize(
    "key",
    ["has space", " lead", "tail ", "tab\tkey", "ключ", "clé", "k" * 256, "key\n", "key\x00",
     "\x7f", "k" * 255 + "\n"],
)
def test_invalid_idempotency_key(key: str) -> None:
    assert _violations(_request(idempotency_key=key)) == [
        FieldViolation("idempotency_key", KEY_RULE)]


@pytest.mark.parametrize(
    "key", ["a", "k" * 255, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "5b0f8e0e-7c1d-4a43-9f55"],
)
def test_valid_idempotency_key(key: str) -> None:
    assert validate(_request(idempotency_key=key), LIMITS).idempotency_key == key


def test_every_bad_field_is_reported_in_order() -> None:
    request = SendRequest(
        to="", body="", sender="not a sender!", client_reference="\x00",
        metadata={"k": "\x00"}, idempotency_key="",
    )
    assert _fields(request) == [
        "to", "body", "sender", "client_reference", "metadata['k']", "idempotency_key"]


def test_validation_failed_summarises_every_violation() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate(_request(to="", body="", idempotency_key=""), LIMITS)
    assert info.value.reason == "INVALID_ARGUMENT"
    assert str(info.value) == (
        "invalid request: to: is required; body: is required; idempotency_key: is required")


def _fingerprint_of(**changes: object) -> str:
    return validate(_request(**changes), LIMITS).fingerprint


def test_fingerprint_is_a_128_bit_hex_digest() -> None:
    value = _fingerprint_of()
    assert len(value) == 32
    assert int(value, 16) >= 0


def test_fingerprint_is_stable_across_releases() -> None:
    # Stored fingerprints must keep matching replays, so the format cannot drift.
    assert fingerprint("+16502530000", "hi", "", "", {}) == "5172c2e925d9e38cd2cbdeccc468825a"


def test_fingerprint_ignores_idempotency_key_and_metadata_order() -> None:
    base = _fingerprint_of()
    assert _fingerprint_of(idempotency_key="another-key") == base
    assert _fingerprint_of(metadata={"team": "ops", "campaign": "spring"}) == base
    assert _fingerprint_of(to="+16502530000") == base  # same number once normalised


@pytest.mark.parametrize(
    "changes",
    [
        {"to": "+442079460958"},
        {"body": "Your code is 1235"},
        {"body": "Your code is 1234 "},
        {"sender": "Ghasi2"},
        {"sender": ""},
        {"client_reference": "order-43"},
        {"client_reference": ""},
        {"metadata": {"campaign": "spring", "team": "dev"}},
        {"metadata": {"campaign": "spring", "tEam": "ops"}},
        {"metadata": {"campaign": "spring"}},
        {"metadata": {"campaign": "spring", "team": "ops", "x": ""}},
        {"metadata": None},
    ],
    ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_fingerprint_differs_when_any_field_differs(changes: dict[str, object]) -> None:
    assert _fingerprint_of(**changes) != _fingerprint_of()


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("+1", "ab", "", "", {}), ("+1", "a", "b", "", {})),
        (("+1", "a", "", "x", {}), ("+1", "a", "", "", {"x": ""})),
        (("+1", "a", "", "", {"k": "v"}), ("+1", "a", "", "", {"kv": ""})),
        (("+1", "a", "", "", {"a": "b", "c": "d"}), ("+1", "a", "", "", {"a": "c", "b": "d"})),
    ],
)
def test_fingerprint_does_not_confuse_field_boundaries(
    left: tuple[str, str, str, str, dict[str, str]],
    right: tuple[str, str, str, str, dict[str, str]],
) -> None:
    assert fingerprint(*left) != fingerprint(*right)
