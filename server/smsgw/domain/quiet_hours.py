"""Quiet hours: when a marketing message to a number may leave, in the recipient's local time.

A tenant's ``QuietHours`` window is read in the recipient's time zones, as
``phonenumbers`` gives them for the number. A number that maps to several
zones (a US toll-free number, a country spanning zones) takes the strictest
reading: the message leaves only at an instant that is outside the window in
*every* one of its zones. When no such instant exists within two days (the
zones are spread around the globe, so some zone is always quiet), or the
number's zone is unknown, the ``fallback`` zone is used alone (UTC unless
the caller names another).

Pure: no clock (``now`` is an argument), no I/O; ``zoneinfo`` reads the
packaged tz database (the ``tzdata`` dependency where the system has none).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from smsgw.domain.policy import QuietHours

UNKNOWN_ZONE = "Etc/Unknown"
_HORIZON_DAYS = 2  # how far ahead a common opening is looked for


def opens_at(number: str, window: QuietHours, now: dt.datetime,
             fallback: str = "UTC") -> dt.datetime | None:
    """When a message to ``number`` may leave: None if it may leave now, otherwise the
    first instant (UTC) at which it is outside ``window`` in every zone of the number."""
    return opens_in(zones_of(number, fallback), window, now, fallback)


def opens_in(zones: Sequence[ZoneInfo], window: QuietHours, now: dt.datetime,
             fallback: str = "UTC") -> dt.datetime | None:
    """``opens_at`` for a set of zones already resolved."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(dt.UTC)
    if window.start == window.end:
        return None  # an empty window: never quiet
    if not any(_quiet(window, now, zone) for zone in zones):
        return None
    found = _first_common_opening(zones, window, now)
    if found is None and list(zones) != [_zone(fallback)]:
        return opens_in([_zone(fallback)], window, now, fallback)
    return found


def zones_of(number: str, fallback: str = "UTC") -> tuple[ZoneInfo, ...]:
    """The recipient's zones, as phonenumbers knows them; the fallback zone when unknown."""
    return _zones_of(number, fallback)


@functools.lru_cache(maxsize=4096)
def _zones_of(number: str, fallback: str) -> tuple[ZoneInfo, ...]:
    try:
        names = number_zones.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        names = ()
    zones = []
    for name in names:
        if name == UNKNOWN_ZONE:
            continue
        try:
            zones.append(_zone(name))
        except ZoneInfoNotFoundError:  # a name the tz database dropped: skip it
            continue
    return tuple(zones) or (_zone(fallback),)


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _quiet(window: QuietHours, instant: dt.datetime, zone: ZoneInfo) -> bool:
    return window.contains(instant.astimezone(zone).time().replace(tzinfo=None))


def _first_common_opening(zones: Sequence[ZoneInfo], window: QuietHours,
                          now: dt.datetime) -> dt.datetime | None:
    """The earliest window end (in any zone) after ``now`` at which no zone is quiet.

    Only a window's end can turn "quiet somewhere" into "quiet nowhere", so
    those instants are the only candidates. A local end time that a DST
    change skips maps to the instant just after the gap, when the clock
    already reads later than the end: still outside the window.
    """
    candidates = sorted({end for zone in zones for end in _ends(window, zone, now)})
    for candidate in candidates:
        if not any(_quiet(window, candidate, zone) for zone in zones):
            return candidate
    return None


def _ends(window: QuietHours, zone: ZoneInfo, now: dt.datetime) -> list[dt.datetime]:
    today = now.astimezone(zone).date()
    ends = []
    for offset in range(-1, _HORIZON_DAYS + 1):
        local = dt.datetime.combine(today + dt.timedelta(days=offset), window.end, tzinfo=zone)
        instant = local.astimezone(dt.UTC)
        if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
            # In a DST gap: the first instant after it (the gap's end) is when it opens.
            instant = _after_gap(local, zone)
        if now < instant <= now + dt.timedelta(days=_HORIZON_DAYS):
            ends.append(instant)
    return ends


def _after_gap(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The instant a skipped local time's gap ends (the clocks jumped forward past it).

    For a skipped wall time, fold=0 reads it with the offset before the change
    and fold=1 with the one after: the change lies between the two readings.
    """
    first, second = sorted((local.replace(fold=0).astimezone(dt.UTC),
                            local.replace(fold=1).astimezone(dt.UTC)))
    return _transition_between(first, second, zone)


def _transition_between(lo: dt.datetime, hi: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first instant in (lo, hi] whose UTC offset differs from lo's, by bisection."""
    offset = lo.astimezone(zone).utcoffset()
    while hi - lo > dt.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)
