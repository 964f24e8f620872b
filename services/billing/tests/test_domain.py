"""billing's pure rules: rounding, proration, reverse charge, signatures, IBAN, dunning levels."""
import time
from decimal import Decimal

import pytest

from kc_billing.accounts import balance_text
from kc_billing.details import validate_iban
from kc_billing.domain import is_reverse_charge, totals, vat_breakdown
from kc_billing.dunning import level_for
from kc_billing.psp import WebhookRejected, sign, verify
from kc_billing.schedule import proration_lines


def test_vat_is_summed_per_rate_then_rounded():
    lines = [{"net": Decimal("0.05"), "vat_rate": Decimal("19")}] * 3  # 3 x 0.0095 VAT
    assert totals(lines) == (Decimal("0.15"), Decimal("0.03"), Decimal("0.18"))


def test_many_small_lines_are_rounded_once_per_rate():
    # 1000 lines of 0.01 net: per line VAT would be 0.0019 -> 0.00 each, i.e. 0.00 in total.
    lines = [{"net": Decimal("0.01"), "vat_rate": Decimal("19.00")}] * 1000
    lines += [{"net": Decimal("0.07"), "vat_rate": Decimal("7.00")}] * 333  # 23.31 net, 1.6317 VAT
    assert totals(lines) == (Decimal("33.31"), Decimal("3.53"), Decimal("36.84"))
    assert vat_breakdown(lines) == [
        {"rate": Decimal("7.00"), "base": Decimal("23.31"), "amount": Decimal("1.63")},
        {"rate": Decimal("19.00"), "base": Decimal("10.00"), "amount": Decimal("1.90")}]


def test_half_up_at_the_cent():
    assert totals([{"net": Decimal("0.50"), "vat_rate": Decimal("19")}])[1] == Decimal("0.10")  # 0.095
    assert totals([{"net": Decimal("2.50"), "vat_rate": Decimal("7")}])[1] == Decimal("0.18")   # 0.175


def test_balance_text_as_in_the_guide():
    assert balance_text(Decimal("0.00")) == "0,00\u00a0€ Guthaben"
    assert balance_text(Decimal("-4.00")) == "-4,00\u00a0€ offener Betrag"


def change(effective, old="120.00", new="240.00", old_rate="19.00", new_rate="19.00"):
    return {"contract_id": 1, "effective_date": effective, "period_start": "2026-01-01",
            "period_end": "2026-12-31",
            "old": {"product_name": "alt", "price_net": old, "vat_rate": old_rate},
            "new": {"product_name": "neu", "price_net": new, "vat_rate": new_rate}}


@pytest.mark.parametrize("effective, old, new, credit, charge", [
    ("2026-09-23", "120.00", "240.00", "-32.88", "65.76"),    # 100/365 days
    ("2026-01-01", "120.00", "240.00", "-120.00", "240.00"),  # the whole period
    ("2026-12-31", "9.99", "19.99", "-0.03", "0.06"),         # one day: 0.0274 / 0.0548
    ("2026-07-02", "100.00", "33.33", "-50.14", "16.71"),     # 183 days, downgrade
])
def test_proration_by_days_remaining_to_the_cent(effective, old, new, credit, charge):
    credit_line, charge_line = proration_lines(change(effective, old, new))
    assert (str(credit_line["net"]), str(charge_line["net"])) == (credit, charge)
    # the sum is the exactly prorated difference, rounded once
    days = (credit_line["period_end"] - credit_line["period_start"]).days + 1
    exact = (Decimal(new) - Decimal(old)) * days / 365
    assert credit_line["net"] + charge_line["net"] == exact.quantize(Decimal("0.01"), "ROUND_HALF_UP")


def test_no_proration_after_the_period():
    assert proration_lines(change("2027-01-01")) == []


def test_reverse_charge_only_for_eu_business_customers_abroad_with_vat_id():
    assert is_reverse_charge({"is_business": True, "vat_id": "ATU12345678", "country": "AT"})
    assert not is_reverse_charge({"is_business": True, "vat_id": "DE987654321", "country": "DE"})
    assert not is_reverse_charge({"is_business": True, "vat_id": None, "country": "AT"})
    assert not is_reverse_charge({"is_business": False, "vat_id": "ATU12345678", "country": "AT"})
    assert not is_reverse_charge({"is_business": True, "vat_id": "CHE123", "country": "CH"})


def test_webhook_signature_and_replay_window():
    body = '{"id": "evt_1", "type": "payment.succeeded", "data": {"id": "psp_1", "reference": "p", ' \
           '"status": "succeeded", "amount": "1.00"}}'
    now = int(time.time())
    assert verify("s", sign("s", now, body), body, 300)["status"] == "succeeded"
    for header, text in [(sign("other", now, body), body), (sign("s", now, body), body + " "),
                         (sign("s", now - 301, body), body), (None, body), ("t=x,v1=y", body)]:
        with pytest.raises(WebhookRejected):
            verify("s", header, text, 300)


def test_webhook_secret_rotation_two_secrets_valid_at_once():
    """PSP_WEBHOOK_SECRET=new,old accepts both; after the old one is removed, it is refused."""
    from kc_billing.psp import SIGNATURE_HEADER, provider_from_settings
    from kc_billing.settings import BillingSettings
    body = '{"id": "evt_2", "type": "payment.succeeded", "data": {"id": "psp_2", "reference": "p", ' \
           '"status": "succeeded", "amount": "2.00"}}'
    now = int(time.time())
    old, new = {SIGNATURE_HEADER: sign("whsec_old", now, body)}, {SIGNATURE_HEADER: sign("whsec_new", now, body)}
    before = provider_from_settings(BillingSettings({"PSP_WEBHOOK_SECRET": "whsec_old"}))
    during = provider_from_settings(BillingSettings({"PSP_WEBHOOK_SECRET": "whsec_new, whsec_old"}))
    after = provider_from_settings(BillingSettings({"PSP_WEBHOOK_SECRET": "whsec_new"}))
    assert before.parse_webhook(body, old)["amount"] == "2.00"
    with pytest.raises(WebhookRejected):
        before.parse_webhook(body, new)
    assert during.parse_webhook(body, old)["event_id"] == "evt_2"
    assert during.parse_webhook(body, new)["event_id"] == "evt_2"
    assert after.parse_webhook(body, new)["event_id"] == "evt_2"
    with pytest.raises(WebhookRejected, match="signature mismatch"):
        after.parse_webhook(body, old)
    with pytest.raises(WebhookRejected):  # a third secret is no key to the door
        during.parse_webhook(body, {SIGNATURE_HEADER: sign("whsec_other", now, body)})


@pytest.mark.parametrize("iban", ["DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000",
                                  "DE02999999990000000000", "kaputt"])
def test_invalid_iban_is_refused(iban):
    with pytest.raises(ValueError):
        validate_iban(iban)


def test_valid_iban_knows_its_bank():
    iban = validate_iban("de89 3704 0044 0532 0130 00")
    assert iban.compact == "DE89370400440532013000" and iban.bic


def test_dunning_levels():
    assert [level_for(d, [7, 21, 35]) for d in (0, 6, 7, 20, 21, 40)] == [0, 0, 1, 1, 2, 3]


def test_line_text_names_the_domain_or_the_package_label():
    import datetime as dt

    from kc_billing.domain import line_text
    start, end = dt.date(2019, 5, 24), dt.date(2020, 5, 23)
    assert line_text({"kind": "domain", "domain": "xn--mller-kva.de", "product_name": "Domain .de"},
                     start, end) == "Domain müller.de 24.05.2019-23.05.2020"
    assert line_text({"kind": "hosting", "domain": None, "label": "partnercenter.de",
                      "product_name": "businesshosting"}, start, end) == \
        "businesshosting partnercenter.de 24.05.2019-23.05.2020"
    assert line_text({"kind": "addon", "product_name": "Backup"}, start, end) == \
        "Backup 24.05.2019-23.05.2020"
