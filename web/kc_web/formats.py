"""German formats: 1.234,56 €, dates as the guide shows them (24.05.19)."""
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal
from markupsafe import Markup, escape

BERLIN = ZoneInfo("Europe/Berlin")


def to_decimal(value):
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value, sign=False):
    """``"1234.5"`` -> ``"1.234,50 €"``; ``sign`` puts a + before positive amounts."""
    amount = to_decimal(value)
    if amount is None:
        return ""
    text = format_decimal(amount, format="#,##0.00", locale="de_DE")
    if sign and amount > 0:
        text = "+" + text
    return f"{text}\u00a0€"


def number(value, digits=0):
    amount = to_decimal(value)
    if amount is None:
        return ""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(amount, format=pattern, locale="de_DE")


def parse_date(value):
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(BERLIN).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    if "T" in text:
        return parse_datetime(text).date()
    return date.fromisoformat(text[:10])


def parse_datetime(value):
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.astimezone(BERLIN) if dt.tzinfo else dt


def short_date(value):
    """The guide's table dates: ``24.05.19``."""
    d = parse_date(value)
    return d.strftime("%d.%m.%y") if d else ""


def long_date(value):
    """``24.05.2019`` (periods, end dates)."""
    d = parse_date(value)
    return d.strftime("%d.%m.%Y") if d else ""


def date_time(value):
    dt = parse_datetime(value)
    return dt.strftime("%d.%m.%Y, %H:%M Uhr") if dt else ""


def month_name(value):
    """``2026-11`` -> ``Nov. 2026``."""
    names = ["Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."]
    year, month = str(value).split("-")[:2]
    return f"{names[int(month) - 1]} {year}"


def file_size(value):
    size = int(value or 0)
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{number(size / 1024, 0)} KB"
    return f"{number(size / 1024 / 1024, 1)} MB"


PERIODS = {1: "monatlich", 3: "vierteljährlich", 6: "halbjährlich", 12: "jährlich"}


def period(months):
    """Zahlungsperiode in months, as the guide shows it (``12``)."""
    return "" if months in (None, "") else str(months)


def period_text(months):
    try:
        months = int(months)
    except (TypeError, ValueError):
        return ""
    return PERIODS.get(months, f"alle {months} Monate")


def iban(value):
    """``DE89370400440532013000`` -> ``DE89 3704 0044 0532 0130 00``."""
    text = str(value or "").replace(" ", "")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def breakable(value):
    """A host name that may wrap after its dots and hyphens (``srv1.<wbr>kundencenter-<wbr>…``), escaped."""
    text = str(escape("" if value is None else str(value)))
    return Markup(text.replace(".", ".<wbr>").replace("-", "-<wbr>"))


FILTERS = {"breakable": breakable, "iban": iban, "money": money, "number": number, "short_date": short_date, "long_date": long_date,
           "date_time": date_time, "month_name": month_name, "file_size": file_size,
           "period": period, "period_text": period_text}
