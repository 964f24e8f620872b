"""UTC instants: every instant is stored and compared in UTC.

No database, broker or nameko import here: the schemas (the services' RPC contract,
which the gateway loads) use it too.
"""

from __future__ import annotations
import datetime as dt
from typing import overload


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Stored instants are UTC; SQLite hands them back naive."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
