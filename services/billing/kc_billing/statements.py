"""Bank statement import: which transactions are booked, for whom, and the Klärfälle.

Rules (docs/services/billing.md, "Bank statements"):

- Only *booked* (``Sts`` = ``BOOK``) *credit* transactions in EUR on one of the seller's own
  accounts (``SELLER_ACCOUNTS``) are customer payments. Everything else (another account,
  pending ``PDNG`` or ``INFO`` entries, debits, reversals, other currencies) is reported per
  transaction with its reason and not booked.
- A transaction is booked once: its identity (``camt.parse``) is the booking's unique
  ``external_ref``; a Klärfall is unique by the same identity.
- Matching, from the remittance text: an invoice named (``RE 1000003``, ``Rechnung 1000003``,
  ``Rechnungsnummer: 1000003``, ``KC100001-1000003``, else a bare number that is an invoice
  number) and/or a customer number (``KC100001``, ``Kundennummer 100001``, ``Kd.-Nr. 100001``);
  else the payer's IBAN if exactly one customer's Zahlungsdetails carry it. The named invoice
  is settled first, the rest oldest open first (``domain.open_items``).
- What cannot be matched, or matches ambiguously, becomes a Klärfall; staff assign it to a
  customer (and optionally an invoice), which books it then.
"""
import base64
import logging
import re
import time
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from kc_billing import accounts, camt, domain, sepa
from kc_billing.models import (
    bank_clarifications,
    bookings,
    invoices,
    payment_details,
    payments,
)
from kc_billing.payments import SUCCEEDED, book_payment
from kc_common.clock import berlin_date, berlin_today
from kc_common.db import utcnow
from kc_common.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from kc_common.schemas import money

log = logging.getLogger(__name__)

BOOKED, ALREADY, CLARIFICATION, NOT_BOOKED = "booked", "already_booked", "clarification", "not_booked"
OPEN, ASSIGNED = "open", "assigned"

KC = re.compile(r"\bKC\s*-?\s*(\d{6,9})(?:\s*[-/]\s*(\d{7,10}))?(?!\d)", re.IGNORECASE)
CUSTOMER_WORD = re.compile(
    r"\b(?:Kunden\s*-?\s*(?:nummer|nr\.?)|Kundennr\.?|Kd\.?\s*-?\s*Nr\.?)\s*[:.#]?\s*(\d{6,9})(?!\d)",
    re.IGNORECASE)
INVOICE_WORD = re.compile(
    r"\b(?:Rechnungs\s*-?\s*(?:nummer|nr\.?)|Rechnung(?:\s*Nr\.?)?|Rg\.?\s*-?\s*Nr\.?|Rg\.?|Re\.?\s*-?\s*Nr\.?"
    r"|RE|Invoice(?:\s*No\.?)?)\s*[:.#-]?\s*(\d{7,10})(?!\d)", re.IGNORECASE)
BARE = re.compile(r"(?<![\d])(\d{7,10})(?![\d])")

NOT_BOOKED_TEXT = {
    "foreign_account": "Umsatz eines fremden Kontos ({account}); nur eigene Konten werden gebucht.",
    "not_booked_status": "Status {status}: noch nicht gebucht (vorgemerkt/Information).",
    "debit": "Lastschrift/Belastung des eigenen Kontos: keine Kundenzahlung.",
    "reversal": "Storno-Buchung der Bank: keine Kundenzahlung.",
    "currency": "Währung {currency}: nur EUR wird gebucht.",
    "amount": "Betrag {amount} ist kein Cent-Betrag.",
}


def _unique(values):
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def references_in(text):
    """(customer numbers, invoice numbers named with a keyword, bare numbers) in a remittance."""
    customers, named = [], []
    for m in KC.finditer(text):
        customers.append(int(m.group(1)))
        if m.group(2):
            named.append(int(m.group(2)))
    customers += [int(m.group(1)) for m in CUSTOMER_WORD.finditer(text)]
    named += [int(m.group(1)) for m in INVOICE_WORD.finditer(text)]
    bare = [int(m.group(1)) for m in BARE.finditer(text)]
    return _unique(customers), _unique(named), _unique(bare)


def _customer_exists(session, customer_id):
    return domain.customer_known(session, customer_id) or session.execute(
        select(bookings.c.id).where(bookings.c.customer_id == customer_id).limit(1)).first() is not None


def match(session, tx):
    """``(customer_id, invoice row or None, None)`` or ``(None, None, reason)`` for a Klärfall."""
    customers, named, bare = references_in(tx.get("reference") or "")
    numbers = named or bare
    found = {}
    if numbers:
        rows = session.execute(select(invoices.c.id, invoices.c.number, invoices.c.customer_id)
                               .where(invoices.c.number.in_(numbers[:20]),
                                      invoices.c.kind == "invoice")).all()
        found = {r.number: r for r in rows}
    named_invoices = [found[n] for n in numbers if n in found]
    if len(customers) > 1:
        return None, None, f"Mehrere Kundennummern im Verwendungszweck ({', '.join(map(str, customers))})."
    if customers:
        customer_id = customers[0]
        own = [inv for inv in named_invoices if inv.customer_id == customer_id]
        if named and not own:
            return None, None, (f"Rechnung {named[0]} gehört nicht zu Kunde {customer_id}."
                                if named[0] in found else
                                f"Rechnung {named[0]} von Kunde {customer_id} ist unbekannt.")
        invoice = own[0] if own else None
    elif named_invoices:
        owners = _unique(inv.customer_id for inv in named_invoices)
        if len(owners) > 1:
            return None, None, "Die genannten Rechnungen gehören verschiedenen Kunden."
        customer_id, invoice = owners[0], named_invoices[0]
    elif named:
        return None, None, f"Rechnung {named[0]} ist unbekannt."
    else:
        invoice = None
        owners = []
        if tx.get("payer_iban"):
            owners = session.execute(select(payment_details.c.customer_id).where(
                payment_details.c.iban == tx["payer_iban"]).limit(2)).scalars().all()
        if len(owners) != 1:
            return None, None, "Keine Kunden- oder Rechnungsnummer im Verwendungszweck erkannt."
        customer_id = owners[0]
    if not _customer_exists(session, customer_id):
        return None, None, f"Kunde {customer_id} ist in der Buchhaltung unbekannt."
    return customer_id, invoice, None


def _skip_reason(tx, own_accounts):
    if tx["account"] not in own_accounts:
        return "foreign_account"
    if tx["status"] != "BOOK":
        return "not_booked_status"
    if tx["reversal"]:
        return "reversal"
    if tx["direction"] != "CRDT":
        return "debit"
    if tx["currency"] != "EUR":
        return "currency"
    if tx["amount"] is None or tx["amount"] <= 0 or money(tx["amount"]) != tx["amount"]:
        return "amount"
    return None


def _report(tx, outcome, **extra):
    return dict({"transaction_id": tx["transaction_id"], "position": tx["position"],
                 "amount": str(tx["amount"]), "currency": tx["currency"], "status": tx["status"],
                 "direction": tx["direction"], "reference": tx["reference"], "outcome": outcome,
                 "reason": None, "message": None, "customer_id": None, "invoice_number": None,
                 "clarification_id": None}, **extra)


def _book(uow, customer_id, tx, invoice, now, text_suffix=""):
    session = uow.session
    domain.lock_customer(session, customer_id)
    payment_id = str(uuid.uuid4())
    session.execute(payments.insert().values(
        id=payment_id, customer_id=customer_id, method="transfer", amount=money(tx["amount"]),
        currency="EUR", status=SUCCEEDED, created_at=now, completed_at=now))
    value_date = tx.get("value_date") or berlin_date(now)
    reference = tx.get("reference") or "(ohne Verwendungszweck)"
    book_payment(uow, customer_id, money(tx["amount"]), "transfer",
                 f"Überweisung vom {value_date:%d.%m.%Y}: {reference}{text_suffix}"[:500],
                 payment_id=payment_id, external_ref=tx["transaction_id"], now=now,
                 applies_to_invoice_id=invoice.id if invoice is not None else None)
    return payment_id


def _return_debit(uow, tx, own_accounts, settings, now):
    """A booked debit of our account naming one of our SEPA debits: a Rücklastschrift."""
    if (settings is None or tx["account"] not in own_accounts or tx["status"] != "BOOK"
            or tx["direction"] != "DBIT" or tx["reversal"]):
        return None
    debit = sepa.find_debit(uow.session, tx)
    if debit is None:
        if tx.get("return_reason"):
            return _report(tx, NOT_BOOKED, reason="return_unknown", message=(
                f"Rücklastschrift ({tx['return_reason']}) zu unbekannter Lastschrift "
                f"{tx.get('end_to_end_id') or '-'}: bitte von Hand prüfen."))
        return None
    if uow.session.execute(select(bookings.c.id).where(
            bookings.c.external_ref == tx["transaction_id"])).first() is not None:
        return _report(tx, ALREADY, customer_id=debit.customer_id, reason="return")
    created, number = sepa.book_return(uow, debit, tx, settings, now)
    return _report(tx, BOOKED if created else ALREADY, customer_id=debit.customer_id,
                   invoice_number=number, reason="return",
                   message=f"Rücklastschrift: {sepa.reason_text(tx.get('return_reason'))}")


def import_transaction(uow, tx, own_accounts, now=None, settings=None):
    """Book one statement transaction (once), or record it as a Klärfall, or report why not.

    Returns the per-transaction report (``outcome``: booked, already_booked, clarification,
    not_booked). With ``settings``, return debits of our SEPA debits are booked (``sepa``).
    """
    session = uow.session
    returned = _return_debit(uow, tx, own_accounts, settings, now)
    if returned is not None:
        return returned
    reason = _skip_reason(tx, own_accounts)
    if reason is not None:
        return _report(tx, NOT_BOOKED, reason=reason, message=NOT_BOOKED_TEXT[reason].format(**tx))
    existing = session.execute(select(bookings.c.customer_id).where(
        bookings.c.external_ref == tx["transaction_id"])).first()
    if existing is not None:
        return _report(tx, ALREADY, customer_id=existing.customer_id)
    case = session.execute(select(bank_clarifications.c.id, bank_clarifications.c.reason).where(
        bank_clarifications.c.transaction_id == tx["transaction_id"])).first()
    if case is not None:  # assigned ones are found as bookings above
        return _report(tx, CLARIFICATION, clarification_id=case.id, reason="unmatched",
                       message=case.reason, known=True)
    customer_id, invoice, why = match(session, tx)
    now = now or utcnow()
    if customer_id is None:
        case_id = session.execute(bank_clarifications.insert().values(
            transaction_id=tx["transaction_id"], account=tx["account"][:34],
            amount=money(tx["amount"]), currency="EUR", value_date=tx.get("value_date"),
            reference=tx.get("reference") or "", payer=(tx.get("payer") or None) and tx["payer"][:140],
            payer_iban=tx.get("payer_iban"), reason=why, status=OPEN, created_at=now,
        ).returning(bank_clarifications.c.id)).scalar_one()
        return _report(tx, CLARIFICATION, clarification_id=case_id, reason="unmatched", message=why,
                       known=False)
    _book(uow, customer_id, tx, invoice, now)
    return _report(tx, BOOKED, customer_id=customer_id,
                   invoice_number=invoice.number if invoice is not None else None)


def read_statement(content_b64, settings):
    """The uploaded file's transactions (``camt.parse``); 400 naming ``file`` when it is too
    large (``STATEMENT_MAX_BYTES``), not Base64, not valid against its XSD or has more than
    ``STATEMENT_MAX_ENTRIES`` transactions."""
    content_b64 = content_b64 or ""
    if not isinstance(content_b64, str) or len(content_b64) * 3 // 4 > settings.statement_max_bytes:
        raise ValidationFailed("Der Kontoauszug ist zu groß.", fields={"file": [
            f"Höchstens {settings.statement_max_bytes // 1024} KiB."]})
    try:
        raw = base64.b64decode(content_b64, validate=True)
    except ValueError:
        raise ValidationFailed("Der Kontoauszug ist ungültig.", fields={"file": [
            "Die Datei ist nicht lesbar (Base64)."]}) from None
    try:
        return camt.parse(raw, max_entries=settings.statement_max_entries)
    except camt.StatementInvalid as exc:
        raise ValidationFailed("Der Kontoauszug ist ungültig.", fields={"file": [str(exc)]}) from None


def import_statement(db, transactions, settings, stop_at=None):
    """Book a statement's transactions, one short transaction each (a bad line never blocks
    the others), then a KONTOAUSGLEICH per customer paid, up to the latest value date booked.

    ``stop_at`` (epoch seconds, the RPC caller's deadline): stop before it and say how many
    transactions were not reached (``complete`` false); importing the same statement again
    books those, and nothing twice.
    """
    counts = {BOOKED: 0, ALREADY: 0, CLARIFICATION: 0, NOT_BOOKED: 0}
    items = []
    result = {"entries": len(transactions), "not_processed": 0, "complete": True}
    settled_up_to = {}  # customer -> latest value date booked from this statement
    for n, tx in enumerate(transactions):
        if stop_at is not None and time.time() >= stop_at:
            result["not_processed"], result["complete"] = len(transactions) - n, False
            log.warning("statement import stopped before the caller's deadline: %d of %d "
                        "transactions not processed", len(transactions) - n, len(transactions))
            break
        for attempt in (1, 2):
            try:
                with db.unit_of_work() as uow:
                    report = import_transaction(uow, tx, settings.own_accounts, settings=settings)
                break
            except IntegrityError:  # a concurrent import booked or recorded it: now it is found
                if attempt == 2:
                    raise
        counts[report["outcome"]] += 1
        items.append(report)
        if report["outcome"] == BOOKED:
            day = tx.get("value_date") or berlin_today()
            customer = report["customer_id"]
            settled_up_to[customer] = max(day, settled_up_to.get(customer, day))
    for customer_id, up_to in settled_up_to.items():
        with db.unit_of_work() as uow:
            accounts.book_settlement(uow.session, customer_id, up_to)
    result.update(booked=counts[BOOKED], already_booked=counts[ALREADY],
                  clarifications=counts[CLARIFICATION], not_booked=counts[NOT_BOOKED], items=items,
                  unmatched=[i for i in items if i["outcome"] == CLARIFICATION])
    return result


# --- Klärfälle ---------------------------------------------------------------------------

def clarification_view(row):
    return {"clarification_id": row.id, "transaction_id": row.transaction_id, "account": row.account,
            "amount": row.amount, "currency": row.currency, "value_date": row.value_date,
            "reference": row.reference, "payer": row.payer, "payer_iban": row.payer_iban,
            "reason": row.reason, "status": row.status, "created_at": row.created_at,
            "customer_id": row.customer_id, "payment_id": row.payment_id,
            "assigned_by": row.assigned_by, "assigned_at": row.assigned_at}


def clarifications(session, *, page, per_page, status=None):
    where = [bank_clarifications.c.status == status] if status else []
    total = session.execute(select(func.count()).select_from(bank_clarifications).where(*where)).scalar_one()
    rows = session.execute(select(bank_clarifications).where(*where)
                           .order_by(bank_clarifications.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [clarification_view(r) for r in rows], "total": total, "page": page,
            "per_page": per_page}


def assign(uow, clarification_id, customer_id, invoice_number, assigned_by):
    """Staff assign a Klärfall to a customer: booked now (once); ``created`` False when it was
    already assigned to this customer, 409 when to another."""
    session = uow.session
    row = session.execute(select(bank_clarifications).where(
        bank_clarifications.c.id == clarification_id).with_for_update()).first()
    if row is None:
        raise NotFound("Klärfall nicht gefunden.")
    if row.status == ASSIGNED:
        if row.customer_id != customer_id:
            raise Conflict(f"Der Klärfall wurde bereits Kunde {row.customer_id} zugeordnet.")
        return clarification_view(row), False
    if not _customer_exists(session, customer_id):
        raise Unprocessable(f"Kunde {customer_id} ist in der Buchhaltung unbekannt.",
                            {"fields": {"customer_id": ["Unbekannte Kundennummer."]}})
    invoice = None
    if invoice_number is not None:
        invoice = session.execute(select(invoices.c.id, invoices.c.number).where(
            invoices.c.number == invoice_number, invoices.c.customer_id == customer_id,
            invoices.c.kind == "invoice")).first()
        if invoice is None:
            raise Unprocessable("Rechnung dieses Kunden nicht gefunden.",
                                {"fields": {"invoice_number": ["Keine Rechnung dieses Kunden."]}})
    if session.execute(select(bookings.c.id).where(
            bookings.c.external_ref == row.transaction_id)).first() is not None:
        raise Conflict("Dieser Umsatz ist bereits gebucht.")
    now = utcnow()
    tx = {"transaction_id": row.transaction_id, "amount": row.amount, "value_date": row.value_date,
          "reference": row.reference}
    payment_id = _book(uow, customer_id, tx, invoice, now, text_suffix=" (Klärfall)")
    session.execute(update(bank_clarifications).where(bank_clarifications.c.id == row.id).values(
        status=ASSIGNED, customer_id=customer_id, payment_id=payment_id, assigned_by=assigned_by,
        assigned_at=now))
    row = session.execute(select(bank_clarifications).where(bank_clarifications.c.id == row.id)).first()
    return clarification_view(row), True
