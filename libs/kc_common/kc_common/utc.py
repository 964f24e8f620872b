"""UTC instants: every instant is stored and compared in UTC.

No database, broker or nameko import here: the schemas (the services' RPC contract,
which the gateway loads) use it too.
"""
import datetime as dt


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value):
    """Stored instants are UTC; SQLite hands them back naive."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
