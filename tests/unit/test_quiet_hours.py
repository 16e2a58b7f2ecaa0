"""Quiet hours in the recipient's local time: zones, the strictest of several, midnight, DST."""

from __future__ import annotations

import datetime as dt

import pytest

from smsgw.domain.policy import QuietHours
from smsgw.domain.quiet_hours import opens_at, opens_in, zones_of

NIGHT = QuietHours(dt.time(21), dt.time(8))  # across midnight
LUNCH = QuietHours(dt.time(12), dt.time(14))  # within one day
NEW_YORK = "+12125550100"
SAN_FRANCISCO = "+14155550100"
TOLL_FREE = "+18005550100"  # every NANP zone, Guam to Newfoundland
LONDON_MOBILE = "+447911123456"
TOKYO_MOBILE = "+819012345678"
UNKNOWN = "+15555550100"  # no zone on record


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(("number", "now", "expected"), [
    # 12:00 UTC in June: 08:00 in New York (open), 05:00 in San Francisco (quiet).
    (NEW_YORK, utc(2026, 6, 1, 12), None),
    (SAN_FRANCISCO, utc(2026, 6, 1, 12), utc(2026, 6, 1, 15)),
    # London (BST): 13:00 is open; 22:00 is quiet until 08:00 BST = 07:00 UTC.
    (LONDON_MOBILE, utc(2026, 6, 1, 12), None),
    (LONDON_MOBILE, utc(2026, 6, 1, 21), utc(2026, 6, 2, 7)),
    # Tokyo (UTC+9, no DST): 21:00 JST is quiet until 08:00 JST = 23:00 UTC.
    (TOKYO_MOBILE, utc(2026, 6, 1, 12), utc(2026, 6, 1, 23)),
    (TOKYO_MOBILE, utc(2026, 6, 1, 0), None),
    # Just before midnight and just after it, New York time: the same opening.
    (NEW_YORK, utc(2026, 6, 2, 3, 59), utc(2026, 6, 2, 12)),
    (NEW_YORK, utc(2026, 6, 2, 4, 1), utc(2026, 6, 2, 12)),
    # The window's end itself is open; its start is quiet.
    (NEW_YORK, utc(2026, 6, 2, 12), None),
    (NEW_YORK, utc(2026, 6, 2, 1), utc(2026, 6, 2, 12)),
])
def test_a_window_across_midnight_in_the_recipients_zone(
        number: str, now: dt.datetime, expected: dt.datetime | None) -> None:
    assert opens_at(number, NIGHT, now) == expected


def test_a_window_within_one_day() -> None:
    assert opens_at(NEW_YORK, LUNCH, utc(2026, 6, 1, 17)) == utc(2026, 6, 1, 18)  # 13:00 EDT
    assert opens_at(NEW_YORK, LUNCH, utc(2026, 6, 1, 18)) is None


def test_a_number_in_several_zones_waits_until_every_zone_is_open() -> None:
    zones = {z.key for z in zones_of(TOLL_FREE)}
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Guam"} <= zones
    now = utc(2026, 6, 1, 12)  # 08:00 in New York, 05:00 in Los Angeles, 22:00 in Guam
    opening = opens_at(TOLL_FREE, NIGHT, now)
    assert opening is not None and opening > now
    for zone in zones_of(TOLL_FREE):
        assert not NIGHT.contains(opening.astimezone(zone).time())
    # Nothing earlier would do: some zone is still quiet a minute before.
    before = opening - dt.timedelta(minutes=1)
    assert any(NIGHT.contains(before.astimezone(z).time()) for z in zones_of(TOLL_FREE))


def test_the_strictest_of_two_zones() -> None:
    zones = zones_of(NEW_YORK) + zones_of(SAN_FRANCISCO)
    # 13:00 UTC: 09:00 in New York is open, 06:00 in San Francisco is not.
    assert opens_in(zones, NIGHT, utc(2026, 6, 1, 13)) == utc(2026, 6, 1, 15)
    # 03:00 UTC: 23:00 in New York is quiet, 20:00 in San Francisco is not.
    assert opens_in(zones, NIGHT, utc(2026, 6, 1, 3)) == utc(2026, 6, 1, 15)


def test_zones_with_no_common_opening_fall_back_to_one_zone() -> None:
    # Quiet 20 hours a day: Tokyo and New York never share an open minute.
    long_night = QuietHours(dt.time(12), dt.time(8))
    zones = zones_of(NEW_YORK) + zones_of(TOKYO_MOBILE)
    now = utc(2026, 6, 1, 0)
    assert opens_in(zones, long_night, now, "UTC") == utc(2026, 6, 1, 8)


def test_an_unknown_zone_reads_the_fallback_zone() -> None:
    assert [z.key for z in zones_of(UNKNOWN)] == ["UTC"]
    assert opens_at(UNKNOWN, NIGHT, utc(2026, 6, 1, 22)) == utc(2026, 6, 2, 8)
    # Read in Tokyo instead: 22:00 UTC is 07:00 there, quiet for an hour more.
    assert opens_at(UNKNOWN, NIGHT, utc(2026, 6, 1, 22), "Asia/Tokyo") == utc(2026, 6, 1, 23)
    assert [z.key for z in zones_of("not a number", "Europe/Paris")] == ["Europe/Paris"]


def test_dst_spring_forward_opens_when_the_skipped_end_is_passed() -> None:
    # 8 March 2026, New York: 02:00 EST jumps to 03:00 EDT; a window ending at 02:30
    # ends when the clocks jump (07:00 UTC), the first instant past 02:30 local.
    window = QuietHours(dt.time(22), dt.time(2, 30))
    assert opens_at(NEW_YORK, window, utc(2026, 3, 8, 6)) == utc(2026, 3, 8, 7)
    # The usual 08:00 end on that day is 08:00 EDT = 12:00 UTC (13:00 the day before).
    assert opens_at(NEW_YORK, NIGHT, utc(2026, 3, 8, 5)) == utc(2026, 3, 8, 12)
    assert opens_at(NEW_YORK, NIGHT, utc(2026, 3, 7, 5)) == utc(2026, 3, 7, 13)


def test_dst_fall_back_counts_local_wall_time() -> None:
    # 1 November 2026, New York: 08:00 EST (UTC-5) = 13:00 UTC; London fell back on
    # 25 October, so 08:00 GMT = 08:00 UTC.
    assert opens_at(NEW_YORK, NIGHT, utc(2026, 11, 1, 5)) == utc(2026, 11, 1, 13)
    assert opens_at(LONDON_MOBILE, NIGHT, utc(2026, 10, 25, 3)) == utc(2026, 10, 25, 8)
    assert opens_at(LONDON_MOBILE, NIGHT, utc(2026, 10, 24, 3)) == utc(2026, 10, 24, 7)


def test_an_empty_window_is_never_quiet_and_now_must_be_aware() -> None:
    assert opens_at(NEW_YORK, QuietHours(dt.time(9), dt.time(9)), utc(2026, 6, 1, 13)) is None
    with pytest.raises(ValueError, match="aware"):
        opens_at(NEW_YORK, NIGHT, dt.datetime(2026, 6, 1, 12))
