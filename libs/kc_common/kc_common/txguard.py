"""The rule every network client of kc_common enforces: no network I/O inside a transaction.

Under eventlet a transaction held across network I/O keeps its locks (and, on
SQLite, the whole database) for as long as the peer takes: one slow peer stalls
every writer of the process, and on SQLite every writer of the file. So the unit
of work marks its green thread, and the RPC proxy, the mailer, the PSP client and
the outbox relay refuse to talk to the network while the mark is set. The error
is a programming error: it is raised in every test that reaches such code.
"""

from __future__ import annotations

from typing import Literal

from eventlet.corolocal import local

_tx = local()


class NetworkIOInTransaction(RuntimeError):
    """RPC, SMTP, HTTP or a broker publish was attempted inside an open unit of work."""


def in_transaction() -> bool:
    """True while the current green thread has a unit of work open."""
    return getattr(_tx, "depth", 0) > 0


def assert_no_transaction(what: str) -> None:
    """Raise :class:`NetworkIOInTransaction` when a unit of work is open in this green thread."""
    if in_transaction():
        raise NetworkIOInTransaction(
            f"{what} inside an open unit of work: do it before the transaction or after "
            "it commits (see docs/architecture.md, 'No network I/O inside a transaction')")


class _TransactionMarker:
    def __enter__(self) -> None:
        _tx.depth = getattr(_tx, "depth", 0) + 1

    def __exit__(self, *exc: object) -> Literal[False]:
        _tx.depth -= 1
        return False


def transaction_marker() -> _TransactionMarker:
    """Context manager marking the current green thread as 'in a transaction'."""
    return _TransactionMarker()
