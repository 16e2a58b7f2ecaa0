"""The domain's one exception root, translated to gRPC once, in api/errors.py."""

from __future__ import annotations

from dataclasses import dataclass


class SmsError(Exception):
    """Base of every error the gateway reports to a caller on purpose."""

    reason = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class ValidationFailed(SmsError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}")
        self.violations = violations

    @classmethod
    def single(cls, field: str, description: str) -> ValidationFailed:
        return cls([FieldViolation(field, description)])


class Unauthenticated(SmsError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(SmsError):
    reason = "PERMISSION_DENIED"


class NotFound(SmsError):
    reason = "NOT_FOUND"


class IdempotencyKeyReused(SmsError):
    """The key was already used for a different payload."""

    reason = "IDEMPOTENCY_KEY_REUSED"


class NotCancelable(SmsError):
    reason = "NOT_CANCELABLE"


class InvalidTransition(SmsError):
    reason = "INVALID_TRANSITION"


class Unavailable(SmsError):
    """A dependency (the database) cannot be reached; the caller may retry."""

    reason = "UNAVAILABLE"
    retry_after_seconds = 1.0  # sent to callers as google.rpc.RetryInfo


class ResourceExhausted(SmsError):
    """A tenant's limit says "not now": the caller may retry after ``retry_after_seconds``.

    ``subject`` and ``limit`` become the google.rpc.QuotaFailure violation,
    ``metadata`` the ErrorInfo metadata (e.g. a quota's reset time).
    """

    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_seconds: float, subject: str, limit: str,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.subject = subject
        self.limit = limit
        self.metadata = metadata or {}


class RateLimited(ResourceExhausted):
    """Over the tenant's messages-per-second rate (and its burst)."""

    reason = "RATE_LIMITED"


class QuotaExceeded(ResourceExhausted):
    """Over the tenant's daily or monthly segment quota; it resets at ``metadata['reset_time']``."""

    reason = "QUOTA_EXCEEDED"
