"""The schedule (billable contracts), tariff-change proration and the recurring billing run.

Idempotency of the run: a contract period is billed in the same transaction
that records it in ``billed_periods`` (unique on contract + period start) and
advances the contract's ``next_invoice_date``. A run that dies mid-way rolls
back the customer it was working on; the next run finds that customer still
due. Two runs at once: each customer is claimed with ``FOR UPDATE SKIP LOCKED``
on its row, so one run invoices them and the other skips them. Run records,
the as_of bound and aborted/resumed runs: see ``runs``.
"""
import datetime as dt
import logging
import time
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update

from kc_common.db import dialect_insert, utcnow
from kc_common.schemas import money
from kc_billing import domain, runs
from kc_billing.models import billable_contracts, billed_periods

log = logging.getLogger(__name__)

ACTIVE, CANCELLED, TERMINATED = "active", "cancelled", "terminated"


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


# --- the recurring billing run -------------------------------------------------------------

def due_customers(session, as_of):
    return session.execute(
        select(billable_contracts.c.customer_id).where(
            billable_contracts.c.next_invoice_date <= as_of,
            billable_contracts.c.status != TERMINATED)
        .group_by(billable_contracts.c.customer_id).order_by(billable_contracts.c.customer_id)
    ).scalars().all()


def bill_customer(uow, customer_id, as_of, settings, run_id=None, before_commit=None, wait=False,
                  now=None):
    """Invoice every due period of the customer's contracts: one invoice, one line per period.

    Returns ``None`` when nothing was due any more, ``"locked"`` when another transaction
    holds the customer (unless ``wait``), else the invoice dict (plus ``periods``).
    ``now``: the issue instant (default: now; the demo seed bills past dates with it).
    """
    session = uow.session
    if domain.lock_customer(session, customer_id, skip_locked=not wait) is None:
        return "locked"
    rows = session.execute(select(billable_contracts).where(
        billable_contracts.c.customer_id == customer_id,
        billable_contracts.c.next_invoice_date <= as_of,
        billable_contracts.c.status != TERMINATED,
    ).order_by(billable_contracts.c.contract_id).with_for_update()).all()
    lines, periods, advances = [], [], []
    for c in rows:
        start = c.next_invoice_date
        while start is not None and start <= as_of and (c.end_date is None or start <= c.end_date):
            end = period_end(start, c.period_months)
            item = {"kind": c.kind, "domain": c.domain, "product_name": c.product_name}
            lines.append({"text": domain.line_text(item, start, end), "contract_id": c.contract_id,
                          "period_start": start, "period_end": end, "net": c.price_net,
                          "vat_rate": c.vat_rate})
            periods.append((c.contract_id, start, end))
            start = end + dt.timedelta(days=1)
        if start is not None and c.end_date is not None and start > c.end_date:
            start = None
        advances.append((c.contract_id, start))
    if not lines:
        return None
    invoice = domain.issue_invoice(uow, customer_id, lines, settings, run_id=run_id, now=now, locked=True)
    # The unique (contract, period start) makes a double bill impossible even if the
    # locking above were bypassed: the whole transaction would fail.
    session.execute(billed_periods.insert(), [
        {"contract_id": cid, "period_start": s, "period_end": e, "invoice_id": invoice["invoice_id"]}
        for cid, s, e in periods])
    by_date = {}
    for contract_id, next_date in advances:
        by_date.setdefault(next_date, []).append(contract_id)
    for next_date, contract_ids in by_date.items():
        session.execute(update(billable_contracts).where(
            billable_contracts.c.contract_id.in_(contract_ids)).values(
            next_invoice_date=next_date, updated_at=now or utcnow()))
    # SEPA invoices are collected on their due date by the collection run (``sepa.collect``).
    if before_commit is not None:
        before_commit(customer_id)
    invoice["periods"] = len(periods)
    return invoice


def run_billing(db, as_of, settings, *, started_by="cli", fetch_customer=None, progress=None,
                before_commit=None, should_stop=None):
    """Record a run as of ``as_of`` (bounded, see ``runs.check_as_of``) and execute it here."""
    with db.unit_of_work() as uow:
        run, _ = runs.start(uow.session, as_of, settings, started_by=started_by, join=False)
    return execute_run(db, run["run_id"], as_of, settings, fetch_customer=fetch_customer,
                       progress=progress, before_commit=before_commit, should_stop=should_stop)


def execute_run(db, run_id, as_of, settings, *, fetch_customer=None, progress=None,
                before_commit=None, should_stop=None, clock=time.monotonic):
    """Invoice every due contract as of ``as_of``; one transaction per customer.

    ``fetch_customer(customer_id)`` returns identity's customer data when billing has
    no replica yet (called with no transaction open); ``progress(done, total)`` is called
    after each customer; ``should_stop()`` true ends the run early, marked aborted (the next
    run completes it). A heartbeat with the counts so far is recorded every
    ``RUN_HEARTBEAT_EVERY`` seconds. Returns the summary, with ``state`` and the
    ``resumed_runs`` whose work this run completed.
    """
    runs.ACTIVE.add(run_id)
    summary = {"run_id": run_id, "as_of": as_of, "customers": 0, "customers_done": 0,
               "invoices": 0, "contracts": 0, "gross": Decimal("0.00"), "skipped": 0, "errors": 0}
    last_beat = [clock()]

    def beat(force=False):
        if force or clock() - last_beat[0] >= settings.run_heartbeat_every:
            with db.unit_of_work() as uow:
                runs.heartbeat(uow.session, run_id, summary)
            last_beat[0] = clock()

    def count(result):
        if result is not None and result != "locked":
            summary["invoices"] += 1
            summary["contracts"] += result["periods"]
            summary["gross"] += result["gross"]

    try:
        with db.unit_of_work() as uow:
            todo = due_customers(uow.session, as_of)
            summary["customers"] = len(todo)
            runs.heartbeat(uow.session, run_id, summary)
        skipped = []
        for done, customer_id in enumerate(todo, start=1):
            if should_stop is not None and should_stop():
                return _stopped(db, run_id, summary)
            result = None
            try:
                if fetch_customer is not None:
                    with db.unit_of_work() as uow:
                        known = domain.customer_known(uow.session, customer_id)
                    if not known:
                        data = fetch_customer(customer_id)
                        with db.unit_of_work() as uow:
                            domain.upsert_customer(uow.session, data, as_of=dt.datetime(
                                1970, 1, 1, tzinfo=dt.timezone.utc))
                with db.unit_of_work() as uow:
                    result = bill_customer(uow, customer_id, as_of, settings, run_id, before_commit)
                if result == "locked":
                    skipped.append(customer_id)
                count(result)
            except Exception:  # one customer's problem never stops the run; they stay due
                log.exception("billing run %s: customer %s failed", run_id, customer_id)
                summary["errors"] += 1
            if result != "locked":
                summary["customers_done"] += 1
            if progress is not None:
                progress(done, len(todo))
            beat()
        # Customers another transaction held (another run, or a payment being booked): wait
        # for the lock once and look again. Usually the other run has billed them by then.
        for customer_id in skipped:
            if should_stop is not None and should_stop():
                return _stopped(db, run_id, summary)
            try:
                with db.unit_of_work() as uow:
                    result = bill_customer(uow, customer_id, as_of, settings, run_id, before_commit,
                                           wait=True)
                if result is None:
                    summary["skipped"] += 1
                count(result)
            except Exception:
                log.exception("billing run %s: customer %s failed", run_id, customer_id)
                summary["errors"] += 1
            summary["customers_done"] += 1
            beat()
        with db.unit_of_work() as uow:
            runs.finish(uow.session, run_id, summary)
            summary["resumed_runs"] = runs.resumed_runs(uow.session, run_id)
        summary["state"] = runs.FINISHED
        return summary
    except BaseException:  # killed, interrupted or the database gone: say so if we still can
        try:
            with db.unit_of_work() as uow:
                runs.abort(uow.session, run_id, summary)
        except Exception:  # noqa: BLE001 - the heartbeat going stale tells it then
            log.warning("billing run %s: could not record that it was aborted", run_id, exc_info=True)
        raise
    finally:
        runs.ACTIVE.discard(run_id)


def _stopped(db, run_id, summary):
    log.warning("billing run %s stopped before its end; the next run completes it", run_id)
    with db.unit_of_work() as uow:
        runs.abort(uow.session, run_id, summary)
        summary["resumed_runs"] = runs.resumed_runs(uow.session, run_id)
    summary["state"] = runs.ABORTED
    return summary
