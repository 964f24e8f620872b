"""German formats for documents (babel): 24.05.2019, 1.234,56 €, 19 %."""
import datetime as dt
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_decimal

from kc_common.clock import as_berlin
from kc_common.formats import money_de

LOCALE = "de_DE"


def as_date(value):
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return as_berlin(value).date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    if "T" in text or len(text) > 10:
        return as_date(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    return dt.date.fromisoformat(text)


def date_de(value):
    """24.05.2019 (instants are shown in Europe/Berlin)."""
    day = as_date(value)
    return format_date(day, "dd.MM.yyyy", locale=LOCALE) if day else ""


def datetime_de(value):
    """24.05.2019, 14:03 Uhr (Europe/Berlin)."""
    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    local = as_berlin(value)
    return f"{format_date(local.date(), 'dd.MM.yyyy', locale=LOCALE)}, {local:%H:%M} Uhr"


def number_de(value, places=None):
    if value is None or value == "":
        return ""
    value = Decimal(str(value))
    if places is None:
        value = value.normalize()
        if value == value.to_integral():
            value = value.quantize(Decimal(1))
        return format_decimal(value, locale=LOCALE, decimal_quantization=False)
    pattern = "#,##0." + "0" * places if places else "#,##0"
    return format_decimal(value, format=pattern, locale=LOCALE)


def percent_de(value):
    """19 % / 7 % / 0 % (rate given in percent, e.g. "19.00")."""
    return f"{number_de(value)}\u00a0%"


def iban_grouped(iban):
    iban = (iban or "").replace(" ", "").upper()
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


FILTERS = {"date_de": date_de, "datetime_de": datetime_de, "money_de": money_de,
           "number_de": number_de, "percent_de": percent_de, "iban": iban_grouped}
