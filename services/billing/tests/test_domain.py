"""billing's pure rules."""
from decimal import Decimal

from kc_billing.domain import balance_text, totals


def test_vat_is_summed_per_rate_then_rounded():
    lines = [{"net": Decimal("0.05"), "vat_rate": Decimal("19")}] * 3  # 3 x 0.0095 VAT
    assert totals(lines) == (Decimal("0.15"), Decimal("0.03"), Decimal("0.18"))


def test_balance_text_as_in_the_guide():
    assert balance_text(Decimal("0.00")) == "0.00€ Guthaben"
    assert balance_text(Decimal("-4.00")) == "-4.00€ offener Betrag"
