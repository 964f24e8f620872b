"""The recurring billing run: every due contract period invoiced exactly once.

Idempotency: a contract period is billed in the same transaction that records it in
``billed_periods`` (unique on contract + period start) and advances the contract's
``next_invoice_date``. The run bills ``RUN_CHUNK_SIZE`` customers per transaction with
set-based statements (one SELECT per table, multi-row INSERTs, one block of invoice numbers
for the chunk); a run that dies mid-way rolls back the chunk it was working on and the next
run finds those customers still due. A chunk that fails is billed again customer by customer
(``bill_customer``), so one customer's problem never stops the others.

Two runs at once: a chunk claims its customers' rows with ``FOR UPDATE SKIP LOCKED``; the
customers another run holds are skipped and, at the end, looked at again waiting for the
lock (usually the other run has billed them by then). The runs leapfrog each other through
the list: each bills what the other does not hold. The invoice counter's row lock (taken as
late as possible in a chunk's transaction) serialises only the numbering.

Run records, the as_of bound and aborted/resumed runs: see ``runs``.
"""
import datetime as dt
import logging
import time
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import func, select, text, update

from kc_billing import domain, runs
from kc_billing.models import (
    billable_contracts,
    billed_periods,
    bookings,
    counters,
    customers,
    invoice_lines,
    invoices,
    payment_details,
)
from kc_billing.schedule import TERMINATED, period_end
from kc_common.bulk import bulk_insert, prepare_bulk_insert
from kc_common.clock import berlin_date
from kc_common.db import (
    as_utc,
    next_in_series,
    to_json_safe,
    utcnow,
)
from kc_common.schemas import money

log = logging.getLogger(__name__)

LOCKED = "locked"      # another transaction holds the customer (not with ``wait``)
UNKNOWN = "unknown"    # no address replica (or the chunk failed): billed on its own
ERROR = "error"        # billing the customer failed; they stay due
IN_SLICE = 1000        # longest IN list of one statement (SQLite's bound on variables)


def _chunks(todo, size, from_the_end=False):
    """The due customers in chunks of ``size``, each in customer order. A run with an odd id
    walks the list from its end: two runs started together meet in the middle instead of
    racing each other through the same chunks (any order bills the same)."""
    if not from_the_end:
        return [todo[i:i + size] for i in range(0, len(todo), size)]
    return [todo[max(0, end - size):end] for end in range(len(todo), 0, -size)]


def _slices(items, size=IN_SLICE):
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


def due_customers(session, as_of):
    return session.execute(
        select(billable_contracts.c.customer_id).where(
            billable_contracts.c.next_invoice_date <= as_of,
            billable_contracts.c.status != TERMINATED)
        .group_by(billable_contracts.c.customer_id).order_by(billable_contracts.c.customer_id)
    ).scalars().all()


def _due_contracts(customer_ids, as_of):
    return select(billable_contracts).where(
        billable_contracts.c.customer_id.in_(customer_ids),
        billable_contracts.c.next_invoice_date <= as_of,
        billable_contracts.c.status != TERMINATED,
    ).order_by(billable_contracts.c.customer_id, billable_contracts.c.contract_id).with_for_update()


def due_lines(contracts, as_of):
    """One customer's due contracts (rows in contract order) as invoice lines, one per period.

    Returns ``(lines, periods, advances)``: the lines, the ``(contract, start, end)`` periods
    they bill and each contract's ``(contract, next invoice date)`` afterwards (None: nothing
    more, the contract ended).
    """
    lines, periods, advances = [], [], []
    for c in contracts:
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
    return lines, periods, advances


def _advance(session, advances, now):
    """Move the contracts' next invoice dates: one UPDATE per distinct date."""
    by_date = {}
    for contract_id, next_date in advances:
        by_date.setdefault(next_date, []).append(contract_id)
    for next_date, contract_ids in by_date.items():
        for part in _slices(contract_ids):
            session.execute(update(billable_contracts).where(
                billable_contracts.c.contract_id.in_(part)).values(
                next_invoice_date=next_date, updated_at=now))


def _record_periods(periods, invoice_id):
    # The unique (contract, period start) makes a double bill impossible even if the
    # locking were bypassed: the whole transaction would fail.
    return [{"contract_id": cid, "period_start": s, "period_end": e, "invoice_id": invoice_id}
            for cid, s, e in periods]


def bill_customer(uow, customer_id, as_of, settings, run_id=None, before_commit=None, wait=False,
                  now=None):
    """Invoice every due period of the customer's contracts: one invoice, one line per period.

    Returns ``None`` when nothing was due any more, ``"locked"`` when another transaction
    holds the customer (unless ``wait``), else the invoice dict (plus ``periods``).
    ``now``: the issue instant (default: now; the demo seed bills past dates with it).
    ``before_commit([customer_id])`` is called once the invoice is booked.
    """
    session = uow.session
    if domain.lock_customer(session, customer_id, skip_locked=not wait) is None:
        return LOCKED
    rows = session.execute(_due_contracts([customer_id], as_of)).all()
    lines, periods, advances = due_lines(rows, as_of)
    if not lines:
        return None
    invoice = domain.issue_invoice(uow, customer_id, lines, settings, run_id=run_id, now=now, locked=True)
    session.execute(billed_periods.insert(), _record_periods(periods, invoice["invoice_id"]))
    _advance(session, advances, now or utcnow())
    # SEPA invoices are collected on their due date by the collection run (``sepa.collect``).
    if before_commit is not None:
        before_commit([customer_id])
    invoice["periods"] = len(periods)
    return invoice


def bill_customers(uow, customer_ids, as_of, settings, run_id=None, before_commit=None, wait=False):
    """:func:`bill_customer` for several customers in one transaction, set-based.

    The same rules and the same rows as one by one (one invoice per customer with one line per
    period, its booking, ``billed_periods``, the advanced dates, an ``invoice_issued`` event),
    with a few statements for the whole chunk. Returns ``{customer_id: result}``: the invoice
    dict (plus ``periods``), None (nothing due any more), ``LOCKED`` (another transaction
    holds the customer; never with ``wait``) or ``UNKNOWN`` (no address replica: left to
    :func:`bill_customer`, which says why). ``before_commit(customer_ids)`` is called once
    the invoices are booked.
    """
    session = uow.session
    ids = sorted(set(customer_ids))
    known = domain.known_customers(session, ids)
    results = {cid: UNKNOWN for cid in ids if cid not in known}
    # The customers' rows, locked in customer order (one writer of each ledger, as
    # ``domain.lock_customer``): the buyer at issue time comes from the locked row.
    buyers = {}
    for part in _slices(sorted(known)):
        buyers.update((row.customer_id, row) for row in session.execute(
            select(customers).where(customers.c.customer_id.in_(part))
            .order_by(customers.c.customer_id).with_for_update(skip_locked=not wait)).all())
    results.update((cid, LOCKED) for cid in known if cid not in buyers)
    contracts = {}
    for part in _slices(sorted(buyers)):
        for row in session.execute(_due_contracts(part, as_of)).all():
            contracts.setdefault(row.customer_id, []).append(row)
    details = {}
    for part in _slices(sorted(contracts)):
        details.update((row.customer_id, row) for row in session.execute(
            select(payment_details).where(payment_details.c.customer_id.in_(part))).all())
    plans = []
    for cid in sorted(buyers):
        lines, periods, advances = due_lines(contracts.get(cid, ()), as_of)
        if not lines:
            results[cid] = None
            continue
        customer_details = domain.details_of(cid, details.get(cid))
        priced = domain.priced_lines(customer_details, domain.buyer_of(cid, buyers[cid], customer_details),
                                     lines, settings)
        preceding = domain.preceding_invoice(session, cid, priced["lines"]) \
            if priced["kind"] == "credit_note" else None
        plans.append((cid, priced, preceding, periods, advances))
    if not plans:
        return results
    _advance(session, [a for plan in plans for a in plan[4]], utcnow())
    # Everything that does not depend on the invoice numbers is prepared before the number
    # block is taken: the counter row stays locked until commit, and a second run waits for
    # it only for the few steps after it.
    cids = [plan[0] for plan in plans]
    ledgers = _ledgers(session, cids)
    ids = _invoice_ids(session, len(plans))
    drafts = [domain.invoice_draft(cid, priced, settings, run_id=run_id, preceding=preceding)
              for cid, priced, preceding, _, _ in plans]
    send_lines = prepare_bulk_insert(session, invoice_lines, [
        dict(line, invoice_id=invoice_id) for draft, invoice_id in zip(drafts, ids) for line in draft["lines"]])
    send_periods = prepare_bulk_insert(session, billed_periods, [
        row for plan, invoice_id in zip(plans, ids) for row in _record_periods(plan[3], invoice_id)])
    seller = to_json_safe(settings.seller)  # the same for every invoice: converted once
    templates = [dict(to_json_safe(dict(draft["payload"], seller=None)), seller=seller) for draft in drafts]
    # The number block; ``now`` after it: dates never run backwards along the series.
    first = next_in_series(session, counters, "invoice", domain.FIRST_INVOICE_NUMBER,
                           count=len(plans)) - len(plans) + 1
    now = utcnow()
    issued_on = berlin_date(now)
    rows, booking_rows, payloads = [], [], []
    for k, (cid, draft, invoice_id, template) in enumerate(zip(cids, drafts, ids, templates)):
        fields, event_fields = domain.number_fields(cid, first + k, now, settings, issued_on)
        rows.append(dict(draft["row"], id=invoice_id, **fields))
        booking = dict(draft["booking"], booked_at=now, invoice_id=invoice_id)
        booking_rows.append(booking)
        open_amount = _open_amount(ledgers.get(cid, []), booking, invoice_id, now)
        payloads.append(dict(template, **{key: value if isinstance(value, int) else _plain_scalar(value)
                                          for key, value in event_fields.items()},
                             invoice_id=invoice_id, open_amount=str(open_amount)))
        results[cid] = dict(domain.invoice_result({"row": rows[-1], "details": draft["details"]},
                                                  invoice_id, open_amount), periods=len(plans[k][3]))
    bulk_insert(session, invoices, rows)
    send_lines()
    bulk_insert(session, bookings, booking_rows)
    send_periods()
    uow.emit_many("invoice_issued", payloads, json_safe=True)
    if before_commit is not None:
        before_commit(cids)
    return results


def _plain_scalar(value):
    """A date, datetime or string as :func:`to_json_safe` writes it."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def _ledgers(session, customer_ids):
    """The customers' bookings (``domain.LEDGER_COLUMNS`` and ``booked_at``) in booking order."""
    ledgers = {}
    for part in _slices(customer_ids):
        for row in session.execute(select(bookings.c.customer_id, bookings.c.booked_at, *domain.LEDGER_COLUMNS)
                                   .where(bookings.c.customer_id.in_(part))
                                   .order_by(bookings.c.customer_id, bookings.c.booked_at, bookings.c.id)):
            ledgers.setdefault(row.customer_id, []).append(row)
    return ledgers


def _open_amount(ledger, booking, invoice_id, now):
    """What the invoice still owes once its booking is in the customer's ledger (read before,
    under the customer's lock: no other writer). The new booking sorts after every booking up
    to ``now`` (its id is the highest), before any dated later."""
    new = SimpleNamespace(id=None, invoice_id=invoice_id, amount=booking["amount"],
                          applies_to_invoice_id=None, reverses_booking_id=None)
    later = next((i for i, row in enumerate(ledger) if as_utc(row.booked_at) > now), len(ledger))
    items, _ = domain.open_items_of(ledger[:later] + [new] + ledger[later:])
    return next((o for _, inv, o in items if inv == invoice_id), money(0))


def _invoice_ids(session, count):
    """Ids for the chunk's invoices, taken before their rows (their lines are encoded first).

    PostgreSQL: from the table's sequence (no lock; an id a rollback leaves unused is a gap in
    ids, never in the invoice numbers). SQLite: after the highest (its write transaction is the
    only one: ``BEGIN IMMEDIATE``)."""
    if session.bind.dialect.name == "postgresql":
        return session.execute(text("SELECT nextval(pg_get_serial_sequence('invoices', 'id')) "
                                    "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
    first = session.execute(select(func.coalesce(func.max(invoices.c.id), 0))).scalar_one() + 1
    return list(range(first, first + count))


def run_billing(db, as_of, settings, *, started_by="cli", fetch_customer=None, progress=None,
                before_commit=None, should_stop=None, chunk_size=None):
    """Record a run as of ``as_of`` (bounded, see ``runs.check_as_of``) and execute it here."""
    with db.unit_of_work() as uow:
        run, _ = runs.start(uow.session, as_of, settings, started_by=started_by, join=False)
    return execute_run(db, run["run_id"], as_of, settings, fetch_customer=fetch_customer,
                       progress=progress, before_commit=before_commit, should_stop=should_stop,
                       chunk_size=chunk_size)


def execute_run(db, run_id, as_of, settings, *, fetch_customer=None, progress=None,
                before_commit=None, should_stop=None, clock=time.monotonic, chunk_size=None):
    """Invoice every due contract as of ``as_of``; one transaction per chunk of customers.

    ``chunk_size``: customers per transaction (default ``RUN_CHUNK_SIZE``).
    ``fetch_customer(customer_id)`` returns identity's customer data when billing has
    no replica yet (called with no transaction open); ``progress(done, total)`` is called
    after each chunk; ``should_stop()`` true ends the run early (between chunks), marked
    aborted (the next run completes it). A heartbeat with the counts so far is recorded every
    ``RUN_HEARTBEAT_EVERY`` seconds. Returns the summary, with ``state`` and the
    ``resumed_runs`` whose work this run completed.
    """
    chunk_size = chunk_size or settings.run_chunk_size
    runs.ACTIVE.add(run_id)
    summary = {"run_id": run_id, "as_of": as_of, "customers": 0, "customers_done": 0,
               "invoices": 0, "contracts": 0, "gross": Decimal("0.00"), "skipped": 0, "errors": 0}
    last_beat = [clock()]

    def beat(force=False):
        if force or clock() - last_beat[0] >= settings.run_heartbeat_every:
            with db.unit_of_work() as uow:
                runs.heartbeat(uow.session, run_id, summary)
            last_beat[0] = clock()

    def bill_one(customer_id, wait):
        try:
            with db.unit_of_work() as uow:
                return bill_customer(uow, customer_id, as_of, settings, run_id, before_commit, wait=wait)
        except Exception:  # one customer's problem never stops the run; they stay due
            log.exception("billing run %s: customer %s failed", run_id, customer_id)
            return ERROR

    def bill_chunk(chunk, wait):
        try:
            with db.unit_of_work() as uow:
                results = bill_customers(uow, chunk, as_of, settings, run_id, before_commit, wait=wait)
        except Exception:  # rolled back: one by one, so that only the culprit stays due
            log.warning("billing run %s: a chunk of %d customers failed; billing them one by one",
                        run_id, len(chunk), exc_info=True)
            results = dict.fromkeys(chunk, UNKNOWN)
        for customer_id in chunk:
            if results[customer_id] == UNKNOWN:
                results[customer_id] = bill_one(customer_id, wait)
        return results

    def fetch_and_bill(customer_id):
        """A customer billing has no replica of: fetched from identity (no transaction open),
        then billed on their own (the slow path: an RPC per customer)."""
        try:
            data = fetch_customer(customer_id)
            with db.unit_of_work() as uow:
                domain.upsert_customer(uow.session, data, as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        except Exception:  # they stay due
            log.exception("billing run %s: customer %s failed", run_id, customer_id)
            return ERROR
        return bill_one(customer_id, wait=False)

    def count(results, second_look=False):
        for result in results.values():
            if result == LOCKED:  # looked at again at the end
                continue
            if result == ERROR:
                summary["errors"] += 1
            elif result is None:
                if second_look:  # nothing due any more: another run billed them
                    summary["skipped"] += 1
            else:
                summary["invoices"] += 1
                summary["contracts"] += result["periods"]
                summary["gross"] += result["gross"]
            summary["customers_done"] += 1

    try:
        with db.unit_of_work() as uow:
            todo = due_customers(uow.session, as_of)
            summary["customers"] = len(todo)
            runs.heartbeat(uow.session, run_id, summary)
        skipped, done = [], 0

        def tally(results):
            nonlocal done
            count(results)
            skipped.extend(cid for cid, result in results.items() if result == LOCKED)
            done += len(results)
            if progress is not None:
                progress(done, len(todo))
            beat()

        for chunk in _chunks(todo, chunk_size, from_the_end=run_id % 2 == 1):
            if fetch_customer is not None:
                with db.unit_of_work() as uow:
                    known = domain.known_customers(uow.session, chunk)
                for customer_id in (c for c in chunk if c not in known):
                    if should_stop is not None and should_stop():
                        return _stopped(db, run_id, summary)
                    tally({customer_id: fetch_and_bill(customer_id)})
                chunk = [c for c in chunk if c in known]
            if should_stop is not None and should_stop():
                return _stopped(db, run_id, summary)
            if chunk:
                tally(bill_chunk(chunk, wait=False))
        # Customers another transaction held (another run, or a payment being booked): wait
        # for the locks once and look again. Usually the other run has billed them by then.
        for start in range(0, len(skipped), chunk_size):
            if should_stop is not None and should_stop():
                return _stopped(db, run_id, summary)
            count(bill_chunk(skipped[start:start + chunk_size], wait=True), second_look=True)
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
