"""The refusals a service raises: a machine-readable ``code``, a message and the extra
fields the client needs. ``api/errors.py`` maps each kind to its HTTP status, once."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A rule refused the request. ``extra`` becomes fields of the problem body."""

    def __init__(self, message: str, *, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra


class NotFound(ServiceError):
    """The resource does not exist (or the caller may not know it does)."""


class Forbidden(ServiceError):
    """The caller is known but may not do this."""


class Unauthenticated(ServiceError):
    """The caller's credentials or account are not valid."""


class Conflict(ServiceError):
    """The resource's current state forbids the change."""


class Invalid(ServiceError):
    """The request is well formed but breaks a rule; ``fields`` names the offending
    fields (field -> what is wrong with it)."""

    def __init__(
        self, message: str, *, code: str, fields: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message, code=code, **extra)
        self.fields = fields or {}


class Unavailable(ServiceError):
    """Not possible right now; retrying after ``retry_after`` seconds is safe."""

    def __init__(self, message: str, *, code: str, retry_after: int, **extra: Any) -> None:
        super().__init__(message, code=code, **extra)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """The caller sent too many requests in the current window."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests: try again in {retry_after}s",
            code="rate_limited",
            retry_after=retry_after,
        )
