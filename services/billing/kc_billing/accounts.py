"""The customer's account in billing: the statement page and balance text, invoice lookups,
the account's standing (dunning), credit notes, settlements, refunds of credit and what an
account closure asks and does. Reads the ledger through :mod:`kc_billing.domain` (open items,
balance), which issues the invoices and numbers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kc_billing.domain import (
    INVOICE,
    REFUND,
    SETTLEMENT,
    balance_of,
    invoice_open_amounts,
    issue_invoice,
    lock_customer,
    open_items,
    open_items_of,
    settlement_rows,
)
from kc_billing.models import (
    bookings,
    customers,
    invoice_lines,
    invoices,
    payment_details,
)
from kc_billing.settings import BillingSettings
from kc_common.clock import BERLIN, berlin_date, berlin_today
from kc_common.db import UnitOfWork, utcnow
from kc_common.errors import NotFound, Unprocessable
from kc_common.formats import money_de
from kc_common.schemas import money


def balance_text(balance: Decimal) -> str:
    """The balance in German: "0,00 € Guthaben", "-4,00 € offener Betrag" (Babel, de_DE)."""
    return f"{money_de(balance)} offener Betrag" if balance < 0 else f"{money_de(balance)} Guthaben"


def _local_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=BERLIN).astimezone(dt.UTC)


def account(session: Session, customer_id: int, *, page: int, per_page: int, type: str | None = None,
            date_from: dt.date | None = None, date_to: dt.date | None = None) -> dict[str, Any]:
    # Two statements in the usual case (no filter): every booking of the customer once (the
    # balance, the open amounts and the count come from it) and the page.
    settlement = settlement_rows(session, customer_id)
    balance = money(sum((r.amount for r in settlement), Decimal("0")))
    where = [bookings.c.customer_id == customer_id]
    if type:
        where.append(bookings.c.type == type)
    if date_from:
        where.append(bookings.c.booked_at >= _local_midnight_utc(date_from))
    if date_to:
        where.append(bookings.c.booked_at < _local_midnight_utc(date_to + dt.timedelta(days=1)))
    if len(where) == 1:
        total = len(settlement)
    else:
        total = session.execute(select(func.count()).select_from(bookings).where(*where)).scalar_one()
    rows = session.execute(
        select(bookings, invoices.c.number).outerjoin(invoices, invoices.c.id == bookings.c.invoice_id)
        .where(*where)
        .order_by(bookings.c.booked_at.desc(), bookings.c.id.desc())
        .limit(per_page).offset((page - 1) * per_page)).all()
    open_by_invoice = {invoice_id: open_ for _, invoice_id, open_ in open_items_of(settlement)[0]
                       if invoice_id is not None}
    items = [{"id": r.id, "invoice_number": r.number, "date": berlin_date(r.booked_at), "type": r.type,
              "text": r.text, "amount": r.amount, "payment_method": r.payment_method,
              "open_amount": open_by_invoice.get(r.invoice_id) if r.type == INVOICE else None}
             for r in rows]
    return {"balance": balance, "balance_text": balance_text(balance), "currency": "EUR",
            "bookings": {"items": items, "total": total, "page": page, "per_page": per_page}}


def get_invoice(session: Session, customer_id: int, number: int) -> dict[str, Any]:
    """The customer's own invoice by number; another customer's is not found (404)."""
    row = session.execute(select(invoices).where(invoices.c.number == number,
                                                 invoices.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound("Rechnung nicht gefunden.")
    lines = session.execute(select(invoice_lines).where(invoice_lines.c.invoice_id == row.id)
                            .order_by(invoice_lines.c.position)).all()
    data = dict(row._mapping)
    data["issue_date"] = berlin_date(row.issued_at)
    data["open_amount"] = invoice_open_amounts(session, customer_id).get(row.id, money(0))
    data["lines"] = [dict(line._mapping) for line in lines]
    return data



def get_any_invoice(session: Session, number: int) -> dict[str, Any]:
    """Staff: any customer's invoice by number (also of a closed account), else 404."""
    owner = session.execute(select(invoices.c.customer_id).where(invoices.c.number == number)).scalar()
    if owner is None:
        raise NotFound("Rechnung nicht gefunden.")
    return get_invoice(session, owner, number)

def account_standing(session: Session, customer_id: int, settings: BillingSettings | None = None,
                     today: dt.date | None = None) -> dict[str, Any]:
    """In arrears: an invoice still open after its due date plus the first reminder interval."""
    first_reminder = settings.dunning_days[0] if settings else 7
    today = today or berlin_today()
    items, _ = open_items(session, customer_id)
    open_ids = [inv for _, inv, amount in items if inv is not None and amount > 0]
    open_total = sum((amount for _, _, amount in items), Decimal("0"))
    balance = balance_of(session, customer_id)
    in_arrears = False
    if open_ids:
        oldest_due = session.execute(select(func.min(invoices.c.due_date)).where(
            invoices.c.id.in_(open_ids))).scalar()
        in_arrears = oldest_due is not None and (today - oldest_due).days >= first_reminder
    open_amount = money(open_total) if balance < 0 else money(0)
    return {"in_arrears": in_arrears, "open_amount": str(open_amount)}


def credit_note(uow: UnitOfWork, data: dict[str, Any], settings: BillingSettings) -> dict[str, Any]:
    """A correction is a new document: a credit note (negative invoice), never an edit."""
    session = uow.session
    text = f"Gutschrift: {data['text']}"
    if data.get("invoice_number"):
        owner = session.execute(select(invoices.c.customer_id).where(
            invoices.c.number == data["invoice_number"])).scalar()
        if owner != data["customer_id"]:
            raise NotFound("Rechnung dieses Kunden nicht gefunden.")
        text += f" (zu Rechnung {data['invoice_number']})"
    lines = [{"text": text, "contract_id": None, "period_start": None, "period_end": None,
              "net": -money(data["net"]),
              "vat_rate": Decimal(data["vat_rate"] if data.get("vat_rate") is not None
                                  else settings.default_vat_rate)}]
    return issue_invoice(uow, data["customer_id"], lines, settings,
                         preceding_number=data.get("invoice_number"))


def book_settlement(session: Session, customer_id: int, up_to: dt.date,
                    now: dt.datetime | None = None) -> None:
    """KONTOAUSGLEICH, as in the guide: a 0.00 € marker that the account was settled with
    every transfer and credit up to ``up_to`` ("Überweisungen/Gutschriften bis zum
    11.06.2019 wurden einbezogen.")."""
    session.execute(bookings.insert().values(
        customer_id=customer_id, booked_at=now or utcnow(), type=SETTLEMENT, amount=money(0),
        text=f"Überweisungen/Gutschriften bis zum {up_to:%d.%m.%Y} wurden einbezogen."))


def refund_credit(uow: UnitOfWork, customer_id: int, amount: Decimal, reason: str | None) -> dict[str, Any]:
    """Pay credit (Guthaben) back to the customer: an ERSTATTUNG booking (negative, paid out by
    transfer), never more than the credit there is; publishes ``refund_booked`` for the payout."""
    session = uow.session
    lock_customer(session, customer_id)  # one writer of the ledger at a time
    amount = money(amount)
    credit = balance_of(session, customer_id)
    if amount > credit:
        raise Unprocessable(
            f"Es können höchstens {money_de(max(credit, money(0)))} Guthaben erstattet werden.",
            {"fields": {"amount": [f"Höchstens {money_de(max(credit, money(0)))}."]}})
    now = utcnow()
    booking_id = session.execute(bookings.insert().values(
        customer_id=customer_id, booked_at=now, type=REFUND, amount=-amount, payment_method="U",
        text=f"Erstattung von Guthaben: {reason}"[:500]).returning(bookings.c.id)).scalar_one()
    uow.emit("refund_booked", {"booking_id": booking_id, "customer_id": customer_id,
                               "amount": amount, "reason": reason, "booked_at": now})
    return {"booking_id": booking_id, "customer_id": customer_id, "amount": amount,
            "balance": credit - amount}


# --- account closure --------------------------------------------------------------------------

def customer_balance(session: Session, customer_id: int) -> dict[str, Any]:
    """Internal (identity's closure check): the account balance, 0.00 when settled."""
    return {"customer_id": customer_id, "balance": str(money(balance_of(session, customer_id)))}


def forget_customer(uow: UnitOfWork, data: dict[str, Any]) -> None:
    """identity's ``customer_erased``: invoices, lines and bookings stay unchanged for the
    retention period (§ 147 AO: 10 years; the issued invoice is the document, its buyer address
    included); the address replica and the bank details are pseudonymised, the mail address of
    the invoices cleared. The SEPA mandate reference stays (it belongs to the booked debits)."""
    replica = customers
    customer_id = int(data["customer_id"])
    session = uow.session
    session.execute(replica.update().where(replica.c.customer_id == customer_id).values(
        company=None, first_name="Gelöscht", last_name="Gelöscht", email=None, street=None, zip=None,
        city=None, vat_id=None))
    session.execute(payment_details.update().where(payment_details.c.customer_id == customer_id).values(
        invoice_email=None, iban=None, bic=None, bank_name=None, account_holder=None, leitweg_id=None,
        by_post=False, updated_at=utcnow()))
    session.execute(invoices.update().where(invoices.c.customer_id == customer_id).values(invoice_email=None))
