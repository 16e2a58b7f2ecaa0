"""Cursor encoding: an opaque, ordered position in the event log."""

from __future__ import annotations

import dataclasses

import pytest

from smsgw.domain.model import Cursor

MAX = 2**63 - 1  # a Postgres bigint


@pytest.mark.parametrize(
    ("cursor", "text"),
    [
        (Cursor(0, 0), "c1.0.0"),
        (Cursor(1, 1), "c1.1.1"),
        (Cursor(255, 16), "c1.ff.10"),
        (Cursor(123456789, 42), "c1.75bcd15.2a"),
        (Cursor(MAX, MAX), "c1.7fffffffffffffff.7fffffffffffffff"),
    ],
)
def test_encode_and_round_trip(cursor: Cursor, text: str) -> None:
    assert cursor.encode() == text
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize("txid", [0, 1, 2**31, 2**32 + 7, MAX])
@pytest.mark.parametrize("seq", [0, 9, 2**40, MAX])
def test_round_trip_grid(txid: int, seq: int) -> None:
    assert Cursor.decode(Cursor(txid, seq).encode()) == Cursor(txid, seq)


def test_orders_by_transaction_then_sequence() -> None:
    # A late-committing transaction with a low event id still sorts by its txid.
    unordered = [Cursor(2, 1), Cursor(1, 100), Cursor(2, 0), Cursor(1, 5), Cursor(3, 0)]
    assert sorted(unordered) == [
        Cursor(1, 5), Cursor(1, 100), Cursor(2, 0), Cursor(2, 1), Cursor(3, 0),
    ]
    assert Cursor(1, 100) < Cursor(2, 0)
    assert Cursor(2, 1) > Cursor(2, 0)
    assert Cursor(2, 1) == Cursor(2, 1)
    assert Cursor(2, 1) <= Cursor(2, 1)


def test_cursor_is_frozen_and_hashable() -> None:
    cursor = Cursor(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cursor.txid = 3  # type: ignore[misc]
    assert {Cursor(1, 2), Cursor(1, 2)} == {cursor}


def test_upper_bounds_are_inclusive_of_the_largest_bigint() -> None:
    assert Cursor.decode(f"c1.{MAX:x}.0") == Cursor(MAX, 0)
    assert Cursor.decode(f"c1.0.{MAX:x}") == Cursor(0, MAX)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "c1",
        "c1.",
        "c1.1",
        "c1..",
        "c1..1",
        "c1.1.",
        "c2.1.1",
        "C1.1.1",
        "c1.zz.1",
        "c1.1.zz",
        "c1.1.g",
        "c1.-1.1",
        "c1.1.-1",
        "c1.-0.0",
        f"c1.{2**63:x}.1",
        f"c1.1.{2**63:x}",
        f"c1.{2**64:x}.{2**64:x}",
        "c1.1.1.1",
        "c1.1.1.",
        "x.c1.1.1",
        "c1.1,1",
        # Non-canonical spellings of a valid position: one position, one token.
        "c1.01.1",
        "c1.1.00",
        "c1.A.1",
        "c1.0x1.1",
        "c1.+1.1",
        "c1. 1.1",
        "c1.1.1 ",
        "c1.1_0.1",
        "c1.\u0661.1",  # Arabic-Indic digit one, which int() accepts
    ],
)
def test_decode_rejects_garbage(text: str) -> None:
    assert Cursor.decode(text) is None


def test_decode_rejects_huge_input_quickly() -> None:
    assert Cursor.decode("c1." + "f" * 100_000 + ".1") is None
