"""The schedule (billable contracts from catalog's events) and tariff-change proration.

What the schedule says is due is billed by the recurring billing run (``billrun``).
"""
import datetime as dt
import functools
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update

from kc_billing import domain
from kc_billing.models import billable_contracts, billed_periods
from kc_common.db import dialect_insert, utcnow
from kc_common.schemas import money

ACTIVE, CANCELLED, TERMINATED = "active", "cancelled", "terminated"


@functools.lru_cache(maxsize=4096)
def period_end(start, months):
    return start + relativedelta(months=months) - dt.timedelta(days=1)


def register_order(uow, order, settings):
    """``order_placed``: schedule every contract and invoice its first period at once.

    A contract billing schedules already is left to its schedule (not invoiced again): the
    demo seed (``kc_billing.demo``) bills the demo contracts itself before their order arrives.
    """
    session = uow.session
    # The customer's row first, as every other writer of the ledger takes it: inserting the
    # contracts (a foreign key share lock on that row) before locking it for the invoice
    # deadlocked with a contract_changed of the same customer on PostgreSQL.
    domain.lock_customer(session, order["customer_id"])
    now = utcnow()
    insert = dialect_insert(session)
    lines = domain.invoice_lines_of_order(order)
    known = set(session.execute(select(billable_contracts.c.contract_id).where(
        billable_contracts.c.contract_id.in_([item["contract_id"] for item in order["items"]]))).scalars())
    for item, line in zip(order["items"], lines):
        session.execute(insert(billable_contracts).values(
            contract_id=item["contract_id"], customer_id=order["customer_id"],
            product_id=item["product_id"], product_name=item["product_name"],
            # For a non-domain contract the column keeps catalog's label (package domain, server name).
            kind=item.get("kind") or "addon", domain=item.get("domain") or item.get("label"),
            period_months=item["period_months"], price_net=Decimal(item["price_net"]),
            vat_rate=Decimal(item.get("vat_rate") or settings.default_vat_rate),
            next_invoice_date=line["period_end"] + dt.timedelta(days=1), status=ACTIVE,
            updated_at=now).on_conflict_do_nothing())
    lines = [line for line in lines if line["contract_id"] not in known]
    if not lines:
        return None
    invoice = domain.issue_invoice(uow, order["customer_id"], lines, settings)
    session.execute(billed_periods.insert(), [
        {"contract_id": line["contract_id"], "period_start": line["period_start"],
         "period_end": line["period_end"], "invoice_id": invoice["invoice_id"]} for line in lines])
    return invoice


def proration_lines(change):
    """Credit the unused part of the old price, charge the new one, by days remaining.

    Days remaining = effective date .. period end (inclusive) out of the period's
    days. The credit is rounded half-up; the charge is chosen so that the sum of
    the two lines is the exactly prorated difference rounded once (right to the
    cent). Different VAT rates: each line rounded on its own.
    """
    start = dt.date.fromisoformat(change["period_start"])
    end = dt.date.fromisoformat(change["period_end"])
    effective = dt.date.fromisoformat(change["effective_date"])
    total_days = (end - start).days + 1
    remaining = max(0, min(total_days, (end - effective).days + 1))
    if remaining == 0:
        return []
    old, new = change["old"], change["new"]
    old_price, new_price = Decimal(old["price_net"]), Decimal(new["price_net"])
    credit = money(old_price * remaining / total_days)
    if Decimal(old["vat_rate"]) == Decimal(new["vat_rate"]):
        charge = credit + money((new_price - old_price) * remaining / total_days)
    else:
        charge = money(new_price * remaining / total_days)
    first_day = max(effective, start)
    span = f"{first_day:%d.%m.%Y}-{end:%d.%m.%Y}"
    contract_id = change["contract_id"]
    return [
        {"text": f"Gutschrift {old['product_name']} {span} ({remaining}/{total_days} Tage)",
         "contract_id": contract_id, "period_start": first_day, "period_end": end,
         "net": -credit, "vat_rate": Decimal(old["vat_rate"])},
        {"text": f"Tarifwechsel {new['product_name']} {span} ({remaining}/{total_days} Tage)",
         "contract_id": contract_id, "period_start": first_day, "period_end": end,
         "net": charge, "vat_rate": Decimal(new["vat_rate"])},
    ]


def change_contract(uow, change, settings):
    """``contract_changed``: prorate now; later periods are billed at the new price."""
    session = uow.session
    domain.lock_customer(session, change["customer_id"])
    new = change["new"]
    row = session.execute(select(billable_contracts).where(
        billable_contracts.c.contract_id == change["contract_id"]).with_for_update()).first()
    values = {"product_id": new["product_id"], "product_name": new["product_name"],
              "price_net": Decimal(new["price_net"]), "vat_rate": Decimal(new["vat_rate"]),
              "period_months": new["period_months"], "updated_at": utcnow()}
    if row is None:  # known only from this event: schedule from the end of the given period
        session.execute(billable_contracts.insert().values(
            contract_id=change["contract_id"], customer_id=change["customer_id"], kind="addon",
            next_invoice_date=dt.date.fromisoformat(change["period_end"]) + dt.timedelta(days=1),
            status=ACTIVE, **values))
    else:
        session.execute(update(billable_contracts).where(
            billable_contracts.c.contract_id == change["contract_id"]).values(**values))
    lines = proration_lines(change)
    if not lines:
        return None
    return domain.issue_invoice(uow, change["customer_id"], lines, settings)


def cancel_contract(uow, data):
    """``contract_cancelled``: no period starting after ``end_date`` is billed."""
    end = dt.date.fromisoformat(data["end_date"])
    row = uow.session.execute(select(billable_contracts).where(
        billable_contracts.c.contract_id == data["contract_id"]).with_for_update()).first()
    if row is None:
        return
    next_date = row.next_invoice_date if row.next_invoice_date and row.next_invoice_date <= end else None
    uow.session.execute(update(billable_contracts).where(
        billable_contracts.c.contract_id == data["contract_id"]).values(
        status=CANCELLED, end_date=end, next_invoice_date=next_date, updated_at=utcnow()))


def terminate_contract(uow, data):
    """``contract_terminated``: nothing more is billed."""
    uow.session.execute(update(billable_contracts).where(
        billable_contracts.c.contract_id == data["contract_id"]).values(
        status=TERMINATED, end_date=dt.date.fromisoformat(data["terminated_on"]),
        next_invoice_date=None, updated_at=utcnow()))
