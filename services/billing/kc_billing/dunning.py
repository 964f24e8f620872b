"""Dunning: reminders for overdue invoices at configurable intervals (``DUNNING_DAYS``).

Level n is reached ``DUNNING_DAYS[n-1]`` days after the due date while the
invoice is still open; each level is recorded once (unique invoice + level)
and announced by the ``dunning_notice`` event (mail sent from its handler).
"""
import time

from sqlalchemy import func, select

from kc_billing import domain
from kc_billing.models import dunning_notices, invoices
from kc_billing.runs import check_as_of
from kc_common.db import utcnow


def level_for(days_overdue, dunning_days):
    return sum(1 for d in dunning_days if days_overdue >= d)


def customers_with_overdue(session, today):
    return session.execute(select(invoices.c.customer_id).where(
        invoices.c.due_date < today, invoices.c.kind == "invoice")
        .group_by(invoices.c.customer_id).order_by(invoices.c.customer_id)).scalars().all()


def remind_customer(uow, customer_id, today, settings):
    session = uow.session
    if domain.lock_customer(session, customer_id, skip_locked=True) is None:
        return 0
    open_amounts = domain.invoice_open_amounts(session, customer_id)
    due = {i: a for i, a in open_amounts.items() if a > 0}
    if not due:
        return 0
    rows = session.execute(select(invoices).where(invoices.c.id.in_(list(due)),
                                                  invoices.c.due_date < today)).all()
    sent = 0
    for inv in rows:
        level = level_for((today - inv.due_date).days, settings.dunning_days)
        if level == 0:
            continue
        have = session.execute(select(func.coalesce(func.max(dunning_notices.c.level), 0)).where(
            dunning_notices.c.invoice_id == inv.id)).scalar_one()
        if have >= level:
            continue
        session.execute(dunning_notices.insert().values(
            invoice_id=inv.id, customer_id=customer_id, level=level, open_amount=due[inv.id],
            created_at=utcnow()))
        uow.emit("dunning_notice", {"invoice_id": inv.id, "number": inv.number,
                                    "customer_id": customer_id, "level": level,
                                    "open_amount": due[inv.id], "due_date": inv.due_date,
                                    "invoice_email": inv.invoice_email,
                                    "payment_reference": inv.payment_reference})
        sent += 1
    return sent


def run_dunning(db, today, settings, stop_at=None):
    """Remind every customer with an overdue invoice as of ``today`` (bounded, see
    ``runs.check_as_of``); one transaction per customer, each level once.

    ``stop_at`` (epoch seconds): stop before it (the deadline of the RPC caller) and say how
    far it got, rather than be cut off mid-way after the caller has given up; running again
    does the rest (each level is recorded once).
    """
    check_as_of(today, settings)
    with db.unit_of_work() as uow:
        todo = customers_with_overdue(uow.session, today)
    sent = done = 0
    for customer_id in todo:
        if stop_at is not None and time.time() >= stop_at:
            break
        with db.unit_of_work() as uow:
            sent += remind_customer(uow, customer_id, today, settings)
        done += 1
    return {"sent": sent, "customers": len(todo), "customers_done": done,
            "complete": done == len(todo)}
