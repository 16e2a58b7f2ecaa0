"""Routing rules: first match wins, weights split traffic, the rest fail over."""

from __future__ import annotations

import collections
import uuid

import pytest

from smsgw.domain.routing import NoRoute, Router, RouteRule, WeightedProvider, country_of

TENANT = str(uuid.uuid4())
RULES = [
    RouteRule("otp-uk", (WeightedProvider("smpp-uk"), WeightedProvider("http-b")),
              countries=frozenset({"GB"}), traffic_classes=frozenset({"otp"})),
    RouteRule("vip", (WeightedProvider("http-b"),), tenants=frozenset({TENANT})),
    RouteRule("us-prefix", (WeightedProvider("http-b"),), prefixes=("+1650",)),
    RouteRule("split", (WeightedProvider("a", 3), WeightedProvider("b", 1),
                        WeightedProvider("c", 0))),
]


@pytest.mark.parametrize(("to", "tenant", "traffic", "route"), [
    ("+442071838750", "t", "otp", "otp-uk"),
    ("+442071838750", "t", "marketing", "split"),
    ("+442071838750", TENANT, "marketing", "vip"),
    ("+16502530000", "t", "transactional", "us-prefix"),
    ("+33612345678", "t", "otp", "split"),
])
def test_the_first_matching_rule_wins(to: str, tenant: str, traffic: str, route: str) -> None:
    assert Router(RULES).plan(uuid.uuid4(), to, tenant, traffic).route == route


def test_weights_split_the_primary_and_the_others_fail_over_in_order() -> None:
    router = Router(RULES)
    plans = [router.plan(uuid.uuid4(), "+33612345678", "t", "transactional").providers
             for _ in range(4000)]
    primaries = collections.Counter(p[0] for p in plans)
    assert set(primaries) == {"a", "b"}  # weight 0: failover only
    assert 0.70 < primaries["a"] / len(plans) < 0.80
    assert all(sorted(p) == ["a", "b", "c"] and p[-1] == "c" for p in plans)


def test_one_message_always_gets_the_same_plan() -> None:
    message = uuid.uuid4()
    plans = {Router(RULES).plan(message, "+33612345678", "t", "otp") for _ in range(10)}
    assert len(plans) == 1


def test_no_matching_rule_is_an_error() -> None:
    with pytest.raises(NoRoute):
        Router(RULES[:1]).plan(uuid.uuid4(), "+33612345678", "t", "otp")


def test_countries_are_read_from_the_number() -> None:
    assert (country_of("+442071838750"), country_of("+16502530000"),
            country_of("+4915123456789")) == ("GB", "US", "DE")
