"""billing on the real bus and PostgreSQL: invoices, payments exactly once, Zahlungsdetails."""
import datetime as dt
import json
import time
import uuid
from functools import partial

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook
from sqlalchemy import update

from kc_billing import accounts, domain
from kc_billing.models import invoices
from kc_billing.psp import sign
from kc_billing.settings import BillingSettings
from kc_common import testing
from kc_common.errors import NotFound, Unauthenticated, Unprocessable, ValidationFailed
from kc_common.testing import wait_for

from .conftest import PDF, SECRET, order_event

CUSTOMER = {"customer_id": 100001}
TODAY = dt.date.today()


call = partial(testing.call, context=CUSTOMER)


def account(container, customer_id=100001, **params):
    return call(container, "get_account", params or None, context={"customer_id": customer_id})


def test_order_placed_twice_is_invoiced_once_with_the_full_payload(billing, config, publish, capture_events):
    issued = capture_events("billing", "invoice_issued")
    event = publish("catalog", "order_placed",
                    order_event(100001, 7, dt.date(2026, 11, 26), domain="beispiel.de"))
    publish("catalog", "order_placed", event["data"], event_id=event["id"])
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    assert len(issued.drain(config["DATABASE_URL"], containers=[billing])) == 1
    acc = account(billing)
    assert acc["balance"] == "-11.78" and acc["balance_text"] == "-11,78\u00a0€ offener Betrag"
    booking = acc["bookings"]["items"][0]
    assert booking["type"] == "RE" and booking["invoice_number"] == 1000001
    assert booking["text"] == "Domain beispiel.de 26.11.2026-25.11.2027"
    assert booking["payment_method"] == "U" and booking["open_amount"] == "11.78"
    data = issued.received[0]["data"]
    assert data["seller"]["vat_id"] == "DE123456789" and data["seller"]["iban"]
    assert data["buyer"]["name"] == "Max Mustermann" and data["buyer"]["city"] == "Hannover"
    assert data["lines"][0]["period_start"] == "2026-11-26" and data["lines"][0]["net"] == "9.90"
    assert data["vat_breakdown"] == [{"rate": "19.00", "base": "9.90", "amount": "1.88"}]
    assert (data["net"], data["vat"], data["gross"], data["open_amount"]) == ("9.90", "1.88", "11.78", "11.78")
    assert data["reverse_charge"] is False and data["payment_reference"] == "KC100001-1000001"
    assert data["invoice_email"] == "max@example.org" and data["due_date"]


def test_account_standing_of_a_new_customer(billing):
    assert call(billing, "account_standing") == {"in_arrears": False, "open_amount": "0.00"}
    assert account(billing)["balance_text"] == "0,00\u00a0€ Guthaben"


def test_another_customers_invoice_is_not_found(billing, publish):
    publish("catalog", "order_placed", order_event(100001, 8, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    number = account(billing)["bookings"]["items"][0]["invoice_number"]
    invoice = call(billing, "get_invoice", number)
    assert invoice["gross"] == "11.78" and invoice["lines"][0]["net"] == "9.90"
    with pytest.raises(NotFound):
        call(billing, "get_invoice", number, context={"customer_id": 100002})
    with pytest.raises(NotFound):
        call(billing, "get_invoice", "kaputt")


def test_reverse_charge_for_an_eu_business_customer(billing, publish, capture_events):
    issued = capture_events("billing", "invoice_issued")
    publish("catalog", "order_placed", order_event(100003, 9, TODAY, price="100.00"))
    data = issued.wait(1)[0]["data"]
    assert data["reverse_charge"] is True and "Reverse Charge" in data["reverse_charge_note"]
    assert (data["net"], data["vat"], data["gross"]) == ("100.00", "0.00", "100.00")
    assert data["buyer"]["vat_id"] == "ATU12345678" and data["buyer"]["country"] == "AT"


def test_payment_details_validated_and_postage_on_the_next_invoice(billing, publish, capture_events):
    with pytest.raises(ValidationFailed) as err:
        call(billing, "update_payment_details", {"by_post": True, "with_contact_person": True,
                                                 "method": "sepa", "iban": "DE89370400440532013001",
                                                 "account_holder": "Max", "sepa_mandate_accepted": True})
    assert "iban" in err.value.fields
    with pytest.raises(ValidationFailed) as err:  # valid check digits, unknown bank code
        call(billing, "update_payment_details", {"by_post": True, "with_contact_person": True,
                                                 "method": "sepa", "iban": "DE02999999990000000000",
                                                 "account_holder": "Max", "sepa_mandate_accepted": True})
    assert "iban" in err.value.fields
    with pytest.raises(ValidationFailed) as err:
        call(billing, "update_payment_details", {"by_post": "vielleicht", "with_contact_person": True,
                                                 "method": "bar", "invoice_email": "kein-mail"})
    assert set(err.value.fields) == {"by_post", "method", "invoice_email"}
    assert call(billing, "get_payment_details")["method"] == "transfer"  # nothing half-written
    saved = call(billing, "update_payment_details", {
        "by_post": True, "with_contact_person": True, "method": "sepa", "iban": "DE89 3704 0044 0532 0130 00",
        "account_holder": "Max Mustermann", "sepa_mandate_accepted": True,
        "invoice_email": "rechnung@example.org"})
    assert saved["mandate_reference"] == "KC100001-M001" and saved["bank_name"]
    assert saved["iban_masked"] == "DE89 **** 3000" and saved["mandate_date"]
    issued = capture_events("billing", "invoice_issued")
    publish("catalog", "order_placed", order_event(100001, 10, TODAY))
    data = issued.wait(1)[0]["data"]
    assert [line["text"] for line in data["lines"]][-1] == "Porto Rechnungsversand per Post"
    assert (data["net"], data["vat"], data["gross"]) == ("11.90", "2.26", "14.16")
    assert data["by_post"] is True and data["invoice_email"] == "rechnung@example.org"
    assert data["payment_method"] == "sepa" and data["sepa"]["mandate_reference"] == "KC100001-M001"
    assert data["buyer"]["contact_person"] == "Max Mustermann"


def test_tariff_change_is_prorated_to_the_cent(billing, publish, capture_events):
    issued = capture_events("billing", "invoice_issued")
    publish("catalog", "order_placed", order_event(100001, 11, dt.date(2026, 1, 1), price="120.00"))
    issued.wait(1)
    change = {"contract_id": 11, "customer_id": 100001, "change": "upgrade",
              "effective_date": "2026-09-23", "period_start": "2026-01-01", "period_end": "2026-12-31",
              "old": {"product_id": "p", "product_name": "businesshosting", "price_net": "120.00",
                      "vat_rate": "19.00", "period_months": 12},
              "new": {"product_id": "q", "product_name": "shophosting", "price_net": "240.00",
                      "vat_rate": "19.00", "period_months": 12}}
    publish("catalog", "contract_changed", change)
    data = issued.wait(2)[1]["data"]
    # 100 of 365 days remain: credit 120 * 100/365 = 32.876.. -> 32.88; difference 32.88
    assert [line["net"] for line in data["lines"]] == ["-32.88", "65.76"]
    assert (data["net"], data["vat"], data["gross"]) == ("32.88", "6.25", "39.13")
    assert "100/365 Tage" in data["lines"][1]["text"]
    down = dict(change, change="downgrade", effective_date="2026-12-01",
                old=change["new"], new=change["old"])
    publish("catalog", "contract_changed", down)
    credit = issued.wait(3)[2]["data"]
    # 31 of 365 days: 240*31/365 = 20.383.. -> 20.38; difference -120*31/365 = -10.19
    assert [line["net"] for line in credit["lines"]] == ["-20.38", "10.19"]
    assert credit["kind"] == "credit_note" and credit["gross"] == "-12.13"
    types = [b["type"] for b in account(billing)["bookings"]["items"]]
    assert types == ["GU", "RE", "RE"]


def _signed(payment_id, psp_id, status, amount, ts=None):
    body = json.dumps({"id": "evt_" + uuid.uuid4().hex, "type": f"payment.{status}", "data": {
        "id": psp_id, "reference": payment_id, "status": status, "amount": amount}})
    return body, {"X-PSP-Signature": sign(SECRET, int(ts or time.time()), body)}


def test_duplicate_and_concurrent_webhooks_book_the_payment_once(billing, publish, config, capture_events):
    received = capture_events("billing", "payment_received")
    publish("catalog", "order_placed", order_event(100001, 12, TODAY))
    wait_for(lambda: account(billing)["balance"] == "-11.78")
    payment = call(billing, "create_payment", {"method": "card"}, idempotency_key="k1")
    assert payment["status"] == "pending" and "/pay/" in payment["redirect_url"]
    assert call(billing, "create_payment", {"method": "card"}, idempotency_key="k1") == payment
    with pytest.raises(Unprocessable):
        call(billing, "create_payment", {"method": "card", "amount": "1.00"}, idempotency_key="k1")
    psp_id = payment["redirect_url"].rsplit("/", 1)[1]
    body, headers = _signed(payment["payment_id"], psp_id, "succeeded", "11.78")
    with pytest.raises(Unauthenticated):  # tampered body
        call(billing, "psp_webhook", raw_body=body.replace("11.78", "1.00"), headers=headers)
    stale_body, stale = _signed(payment["payment_id"], psp_id, "succeeded", "11.78", ts=time.time() - 3600)
    with pytest.raises(Unauthenticated):  # outside the replay window
        call(billing, "psp_webhook", raw_body=stale_body, headers=stale)

    results = []

    def deliver():
        with ServiceRpcProxy("billing", config) as proxy:
            results.append(proxy.psp_webhook(raw_body=body, headers=headers))
    pool = eventlet.GreenPool()
    for _ in range(6):
        pool.spawn(deliver)
    pool.waitall()
    assert results == [{"received": True}] * 6
    late_body, late = _signed(payment["payment_id"], psp_id, "failed", "11.78")
    call(billing, "psp_webhook", raw_body=late_body, headers=late)  # late contradicting: ignored
    acc = account(billing)
    assert acc["balance"] == "0.00" and acc["balance_text"] == "0,00\u00a0€ Guthaben"
    assert [b["type"] for b in acc["bookings"]["items"]] == ["ZAHLUNG", "RE"]
    assert acc["bookings"]["items"][0]["payment_method"] == "K"
    events = received.drain(config["DATABASE_URL"])
    assert len(events) == 1 and events[0]["data"]["amount"] == "11.78"
    assert len(events[0]["data"]["settled_invoice_ids"]) == 1
    assert call(billing, "get_payment", payment["payment_id"])["status"] == "succeeded"
    with pytest.raises(NotFound):
        call(billing, "get_payment", payment["payment_id"], context={"customer_id": 100002})


def test_a_lost_webhook_is_reconciled_by_asking_the_psp(billing, publish, psp, capture_events):
    failed = capture_events("billing", "payment_failed")
    publish("catalog", "order_placed", order_event(100001, 13, TODAY))
    wait_for(lambda: account(billing)["balance"] == "-11.78")
    first = call(billing, "create_payment", {"method": "instant"})
    psp.complete(first["redirect_url"].rsplit("/", 1)[1], "succeeded")
    assert call(billing, "get_payment", first["payment_id"])["status"] == "succeeded"
    second = call(billing, "create_payment", {"method": "card", "amount": "5.00"})
    psp.complete(second["redirect_url"].rsplit("/", 1)[1], "declined")
    with entrypoint_hook(billing, "reconcile_payments") as reconcile:  # the timer's work
        reconcile()
    assert call(billing, "get_payment", second["payment_id"])["status"] == "failed"
    assert failed.wait(1)[0]["data"]["reason"] == "declined"
    acc = account(billing)
    assert acc["balance"] == "0.00" and acc["bookings"]["items"][0]["payment_method"] == "S"


def test_bank_transfer_settles_oldest_first_and_overpayment_is_credit(billing, publish, db):
    staff = {"staff_id": 1, "staff_roles": ["billing"]}
    publish("catalog", "order_placed", order_event(100001, 14, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    publish("catalog", "order_placed", order_event(100001, 15, TODAY, price="20.00"))
    wait_for(lambda: account(billing)["bookings"]["total"] == 2)
    details = call(billing, "get_transfer_details")
    assert details["amount"] == "35.58" and details["reference"] == "KC100001"
    with pytest.raises(Unprocessable):
        call(billing, "book_transfer", {"transaction_id": "t0", "reference": "ohne Nummer",
                                        "amount": "5.00"}, context=staff)
    with pytest.raises(Unauthenticated):
        call(billing, "book_transfer", {"transaction_id": "t1", "reference": "KC100001", "amount": "5.00"})
    line = {"transaction_id": "camt-1", "reference": "Rechnung KC100001-1000001", "amount": "15.00"}
    first = call(billing, "book_transfer", line, context=staff)
    assert first["created"] is True and len(first["settled_invoice_ids"]) == 1  # the older one
    assert call(billing, "book_transfer", line, context=staff)["created"] is False
    with db.unit_of_work() as uow:
        opened = domain.invoice_open_amounts(uow.session, 100001)
    assert sorted(str(v) for v in opened.values()) == ["0.00", "20.58"]
    call(billing, "book_transfer", {"transaction_id": "camt-2", "reference": "KC100001",
                                    "amount": "30.00"}, context=staff)
    assert account(billing)["balance_text"] == "9,42\u00a0€ Guthaben"
    publish("catalog", "order_placed", order_event(100001, 16, TODAY))  # credit settles the next
    wait_for(lambda: account(billing)["bookings"]["total"] == 5)
    with db.unit_of_work() as uow:
        assert sorted(str(v) for v in domain.invoice_open_amounts(uow.session, 100001).values()) == \
            ["0.00", "0.00", "2.36"]


def test_overdue_invoice_gets_reminders_and_the_customer_is_in_arrears(billing, publish, db, smtp_server):
    publish("catalog", "order_placed", order_event(100001, 17, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    assert call(billing, "account_standing") == {"in_arrears": False, "open_amount": "11.78"}
    staff = {"staff_id": 1, "staff_roles": ["billing"]}
    with db.unit_of_work() as uow:  # 22 days later (a run's as_of is bounded around today)
        uow.session.execute(update(invoices).values(due_date=TODAY - dt.timedelta(days=8)))
    done = {"customers": 1, "customers_done": 1, "complete": True}
    assert call(billing, "run_dunning", {"as_of": TODAY.isoformat()}, context=staff) == dict(done, sent=1)
    assert call(billing, "run_dunning", None, context=staff) == dict(done, sent=0)
    mail = smtp_server.wait(1, to="max@example.org")[0]
    assert "Zahlungserinnerung" in mail["Subject"] and "11,78\u00a0€" in mail.get_content()
    with db.unit_of_work() as uow:
        standing = accounts.account_standing(uow.session, 100001, BillingSettings({}),
                                           today=TODAY + dt.timedelta(days=22))
    assert standing == {"in_arrears": True, "open_amount": "11.78"}


def test_stored_invoice_pdf_is_mailed_to_the_invoice_address(billing, publish, smtp_server):
    publish("catalog", "order_placed", order_event(100001, 18, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    number = account(billing)["bookings"]["items"][0]["invoice_number"]
    stored = {"document_id": "doc-1", "customer_id": 100001, "kind": "invoice", "ref": str(number),
              "filename": f"Rechnung-{number}.pdf", "sha256": "x"}
    event = publish("documents", "document_stored", stored)
    publish("documents", "document_stored", stored, event_id=event["id"])
    mail = smtp_server.wait(1, to="max@example.org")[0]
    assert mail["Subject"] == f"Ihre Rechnung {number}"
    attachment = next(mail.iter_attachments())
    assert attachment.get_content() == PDF
    time.sleep(0.5)
    assert len(smtp_server.messages(to="max@example.org")) == 1


def test_account_filters_and_pages(billing, publish):
    for cid in range(20, 32):
        publish("catalog", "order_placed", order_event(100001, cid, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 12)
    page = account(billing, page=2, per_page=10)
    assert len(page["bookings"]["items"]) == 2 and page["bookings"]["total"] == 12
    assert account(billing, type="ZAHLUNG")["bookings"]["total"] == 0
    assert account(billing, date_from=TODAY.isoformat(), date_to=TODAY.isoformat())["bookings"]["total"] == 12
    with pytest.raises(ValidationFailed) as err:
        account(billing, per_page=7, type="XX")
    assert set(err.value.fields) == {"per_page", "type"}
    with pytest.raises(ValidationFailed) as err:  # a rule between two fields: the service's (422)
        account(billing, date_from=TODAY.isoformat(), date_to=(TODAY - dt.timedelta(days=1)).isoformat())
    assert list(err.value.fields) == ["date_to"]
    numbers = [b["invoice_number"] for b in account(billing, per_page=25)["bookings"]["items"]]
    assert numbers == sorted(numbers, reverse=True)  # newest first


def test_staff_correct_an_invoice_with_a_credit_note(billing, publish, capture_events):
    staff = {"staff_id": 1, "staff_roles": ["billing"]}
    publish("catalog", "order_placed", order_event(100001, 40, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    number = account(billing)["bookings"]["items"][0]["invoice_number"]
    issued = capture_events("billing", "invoice_issued")
    with pytest.raises(NotFound):  # another customer's invoice
        call(billing, "issue_credit_note", {"customer_id": 100002, "text": "Kulanz", "net": "1.00",
                                            "invoice_number": number}, context=staff)
    with pytest.raises(ValidationFailed) as err:
        call(billing, "issue_credit_note", {"customer_id": 100001, "text": "", "net": "-1"}, context=staff)
    assert set(err.value.fields) == {"text", "net"}
    note = call(billing, "issue_credit_note", {"customer_id": 100001, "text": "Kulanz", "net": "9.90",
                                               "invoice_number": number}, context=staff)
    assert note["kind"] == "credit_note" and note["gross"] == "-11.78" and note["number"] == number + 1
    assert issued.wait(1)[0]["data"]["lines"][0]["text"] == f"Gutschrift: Kulanz (zu Rechnung {number})"
    acc = account(billing)
    assert acc["balance"] == "0.00" and [b["type"] for b in acc["bookings"]["items"]] == ["GU", "RE"]


def test_camt053_statement_is_booked_by_reference_once(billing, publish):
    import base64

    from .camt_files import Tx, statement
    staff = {"staff_id": 1, "staff_roles": ["billing"]}
    publish("catalog", "order_placed", order_event(100001, 50, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)
    xml = statement([Tx("11.78", "Rechnung KC100001-1000001", acct_svcr_ref="BANK-0001"),
                     Tx("50.00", "Spende ohne Nummer", acct_svcr_ref="BANK-0002"),
                     Tx("99.00", "Abbuchung", direction="DBIT", acct_svcr_ref="BANK-0003")])
    upload = {"files": [{"field": "file", "filename": "auszug.xml", "content_type": "application/xml",
                         "content_b64": base64.b64encode(xml).decode()}]}
    first = call(billing, "import_statement", upload, context=staff)
    assert (first["entries"], first["booked"], first["already_booked"]) == (3, 1, 0)
    assert [u["transaction_id"] for u in first["unmatched"]] == ["DE89370400440532013000|BANK-0002"]
    again = call(billing, "import_statement", upload, context=staff)
    assert (again["booked"], again["already_booked"]) == (0, 1)
    acc = account(billing)
    items = acc["bookings"]["items"]
    # newest first, as in the guide: the settlement marker (once: the re-import booked nothing),
    # the transfer, the invoice
    assert [b["type"] for b in items] == ["KONTOAUSGLEICH", "ZAHLUNG", "RE"]
    assert items[0]["text"] == "Überweisungen/Gutschriften bis zum 26.11.2026 wurden einbezogen."
    assert items[0]["amount"] == "0.00" and items[1]["payment_method"] == "U"
    assert acc["balance"] == "0.00"
    with pytest.raises(ValidationFailed) as err:
        call(billing, "import_statement", {"files": [{"content_b64": base64.b64encode(b"<x/>").decode()}]},
             context=staff)
    assert "file" in err.value.fields


def test_credit_is_refunded_at_most_once_over(billing, publish, capture_events):
    """Overpayment becomes credit; staff pay it back (ERSTATTUNG), never more than there is."""
    staff = {"staff_id": "s1", "staff_roles": ["billing"]}
    refunds = capture_events("billing", "refund_booked")
    publish("catalog", "order_placed", order_event(100001, 61, TODAY))
    wait_for(lambda: account(billing)["bookings"]["total"] == 1)  # -11.78
    call(billing, "book_transfer", {"transaction_id": "ref-1", "reference": "KC100001",
                                    "amount": "20.00"}, context=staff)
    assert account(billing)["balance_text"] == "8,22\u00a0€ Guthaben"
    with pytest.raises(Unprocessable) as err:
        call(billing, "refund_credit", {"customer_id": 100001, "amount": "8.23", "reason": "Rückzahlung"},
             context=staff)
    assert "amount" in err.value.details["fields"]
    done = call(billing, "refund_credit", {"customer_id": 100001, "amount": "8.22",
                                           "reason": "Rückzahlung Überzahlung"}, context=staff)
    assert done["amount"] == "8.22" and done["balance"] == "0.00"
    acc = account(billing)
    assert acc["balance_text"] == "0,00\u00a0€ Guthaben"
    assert [b["type"] for b in acc["bookings"]["items"]][0] == "ERSTATTUNG"
    assert refunds.wait(1)[0]["data"]["amount"] == "8.22"
    with pytest.raises(Unprocessable):  # nothing left to refund
        call(billing, "refund_credit", {"customer_id": 100001, "amount": "0.01", "reason": "x"},
             context=staff)
    with pytest.raises(Unauthenticated):  # customers cannot refund themselves
        call(billing, "refund_credit", {"customer_id": 100001, "amount": "0.01", "reason": "x"})
