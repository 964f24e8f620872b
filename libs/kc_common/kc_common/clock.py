"""German calendar days: instants are stored UTC and shown, dated and billed in Europe/Berlin.

No database or broker import here: schemas, mails and documents use it too.
"""
import datetime as dt
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def as_berlin(instant: dt.datetime) -> dt.datetime:
    """The instant in Berlin time (a naive one is UTC, as SQLite hands stored instants back)."""
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.timezone.utc)).astimezone(BERLIN)


def berlin_date(instant: dt.datetime) -> dt.date:
    """The calendar day in Germany at that instant."""
    return as_berlin(instant).date()


def berlin_today() -> dt.date:
    """Today in Germany: contract dates, invoice dates, due dates and runs are German days."""
    return dt.datetime.now(dt.timezone.utc).astimezone(BERLIN).date()
