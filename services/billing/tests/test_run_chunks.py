"""The billing run in chunks (``billrun.bill_customers``) on PostgreSQL and SQLite.

A chunk books exactly what billing the customers one by one books; chunk boundaries; one
failing customer never stops its chunk; two runs claim disjoint customers.
"""
import datetime as dt
import subprocess
import sys
from decimal import Decimal

import pytest
import yaml
from alembic import command
from dateutil.relativedelta import relativedelta
from sqlalchemy import event, func, select

from kc_billing import billrun, domain, payments
from kc_billing.models import (
    billable_contracts,
    billed_periods,
    billing_runs,
    bookings,
    customers,
    invoice_lines,
    invoices,
    metadata,
    payment_details,
)
from kc_billing.settings import BillingSettings
from kc_common.clock import berlin_today
from kc_common.db import StandaloneDatabase, utcnow
from kc_common.migrations import alembic_config

from .conftest import CUSTOMERS, ROOT, customer

AS_OF = berlin_today()
MONTH = AS_OF.replace(day=1)
SETTINGS = BillingSettings({})


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db(request, config, tmp_path):
    url = config["DATABASE_URL"]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/billing.db"
        command.upgrade(alembic_config("kc_billing", url), "head")
    database = StandaloneDatabase(metadata, url, "billing")
    yield database
    database.engine.dispose()


def contract(customer_id, n, start, *, price="4.20", vat="19.00", months=1, kind="hosting",
             domain_name=None, end=None, status="active"):
    return {"contract_id": customer_id * 10 + n, "customer_id": customer_id, "product_id": "p",
            "product_name": "Webhosting" if kind == "hosting" else "Domain .de", "kind": kind,
            "domain": domain_name, "period_months": months, "price_net": Decimal(price),
            "vat_rate": Decimal(vat), "next_invoice_date": start, "end_date": end, "status": status,
            "updated_at": utcnow()}


def shapes(db, base):
    """Eight customers ``base + k`` whose due work covers the run's rules; returns the due ones."""
    at = {"AT": CUSTOMERS[100003]}
    rows, details = [], []
    for k in range(8):
        cid = base + k
        with db.unit_of_work() as uow:
            domain.upsert_customer(uow.session, dict(at["AT"], customer_id=cid) if k == 1 else customer(cid))
    two_ago = MONTH - relativedelta(months=2)
    rows += [contract(base, n, two_ago, price=f"{n + 1}.33") for n in range(3)]       # 3 months due
    rows += [contract(base + 1, 0, AS_OF, months=12, price="99.00")]                   # reverse charge
    rows += [contract(base + 2, 0, MONTH, price="10.00"),                              # by post,
             contract(base + 2, 1, MONTH, price="3.00", vat="7.00")]                   # two VAT rates
    details.append(dict(domain.DEFAULT_DETAILS, customer_id=base + 2, by_post=True,
                        with_contact_person=True, updated_at=utcnow()))
    rows += [contract(base + 3, 0, MONTH, price="20.00")]                              # SEPA, credit
    details.append(dict(domain.DEFAULT_DETAILS, customer_id=base + 3, method="sepa",
                        iban="DE89370400440532013000", bic="COBADEFFXXX", account_holder="Max Mustermann",
                        mandate_reference=f"KC{base + 3}-M001", mandate_date=dt.date(2026, 1, 2),
                        updated_at=utcnow()))
    rows += [contract(base + 4, 0, two_ago, price="5.00", status="cancelled",          # ends after
                      end=two_ago + relativedelta(months=1, days=3))]                  # 2 periods
    rows += [contract(base + 5, 0, MONTH, months=12, price="12.00", kind="domain",
                      domain_name="xn--mller-kva.de")]                                 # IDN domain
    rows += [contract(base + 6, 0, MONTH, price="8.00", status="terminated")]          # never due
    rows += [contract(base + 7, 0, MONTH, price="6.00"),
             contract(base + 7, 1, AS_OF + dt.timedelta(days=40), price="9.00")]       # one not yet
    with db.unit_of_work() as uow:
        uow.session.execute(billable_contracts.insert(), rows)
        uow.session.execute(payment_details.insert(), details)
        payments.book_transfer(uow, {"transaction_id": f"T-{base}", "amount": "5.00",
                                     "reference": f"KC{base + 3}", "value_date": AS_OF})
    return [base + k for k in (0, 1, 2, 3, 4, 5, 7)]


def booked(db, customer_id, events):
    """Everything the run booked for a customer, without what names the customer or the invoice."""
    with db.unit_of_work() as uow:
        s = uow.session
        inv = s.execute(select(invoices).where(invoices.c.customer_id == customer_id,
                                               invoices.c.run_id.isnot(None))).one()
        lines = s.execute(select(invoice_lines.c.position, invoice_lines.c.text, invoice_lines.c.net,
                                 invoice_lines.c.vat_rate, invoice_lines.c.vat, invoice_lines.c.period_start,
                                 invoice_lines.c.period_end, invoice_lines.c.contract_id % 10)
                          .where(invoice_lines.c.invoice_id == inv.id).order_by(invoice_lines.c.position)).all()
        booking = s.execute(select(bookings.c.type, bookings.c.amount, bookings.c.text,
                                   bookings.c.payment_method).where(bookings.c.invoice_id == inv.id)).one()
        periods = s.execute(select(billed_periods.c.contract_id % 10, billed_periods.c.period_start,
                                   billed_periods.c.period_end).where(billed_periods.c.invoice_id == inv.id)
                            .order_by(billed_periods.c.contract_id)).all()
        nexts = s.execute(select(billable_contracts.c.contract_id % 10, billable_contracts.c.next_invoice_date)
                          .where(billable_contracts.c.customer_id == customer_id)
                          .order_by(billable_contracts.c.contract_id)).all()
    event = next(e["data"] for e in events if e["data"]["invoice_id"] == inv.id)
    ignored = ("invoice_id", "number", "customer_id", "issued_at", "payment_reference", "buyer",
               "invoice_email", "sepa", "lines")
    return {"invoice": (inv.net, inv.vat, inv.gross, inv.kind, inv.reverse_charge, inv.by_post,
                        inv.payment_method, inv.vat_breakdown, inv.due_date, inv.einvoice_profile),
            "lines": [tuple(line) for line in lines], "booking": tuple(booking),
            "periods": [tuple(p) for p in periods], "next": [tuple(n) for n in nexts],
            "event": {k: v for k, v in event.items() if k not in ignored},
            "event_lines": [{k: v for k, v in line.items() if k != "contract_id"} for line in event["lines"]]}


def invoice_events(db):
    with db.unit_of_work() as uow:
        return [row.payload for row in uow.session.execute(
            select(db.outbox.c.payload).where(db.outbox.c.event_type == "invoice_issued"))]


def test_a_chunk_books_exactly_what_one_by_one_books(any_db):
    one_by_one, chunked = shapes(any_db, 510000), shapes(any_db, 520000)
    for cid in one_by_one + [510006]:
        with any_db.unit_of_work() as uow:
            billrun.bill_customer(uow, cid, AS_OF, SETTINGS, run_id=1)
    with any_db.unit_of_work() as uow:
        results = billrun.bill_customers(uow, chunked + [520006], AS_OF, SETTINGS, run_id=2)
    assert results[520006] is None  # only a terminated contract: nothing due
    events = invoice_events(any_db)
    assert len(events) == 2 * len(one_by_one)
    for a, b in zip(one_by_one, chunked):
        assert booked(any_db, b, events) == booked(any_db, a, events), b
        assert results[b]["periods"] == len(booked(any_db, b, events)["periods"])
    mine = {b: booked(any_db, b, events) for b in chunked}
    assert [line[1] for line in mine[520000]["lines"]][:2] == [
        f"Webhosting {MONTH - relativedelta(months=2):%d.%m.%Y}-"
        f"{MONTH - relativedelta(months=1) - dt.timedelta(days=1):%d.%m.%Y}",
        f"Webhosting {MONTH - relativedelta(months=1):%d.%m.%Y}-{MONTH - dt.timedelta(days=1):%d.%m.%Y}"]
    assert len(mine[520000]["lines"]) == 9 and mine[520000]["invoice"][2] == Decimal("24.95")
    assert mine[520001]["invoice"][4] is True and mine[520001]["invoice"][1] == Decimal("0.00")
    assert mine[520002]["lines"][-1][1] == domain.POSTAGE_TEXT
    assert mine[520003]["event"]["open_amount"] == "18.80"   # 23.80 less the 5.00 credit
    assert mine[520003]["invoice"][6] == "sepa"
    assert mine[520004]["next"] == [(0, None)] and len(mine[520004]["periods"]) == 2
    assert mine[520005]["lines"][0][1].startswith("Domain müller.de ")
    assert mine[520007]["next"][1] == (1, AS_OF + dt.timedelta(days=40))
    with any_db.unit_of_work() as uow:  # one block of numbers, in customer order
        numbers = uow.session.execute(select(invoices.c.number).where(invoices.c.run_id == 2)
                                      .order_by(invoices.c.customer_id)).scalars().all()
    assert numbers == list(range(numbers[0], numbers[0] + len(chunked)))


def test_chunk_boundaries_bill_every_customer_once_with_dense_numbers(any_db):
    """7 customers in chunks of 3: runs with an odd id walk the list from its end."""
    for base in (530000, 531000):  # the first run has id 1 (from the end), the second id 2
        due = list(range(base + 1, base + 8))
        with any_db.unit_of_work() as uow:
            for cid in due:
                domain.upsert_customer(uow.session, customer(cid))
            uow.session.execute(billable_contracts.insert(), [
                contract(cid, n, MONTH, price=f"{n + 1}.10") for cid in due for n in range(2)])
        seen = []
        summary = billrun.run_billing(any_db, AS_OF, SETTINGS, chunk_size=3,
                                      progress=lambda done, total, seen=seen: seen.append((done, total)))
        assert seen == [(3, 7), (6, 7), (7, 7)]
        assert (summary["customers"], summary["customers_done"], summary["invoices"], summary["contracts"],
                summary["errors"], summary["skipped"], summary["state"]) == (7, 7, 7, 14, 0, 0, "finished")
        assert summary["gross"] == 7 * Decimal("3.81")  # 1.10 + 2.10 net + 0.61 VAT
        chunks = [due[4:], due[1:4], due[:1]] if summary["run_id"] % 2 else [due[:3], due[3:6], due[6:]]
        with any_db.unit_of_work() as uow:
            s = uow.session
            rows = s.execute(select(invoices.c.customer_id, invoices.c.number).where(
                invoices.c.run_id == summary["run_id"]).order_by(invoices.c.number)).all()
            assert [cid for cid, _ in rows] == [cid for chunk in chunks for cid in chunk]
            assert [n for _, n in rows] == list(range(rows[0][1], rows[0][1] + 7))
            assert s.execute(select(func.count()).select_from(billed_periods).where(
                billed_periods.c.contract_id.between(base * 10, base * 10 + 99))).scalar() == 14
            run = s.execute(select(billing_runs).where(billing_runs.c.id == summary["run_id"])).one()
            assert (run.invoices, run.customers_done, run.finished_at is not None) == (7, 7, True)
    with any_db.unit_of_work() as uow:  # dense across both runs
        numbers = uow.session.execute(select(invoices.c.number).order_by(invoices.c.number)).scalars().all()
    assert numbers == list(range(numbers[0], numbers[0] + 14))
    again = billrun.run_billing(any_db, AS_OF, SETTINGS, chunk_size=3)
    assert (again["customers"], again["invoices"]) == (0, 0)


def test_one_failing_customer_never_stops_its_chunk(any_db):
    due = list(range(540001, 540006))
    with any_db.unit_of_work() as uow:
        for cid in due:
            if cid != 540002:  # no address replica, and no identity to ask
                domain.upsert_customer(uow.session, customer(cid))
        uow.session.execute(billable_contracts.insert(), [contract(cid, 0, MONTH) for cid in due])
    with any_db.unit_of_work() as uow:  # a period of 540004 recorded as billed, its date not moved
        manual = domain.issue_invoice(uow, 540004, [{"text": "Webhosting", "contract_id": None,
                                                     "period_start": None, "period_end": None,
                                                     "net": Decimal("1.00"), "vat_rate": Decimal("19.00")}],
                                      SETTINGS)
        uow.session.execute(billed_periods.insert().values(
            contract_id=5400040, period_start=MONTH, period_end=MONTH + relativedelta(months=1, days=-1),
            invoice_id=manual["invoice_id"]))
    summary = billrun.run_billing(any_db, AS_OF, SETTINGS, chunk_size=5)
    assert (summary["customers_done"], summary["invoices"], summary["errors"]) == (5, 3, 2)
    with any_db.unit_of_work() as uow:
        billed = set(uow.session.execute(select(invoices.c.customer_id).where(
            invoices.c.run_id.isnot(None))).scalars())
        still_due = set(uow.session.execute(select(billable_contracts.c.customer_id).where(
            billable_contracts.c.next_invoice_date <= AS_OF)).scalars())
    assert billed == {540001, 540003, 540005} and still_due == {540002, 540004}


def test_two_runs_claim_disjoint_customers(config):
    """While another run holds customers (PostgreSQL row locks), a run skips them without
    waiting, bills the rest, and looks at them again at its end: billed once, by the other."""
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "billing")
    try:
        due = list(range(550001, 550007))
        with db.unit_of_work() as uow:
            for cid in due:
                domain.upsert_customer(uow.session, customer(cid))
            uow.session.execute(billable_contracts.insert(), [contract(cid, 0, MONTH) for cid in due])
        # The other run, mid-way through its chunk: it holds its customers (not yet the
        # invoice counter, which it takes last).
        other = db.unit_of_work().__enter__()
        try:
            assert other.session.execute(select(customers.c.customer_id).where(
                customers.c.customer_id.in_([550002, 550005])).with_for_update()).all()
        except BaseException:
            other.__exit__(*sys.exc_info())
            raise

        def other_commits(done, total):
            if done == total:  # our first pass is over: the other run bills its chunk, commits
                try:
                    billed = billrun.bill_customers(other, [550002, 550005], AS_OF, SETTINGS, run_id=1)
                    assert [r["periods"] for r in billed.values()] == [1, 1]
                finally:
                    other.__exit__(*sys.exc_info())
        summary = billrun.run_billing(db, AS_OF, SETTINGS, chunk_size=3, progress=other_commits)
        assert (summary["invoices"], summary["skipped"], summary["customers_done"], summary["errors"]) == \
            (4, 2, 6, 0)
        with db.unit_of_work() as uow:
            by_run = dict(uow.session.execute(select(invoices.c.customer_id, invoices.c.run_id)).all())
            assert uow.session.execute(select(func.count()).select_from(billed_periods)).scalar() == 6
        assert by_run == {cid: 1 if cid in (550002, 550005) else summary["run_id"] for cid in due}
    finally:
        db.engine.dispose()


def test_two_commands_at_once_on_sqlite_bill_every_customer_once(config, tmp_path):
    url = f"sqlite:///{tmp_path}/billing.db"
    command.upgrade(alembic_config("kc_billing", url), "head")
    db = StandaloneDatabase(metadata, url, "billing")
    due = list(range(560001, 560013))
    with db.unit_of_work() as uow:
        for cid in due:
            domain.upsert_customer(uow.session, customer(cid))
        uow.session.execute(billable_contracts.insert(), [contract(cid, n, MONTH) for cid in due
                                                          for n in range(2)])
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump({"AMQP_URI": config["AMQP_URI"], "DATABASE_URL": url,
                                    "SERVICE_PACKAGE": "kc_billing"}))
    procs = [subprocess.Popen([sys.executable, "-m", "kc_billing.run", "--config", str(path), "--as-of",
                               AS_OF.isoformat(), "--no-progress", "--chunk-size", "2"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    with db.unit_of_work() as uow:
        s = uow.session
        periods = s.execute(select(billed_periods.c.contract_id, billed_periods.c.period_start)).all()
        per_customer = dict(s.execute(select(invoices.c.customer_id, func.count())
                                      .group_by(invoices.c.customer_id)).all())
        runs_ = s.execute(select(billing_runs.c.invoices, billing_runs.c.skipped)).all()
    db.engine.dispose()
    assert len(periods) == len(set(periods)) == 2 * len(due)
    assert per_customer == {cid: 1 for cid in due}
    assert sum(n for n, _ in runs_) == len(due)


def test_copy_writes_what_an_insert_writes(config):
    """``kc_common.bulk.bulk_insert`` on PostgreSQL streams COPY (in the operator command, where
    psycopg2 is not made green): texts with tabs, newlines and backslashes, NULLs, numbers,
    dates and JSON arrive as written."""
    from psycopg2 import extensions

    from kc_common.bulk import bulk_insert
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "billing")
    callback = extensions.get_wait_callback()
    extensions.set_wait_callback(None)  # as in `python -m kc_billing.run`: COPY is used
    try:
        with db.unit_of_work() as uow:
            domain.upsert_customer(uow.session, customer(570001))
            invoice = domain.issue_invoice(uow, 570001, [{"text": "x", "contract_id": None, "period_start": None,
                                                          "period_end": None, "net": Decimal("1.00"),
                                                          "vat_rate": Decimal("19.00")}], SETTINGS)
        texts = ["Tab\there", "Zeile\nzwei\r\n", "Back\\slash \\N", "Ümläut €", ""]
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        with db.unit_of_work() as uow:
            bulk_insert(uow.session, invoice_lines, [
                {"invoice_id": invoice["invoice_id"], "position": 10 + i, "text": t, "contract_id": None,
                 "period_start": MONTH if i % 2 else None, "period_end": None, "net": Decimal("-1.5") * i,
                 "vat_rate": Decimal("19.00"), "quantity": 1, "unit_net": None, "vat": None}
                for i, t in enumerate(texts)])
            uow.emit_many("bench_probe", [{"text": t, "amount": Decimal("2.50"), "on": MONTH} for t in texts])
        assert not [sql for sql in statements if sql.startswith("INSERT")]  # COPY, not INSERT
        with db.unit_of_work() as uow:
            rows = uow.session.execute(select(invoice_lines.c.text, invoice_lines.c.period_start,
                                              invoice_lines.c.net, invoice_lines.c.unit_net)
                                       .where(invoice_lines.c.position >= 10)
                                       .order_by(invoice_lines.c.position)).all()
            events = uow.session.execute(select(db.outbox.c.payload, db.outbox.c.headers)
                                         .where(db.outbox.c.event_type == "bench_probe")
                                         .order_by(db.outbox.c.id)).all()
    finally:
        extensions.set_wait_callback(callback)
        db.engine.dispose()
    assert [r.text for r in rows] == texts
    assert [r.period_start for r in rows] == [None, MONTH, None, MONTH, None]
    assert [r.net for r in rows] == [Decimal("0.00"), Decimal("-1.50"), Decimal("-3.00"), Decimal("-4.50"),
                                     Decimal("-6.00")]
    assert {r.unit_net for r in rows} == {None}
    assert [e.payload["data"] for e in events] == [{"text": t, "amount": "2.50", "on": MONTH.isoformat()}
                                                   for t in texts]
    assert {e.headers == {} or "nameko.correlation_id" in e.headers for e in events} == {True}
