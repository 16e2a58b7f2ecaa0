"""Quiet hours' window, including one that crosses midnight."""

from __future__ import annotations

import datetime as dt

from smsgw.domain.policy import QuietHours, TenantPolicy


def test_a_window_within_a_day() -> None:
    lunch = QuietHours(dt.time(12), dt.time(13))
    assert lunch.contains(dt.time(12)) and lunch.contains(dt.time(12, 59))
    assert not lunch.contains(dt.time(13)) and not lunch.contains(dt.time(11, 59))


def test_a_window_across_midnight() -> None:
    night = QuietHours(dt.time(21), dt.time(8))
    assert night.contains(dt.time(23)) and night.contains(dt.time(0)) \
        and night.contains(dt.time(7, 59))
    assert not night.contains(dt.time(8)) and not night.contains(dt.time(20, 59))


def test_burst_defaults_to_a_second_of_the_rate() -> None:
    assert TenantPolicy(rate_per_second=50).effective_burst == 50
    assert TenantPolicy(rate_per_second=0.2).effective_burst == 1
    assert TenantPolicy(rate_per_second=5, burst=20).effective_burst == 20
