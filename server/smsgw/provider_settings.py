"""Provider and route settings: the part of Settings that switches carriers.

Providers and routes are lists of tables, in the settings file as
``[[providers]]`` / ``[[routes]]``, or as JSON in ``SMSGW_PROVIDERS`` /
``SMSGW_ROUTES``. A provider's adapter options (host, credentials, …) stay
out of ``repr`` so they never reach a log; a secret may be named by the
environment variable that holds it (``password_env = "SMSC_PASSWORD"``),
resolved here when settings load, so the file itself holds no secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from smsgw.domain.breaker import BreakerConfig
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import TRAFFIC_CLASSES, RouteRule, WeightedProvider

PROVIDER_KINDS = ("simulator", "smpp", "http")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    rate_per_second: float = 0.0  # 0: no limit
    burst: int = 0  # 0: one second's worth
    max_in_flight: int = 100
    send_timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


def parse_providers(value: Any, environ: Mapping[str, str],
                    default_retry: RetryPolicy) -> tuple[ProviderSettings, ...]:
    if _typed(value, ProviderSettings):
        return tuple(value)
    items = _tables(value, "providers")
    providers = tuple(_provider(item, environ, default_retry) for item in items)
    names = [p.name for p in providers]
    if len(set(names)) != len(names):
        raise ValueError("providers: names must be unique")
    return providers


def _provider(item: Mapping[str, Any], environ: Mapping[str, str],
              default_retry: RetryPolicy) -> ProviderSettings:
    table = dict(item)
    name, kind = str(table.pop("name", "")), str(table.pop("kind", ""))
    if not name or kind not in PROVIDER_KINDS:
        raise ValueError(f"providers: each needs a name and a kind ({', '.join(PROVIDER_KINDS)})")
    retry = _section(RetryPolicy, table, "retry_", default_retry)
    breaker = _section(BreakerConfig, table, "breaker_", BreakerConfig())
    top = {key: cast(table.pop(key)) for key, cast in _LIMITS.items() if key in table}
    options = {k: v for k, v in table.items() if not k.endswith("_env")}
    for key, variable in table.items():
        if key.endswith("_env"):
            if variable not in environ:
                raise ValueError(f"provider {name}: environment variable {variable} is not set")
            options[key.removesuffix("_env")] = environ[variable]
    return ProviderSettings(name=name, kind=kind, options=options, retry=retry,
                            breaker=breaker, **top)


_LIMITS: dict[str, Any] = {"rate_per_second": float, "burst": int, "max_in_flight": int,
                           "send_timeout_seconds": float}


def _section(cls: Any, table: dict[str, Any], prefix: str, default: Any) -> Any:
    """Pulls ``retry_max_attempts``-style keys out of a provider table."""
    names = {f.name for f in fields(cls)}
    picked = {key.removeprefix(prefix): table.pop(key) for key in list(table)
              if key.startswith(prefix) and key.removeprefix(prefix) in names}
    if not picked:
        return default
    merged = {f.name: getattr(default, f.name) for f in fields(cls)}
    merged.update({k: type(merged[k])(v) for k, v in picked.items()})
    return cls(**merged)


def parse_routes(value: Any) -> tuple[RouteRule, ...]:
    if _typed(value, RouteRule):
        return tuple(value)
    return tuple(_route(item, n) for n, item in enumerate(_tables(value, "routes")))


def _route(item: Mapping[str, Any], position: int) -> RouteRule:
    providers = tuple(
        WeightedProvider(p) if isinstance(p, str)
        else WeightedProvider(str(p["name"]), int(p.get("weight", 1)))
        for p in item.get("providers", ()))
    if not providers:
        raise ValueError(f"routes[{position}]: needs at least one provider")
    classes = frozenset(str(c) for c in item.get("traffic_classes", ()))
    if classes - set(TRAFFIC_CLASSES):
        raise ValueError(f"routes[{position}]: traffic classes are {', '.join(TRAFFIC_CLASSES)}")
    return RouteRule(
        name=str(item.get("name", f"route-{position}")), providers=providers,
        countries=frozenset(str(c).upper() for c in item.get("countries", ())),
        prefixes=tuple(str(p) for p in item.get("prefixes", ())),
        tenants=frozenset(str(t) for t in item.get("tenants", ())),
        traffic_classes=classes)


def _typed(value: Any, kind: type) -> bool:
    """Already parsed (settings built in code): an empty or all-typed sequence."""
    return isinstance(value, list | tuple) and all(isinstance(v, kind) for v in value)


def _tables(value: Any, what: str) -> list[Mapping[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"{what}: expected a list of tables")
    return list(value)
