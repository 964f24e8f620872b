"""billing's rules, free of nameko: invoice numbers, invoices, the ledger."""
import datetime as dt
from decimal import Decimal

from sqlalchemy import func, select, update

from kc_common.db import utcnow
from kc_common.schemas import money
from kc_billing.models import bookings, counters, invoice_lines, invoices

FIRST_INVOICE_NUMBER = 1000001
INVOICE = "RE"


def next_number(session, series, first):
    """Next number of a dense series; the row lock serialises concurrent issuers."""
    row = session.execute(select(counters.c.value).where(counters.c.name == series)
                          .with_for_update()).first()
    if row is None:
        session.execute(counters.insert().values(name=series, value=first))
        return first
    session.execute(update(counters).where(counters.c.name == series).values(value=row.value + 1))
    return row.value + 1


def line_text(item, start, end):
    """As the guide shows it: "Domain profihost-demo.de 24.05.2019-23.05.2020"."""
    name = f"Domain {item['domain']}" if item.get("domain") else item["product_name"]
    return f"{name} {start:%d.%m.%Y}-{end:%d.%m.%Y}"


def totals(lines):
    """Net per line, VAT per rate summed then rounded (half-up to the cent)."""
    net = sum((Decimal(l["net"]) for l in lines), Decimal("0"))
    by_rate = {}
    for l in lines:
        by_rate[Decimal(l["vat_rate"])] = by_rate.get(Decimal(l["vat_rate"]), Decimal("0")) + Decimal(l["net"])
    vat = sum((money(base * rate / 100) for rate, base in by_rate.items()), Decimal("0"))
    return money(net), money(vat), money(net + vat)


def invoice_order(uow, order):
    """Invoice the first period of every item of an order (``order_placed``)."""
    lines = []
    for item in order["items"]:
        start = dt.date.fromisoformat(item["period_start"])
        end = dt.date.fromisoformat(item["period_end"])
        lines.append({"text": line_text(item, start, end), "contract_id": item["contract_id"],
                      "period_start": start, "period_end": end, "net": Decimal(item["price_net"]),
                      "vat_rate": Decimal(item["vat_rate"])})
    return issue_invoice(uow, order["customer_id"], lines)


def issue_invoice(uow, customer_id, lines):
    session = uow.session
    net, vat, gross_ = totals(lines)
    number = next_number(session, "invoice", FIRST_INVOICE_NUMBER)
    now = utcnow()
    invoice_id = session.execute(invoices.insert().values(
        number=number, customer_id=customer_id, issued_at=now, net=net, vat=vat, gross=gross_,
    ).returning(invoices.c.id)).scalar_one()
    for pos, line in enumerate(lines, start=1):
        session.execute(invoice_lines.insert().values(invoice_id=invoice_id, position=pos, **line))
    session.execute(bookings.insert().values(
        customer_id=customer_id, booked_at=now, type=INVOICE, invoice_id=invoice_id,
        text=lines[0]["text"], amount=-gross_, payment_method="U"))
    uow.emit("invoice_issued", {"invoice_id": invoice_id, "number": number,
                                "customer_id": customer_id, "net": net, "vat": vat,
                                "gross": gross_, "issued_at": now})
    return invoice_id


def balance_text(balance):
    """As the guide shows it: "0.00€ Guthaben", "-4.00€ offener Betrag"."""
    return f"{balance:.2f}€ offener Betrag" if balance < 0 else f"{balance:.2f}€ Guthaben"


def account(session, customer_id, *, page, per_page):
    balance = session.execute(select(func.coalesce(func.sum(bookings.c.amount), 0))
                              .where(bookings.c.customer_id == customer_id)).scalar_one()
    balance = money(balance)
    total = session.execute(select(func.count()).where(bookings.c.customer_id == customer_id)).scalar_one()
    rows = session.execute(
        select(bookings, invoices.c.number).outerjoin(invoices, invoices.c.id == bookings.c.invoice_id)
        .where(bookings.c.customer_id == customer_id)
        .order_by(bookings.c.booked_at.desc(), bookings.c.id.desc())
        .limit(per_page).offset((page - 1) * per_page)).all()
    items = [{"id": r.id, "invoice_number": r.number, "date": r.booked_at.date(), "type": r.type,
              "text": r.text, "amount": r.amount, "payment_method": r.payment_method} for r in rows]
    return {"balance": balance, "balance_text": balance_text(balance), "currency": "EUR",
            "bookings": {"items": items, "total": total, "page": page, "per_page": per_page}}


ARREARS_AFTER_DAYS = 30


def account_standing(session, customer_id, today=None):
    """In arrears: an open balance while an invoice is older than ARREARS_AFTER_DAYS.

    (Dunning refines this with due dates and reminders.)
    """
    balance = money(session.execute(select(func.coalesce(func.sum(bookings.c.amount), 0))
                                    .where(bookings.c.customer_id == customer_id)).scalar_one())
    oldest = session.execute(select(func.min(bookings.c.booked_at)).where(
        bookings.c.customer_id == customer_id, bookings.c.type == INVOICE)).scalar_one()
    today = today or utcnow().date()
    in_arrears = bool(balance < 0 and oldest is not None
                      and (today - oldest.date()).days > ARREARS_AFTER_DAYS)
    return {"in_arrears": in_arrears, "open_amount": str(-balance if balance < 0 else money(0))}
