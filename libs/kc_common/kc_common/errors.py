"""Typed remote errors.

Every error a service raises on purpose is a subclass of :class:`KcError`.
They are registered with nameko's exception registry, so an RPC caller gets
the same type back (not a ``RemoteError``), and the gateway maps each type to
its HTTP status. Anything else that escapes a service is an internal error:
the gateway answers 500 without echoing its text.
"""

from __future__ import annotations

from typing import Any

from nameko.exceptions import deserialize_to_instance


class KcError(Exception):
    """Base class. ``args`` must stay JSON-serialisable: (message, details)."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details or {})

    @property
    def message(self) -> str:
        return self.args[0]

    @property
    def details(self) -> dict[str, Any]:
        return self.args[1]

    def to_body(self) -> dict[str, Any]:
        body = {"error": self.code, "message": self.message}
        body.update(self.details)
        return body


@deserialize_to_instance
class ValidationFailed(KcError):
    """400: the input is malformed; ``fields`` maps field name to messages.

    Behind the gateway, the gateway has checked the request against its published schema
    (400) before the service sees it; what a service still refuses reaches the client
    as 422 (:class:`InputRefused`), with the same body."""

    status = 400
    code = "validation_failed"

    def __init__(self, message: str = "Die Eingaben sind ungültig.", details: dict[str, Any] | None = None,
                 fields: dict[str, Any] | None = None) -> None:
        if fields is not None:
            details = dict(details or {}, fields=fields)
        super().__init__(message, details)

    @property
    def fields(self) -> dict[str, Any]:
        return self.details.get("fields", {})


class InputRefused(ValidationFailed):
    """422, with the body of :class:`ValidationFailed` (``validation_failed``, ``fields``):
    input that matches the published schema (the gateway checked it) but that a service
    refuses: a rule or a check against data or the world (a telephone number, an IBAN's
    checksum, a product's rules). The gateway raises it for a service's ValidationFailed."""

    status = 422

    @classmethod
    def of(cls, exc: KcError) -> InputRefused:
        return cls(exc.message, exc.details)


@deserialize_to_instance
class Unauthenticated(KcError):
    status = 401
    code = "unauthenticated"


@deserialize_to_instance
class Forbidden(KcError):
    status = 403
    code = "forbidden"


@deserialize_to_instance
class NotFound(KcError):
    status = 404
    code = "not_found"


@deserialize_to_instance
class Conflict(KcError):
    status = 409
    code = "conflict"


@deserialize_to_instance
class UnsupportedMediaType(KcError):
    """415: the body is not in the media type the operation takes."""

    status = 415
    code = "unsupported_media_type"


@deserialize_to_instance
class Unprocessable(KcError):
    """422: well-formed input that breaks a business rule."""

    status = 422
    code = "unprocessable"


@deserialize_to_instance
class TooManyRequests(KcError):
    """429; ``details['retry_after']`` is the number of seconds to wait."""

    status = 429
    code = "too_many_requests"


@deserialize_to_instance
class ServiceUnavailable(KcError):
    """503: a service did not answer in time or is not running."""

    status = 503
    code = "service_unavailable"


ALL = (ValidationFailed, Unauthenticated, Forbidden, NotFound, Conflict,
       UnsupportedMediaType, Unprocessable, TooManyRequests, ServiceUnavailable)
