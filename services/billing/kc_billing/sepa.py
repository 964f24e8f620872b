"""SEPA direct debit (Lastschrift): collection runs writing pain.008, and return debits.

- A *collection* per due date (``sepa_collections.due_date`` unique: a second run for the same
  date answers the first) collects every invoice of a customer paying by Lastschrift (with a
  mandate) that is open and due by that date and was never collected (``sepa_debits.invoice_id``
  unique: never twice, whatever the dates of the runs). Each debit is booked as received
  (ZAHLUNG, L) in the collection's transaction; the pain.008 file (written and validated
  against its XSD by ``sepaxml``) is stored with it.
- Sequence type: ``FRST`` for the first debit under a mandate (or after every earlier one was
  returned), else ``RCUR``. The end-to-end id ``KC<customer>-<invoice number>`` comes back in
  the bank statement with a return.
- A *return* (Rücklastschrift, a booked debit entry with ``RtrInf`` reason code and our
  end-to-end id) reverses the payment booking (``reverses_booking_id`` unique: at most once),
  books the configured fee, and emits ``debit_returned`` (German mail after commit); the invoice
  is open again and dunning takes over.
"""
import uuid
from decimal import Decimal

from sqlalchemy import select, update

from kc_billing import domain
from kc_billing.models import (
    bookings,
    invoices,
    payment_details,
    payments,
    sepa_collections,
    sepa_debits,
)
from kc_billing.payments import SUCCEEDED, book_payment
from kc_common.clock import berlin_today
from kc_common.db import utcnow
from kc_common.schemas import money

PAIN008_VERSION = "pain.008.001.02"   # the newest version sepaxml writes and validates
COLLECTED, RETURNED = "collected", "returned"
RETURN = domain.RETURN_DEBIT
FEE = domain.RETURN_FEE
REASONS = {
    "AC01": "IBAN fehlerhaft", "AC04": "Konto erloschen", "AC06": "Konto gesperrt",
    "AG01": "Lastschrift auf diesem Konto nicht erlaubt", "AG02": "ungültiger Vorgang",
    "AM04": "Deckung unzureichend", "AM05": "Doppelte Einreichung", "BE05": "Gläubiger unbekannt",
    "MD01": "kein gültiges Mandat", "MD02": "Mandatsdaten fehlen oder sind fehlerhaft",
    "MD06": "Rückgabe auf Verlangen des Zahlungspflichtigen",
    "MD07": "Zahlungspflichtiger verstorben", "MS02": "Widerspruch des Zahlungspflichtigen",
    "MS03": "Grund nicht angegeben", "RC01": "BIC fehlerhaft", "RR01": "Angaben zum Zahler fehlen",
    "SL01": "Dienstleistung der Bank des Zahlungspflichtigen",
}


def reason_text(code):
    return REASONS.get(code or "", "Rücklastschrift")


def end_to_end_id(customer_id, number):
    return f"KC{customer_id}-{number}"[:35]


def _collectable(session, due_date):
    """Open invoices paid by Lastschrift, due by ``due_date``, never collected."""
    rows = session.execute(
        select(invoices.c.id, invoices.c.number, invoices.c.customer_id, invoices.c.due_date)
        .join(payment_details, payment_details.c.customer_id == invoices.c.customer_id)
        .outerjoin(sepa_debits, sepa_debits.c.invoice_id == invoices.c.id)
        .where(invoices.c.kind == "invoice", invoices.c.payment_method == "sepa",
               invoices.c.due_date <= due_date, sepa_debits.c.id.is_(None),
               payment_details.c.method == "sepa", payment_details.c.mandate_reference.isnot(None),
               payment_details.c.iban.isnot(None))
        .order_by(invoices.c.customer_id, invoices.c.number)).all()
    return rows


def _sequence_type(session, mandate_reference):
    earlier = session.execute(select(sepa_debits.c.id).where(
        sepa_debits.c.mandate_reference == mandate_reference,
        sepa_debits.c.status == COLLECTED).limit(1)).first()
    return "RCUR" if earlier else "FRST"


def collect(uow, due_date, settings, started_by=None, max_debits=1000):
    """The collection for ``due_date``: ``(view, created)``; created False when it existed."""
    session = uow.session
    existing = session.execute(select(sepa_collections).where(
        sepa_collections.c.due_date == due_date)).first()
    if existing is not None:
        return collection_view(session, existing), False
    now = utcnow()
    message_id = f"KC-{due_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    collection_id = session.execute(sepa_collections.insert().values(
        due_date=due_date, message_id=message_id, created_at=now, started_by=started_by,
        count=0, total=0).returning(sepa_collections.c.id)).scalar_one()
    debits = []
    locked = set()
    for inv in _collectable(session, due_date)[:max_debits]:
        if inv.customer_id not in locked:
            domain.lock_customer(session, inv.customer_id)
            locked.add(inv.customer_id)
        open_amount = domain.invoice_open_amounts(session, inv.customer_id).get(inv.id, money(0))
        if open_amount <= 0:
            continue
        details = domain.get_details(session, inv.customer_id)
        seq = _sequence_type(session, details["mandate_reference"])
        payment_id = str(uuid.uuid4())
        session.execute(payments.insert().values(
            id=payment_id, customer_id=inv.customer_id, method="sepa", amount=open_amount,
            currency="EUR", status=SUCCEEDED, created_at=now, completed_at=now))
        e2e = end_to_end_id(inv.customer_id, inv.number)
        book_payment(uow, inv.customer_id, open_amount, "sepa",
                     f"Lastschrift Rechnung {inv.number} Mandat {details['mandate_reference']}",
                     payment_id=payment_id, now=now, applies_to_invoice_id=inv.id)
        session.execute(sepa_debits.insert().values(
            collection_id=collection_id, invoice_id=inv.id, customer_id=inv.customer_id,
            amount=open_amount, end_to_end_id=e2e, mandate_reference=details["mandate_reference"],
            mandate_date=details["mandate_date"] or berlin_today(), iban=details["iban"],
            sequence_type=seq, payment_id=payment_id, status=COLLECTED))
        debits.append({"name": details["account_holder"] or f"Kunde {inv.customer_id}",
                       "IBAN": details["iban"], "BIC": details["bic"] or "NOTPROVIDED",
                       "amount": int(open_amount * 100), "type": seq, "collection_date": due_date,
                       "mandate_id": details["mandate_reference"],
                       "mandate_date": details["mandate_date"] or berlin_today(),
                       "description": f"Rechnung {inv.number} Kunde KC{inv.customer_id}",
                       "endtoend_id": e2e})
    total = sum((Decimal(d["amount"]) / 100 for d in debits), Decimal("0"))
    xml = pain008(debits, settings, message_id) if debits else None
    session.execute(update(sepa_collections).where(sepa_collections.c.id == collection_id).values(
        count=len(debits), total=money(total), pain008=xml))
    row = session.execute(select(sepa_collections).where(sepa_collections.c.id == collection_id)).first()
    return collection_view(session, row), True


def pain008(debits, settings, message_id):
    """The pain.008 file of ``debits``, validated against its XSD by sepaxml."""
    from sepaxml import SepaDD
    seller = settings.seller
    sepa = SepaDD({"name": seller["name"], "IBAN": seller["iban"], "BIC": seller["bic"],
                   "batch": True, "creditor_id": settings.sepa_creditor_id, "currency": "EUR",
                   "instrument": "CORE"}, schema=PAIN008_VERSION)
    sepa.msg_id = message_id
    for debit in debits:
        sepa.add_payment(dict(debit))
    return sepa.export(validate=True).decode()


def collection_view(session, row):
    items = session.execute(select(sepa_debits, invoices.c.number)
                            .join(invoices, invoices.c.id == sepa_debits.c.invoice_id)
                            .where(sepa_debits.c.collection_id == row.id)
                            .order_by(sepa_debits.c.id)).all()
    return {"collection_id": row.id, "due_date": row.due_date, "message_id": row.message_id,
            "created_at": row.created_at, "started_by": row.started_by, "count": row.count,
            "total": row.total, "pain008": row.pain008, "pain008_version": PAIN008_VERSION,
            "debits": [{"invoice_number": d.number, "customer_id": d.customer_id, "amount": d.amount,
                        "end_to_end_id": d.end_to_end_id, "mandate_reference": d.mandate_reference,
                        "sequence_type": d.sequence_type, "status": d.status,
                        "return_reason": d.return_reason} for d in items]}


def find_debit(session, tx):
    """The debit a return entry names (by our end-to-end id), or None."""
    e2e = (tx.get("end_to_end_id") or "").strip()
    if not e2e or e2e == "NOTPROVIDED":
        return None
    return session.execute(select(sepa_debits).where(sepa_debits.c.end_to_end_id == e2e[:35])).first()


def book_return(uow, debit, tx, settings, now=None):
    """Reverse a collected debit once: ``(created, view)``."""
    session = uow.session
    domain.lock_customer(session, debit.customer_id)
    debit = session.execute(select(sepa_debits).where(sepa_debits.c.id == debit.id).with_for_update()).first()
    number = session.execute(select(invoices.c.number).where(invoices.c.id == debit.invoice_id)).scalar_one()
    if debit.status == RETURNED:
        return False, number
    now = now or utcnow()
    original = session.execute(select(bookings.c.id).where(
        bookings.c.payment_id == debit.payment_id)).scalar_one()
    code = (tx.get("return_reason") or "").strip()[:4] or None
    session.execute(bookings.insert().values(
        customer_id=debit.customer_id, booked_at=now, type=RETURN, amount=-debit.amount,
        payment_method="L", external_ref=tx["transaction_id"], reverses_booking_id=original,
        text=f"Rücklastschrift Rechnung {number} ({code or '-'}: {reason_text(code)})"[:500]))
    fee = settings.sepa_return_fee
    if fee > 0:
        session.execute(bookings.insert().values(
            customer_id=debit.customer_id, booked_at=now, type=FEE, amount=-fee, payment_method="L",
            text=f"Gebühr Rücklastschrift Rechnung {number}"))
    session.execute(update(sepa_debits).where(sepa_debits.c.id == debit.id).values(
        status=RETURNED, return_reason=code, returned_at=now))
    details = domain.get_details(session, debit.customer_id)
    email = details["invoice_email"] or session.execute(select(domain.customers.c.email).where(
        domain.customers.c.customer_id == debit.customer_id)).scalar()
    uow.emit("debit_returned", {
        "customer_id": debit.customer_id, "invoice_number": number, "amount": debit.amount,
        "fee": fee, "reason_code": code, "reason": reason_text(code),
        "mandate_reference": debit.mandate_reference, "invoice_email": email,
        "returned_at": now, "balance": domain.balance_of(session, debit.customer_id)})
    return True, number

