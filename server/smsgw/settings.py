"""One typed settings object, built once at start-up and passed into constructors.

Values come from, in order of precedence: ``SMSGW_*`` environment variables,
an optional TOML file named by ``SMSGW_CONFIG`` (flat keys, as below), and the
defaults here. Nothing else in the code reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import RouteRule
from smsgw.provider_settings import ProviderSettings, parse_providers, parse_routes

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Settings:
    # Where state lives. No URL means: start the embedded server in data_dir.
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".smsgw-data")
    migrations_dir: Path = REPO_ROOT / "migrations"
    migrate_on_start: bool = True

    # Listeners.
    grpc_address: str = "127.0.0.1:50051"
    http_address: str = "127.0.0.1:9464"  # /metrics, /healthz, /readyz
    rest_enabled: bool = True  # Envoy's gRPC-JSON transcoder, started beside the server
    rest_address: str = "127.0.0.1:8080"

    # Submit path.
    db_pool_size: int = 12
    submit_batch_max: int = 1000
    submit_flushers: int = 3
    stream_chunks_in_flight: int = 4
    max_segments: int = 10
    default_region: str | None = None
    idempotency_ttl_hours: int = 48

    # Relay.
    relay_enabled: bool = True
    relay_batch_size: int = 500
    relay_max_in_flight: int = 2000
    relay_poll_seconds: float = 1.0
    relay_lease_seconds: float = 60.0
    # Priority lanes (domain/lanes.py): while marketing has a backlog, the share of
    # each claim and of each provider's tokens it keeps, however busy the higher
    # lanes are; and the share of each provider's room marketing leaves free for them.
    marketing_min_share: float = 0.10
    lane_headroom: float = 0.10
    # Defaults for every provider (each may set its own): the seeds' schedule,
    # 30 s doubling to at most 30 min, five attempts, with full jitter.
    retry_max_attempts: int = 5
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 1800.0
    # The validity of a message that asks for none, by traffic class, counted
    # from when it is due; and the longest any message may ask for.
    message_max_age_seconds: float = 86400.0  # transactional and marketing
    otp_validity_seconds: float = 600.0
    max_validity_seconds: float = 7 * 86400.0
    # How far ahead a send_time may be.
    schedule_max_ahead_seconds: float = 30 * 86400.0
    # How often messages whose validity ran out in the outbox are ended EXPIRED.
    validity_sweep_seconds: float = 1.0
    # Quiet hours: the zone read for a recipient whose number's zone is unknown.
    quiet_hours_fallback_zone: str = "UTC"
    # How soon a tenant policy changed on any replica is in force on this one.
    policy_refresh_seconds: float = 2.0
    # A SENT message with no receipt after this long ends EXPIRED (RECEIPT_TIMEOUT).
    receipt_timeout_seconds: float = 172800.0
    # The provider pool. None configured: the carrier simulator alone.
    providers: tuple[ProviderSettings, ...] = ()
    routes: tuple[RouteRule, ...] = ()
    # Where carriers reach our HTTP listener for status callbacks.
    public_http_url: str | None = None

    # The carrier simulator, the default provider.
    simulator_latency_ms: float = 20.0
    simulator_failure_rate: float = 0.0
    simulator_permanent_failure_rate: float = 0.0
    simulator_receipt_delay_ms: float = 500.0
    simulator_undelivered_rate: float = 0.0
    simulator_timeout_rate: float = 0.0
    simulator_lost_receipt_rate: float = 0.0
    simulator_late_receipt_rate: float = 0.0
    simulator_late_receipt_ms: float = 30000.0

    # Watch streams.
    watch_heartbeat_seconds: float = 15.0
    watch_poll_seconds: float = 0.5

    # Signed status webhooks.
    webhooks_enabled: bool = True
    webhook_poll_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_cap_seconds: float = 3600.0

    log_level: str = "INFO"
    log_json: bool = True

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = env.get("SMSGW_CONFIG")
        if config_file:
            values.update(tomllib.loads(Path(config_file).read_text()))
        values.update({
            f.name: env[f"SMSGW_{f.name.upper()}"]
            for f in fields(cls) if f"SMSGW_{f.name.upper()}" in env
        })
        values.update(overrides)
        return cls.from_mapping(values, env)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any],
                     environ: Mapping[str, str] | None = None) -> Settings:
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        plain = {k: v for k, v in values.items() if k not in ("providers", "routes")}
        settings = cls(**{k: _coerce(k, hints[k], v) for k, v in plain.items()})
        default_retry = RetryPolicy(settings.retry_max_attempts, settings.retry_base_seconds,
                                    settings.retry_cap_seconds)
        settings = dataclasses.replace(
            settings,
            providers=parse_providers(values.get("providers", ()), environ or {}, default_retry),
            routes=parse_routes(values.get("routes", ())))
        settings.validate()
        return settings

    def validate(self) -> None:
        names = {p.name for p in self.providers} or {"simulator"}
        for route in self.routes:
            unknown = {p.name for p in route.providers} - names
            if unknown:
                raise ValueError(f"route {route.name}: unknown providers {', '.join(unknown)}")
        if not 0.0 <= self.simulator_failure_rate <= 1.0:
            raise ValueError("simulator_failure_rate must be between 0 and 1")
        if self.submit_batch_max < 1 or self.relay_batch_size < 1:
            raise ValueError("batch sizes must be positive")
        if self.max_segments < 1:
            raise ValueError("max_segments must be at least 1")
        if not (0.0 <= self.marketing_min_share <= 1.0 and 0.0 <= self.lane_headroom < 1.0):
            raise ValueError("marketing_min_share must be in [0, 1] and lane_headroom in [0, 1)")

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some fields changed (values already typed)."""
        changed = dataclasses.replace(self, **changes)
        changed.validate()
        return changed


def _coerce(name: str, hint: Any, value: Any) -> Any:
    target = _concrete(hint)
    # Before the isinstance shortcut below, which would return a blank string as is.
    if target is str and _optional(hint) and isinstance(value, str) and not value.strip():
        return None
    if value is None or (isinstance(value, target) and target is not int):
        return value
    text = str(value).strip()
    if target is bool:
        if text.lower() in {"1", "true", "yes", "on"}:
            return True
        if text.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"setting {name}: {text!r} is not a boolean")
    try:
        return target(text)
    except ValueError as exc:
        raise ValueError(f"setting {name}: {text!r} is not a {target.__name__}") from exc


def _concrete(hint: Any) -> type:
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    return args[0] if args else hint  # type: ignore[no-any-return]


def _optional(hint: Any) -> bool:
    return type(None) in getattr(hint, "__args__", ())
