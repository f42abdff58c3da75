"""Service errors: every one carries a stable ``code`` and the HTTP status it maps to.

Errors from ``mlac`` (:class:`~mlac.errors.MlacError`) map to 4xx through :func:`status_for`; the
JSON body is always ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from mlac.errors import CheckpointError, ConfigError, DataError, MlacError, StoppedError


class ServiceError(MlacError):
    """A user-facing service error with an HTTP status."""

    code = "service_error"
    status = 400


class NotFoundError(ServiceError):
    """No such resource (or it belongs to another API key: the answer is the same)."""

    code = "not_found"
    status = 404


class ConflictError(ServiceError):
    """The resource is in a state that forbids the request (e.g. deleting a checkpoint a job uses)."""

    code = "conflict"
    status = 409


class IdempotencyConflictError(ServiceError):
    """An Idempotency-Key was reused with a different request body."""

    code = "idempotency_conflict"
    status = 422


class InvalidTransitionError(ConflictError):
    """A job state change that the state machine does not allow (e.g. SUCCEEDED -> RUNNING)."""

    code = "invalid_transition"


class StoreUnavailableError(ServiceError):
    """The database could not be reached or refused the operation (driver error, translated)."""

    code = "store_unavailable"
    status = 503


class PayloadTooLargeError(ServiceError):
    """An upload went over the configured size cap while streaming."""

    code = "payload_too_large"
    status = 413


class UnauthorizedError(ServiceError):
    """Missing or wrong API key."""

    code = "unauthorized"
    status = 401


class ForbiddenError(ServiceError):
    """The key is valid but the action needs the admin key."""

    code = "forbidden"
    status = 403


class RateLimitedError(ServiceError):
    """Too many requests of one kind from one key; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadUploadError(ServiceError):
    """A multipart upload is malformed or names a file that is not allowed."""

    code = "bad_upload"
    status = 400


def status_for(exc: MlacError) -> int:
    """The HTTP status of an error: the service's own, or 422 for bad checkpoints/data/config."""
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, (CheckpointError, DataError, ConfigError)):
        return 422
    if isinstance(exc, StoppedError):
        return 409
    return 400


class NotReadyError(ConflictError):
    """The job has not (successfully) finished, so it has no result yet."""

    code = "not_ready"
