"""Prometheus metrics, named as in the design documents."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

SUBMITTED = Counter(
    "sms_submitted_total", "Send requests by outcome (accepted, replayed, rejected).",
    ["outcome"])
DISPATCH = Counter(
    "sms_dispatch_total",
    "Hand-overs to providers by outcome (sent, retry, failover, deferred, failed, expired).",
    ["provider", "outcome"])
DELIVERY_LATENCY = Histogram(
    "sms_delivery_latency_seconds", "Time from accept to provider acknowledgement.",
    ["provider"], buckets=_LATENCY_BUCKETS)
PROVIDER_LATENCY = Histogram(
    "sms_provider_call_seconds", "Duration of one provider send call.",
    ["provider"], buckets=_LATENCY_BUCKETS)
OUTBOX_DEPTH = Gauge("sms_outbox_depth", "Messages waiting in the outbox (accepted, not sent).")
RECEIPTS = Counter(
    "sms_receipts_total", "Delivery receipts by result (delivered, undelivered, unmatched).",
    ["provider", "result"])
WATCH_STREAMS = Gauge("sms_watch_streams", "Open WatchMessageStatus streams.")
WEBHOOKS = Counter("sms_webhook_deliveries_total", "Webhook delivery attempts by result.",
                   ["result"])
CARRIER_CALLBACKS = Counter(
    "sms_carrier_callbacks_total",
    "Carrier status callbacks by result (accepted, ignored, rejected: bad signature).",
    ["provider", "result"])
BREAKER_STATE = Gauge(
    "circuit_breaker_state", "Circuit breaker per provider: 0 closed, 1 open, 2 half-open.",
    ["provider"])
DEAD_LETTERS = Counter("sms_dead_letters_total", "Messages that exhausted their retries.",
                       ["provider"])
LOOP_UP = Gauge("sms_loop_up", "Background loops: 1 running, 0 failing and being restarted.",
                ["loop"])
LOOP_RESTARTS = Counter("sms_loop_restarts_total",
                        "Background loop steps that failed and were restarted.", ["loop"])
SIMULATOR = Counter(
    "sms_simulator_messages_total",
    "Messages the carrier simulator took, by result: accepted, or duplicate (handed over again).",
    ["provider", "result"])
TENANT_LIMITED = Counter(
    "sms_tenant_limited_total",
    "Messages refused or held back by a tenant's limits, by limit (rate, quota) and how "
    "(refused: an error result; slowed: a bulk stream waited for the rate).",
    ["limit", "how"])
RATE_LIMIT_BYPASSED = Counter(
    "sms_rate_limit_bypassed_total",
    "Messages accepted without a tenant rate check because Redis could not be reached "
    "(the limiter fails open).")
