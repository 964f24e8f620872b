"""The call context: who is calling (set by the gateway) and the correlation id.

nameko carries ``worker_ctx.data`` across RPC calls and events as message
headers, so whatever the gateway puts there reaches every service on the path.
The correlation id is also kept in a green-thread local so that every log
line of the worker carries it (see :class:`CorrelationFilter`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventlet.corolocal import local
from nameko.extensions import DependencyProvider

from kc_common.errors import Forbidden, Unauthenticated

CORRELATION_ID = "correlation_id"
CUSTOMER_ID = "customer_id"
STAFF_ID = "staff_id"
STAFF_ROLES = "staff_roles"
SESSION_ID = "session_id"
CLIENT_IP = "client_ip"
# Wall-clock time (epoch seconds) after which the RPC caller has given up (set by kc_common.rpc).
DEADLINE = "kc_deadline"

_current = local()


def current_correlation_id() -> str | None:
    return getattr(_current, "correlation_id", None)


def current_customer_id() -> int | None:
    """The calling customer's id in this worker (None outside one or for staff/anonymous)."""
    data = getattr(_current, "data", None)
    return data.get(CUSTOMER_ID) if data else None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Log lines of this green thread carry ``correlation_id`` (outside a worker: the gateway)."""
    previous = current_correlation_id()
    _current.correlation_id = correlation_id
    try:
        yield
    finally:
        _current.correlation_id = previous


def bind_log_context(correlation_id: str | None = None, data: dict[str, Any] | None = None) -> None:
    """For processes outside nameko (the web front end): the ids the log lines of this green
    thread carry until the next call (``bind_log_context()`` clears them)."""
    _current.correlation_id = correlation_id
    _current.data = data


class CorrelationFilter(logging.Filter):
    """Adds ``correlation_id`` to every log record (``-`` outside a worker), and
    ``customer_id`` where the worker knows its customer. Configuring it makes the process's
    log records lean (:func:`kc_common.logs.lean_records`)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        from kc_common.logs import lean_records
        lean_records()

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation_id() or "-"
        customer_id = current_customer_id()
        if customer_id is not None:
            record.customer_id = customer_id
        return True


class Principal:
    """What a worker knows about its caller."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def correlation_id(self) -> str | None:
        return self._data.get(CORRELATION_ID)

    @property
    def customer_id(self) -> int | None:
        value = self._data.get(CUSTOMER_ID)
        return int(value) if value is not None else None

    @property
    def staff_id(self) -> str | None:
        return self._data.get(STAFF_ID)

    @property
    def staff_roles(self) -> tuple[str, ...]:
        return tuple(self._data.get(STAFF_ROLES) or ())

    @property
    def session_id(self) -> str | None:
        return self._data.get(SESSION_ID)

    @property
    def client_ip(self) -> str | None:
        return self._data.get(CLIENT_IP)

    def require_customer(self) -> int:
        """The calling customer's id; staff or anonymous callers are refused."""
        if self.customer_id is None:
            raise Unauthenticated("Bitte melden Sie sich an.")
        return self.customer_id

    def require_staff(self, *roles: str) -> str:
        if self.staff_id is None:
            raise Unauthenticated("Nur für Mitarbeiter.")
        if roles and not (set(roles) & set(self.staff_roles)) and "admin" not in self.staff_roles:
            raise Forbidden("Dafür fehlt Ihnen die Berechtigung.")
        return self.staff_id


class CallContext(DependencyProvider):
    """Injects a :class:`Principal`; keeps the correlation id for logging."""

    def worker_setup(self, worker_ctx: Any) -> None:
        if not worker_ctx.data.get(CORRELATION_ID):
            worker_ctx.data[CORRELATION_ID] = new_correlation_id()
        _current.correlation_id = worker_ctx.data[CORRELATION_ID]
        # The worker's data itself: the gateway adds the customer after authenticating.
        _current.data = worker_ctx.data

    def worker_teardown(self, worker_ctx: Any) -> None:
        _current.correlation_id = None
        _current.data = None

    def get_dependency(self, worker_ctx: Any) -> Principal:
        return Principal(worker_ctx.data)
