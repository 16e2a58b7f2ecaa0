"""Routing: which providers may carry a message, in which order.

Rules are matched in the order configured; the first that matches wins. A
rule matches on destination country (ISO 3166 region), number prefix, tenant
and traffic class; a criterion left empty matches anything. Its providers
carry weights: the primary is drawn by weight (so traffic splits between
carriers as configured), the others follow in their listed order as the
failover chain. The draw uses the message id, so every attempt of one
message sees the same plan and retries stay predictable.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

TRAFFIC_CLASSES = ("transactional", "otp", "marketing")
DEFAULT_TRAFFIC_CLASS = "transactional"


@dataclass(frozen=True, slots=True)
class WeightedProvider:
    name: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class RouteRule:
    name: str
    providers: tuple[WeightedProvider, ...]
    countries: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    tenants: frozenset[str] = frozenset()  # tenant ids
    traffic_classes: frozenset[str] = frozenset()

    def matches(self, to: str, tenant: str, traffic_class: str) -> bool:
        return ((not self.traffic_classes or traffic_class in self.traffic_classes)
                and (not self.tenants or tenant in self.tenants)
                and (not self.prefixes or to.startswith(self.prefixes))
                and (not self.countries or country_of(to) in self.countries))


@dataclass(frozen=True, slots=True)
class RoutePlan:
    route: str
    providers: tuple[str, ...]  # primary first, then the failover chain


class NoRoute(LookupError):
    """No rule matched: a configuration gap, reported on the message."""


class Router:
    def __init__(self, rules: Sequence[RouteRule]) -> None:
        self._rules = tuple(rules)

    @property
    def provider_names(self) -> frozenset[str]:
        return frozenset(p.name for rule in self._rules for p in rule.providers)

    def plan(self, message_id: uuid.UUID, to: str, tenant: str, traffic_class: str) -> RoutePlan:
        for rule in self._rules:
            if rule.matches(to, tenant, traffic_class):
                return RoutePlan(rule.name, _ordered(rule.providers, message_id))
        raise NoRoute(f"no route matches {traffic_class} traffic to {to[:4]}…")


def _ordered(providers: tuple[WeightedProvider, ...], message_id: uuid.UUID) -> tuple[str, ...]:
    names = tuple(p.name for p in providers)
    total = sum(p.weight for p in providers)
    if len(providers) == 1 or total <= 0:
        return names
    point = (message_id.int & 0xFFFFFFFF) * total >> 32  # uniform in [0, total)
    for index, provider in enumerate(providers):
        if point < provider.weight:
            return (names[index], *names[:index], *names[index + 1:])
        point -= provider.weight
    return names


@functools.lru_cache(maxsize=65536)
def country_of(e164: str) -> str:
    """The ISO region of an E.164 number ('ZZ' when unknown); cached, it is hot."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "ZZ"
    return phonenumbers.region_code_for_number(number) or "ZZ"
