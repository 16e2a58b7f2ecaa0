"""SMPP 3.4 relative validity_period (section 7.1.1): what is left of a message's validity."""

from __future__ import annotations

import datetime as dt

import pytest

from smsgw.adapters.providers.smpp.codec import validity_period

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(("left", "expected"), [
    (dt.timedelta(minutes=10), "000000001000000R"),
    (dt.timedelta(seconds=3599.9), "000000005959000R"),  # rounded down, never longer
    (dt.timedelta(days=1, hours=2, minutes=3, seconds=4), "000001020304000R"),
    (dt.timedelta(days=7), "000007000000000R"),
    (dt.timedelta(days=400), "000099235959000R"),  # days stop at 99: months are guesses
    (dt.timedelta(milliseconds=300), "000000000001000R"),  # about to end: one second
    (dt.timedelta(seconds=-5), "000000000001000R"),
])
def test_the_relative_format(left: dt.timedelta, expected: str) -> None:
    assert validity_period(NOW + left, NOW) == expected
    assert len(expected) == 16 and expected.endswith("000R")


def test_no_validity_leaves_the_smscs_default() -> None:
    assert validity_period(None, NOW) == ""
