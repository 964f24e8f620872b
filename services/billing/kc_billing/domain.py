"""billing's rules, free of nameko: invoice numbers, invoices, the ledger, open items.

Rounding (documented in docs/services/billing.md): every line's net is an exact
cent amount; VAT is computed per rate on the sum of the nets of that rate and
rounded half-up once per rate (German practice, § 14 UStG: tax per rate on the
invoice); gross = net + VAT. Each line also carries its own rounded VAT for
information; it is not what is summed.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import idna
from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from kc_billing.models import (
    bookings,
    counters,
    customers,
    invoice_lines,
    invoices,
    payment_details,
)
from kc_billing.settings import BillingSettings
from kc_common.clock import berlin_date
from kc_common.db import (
    UnitOfWork,
    as_utc,
    dialect_insert,
    json_default,
    next_in_series,
    utcnow,
)
from kc_common.schemas import money

FIRST_INVOICE_NUMBER = 1000001
INVOICE = "RE"
CREDIT_NOTE = "GU"
PAYMENT = "ZAHLUNG"
SETTLEMENT = "KONTOAUSGLEICH"
REFUND = "ERSTATTUNG"
RETURN_DEBIT = "RUECKLASTSCHRIFT"   # a returned SEPA debit (reverses the payment booking)
RETURN_FEE = "GEBUEHR"             # the bank's return fee, passed on
BOOKING_TYPES = (INVOICE, CREDIT_NOTE, PAYMENT, SETTLEMENT, REFUND, RETURN_DEBIT, RETURN_FEE)
METHODS = ("transfer", "card", "instant", "sepa")
METHOD_LETTER = {"transfer": "U", "card": "K", "instant": "S", "sepa": "L"}
METHOD_TEXT = {"transfer": "Überweisung", "card": "Kreditkarte", "instant": "Sofortüberweisung",
               "sepa": "Lastschrift"}
EU = {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
      "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}
REVERSE_CHARGE_NOTE = ("Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge, "
                       "§ 13b UStG / Art. 196 MwStSystRL). Die Umsatzsteuer schuldet der "
                       "Leistungsempfänger.")
POSTAGE_TEXT = "Porto Rechnungsversand per Post"


class CustomerUnknown(Exception):
    """No replica of the customer's address yet: fetch it from identity first."""


def next_number(session: Session, series: str, first: int) -> int:
    """Next number of a dense series; it moves in the invoice's own transaction, so a
    rollback gives it back and no number is ever voided."""
    return next_in_series(session, counters, series, first)


def line_text(item: dict[str, Any], start: dt.date, end: dt.date) -> str:
    """As the guide shows it: "Domain profihost-demo.de 24.05.2019-23.05.2020".

    A domain is named in its Unicode form; another product by its name and the
    label catalog gives it (the package's domain, the server's name)."""
    if item.get("kind", "domain") == "domain" and item.get("domain"):
        name = f"Domain {display_name(item['domain'])}"
    elif item.get("label") or item.get("domain"):
        name = f"{item['product_name']} {display_name(item.get('label') or item['domain'])}"
    else:
        name = item["product_name"]
    return f"{name} {start:%d.%m.%Y}-{end:%d.%m.%Y}"


def display_name(name: str) -> str:
    """``xn--mller-kva.de`` -> ``müller.de`` for people; anything else unchanged."""
    try:
        return idna.decode(name)
    except (idna.IDNAError, UnicodeError):
        return name


def vat_breakdown(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """VAT per rate on the sum of that rate's nets, rounded half-up once per rate."""
    by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        rate = Decimal(line["vat_rate"])
        by_rate[rate] = by_rate.get(rate, Decimal("0")) + Decimal(line["net"])
    return [{"rate": money(rate), "base": money(base), "amount": money(base * rate / 100)}
            for rate, base in sorted(by_rate.items())]


def totals(lines: list[dict[str, Any]]) -> tuple[Decimal, Decimal, Decimal]:
    """(net, VAT, gross) of an invoice: net per line, VAT per rate, rounded half-up."""
    net = sum((Decimal(line["net"]) for line in lines), Decimal("0"))
    vat = sum((b["amount"] for b in vat_breakdown(lines)), Decimal("0"))
    return money(net), money(vat), money(net + vat)


# --- the customer replica (buyer address at issue time) -----------------------------------

CUSTOMER_FIELDS = ("company", "first_name", "last_name", "email", "street", "zip", "city",
                   "country", "vat_id", "is_business")


def ensure_customer_row(session: Session, customer_id: int) -> None:
    """The per-customer row (lock of the billing run) exists, possibly not replicated yet."""
    session.execute(dialect_insert(session)(customers).values(customer_id=customer_id)
                    .on_conflict_do_nothing())


def customer_known(session: Session, customer_id: int) -> bool:
    return session.execute(select(customers.c.replicated_at).where(
        customers.c.customer_id == customer_id)).scalar() is not None


def known_customers(session: Session, customer_ids: Any) -> set[int]:
    """The ones of ``customer_ids`` billing has an address replica of (a set)."""
    ids, known = list(customer_ids), set[int]()
    for i in range(0, len(ids), 1000):  # SQLite's bound on variables per statement
        known.update(session.execute(select(customers.c.customer_id).where(
            customers.c.customer_id.in_(ids[i:i + 1000]),
            customers.c.replicated_at.isnot(None))).scalars())
    return known


def upsert_customer(session: Session, data: dict[str, Any], as_of: dt.date | None = None) -> bool:
    """Apply a ``customer_updated`` (or ``get_customer``) snapshot unless a newer one is stored."""
    as_of = as_of or utcnow()
    values = {k: data.get(k) for k in CUSTOMER_FIELDS}
    values["is_business"] = bool(values["is_business"])
    values["country"] = (values["country"] or "DE").upper()[:2]
    values["zip"] = None if values["zip"] is None else str(values["zip"])
    customer_id = int(data["customer_id"])
    ensure_customer_row(session, customer_id)
    current = session.execute(select(customers.c.replicated_at).where(
        customers.c.customer_id == customer_id).with_for_update()).scalar()
    if current is not None and as_utc(current) > as_of:
        return False  # an older event arrived late
    session.execute(update(customers).where(customers.c.customer_id == customer_id)
                    .values(replicated_at=as_of, **values))
    return True


DEFAULT_DETAILS = {"by_post": False, "invoice_email": None, "with_contact_person": False,
                   "method": "transfer", "iban": None, "bic": None, "bank_name": None,
                   "account_holder": None, "mandate_reference": None, "mandate_date": None,
                   "einvoice_profile": "en16931", "leitweg_id": None}


def get_details(session: Session, customer_id: int) -> dict[str, Any]:
    row = session.execute(select(payment_details).where(
        payment_details.c.customer_id == customer_id)).first()
    return details_of(customer_id, row)


def details_of(customer_id: int, row: Any) -> dict[str, Any]:
    """The payment details of a ``payment_details`` row (None: the defaults)."""
    details = dict(DEFAULT_DETAILS) if row is None else dict(row._mapping)
    details.pop("updated_at", None)
    details["customer_id"] = customer_id
    return details


def buyer_snapshot(session: Session, customer_id: int, details: dict[str, Any]) -> dict[str, Any]:
    row = session.execute(select(customers).where(customers.c.customer_id == customer_id)).first()
    return buyer_of(customer_id, row, details)


def buyer_of(customer_id: int, row: Any, details: dict[str, Any]) -> dict[str, Any]:
    """The buyer at issue time from the replica's ``customers`` row (CustomerUnknown: none yet)."""
    if row is None or row.replicated_at is None:
        raise CustomerUnknown(customer_id)
    name = " ".join(p for p in (row.first_name, row.last_name) if p)
    return {"customer_id": customer_id, "company": row.company or None, "name": name,
            "street": row.street, "zip": row.zip, "city": row.city, "country": row.country or "DE",
            "vat_id": row.vat_id or None, "is_business": bool(row.is_business),
            "email": row.email,
            "contact_person": name if details["with_contact_person"] and name else None}


def is_reverse_charge(buyer: dict[str, Any], seller_country: str = "DE") -> bool:
    """EU business customer outside Germany with a VAT ID: the recipient owes the VAT."""
    country = (buyer.get("country") or "DE").upper()
    vat_id = (buyer.get("vat_id") or "").replace(" ", "").upper()
    return bool(buyer.get("is_business") and vat_id and country in EU and country != seller_country
                and vat_id[:2] in (country, "EL" if country == "GR" else country))


# --- invoices ------------------------------------------------------------------------------

def lock_customer(session: Session, customer_id: int, skip_locked: bool = False) -> Row[Any] | None:
    """Lock the customer's row: one writer of their ledger at a time (run, payments, orders).

    With ``skip_locked`` returns None when another transaction holds it.
    """
    query = select(customers.c.customer_id).where(
        customers.c.customer_id == customer_id).with_for_update(skip_locked=skip_locked)
    row = session.execute(query).first()
    if row is None:
        exists = session.execute(select(customers.c.customer_id).where(
            customers.c.customer_id == customer_id)).first()
        if exists is not None:
            return None  # held by another transaction (skip_locked)
        ensure_customer_row(session, customer_id)
        row = session.execute(query).first()
    return row


def preceding_invoice(session: Session, customer_id: int, lines: list[dict[str, Any]],
                      number: int | None = None) -> dict[str, Any] | None:
    """The invoice a credit note corrects (EN 16931 BT-25): the one named, else the latest invoice
    billing one of the credited contracts, else the customer's latest invoice; None if none."""
    query = select(invoices.c.number, invoices.c.issued_at).where(
        invoices.c.customer_id == customer_id, invoices.c.kind == "invoice")
    if number is not None:
        row = session.execute(query.where(invoices.c.number == number)).first()
    else:
        contracts = {line.get("contract_id") for line in lines if line["net"] < 0} - {None}
        row = None
        if contracts:
            row = session.execute(query.where(invoices.c.id.in_(
                select(invoice_lines.c.invoice_id).where(invoice_lines.c.contract_id.in_(contracts))))
                .order_by(invoices.c.number.desc()).limit(1)).first()
        if row is None:
            row = session.execute(query.order_by(invoices.c.number.desc()).limit(1)).first()
    if row is None:
        return None
    return {"number": row.number, "issue_date": berlin_date(row.issued_at)}


def price_lines(session: Session, customer_id: int, lines: list[dict[str, Any]],
                settings: BillingSettings) -> dict[str, Any]:
    """The amounts of an invoice of ``lines`` for this customer as it would be issued now.

    The one place of the rules: the customer's VAT situation (reverse charge: VAT 0 on every
    line), the postage line of invoices by post, VAT per rate, net/VAT/gross. ``issue_invoice``
    books exactly this; ``quote`` shows it before anything is booked, so a quote and the
    invoice it announces can never disagree. No lines: nothing would be issued.
    """
    details = get_details(session, customer_id)
    return priced_lines(details, buyer_snapshot(session, customer_id, details), lines, settings)


def priced_lines(details: dict[str, Any], buyer: dict[str, Any], lines: list[dict[str, Any]],
                 settings: BillingSettings) -> dict[str, Any]:
    """:func:`price_lines` of the customer's payment details and buyer snapshot."""
    reverse_charge = is_reverse_charge(buyer, settings.seller["country"])
    lines = [dict(line, net=money(line["net"]),
                  vat_rate=Decimal("0.00") if reverse_charge else money(line["vat_rate"]))
             for line in lines]
    if lines and details["by_post"] and sum(line["net"] for line in lines) > 0:
        lines.append({"text": POSTAGE_TEXT, "contract_id": None, "period_start": None,
                      "period_end": None, "net": money(settings.postage_net),
                      "vat_rate": Decimal("0.00") if reverse_charge else settings.default_vat_rate})
    net, vat, gross = totals(lines)
    return {"details": details, "buyer": buyer, "reverse_charge": reverse_charge, "lines": lines,
            "vat_breakdown": vat_breakdown(lines), "net": net, "vat": vat, "gross": gross,
            "kind": "credit_note" if gross < 0 else "invoice"}


def quote(session: Session, customer_id: int, lines: list[dict[str, Any]],
          settings: BillingSettings) -> dict[str, Any]:
    """What ``issue_invoice`` would book for ``lines`` now (nothing is written)."""
    priced = price_lines(session, customer_id, lines, settings)
    return {
        "issued": bool(priced["lines"]), "kind": priced["kind"],
        "lines": [{"text": line["text"], "period_start": line.get("period_start"),
                   "period_end": line.get("period_end"), "net": line["net"],
                   "vat_rate": line["vat_rate"], "vat": money(line["net"] * line["vat_rate"] / 100)}
                  for line in priced["lines"]],
        "vat_breakdown": priced["vat_breakdown"], "net": priced["net"], "vat": priced["vat"],
        "gross": priced["gross"], "currency": "EUR", "reverse_charge": priced["reverse_charge"],
        "reverse_charge_note": REVERSE_CHARGE_NOTE if priced["reverse_charge"] else None,
        "by_post": priced["details"]["by_post"], "payment_method": priced["details"]["method"],
    }


def issue_invoice(uow: UnitOfWork, customer_id: int, lines: list[dict[str, Any]], settings: BillingSettings,
                  *, run_id: int | None = None, now: dt.datetime | None = None, locked: bool = False,
                  preceding_number: int | None = None) -> dict[str, Any]:
    """Issue one invoice (or credit note when negative) with its ledger booking and event.

    ``lines``: dicts with text, contract_id, period_start, period_end, net, vat_rate.
    A credit note names the invoice it corrects (``preceding_number``, else found by
    :func:`preceding_invoice`).
    """
    session = uow.session
    if not locked:
        lock_customer(session, customer_id)
    priced = price_lines(session, customer_id, lines, settings)
    preceding = preceding_invoice(session, customer_id, priced["lines"], preceding_number) \
        if priced["kind"] == "credit_note" else None
    number = next_number(session, "invoice", FIRST_INVOICE_NUMBER)
    # ``now`` after the number lock: dates never run backwards along the series
    doc = numbered(invoice_draft(customer_id, priced, settings, run_id=run_id, preceding=preceding),
                   number, now or utcnow(), settings)
    invoice_id = session.execute(invoices.insert().values(**doc["row"])
                                 .returning(invoices.c.id)).scalar_one()
    session.execute(invoice_lines.insert(), [dict(r, invoice_id=invoice_id) for r in doc["lines"]])
    session.execute(bookings.insert().values(invoice_id=invoice_id, **doc["booking"]))
    open_amount = invoice_open_amounts(session, customer_id).get(invoice_id, money(0))
    uow.emit("invoice_issued", dict(doc["payload"], invoice_id=invoice_id, open_amount=open_amount))
    return invoice_result(doc, invoice_id, open_amount)


def invoice_draft(customer_id: int, priced: dict[str, Any], settings: BillingSettings, *,
                  run_id: int | None = None, preceding: dict[str, Any] | None = None) -> dict[str, Any]:
    """What issuing one priced invoice books, before it has a number, an issue time or an id:
    its ``invoices`` row, its lines, its ledger booking and its ``invoice_issued`` payload
    (:func:`numbered` completes them). ``preceding``: the invoice a credit note corrects."""
    details, buyer, reverse_charge = priced["details"], priced["buyer"], priced["reverse_charge"]
    seller = settings.seller
    lines, breakdown = priced["lines"], priced["vat_breakdown"]
    net, vat, gross = priced["net"], priced["vat"], priced["gross"]
    kind = priced["kind"]
    profile = details.get("einvoice_profile") or "en16931"
    buyer = dict(buyer, leitweg_id=details.get("leitweg_id") if profile == "xrechnung" else None)
    invoice_email = details["invoice_email"] or buyer["email"]
    row = dict(
        number=None, customer_id=customer_id, issued_at=None, net=net, vat=vat, gross=gross,
        kind=kind, due_date=None, currency="EUR", payment_method=details["method"],
        payment_reference=None, by_post=details["by_post"], invoice_email=invoice_email,
        reverse_charge=reverse_charge, seller=seller, buyer=to_plain(buyer),
        vat_breakdown=to_plain(breakdown), run_id=run_id, einvoice_profile=profile,
        preceding_number=preceding["number"] if preceding else None)
    event_lines = []
    for pos, line in enumerate(lines, start=1):
        line_vat = money(line["net"] * line["vat_rate"] / 100)
        event_lines.append({
            "position": pos, "text": line["text"], "contract_id": line.get("contract_id"),
            "period_start": line.get("period_start"), "period_end": line.get("period_end"),
            "quantity": 1, "unit_net": line["net"], "net": line["net"],
            "vat_rate": line["vat_rate"], "vat": line_vat})
    booking = dict(customer_id=customer_id, booked_at=None,
                   type=INVOICE if kind == "invoice" else CREDIT_NOTE, text=lines[0]["text"],
                   amount=-gross, payment_method=METHOD_LETTER[details["method"]])
    payload = {
        "invoice_id": None, "number": None, "customer_id": customer_id,
        "kind": kind, "issued_at": None, "issue_date": None, "due_date": None,
        "currency": "EUR", "net": net, "vat": vat, "gross": gross, "open_amount": None,
        "payment_method": details["method"], "payment_reference": None,
        "by_post": details["by_post"], "invoice_email": invoice_email,
        "reverse_charge": reverse_charge,
        "reverse_charge_note": REVERSE_CHARGE_NOTE if reverse_charge else None,
        "seller": seller, "buyer": {k: v for k, v in buyer.items() if k not in ("email", "is_business")},
        "lines": event_lines, "vat_breakdown": breakdown,
        "sepa": ({"mandate_reference": details["mandate_reference"],
                  "mandate_date": details["mandate_date"], "iban": details["iban"],
                  "creditor_id": seller.get("creditor_id")}
                 if details["method"] == "sepa" else None),
        "einvoice_profile": profile, "preceding_invoice": preceding,
    }
    return {"row": row, "lines": event_lines, "booking": booking, "payload": payload,
            "details": details}


def number_fields(customer_id: int, number: int, now: dt.datetime, settings: BillingSettings,
                  issued_on: dt.date | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the number and the issue instant decide: ``(row fields, payload fields)``."""
    issued_on = issued_on or berlin_date(now)
    due_date = issued_on + dt.timedelta(days=settings.payment_term_days)
    reference = f"KC{customer_id}-{number}"
    return ({"number": number, "issued_at": now, "due_date": due_date, "payment_reference": reference},
            {"number": number, "issued_at": now, "issue_date": issued_on, "due_date": due_date,
             "payment_reference": reference})


def numbered(draft: dict[str, Any], number: int, now: dt.datetime,
             settings: BillingSettings) -> dict[str, Any]:
    """The :func:`invoice_draft` with its number and issue instant (taken after the number's
    lock: dates never run backwards along the series)."""
    fields, payload_fields = number_fields(draft["row"]["customer_id"], number, now, settings)
    return dict(draft, row=dict(draft["row"], **fields), booking=dict(draft["booking"], booked_at=now),
                payload=dict(draft["payload"], **payload_fields))


def invoice_result(doc: dict[str, Any], invoice_id: int, open_amount: Decimal) -> dict[str, Any]:
    """What :func:`issue_invoice` returns for a :func:`numbered` invoice."""
    row = doc["row"]
    return {"invoice_id": invoice_id, "number": row["number"], "gross": row["gross"],
            "open_amount": open_amount, "kind": row["kind"], "method": row["payment_method"],
            "details": doc["details"]}


def to_plain(value: Any) -> Any:
    """What ``kc_common.db.to_json_safe`` makes of ``value`` (decimals as strings, dates and
    datetimes ISO 8601), without a round trip through JSON text (the billing run's hot path)."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (str, int, float)) or value is None:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return json.loads(json.dumps(value, default=json_default))  # UUID; anything else refused


def invoice_lines_of_order(order: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for item in order["items"]:
        start = dt.date.fromisoformat(item["period_start"])
        end = dt.date.fromisoformat(item["period_end"])
        lines.append({"text": line_text(item, start, end), "contract_id": item["contract_id"],
                      "period_start": start, "period_end": end, "net": Decimal(item["price_net"]),
                      "vat_rate": Decimal(item["vat_rate"])})
    return lines


# --- the ledger ----------------------------------------------------------------------------

def balance_of(session: Session, customer_id: int) -> Decimal:
    return money(session.execute(select(func.coalesce(func.sum(bookings.c.amount), 0))
                                 .where(bookings.c.customer_id == customer_id)).scalar_one())


def open_items(session: Session, customer_id: int) -> tuple[list[tuple[Any, int | None, Decimal]], Decimal]:
    """Debits (negative bookings) with what is still open, oldest first; and unused credit.

    A payment whose remittance named an invoice (``applies_to_invoice_id``) settles that
    invoice first; every other credit (payment, credit note, settlement) and what is left of
    a named payment settles the oldest open debit first; what is left over is credit
    (Guthaben) that settles the next invoice. A return debit (``reverses_booking_id``)
    cancels the credit of the payment it reverses, so the invoice is open again.
    """
    return open_items_of(settlement_rows(session, customer_id))


# What settling a customer's bookings needs (``open_items_of``), in booking order.
LEDGER_COLUMNS = (bookings.c.id, bookings.c.invoice_id, bookings.c.amount,
                  bookings.c.applies_to_invoice_id, bookings.c.reverses_booking_id)


def settlement_rows(session: Session, customer_id: int) -> Any:
    """Every booking of the customer, oldest first, with what settling them needs."""
    return session.execute(select(*LEDGER_COLUMNS).where(bookings.c.customer_id == customer_id)
                           .order_by(bookings.c.booked_at, bookings.c.id)).all()


def open_items_of(rows: Any) -> Any:
    """:func:`open_items` of one customer's bookings (``LEDGER_COLUMNS``, in booking order)."""
    reversed_: dict[Any, Decimal] = {}
    for r in rows:
        if r.reverses_booking_id is not None and r.amount < 0:
            reversed_[r.reverses_booking_id] = reversed_.get(r.reverses_booking_id, 0) - r.amount
    debits = [[r.id, r.invoice_id, -r.amount] for r in rows
              if r.amount < 0 and r.reverses_booking_id is None]
    by_invoice = {d[1]: d for d in debits if d[1] is not None}
    credit = Decimal("0")
    for r in rows:
        if r.amount <= 0:
            continue
        amount = r.amount - reversed_.pop(r.id, 0)
        target = by_invoice.get(r.applies_to_invoice_id)
        if target is not None and amount > 0:
            applied = min(amount, target[2])
            target[2] -= applied
            amount -= applied
        credit += amount
    credit -= sum(reversed_.values(), Decimal("0"))  # a reversal of nothing known: a debit
    items = []
    for booking_id, invoice_id, open_ in debits:
        applied = max(min(credit, open_), Decimal("0"))
        credit -= applied
        items.append((booking_id, invoice_id, money(open_ - applied)))
    return items, money(credit)


def invoice_open_amounts(session: Session, customer_id: int) -> dict[int, Decimal]:
    items, _ = open_items(session, customer_id)
    return {invoice_id: open_ for _, invoice_id, open_ in items if invoice_id is not None}
