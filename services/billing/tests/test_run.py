"""The recurring billing run on PostgreSQL: idempotent, two runs at once, killed and resumed.

The runs are real operator-command processes (``python -m kc_billing.run``).
"""
import datetime as dt
import re
import subprocess
import sys
from decimal import Decimal

import pytest
import yaml
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select

from kc_billing import billrun, domain, runs, schedule
from kc_billing.models import (
    billable_contracts,
    billed_periods,
    billing_runs,
    bookings,
    invoice_lines,
    invoices,
)
from kc_billing.settings import BillingSettings
from kc_common.clock import berlin_today

from .conftest import ROOT, customer, order_event

# A run's as_of is bounded around today (runs.check_as_of): the dates are relative to today.
AS_OF = berlin_today()
MONTHS = [AS_OF.replace(day=1) - relativedelta(months=n) for n in (3, 2, 1, 0)]
CUSTOMERS = range(200001, 200021)      # 20 customers
CONTRACTS_EACH = 3                     # monthly, first month invoiced on order: 3 more months due


@pytest.fixture
def due(db):
    """20 customers x 3 monthly contracts whose first period (3 months ago) is invoiced."""
    settings = BillingSettings({})
    for cid in CUSTOMERS:
        with db.unit_of_work() as uow:
            domain.upsert_customer(uow.session, customer(cid))
            for n in range(CONTRACTS_EACH):
                schedule.register_order(uow, order_event(cid, cid * 10 + n, MONTHS[0],
                                                         months=1, price=f"{n + 1}.33"), settings)
    return db


@pytest.fixture
def cli_config(config, tmp_path):
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump({"AMQP_URI": config["AMQP_URI"], "DATABASE_URL": config["DATABASE_URL"],
                                    "SERVICE_PACKAGE": "kc_billing"}))
    return str(path)


def start_run(cli_config, *extra):
    return subprocess.Popen([sys.executable, "-m", "kc_billing.run", "--config", cli_config,
                             "--as-of", AS_OF.isoformat(), "--no-progress", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def summary_figure(out, label):
    """The value of one row of the run's summary table (a rich table: ``│ label │ value │``)."""
    match = re.search(rf"^\W*{re.escape(label)}\W+(\S+?)\W*$", out, re.M)
    assert match, f"no row {label!r} in:\n{out}"
    return match.group(1)


def run_invoices(db):
    with db.unit_of_work() as uow:
        return uow.session.execute(select(invoices.c.customer_id, invoices.c.number)
                                   .where(invoices.c.run_id.isnot(None))).all()


def assert_everything_billed_exactly_once(db):
    with db.unit_of_work() as uow:
        s = uow.session
        periods = s.execute(select(billed_periods.c.contract_id, billed_periods.c.period_start)).all()
        assert len(periods) == len(set(periods)) == len(CUSTOMERS) * CONTRACTS_EACH * 4
        starts = {p for _, p in periods}
        assert starts == set(MONTHS)
        assert set(s.execute(select(billable_contracts.c.next_invoice_date)).scalars()) == {
            MONTHS[-1] + relativedelta(months=1)}
        numbers = s.execute(select(invoices.c.number).order_by(invoices.c.number)).scalars().all()
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # dense, no gap
        lines = s.execute(select(func.count()).select_from(invoice_lines).join(
            invoices, invoices.c.id == invoice_lines.c.invoice_id).where(invoices.c.run_id.isnot(None))).scalar()
        assert lines == len(CUSTOMERS) * CONTRACTS_EACH * 3
        # A customer's ledger: three order invoices (1.58 + 2.77 + 3.96) and one run invoice of
        # 3 months x (1.33 + 2.33 + 3.33) = 20.97 net + 3.98 VAT (per rate on the total; per line
        # it would be 3.96) = 24.95.
        assert str(domain.balance_of(s, 200001)) == "-33.26"
    per_customer = {}
    for cid, _ in run_invoices(db):
        per_customer[cid] = per_customer.get(cid, 0) + 1
    assert per_customer == {cid: 1 for cid in CUSTOMERS}  # one invoice per customer


def test_a_second_run_finds_nothing_due(due, cli_config):
    first = start_run(cli_config)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert summary_figure(out, "Rechnungen") == "20", out   # one invoice per due customer
    assert summary_figure(out, "Kunden fällig") == "20", out
    assert summary_figure(out, "Fehler") == "0", out
    again = start_run(cli_config)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert_everything_billed_exactly_once(due)


def test_two_runs_at_once_never_bill_twice(due, cli_config):
    runs = [start_run(cli_config), start_run(cli_config)]
    for run in runs:
        out, _ = run.communicate(timeout=180)
        assert run.returncode == 0, out
    assert_everything_billed_exactly_once(due)


def test_a_run_killed_mid_way_is_resumed_by_the_next(due, cli_config):
    # chunks of 7 customers: dies inside the transaction of the second chunk (customers 8-14)
    killed = start_run(cli_config, "--chunk-size", "7", "--crash-after", "7")
    out, _ = killed.communicate(timeout=120)
    assert killed.returncode == 17, out  # died inside the 8th customer's transaction
    assert len(run_invoices(due)) == 7
    with due.unit_of_work() as uow:  # the 8th customer's half-done work was rolled back
        assert uow.session.execute(select(func.count()).select_from(bookings).where(
            bookings.c.customer_id == CUSTOMERS[7])).scalar() == CONTRACTS_EACH
    with due.unit_of_work() as uow:  # no finish time, but shown as aborted: its process is gone
        dead = uow.session.execute(select(billing_runs)).one()
        assert dead.finished_at is None and dead.customers == len(CUSTOMERS)
        assert runs.state(dead, BillingSettings({})) == runs.ABORTED
    resumed = start_run(cli_config)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    assert_everything_billed_exactly_once(due)
    with due.unit_of_work() as uow:
        latest = uow.session.execute(select(func.max(billing_runs.c.id))).scalar()
        done = runs.get(uow.session, latest, BillingSettings({}))
        killed = runs.get(uow.session, dead.id, BillingSettings({}))
    assert done["state"] == "finished" and done["resumed_runs"] == [dead.id]
    assert done["invoices"] == len(CUSTOMERS) - 7
    assert killed["state"] == "aborted" and killed["resumed_by"] == done["run_id"]
    row = next(line for line in out.splitlines() if "abgebrochene Läufe abgeschlossen" in line)
    assert row.split()[-2] == str(dead.id), out


def test_cancelled_contract_stops_after_its_end_date(db):
    settings = BillingSettings({})
    first = AS_OF.replace(day=1) - relativedelta(months=5)
    second_end = first + relativedelta(months=2) - dt.timedelta(days=1)
    with db.unit_of_work() as uow:
        domain.upsert_customer(uow.session, customer(100001))
        schedule.register_order(uow, order_event(100001, 1, first, months=1, price="5.00"), settings)
        schedule.cancel_contract(uow, {"contract_id": 1, "customer_id": 100001,
                                       "end_date": second_end.isoformat()})
        schedule.register_order(uow, order_event(100001, 2, first, months=1, price="7.00"), settings)
        schedule.terminate_contract(uow, {"contract_id": 2, "customer_id": 100001,
                                          "terminated_on": (first + dt.timedelta(days=19)).isoformat()})
    summary = billrun.run_billing(db, AS_OF, settings)
    assert (summary["invoices"], summary["contracts"]) == (1, 1)  # only the second month of contract 1
    with db.unit_of_work() as uow:
        lines = uow.session.execute(select(invoice_lines.c.text).join(invoices).where(
            invoices.c.run_id == summary["run_id"])).scalars().all()
    second = first + relativedelta(months=1)
    assert lines == [f"Domain .de {second:%d.%m.%Y}-{second_end:%d.%m.%Y}"]


def test_the_command_refuses_a_far_as_of_before_it_records_anything(due, cli_config):
    proc = subprocess.Popen([sys.executable, "-m", "kc_billing.run", "--config", cli_config,
                             "--as-of", "4454-04-01", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "Stichtag" in out and "7 Tage" in out
    with due.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(billing_runs)).scalar() == 0
        assert uow.session.execute(select(func.count()).select_from(billed_periods)).scalar() == \
            len(CUSTOMERS) * CONTRACTS_EACH  # only the first months, from the orders


def test_an_order_event_bills_no_contract_that_billing_schedules_already(db):
    """The demo seed bills its contracts before catalog's order of them arrives."""
    settings = BillingSettings({})
    with db.unit_of_work() as uow:
        domain.upsert_customer(uow.session, customer(100001))
        first = schedule.register_order(uow, order_event(100001, 1, dt.date(2026, 1, 1), months=1, price="5.00"),
                                        settings)
        assert schedule.register_order(uow, order_event(100001, 1, dt.date(2026, 1, 1), months=1, price="5.00"),
                                       settings) is None
        both = order_event(100001, 1, dt.date(2026, 1, 1), months=1, price="5.00")
        both["items"] += order_event(100001, 2, dt.date(2026, 1, 1), months=1, price="7.00")["items"]
        second = schedule.register_order(uow, both, settings)
        lines = uow.session.execute(select(invoice_lines.c.invoice_id, invoice_lines.c.contract_id)
                                    .order_by(invoice_lines.c.id)).all()
        assert uow.session.execute(select(func.count()).select_from(billed_periods)).scalar_one() == 2
    assert lines == [(first["invoice_id"], 1), (second["invoice_id"], 2)]
    assert (first["gross"], second["gross"]) == (Decimal("5.95"), Decimal("8.33"))
