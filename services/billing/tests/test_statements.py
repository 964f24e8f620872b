"""Bank statements on PostgreSQL with real-world-shaped camt.053 / camt.054 files."""
import base64
import datetime as dt
from functools import partial

import pytest
from lxml import etree
from sqlalchemy import func, select

from kc_billing import camt, domain
from kc_billing.models import bank_clarifications, bookings
from kc_common import testing
from kc_common.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from kc_common.testing import wait_for

from .camt_files import OTHER_IBAN, SELLER_IBAN, Tx, statement
from .conftest import order_event

STAFF = {"staff_id": 7, "staff_roles": ["billing"]}
TODAY = dt.date.today()


call = partial(testing.call, context=STAFF)


def upload(container, xml):
    return call(container, "import_statement", {"files": [{
        "field": "file", "filename": "auszug.xml", "content_type": "application/xml",
        "content_b64": base64.b64encode(xml).decode()}]})


def open_amounts(db, customer_id):
    with db.unit_of_work() as uow:
        by_id = domain.invoice_open_amounts(uow.session, customer_id)
        numbers = dict(uow.session.execute(select(domain.invoices.c.id, domain.invoices.c.number)).all())
    return {numbers[i]: str(v) for i, v in by_id.items()}


def balance(db, customer_id):
    with db.unit_of_work() as uow:
        return str(domain.balance_of(uow.session, customer_id))


@pytest.fixture
def invoiced(billing, publish, db):
    """100001: invoices 1000001 (11.78), 1000002 (11.78), 1000003 (23.80); 100002: 1000004 (11.78)."""
    for contract, price in ((1, "9.90"), (2, "9.90"), (3, "20.00")):
        publish("catalog", "order_placed", order_event(100001, contract, TODAY, price=price))
        wait_for(lambda contract=contract: len(open_amounts(db, 100001)) == contract)
    publish("catalog", "order_placed", order_event(100002, 4, TODAY))
    wait_for(lambda: len(open_amounts(db, 100002)) == 1)
    assert open_amounts(db, 100001) == {1000001: "11.78", 1000002: "11.78", 1000003: "23.80"}
    return billing


def test_the_xsds_accept_the_test_files(invoiced):
    """The fixtures are what banks send: valid against the official schema of each version."""
    for version in ("camt.053.001.02", "camt.053.001.08", "camt.054.001.02", "camt.054.001.08"):
        root, namespace = camt.validate(statement([Tx("1.00", "x", acct_svcr_ref="A")], version=version))
        assert namespace.endswith(version)


def test_statement_books_only_own_booked_credits_named_invoice_first_and_twice_nothing(invoiced, db):
    billing = invoiced
    xml = statement([
        Tx("23.80", "RE 1000003", acct_svcr_ref="2026112600001"),               # names an invoice
        Tx("11.78", "Kundennummer 100001 Danke", payer="Max Mustermann"),      # NOTPROVIDED, no bank ref
        Tx("11.78", "Rechnung 1000004", payer="Erika Musterfrau",              # NOTPROVIDED, no bank ref
           payer_iban="DE75512108001245126199"),
        Tx("9.00", "KC100001", status="PDNG", acct_svcr_ref="2026112600004"),  # pending
        Tx("99.00", "Miete November", direction="DBIT", acct_svcr_ref="2026112600005"),
        Tx("50.00", "Spende ohne Nummer", payer="Unbekannt", acct_svcr_ref="2026112600006"),
    ])
    first = upload(billing, xml)
    outcomes = [(i["outcome"], i["reason"]) for i in first["items"]]
    assert outcomes == [("booked", None), ("booked", None), ("booked", None),
                        ("not_booked", "not_booked_status"), ("not_booked", "debit"),
                        ("clarification", "unmatched")]
    assert (first["entries"], first["booked"], first["already_booked"], first["clarifications"],
            first["not_booked"]) == (6, 3, 0, 1, 2)
    assert first["items"][0]["invoice_number"] == 1000003
    # two payers, both NOTPROVIDED: two payments, two identities (never the EndToEndId)
    assert first["items"][1]["transaction_id"] != first["items"][2]["transaction_id"]
    assert first["items"][1]["customer_id"] == 100001 and first["items"][2]["customer_id"] == 100002
    # the named invoice is settled, not the oldest; the rest went to the oldest
    assert open_amounts(db, 100001) == {1000001: "0.00", 1000002: "11.78", 1000003: "0.00"}
    assert open_amounts(db, 100002) == {1000004: "0.00"}

    again = upload(billing, xml)
    assert (again["booked"], again["already_booked"], again["clarifications"]) == (0, 3, 1)
    assert again["unmatched"][0]["known"] is True
    with db.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(bank_clarifications)).scalar() == 1
        assert uow.session.execute(select(func.count()).select_from(bookings).where(
            bookings.c.type == "ZAHLUNG")).scalar() == 3
    assert balance(db, 100001) == "-11.78"


def test_another_accounts_statement_books_nothing(invoiced, db):
    result = upload(invoiced, statement([Tx("11.78", "KC100001", acct_svcr_ref="X1")], iban=OTHER_IBAN))
    assert result["booked"] == 0 and result["items"][0]["reason"] == "foreign_account"
    assert OTHER_IBAN in result["items"][0]["message"]
    assert balance(db, 100001) == "-47.36"


def test_same_payment_in_a_camt054_and_the_camt053_is_booked_once(invoiced, db):
    note = statement([Tx("11.78", "KC100001-1000002", acct_svcr_ref="2026112700001")],
                     version="camt.054.001.08", stmt_id="NTF-1")
    assert upload(invoiced, note)["booked"] == 1
    assert open_amounts(db, 100001)[1000002] == "0.00"
    day_end = statement([Tx("11.78", "KC100001-1000002", acct_svcr_ref="2026112700001"),
                         Tx("5.00", "KC100001", acct_svcr_ref="2026112700002")],
                        version="camt.053.001.08", stmt_id="STMT-08")
    result = upload(invoiced, day_end)
    assert (result["booked"], result["already_booked"]) == (1, 1)
    assert balance(db, 100001) == "-30.58"


def test_a_batch_entry_is_split_per_transaction(invoiced, db):
    batch = Tx("23.56", acct_svcr_ref="SAMMLER-1",
               batch=[("11.78", "RE 1000002", "Max"), ("11.78", "RE 1000004", "Erika")])
    result = upload(invoiced, statement([batch]))
    assert [(i["customer_id"], i["invoice_number"]) for i in result["items"]] == \
        [(100001, 1000002), (100002, 1000004)]
    assert open_amounts(db, 100001)[1000002] == "0.00" and open_amounts(db, 100002)[1000004] == "0.00"


def test_klaerfaelle_are_listed_and_assigned_once(invoiced, db):
    billing = invoiced
    xml = statement([Tx("23.80", "Zahlung fuer Hosting", payer="Max Mustermann",
                        payer_iban="DE12500105170648489890", acct_svcr_ref="K-1"),
                     Tx("11.78", "KC100001 RE 1000004", acct_svcr_ref="K-2")])  # another's invoice
    result = upload(billing, xml)
    assert result["clarifications"] == 2
    assert "gehört nicht zu Kunde 100001" in result["items"][1]["message"]
    listed = call(billing, "list_clarifications", {"status": "open"})
    assert listed["total"] == 2 and {c["transaction_id"] for c in listed["items"]} == \
        {f"{SELLER_IBAN}|K-1", f"{SELLER_IBAN}|K-2"}
    case = next(c for c in listed["items"] if c["amount"] == "23.80")
    with pytest.raises(Unprocessable) as err:
        call(billing, "assign_clarification", case["clarification_id"],
             {"customer_id": 100001, "invoice_number": 1000004})
    assert "invoice_number" in err.value.details["fields"]
    assigned = call(billing, "assign_clarification", case["clarification_id"],
                    {"customer_id": 100001, "invoice_number": 1000003})
    assert assigned["status"] == "assigned" and assigned["created"] is True
    assert assigned["assigned_by"] == "staff:7"
    assert open_amounts(db, 100001)[1000003] == "0.00" and open_amounts(db, 100001)[1000001] == "11.78"
    again = call(billing, "assign_clarification", case["clarification_id"], {"customer_id": 100001})
    assert again["created"] is False
    with pytest.raises(Conflict):
        call(billing, "assign_clarification", case["clarification_id"], {"customer_id": 100002})
    with pytest.raises(NotFound):
        call(billing, "assign_clarification", 999999, {"customer_id": 100001})
    with pytest.raises(ValidationFailed):
        call(billing, "list_clarifications", {"status": "weg"})
    assert upload(billing, xml)["already_booked"] == 1  # the assigned one is booked now
    assert balance(db, 100001) == "-23.56"
    assert call(billing, "list_clarifications", {"status": "open"})["total"] == 1


def test_payer_iban_from_zahlungsdetails_matches_without_reference(invoiced, db):
    iban = "DE02100100109307118603"
    call(invoiced, "update_payment_details", {"method": "sepa", "iban": iban, "account_holder": "Max",
                                              "by_post": False, "with_contact_person": False,
                                              "sepa_mandate_accepted": True},
         context={"customer_id": 100001})
    result = upload(invoiced, statement([Tx("11.78", "Danke", payer_iban=iban, acct_svcr_ref="I-1")]))
    assert result["items"][0]["customer_id"] == 100001


@pytest.mark.parametrize("content, expected", [
    (b"<x/>", "Nicht unterstütztes Format"),
    (b"kein xml", "Kein gültiges XML"),
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Document xmlns='
     b'"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&a;</Document>', "DOCTYPE"),
    (statement([Tx("1.00", "x")]).replace(b"<BkTxCd>", b"<BkTxCdX>").replace(b"</BkTxCd>", b"</BkTxCdX>"),
     "Entspricht nicht dem XSD camt.053.001.02: Zeile"),
    (statement([Tx("1.00", "x")]).replace(b"camt.053.001.02", b"pain.001.001.03"), "pain.001.001.03"),
])
def test_invalid_files_are_a_400_naming_the_problem(billing, content, expected):
    with pytest.raises(ValidationFailed) as err:
        upload(billing, content)
    assert expected in err.value.fields["file"][0], err.value.fields


def test_statement_bounds(billing, config):
    from kc_billing.settings import BillingSettings
    limit = BillingSettings(config).statement_max_entries
    too_many = statement([Tx("1.00", f"KC100001 {n}", acct_svcr_ref=f"B{n}") for n in range(limit + 1)])
    with pytest.raises(ValidationFailed) as err:
        upload(billing, too_many)
    assert "mehr als" in err.value.fields["file"][0]
    etree.fromstring(too_many)  # well-formed: it is the bound that refused it
