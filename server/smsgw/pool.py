"""Builds the provider pool from settings: adapters, their guards, the router.

Switching carriers is a settings change: each ``[[providers]]`` table names
an adapter kind and its options, each ``[[routes]]`` table says which
traffic goes where. With none configured, the carrier simulator takes all.
Adapters are imported when a provider of their kind is configured: the
simulator lives outside the production package, in ``smsgw_simulators``.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from smsgw.adapters.redis_rate import SharedTokenBucket
from smsgw.domain.breaker import CircuitBreaker
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.ports import SendPort
from smsgw.provider_settings import ProviderSettings
from smsgw.services.dispatch import BreakerGauge, Dispatcher, ProviderSlot
from smsgw.settings import Settings
from smsgw.supervision import HealthBoard


def provider_settings(settings: Settings) -> tuple[ProviderSettings, ...]:
    if settings.providers:
        return settings.providers
    s = settings
    return (ProviderSettings(
        name="simulator", kind="simulator", max_in_flight=s.relay_max_in_flight,
        retry=RetryPolicy(s.retry_max_attempts, s.retry_base_seconds, s.retry_cap_seconds),
        options={"latency_ms": s.simulator_latency_ms, "failure_rate": s.simulator_failure_rate,
                 "permanent_failure_rate": s.simulator_permanent_failure_rate,
                 "receipt_delay_ms": s.simulator_receipt_delay_ms,
                 "undelivered_rate": s.simulator_undelivered_rate,
                 "timeout_rate": s.simulator_timeout_rate,
                 "lost_receipt_rate": s.simulator_lost_receipt_rate,
                 "late_receipt_rate": s.simulator_late_receipt_rate,
                 "late_receipt_ms": s.simulator_late_receipt_ms}),)


def routes(settings: Settings, providers: tuple[ProviderSettings, ...]) -> tuple[RouteRule, ...]:
    """The configured routes, or one that sends everything to the first provider
    and fails over to the others in order."""
    if settings.routes:
        return settings.routes
    weighted = tuple(WeightedProvider(p.name, 1 if n == 0 else 0)
                     for n, p in enumerate(providers))
    return (RouteRule("default", weighted),)


def adapter(provider: ProviderSettings, settings: Settings,
            board: HealthBoard | None = None) -> SendPort:
    options = dict(provider.options)
    if provider.kind == "simulator":
        from smsgw_simulators.carrier import (  # noqa: PLC0415 - only when configured
            CarrierSimulator,
            SimulatorConfig,
        )

        return CarrierSimulator(SimulatorConfig(**options), name=provider.name)
    if provider.kind == "smpp":
        from smsgw.adapters.providers.smpp import (  # noqa: PLC0415 - only when configured
            SmppConfig,
            SmppProvider,
        )

        return SmppProvider(SmppConfig.from_options(provider.name, options), board=board)
    from smsgw.adapters.providers.http_carrier import (  # noqa: PLC0415 - only when configured
        HttpCarrierConfig,
        HttpCarrierProvider,
    )
    base = settings.public_http_url or f"http://{settings.http_address}"
    options.setdefault("status_callback_url", f"{base.rstrip('/')}/callbacks/{provider.name}")
    return HttpCarrierProvider(HttpCarrierConfig(name=provider.name, **options))


def build(settings: Settings, redis: aioredis.Redis,
          board: HealthBoard | None = None) -> Dispatcher:
    providers = provider_settings(settings)
    slots = {}
    for provider in providers:
        bucket = None
        if provider.rate_per_second > 0:
            burst = provider.burst or max(1, int(provider.rate_per_second))
            bucket = SharedTokenBucket(redis, provider.name, provider.rate_per_second, burst)
        slots[provider.name] = ProviderSlot(
            port=adapter(provider, settings, board),
            breaker=CircuitBreaker(provider.breaker, BreakerGauge(provider.name)),
            retry=provider.retry, max_in_flight=provider.max_in_flight, bucket=bucket,
            send_timeout_seconds=provider.send_timeout_seconds,
            marketing_min_share=settings.marketing_min_share,
            lane_headroom=settings.lane_headroom)
    return Dispatcher(Router(routes(settings, providers)), slots)
