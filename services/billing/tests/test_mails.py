"""billing's mail texts (pure functions: no bus, no database)."""
import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

from kc_billing import mails
from kc_billing.settings import BillingSettings

SETTINGS = BillingSettings({})


def invoice(**kw):
    return SimpleNamespace(**{"kind": "invoice", "number": 1000001, "gross": Decimal("1234.50"),
                              "due_date": dt.date(2026, 12, 14), "payment_method": "transfer",
                              "payment_reference": "KC100001-1000001", "preceding_number": None,
                              "seller": None, **kw})


def test_invoice_mail_says_the_amount_in_german_and_how_to_pay():
    body = mails.invoice_text(invoice(), SETTINGS)
    assert "Ihre Rechnung 1000001 über 1.234,50\u00a0€." in body
    assert "bis zum 14.12.2026 unter Angabe von KC100001-1000001" in body
    assert "EUR" not in body and SETTINGS.seller["name"] in body
    assert mails.invoice_subject(invoice()) == "Ihre Rechnung 1000001"


def test_sepa_invoice_mail_is_the_pre_notification():
    body = mails.invoice_text(invoice(payment_method="sepa"), SETTINGS, "KC100001-M001")
    assert ("Den Betrag von 1.234,50\u00a0€ ziehen wir am 14.12.2026 per SEPA-Lastschrift von Ihrem "
            "Konto ein (Mandatsreferenz KC100001-M001") in body
    assert "Bitte überweisen" not in body


def test_credit_note_mail_names_the_corrected_invoice_and_a_positive_amount():
    note = invoice(kind="credit_note", number=1000007, gross=Decimal("-11.78"), preceding_number=1000001)
    assert mails.invoice_subject(note) == "Ihre Gutschrift 1000007 (Rechnungskorrektur zu Rechnung 1000001)"
    assert "Gutschrift 1000007 über 11,78\u00a0€ (Rechnungskorrektur" in mails.invoice_text(note, SETTINGS)


def test_dunning_and_debit_returned_mails_in_german():
    dunning = {"number": 1000001, "due_date": "2026-11-01", "open_amount": "11.78", "level": 2,
               "payment_reference": "KC100001-1000001"}
    assert mails.dunning_subject(dunning) == "Zahlungserinnerung zu Rechnung 1000001"
    assert "ein Betrag von 11,78\u00a0€ offen (2. Erinnerung)" in mails.dunning_text(dunning, SETTINGS)
    returned = {"invoice_number": 1000001, "amount": "11.78", "fee": "0.00", "reason": "Konto erloschen",
                "reason_code": "AC04", "mandate_reference": "KC100001-M001", "customer_id": 100001}
    body = mails.debit_returned_text(returned, SETTINGS)
    assert "über 11,78\u00a0€ (Mandatsreferenz KC100001-M001)" in body and "Grund: Konto erloschen (AC04)." in body
    assert "berechnet uns die Bank" not in body  # no fee, no sentence about one
    assert "berechnet uns die Bank 3,00\u00a0€" in mails.debit_returned_text(dict(returned, fee="3.00"), SETTINGS)
