"""SEPA direct debit end to end on PostgreSQL: mandate shown, collection run (pain.008 valid
against its XSD, FRST/RCUR, idempotent per due date), return debits in the statement."""
import base64
import datetime as dt
from functools import partial
from pathlib import Path

import sepaxml
from lxml import etree
from sqlalchemy import func, select, update

from kc_billing import domain
from kc_billing.models import bookings, invoices
from kc_common import testing
from kc_common.testing import wait_for

from .camt_files import Tx, statement
from .conftest import order_event

STAFF = {"staff_id": 3, "staff_roles": ["billing"]}
ME = {"customer_id": 100001}
TODAY = dt.date.today()
IBAN = "DE02100100109307118603"
PAIN_XSD = Path(sepaxml.__file__).parent / "schemas" / "pain.008.001.02.xsd"


call = partial(testing.call, context=STAFF)


def open_amounts(db, customer_id):
    with db.unit_of_work() as uow:
        by_id = domain.invoice_open_amounts(uow.session, customer_id)
        numbers = dict(uow.session.execute(select(invoices.c.id, invoices.c.number)).all())
    return {numbers[i]: str(v) for i, v in by_id.items()}


def make_due(db):
    with db.unit_of_work() as uow:
        uow.session.execute(update(invoices).values(due_date=TODAY))


def upload(container, xml):
    return call(container, "import_statement", {"files": [{
        "content_b64": base64.b64encode(xml).decode(), "filename": "auszug.xml"}]})


def test_sepa_collection_and_return_debit(billing, publish, db, capture_events, smtp_server):
    saved = call(billing, "update_payment_details", {
        "by_post": False, "with_contact_person": False, "method": "sepa", "iban": IBAN,
        "account_holder": "Max Mustermann", "sepa_mandate_accepted": True}, context=ME)
    assert saved["mandate_reference"] == "KC100001-M001" and saved["creditor_id"] == "DE98ZZZ09999999999"
    assert call(billing, "get_payment_details", context=ME)["mandate_date"] == TODAY.isoformat()
    issued = capture_events("billing", "invoice_issued")
    publish("catalog", "order_placed", order_event(100001, 1, TODAY))
    data = issued.wait(1)[0]["data"]
    assert data["sepa"]["creditor_id"] == "DE98ZZZ09999999999"   # the pre-notification's facts
    assert data["sepa"]["mandate_reference"] == "KC100001-M001" and data["due_date"]
    assert open_amounts(db, 100001) == {1000001: "11.78"}  # not booked before it is collected

    nothing = call(billing, "run_sepa_collection", {"due_date": TODAY.isoformat()})
    assert (nothing["count"], nothing["pain008"], nothing["created"]) == (0, None, True)
    make_due(db)
    tomorrow = TODAY + dt.timedelta(days=1)
    run = call(billing, "run_sepa_collection", {"due_date": tomorrow.isoformat()})
    assert run["count"] == 1 and run["total"] == "11.78" and run["pain008_version"] == "pain.008.001.02"
    assert [(d["invoice_number"], d["sequence_type"]) for d in run["debits"]] == [(1000001, "FRST")]
    doc = etree.fromstring(run["pain008"].encode())
    schema = etree.XMLSchema(etree.parse(str(PAIN_XSD)))
    assert schema.validate(doc), schema.error_log
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}
    assert doc.findtext(".//p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=ns) == "DE98ZZZ09999999999"
    assert doc.findtext(".//p:SeqTp", namespaces=ns) == "FRST"
    assert doc.findtext(".//p:ReqdColltnDt", namespaces=ns) == tomorrow.isoformat()
    assert doc.findtext(".//p:MndtId", namespaces=ns) == "KC100001-M001"
    assert doc.findtext(".//p:EndToEndId", namespaces=ns) == "KC100001-1000001"
    assert open_amounts(db, 100001) == {1000001: "0.00"}

    again = call(billing, "run_sepa_collection", {"due_date": tomorrow.isoformat()})
    assert (again["collection_id"], again["created"], again["count"]) == (run["collection_id"], False, 1)
    later = call(billing, "run_sepa_collection", {"due_date": (TODAY + dt.timedelta(days=2)).isoformat()})
    assert later["count"] == 0  # never collected twice

    publish("catalog", "order_placed", order_event(100001, 2, TODAY, price="20.00"))
    wait_for(lambda: len(open_amounts(db, 100001)) == 2)
    make_due(db)
    second = call(billing, "run_sepa_collection", {"due_date": (TODAY + dt.timedelta(days=3)).isoformat()})
    assert [(d["invoice_number"], d["sequence_type"]) for d in second["debits"]] == [(1000002, "RCUR")]

    # the bank returns the first debit: MD06 (the payer asked for it back)
    returned = capture_events("billing", "debit_returned")
    rueck = Tx("11.78", "RUECKLASTSCHRIFT", direction="DBIT", return_reason="MD06",
               end_to_end="KC100001-1000001", mandate_id="KC100001-M001", acct_svcr_ref="RL-0001")
    result = upload(billing, statement([rueck], stmt_id="STMT-RL"))
    item = result["items"][0]
    assert (item["outcome"], item["reason"], item["invoice_number"]) == ("booked", "return", 1000001)
    assert open_amounts(db, 100001) == {1000001: "11.78", 1000002: "0.00"}  # open again: dunning
    with db.unit_of_work() as uow:
        assert str(domain.balance_of(uow.session, 100001)) == "-14.78"  # + the 3.00 fee
    assert returned.wait(1)[0]["data"]["reason_code"] == "MD06"
    mail = smtp_server.wait(1, to="max@example.org")[0]
    assert "Rücklastschrift zu Rechnung 1000001" == mail["Subject"]
    body = mail.get_content()
    assert "Rückgabe auf Verlangen des Zahlungspflichtigen (MD06)" in body and "3,00\u00a0€" in body

    # the same return again, and notified once more by camt.054 under another reference: once
    assert upload(billing, statement([rueck], stmt_id="STMT-RL"))["already_booked"] == 1
    rueck054 = Tx("11.78", "RUECKLASTSCHRIFT", direction="DBIT", return_reason="MD06",
                  end_to_end="KC100001-1000001", acct_svcr_ref="N-RL-7")
    again = upload(billing, statement([rueck054], version="camt.054.001.02", stmt_id="N1"))
    assert again["items"][0]["outcome"] == "already_booked"
    with db.unit_of_work() as uow:
        types = dict(uow.session.execute(select(bookings.c.type, func.count()).group_by(
            bookings.c.type)).all())
    assert types["RUECKLASTSCHRIFT"] == 1 and types["GEBUEHR"] == 1
    # a return of a debit we never made is reported, not booked
    alien = Tx("5.00", "", direction="DBIT", return_reason="AC04", end_to_end="FREMD-1",
               acct_svcr_ref="RL-X")
    assert upload(billing, statement([alien], stmt_id="S-X"))["items"][0]["reason"] == "return_unknown"
    # the next collection does not collect the returned invoice again (dunning takes over)
    assert call(billing, "run_sepa_collection", {"due_date": (TODAY + dt.timedelta(days=4)).isoformat()})[
        "count"] == 0
