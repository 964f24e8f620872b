"""Time: instants are stored and compared in UTC, and shown, dated and billed as German
calendar days (Europe/Berlin).

No database, broker or nameko import here (the standard library only): the schemas (the
services' RPC contract, which the gateway loads), mails and documents use it too
(.importlinter: contract-layer-without-infrastructure).
"""
from __future__ import annotations

import datetime as dt
from typing import overload
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def utcnow() -> dt.datetime:
    """Now, as an aware UTC instant."""
    return dt.datetime.now(dt.UTC)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Stored instants are UTC; SQLite hands them back naive."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)


def as_berlin(instant: dt.datetime) -> dt.datetime:
    """The instant in Berlin time (a naive one is UTC, as SQLite hands stored instants back)."""
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(BERLIN)


def berlin_date(instant: dt.datetime) -> dt.date:
    """The calendar day in Germany at that instant."""
    return as_berlin(instant).date()


def berlin_today() -> dt.date:
    """Today in Germany: contract dates, invoice dates, due dates and runs are German days."""
    return utcnow().astimezone(BERLIN).date()
