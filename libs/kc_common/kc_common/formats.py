"""German money texts (Babel, de_DE): what mails, documents and messages show the customer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel.numbers import format_currency

LOCALE = "de_DE"


def money_de(value: Any, currency: str = "EUR") -> str:
    """``Decimal("-1234.5")`` -> ``"-1.234,50 €"``: always two places, a no-break space before
    the € (as Babel's de_DE writes it), never "-0,00 €"."""
    if value is None or value == "":
        return ""
    return format_currency(Decimal(str(value)) + 0, currency or "EUR", locale=LOCALE,
                           format="#,##0.00\u00a0¤", currency_digits=False)
