"""Staff billing runs on the real bus: bounded, started in the background, followed, resumed.

The regressions of issue 11: a run as of 4454-04-01 was accepted; a staff run answered 503
(RPC timeout) and committed later; a run killed mid-way stayed without a finish time.
"""
import base64
import datetime as dt
import time
from decimal import Decimal
from functools import partial

import eventlet
import pytest
from alembic import command
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook
from sqlalchemy import func, select

from kc_billing import domain, runs
from kc_billing.models import (
    billable_contracts,
    billed_periods,
    billing_runs,
    bookings,
    invoices,
    metadata,
)
from kc_billing.settings import BillingSettings
from kc_common import testing
from kc_common.clock import berlin_today
from kc_common.context import DEADLINE
from kc_common.db import StandaloneDatabase, as_utc, utcnow
from kc_common.errors import (
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from kc_common.events import declare_topology
from kc_common.migrations import alembic_config
from kc_common.testing import wait_for

from .conftest import DocumentsStub, customer

STAFF = {"staff_id": 9, "staff_roles": ["billing"]}
CUSTOMERS = range(400001, 400009)   # 8 customers billing has no address of yet
CONTRACTS_EACH = 2
FETCH_DELAY = 0.3                   # identity answers slowly: the run takes >= 8 x 0.3 s


class SlowIdentity:
    name = "identity"

    @rpc
    def get_customer(self, customer_id):
        eventlet.sleep(FETCH_DELAY)
        return customer(customer_id)


call = partial(testing.call, context=STAFF)


@pytest.fixture(params=["postgresql", "sqlite"])
def run_config(request, config, tmp_path):
    """billing's config with a quick heartbeat; on PostgreSQL and on the SQLite default."""
    extra = {"RUN_HEARTBEAT_EVERY": 0.2, "RUN_STALE_AFTER": 3}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/billing.db"
        command.upgrade(alembic_config("kc_billing", url), "head")  # migration 0004 on SQLite too
        return dict(config, DATABASE_URL=url, **extra)
    return dict(config, **extra)


@pytest.fixture
def run_db(run_config):
    database = StandaloneDatabase(metadata, run_config["DATABASE_URL"], "billing")
    yield database
    database.engine.dispose()


@pytest.fixture
def start_billing(container_factory, run_config):
    from kc_billing.service import BillingService
    declare_topology(run_config["AMQP_URI"], [BillingService])
    for cls in (SlowIdentity, DocumentsStub):
        container_factory(cls, run_config).start()

    def start():
        container = container_factory(BillingService, run_config)
        container.start()
        return container
    return start


@pytest.fixture
def due(run_db):
    """8 customers x 2 monthly contracts due this month; billing knows no address yet."""
    first = berlin_today().replace(day=1)
    now = utcnow()
    with run_db.unit_of_work() as uow:
        uow.session.execute(billable_contracts.insert(), [
            {"contract_id": cid * 10 + n, "customer_id": cid, "product_id": "hosting",
             "product_name": "Webhosting", "kind": "hosting", "domain": None, "period_months": 1,
             "price_net": Decimal("4.20") + n, "vat_rate": Decimal("19.00"), "next_invoice_date": first,
             "status": "active", "updated_at": now}
            for cid in CUSTOMERS for n in range(CONTRACTS_EACH)])
    return run_db


def get_run(container, run_id):
    return call(container, "get_billing_run", run_id)


def finished(container, run_id, timeout=30):
    return wait_for(lambda: (r := get_run(container, run_id))["state"] != "running" and r,
                    timeout=timeout, message=f"run {run_id} to end")


def assert_billed_exactly_once(db):
    with db.unit_of_work() as uow:
        s = uow.session
        periods = s.execute(select(billed_periods.c.contract_id, billed_periods.c.period_start)).all()
        assert len(periods) == len(set(periods)) == len(CUSTOMERS) * CONTRACTS_EACH
        per_customer = s.execute(select(invoices.c.customer_id, func.count()).group_by(
            invoices.c.customer_id)).all()
        assert dict(per_customer) == {cid: 1 for cid in CUSTOMERS}


def test_a_staff_run_answers_at_once_and_completes_after_its_callers_deadline(start_billing, due):
    billing = start_billing()
    deadline = time.time() + 1.5  # the run needs >= 2.4 s: inside the RPC it would be cut off
    started = call(billing, "run_billing", {}, context={**STAFF, DEADLINE: repr(deadline)})
    assert started["state"] == "running" and started["already_running"] is False
    assert (started["customers_done"], started["invoices"]) == (0, 0)  # answered before any work
    assert started["as_of"] == berlin_today().isoformat() and started["started_by"] == "staff:9"
    # starting again for the same as_of while it runs: that run, not a second one
    again = call(billing, "run_billing", {"as_of": started["as_of"]})
    assert again["run_id"] == started["run_id"] and again["already_running"] is True
    run = finished(billing, started["run_id"])
    assert run["state"] == "finished" and run["finished_at"] and run["resumed_runs"] == []
    assert (run["customers"], run["customers_done"], run["invoices"], run["contracts"], run["errors"]) == \
        (8, 8, 8, 16, 0)
    assert run["gross"] == "89.52"  # 8 x (4.20 + 5.20 net + 1.79 VAT)
    with due.unit_of_work() as uow:
        last_commit = uow.session.execute(select(func.max(invoices.c.issued_at))).scalar()
    assert as_utc(last_commit).timestamp() > deadline  # committed after the caller gave up
    assert_billed_exactly_once(due)
    # idempotent per as_of: a second run for the same day finds nothing due
    second = call(billing, "run_billing", {"as_of": started["as_of"]})
    assert second["run_id"] != started["run_id"]
    second = finished(billing, second["run_id"])
    assert (second["state"], second["customers"], second["invoices"]) == ("finished", 0, 0)
    assert_billed_exactly_once(due)
    page = call(billing, "list_billing_runs", {"per_page": 10})
    assert page["total"] == 2 and [r["run_id"] for r in page["items"]] == [second["run_id"], run["run_id"]]


def test_a_far_as_of_is_refused_naming_the_field_and_nothing_is_recorded(start_billing, due):
    billing = start_billing()
    for as_of in ("4454-04-01", (berlin_today() + dt.timedelta(days=8)).isoformat(), "1999-01-01"):
        for method in ("run_billing", "run_dunning"):
            with pytest.raises(ValidationFailed) as err:
                call(billing, method, {"as_of": as_of})
            assert list(err.value.fields) == ["as_of"] and "Stichtag" in err.value.fields["as_of"][0]
    with pytest.raises(ValidationFailed) as err:
        call(billing, "run_billing", {"as_of": "morgen"})
    assert "as_of" in err.value.fields
    with due.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(billing_runs)).scalar() == 0
        assert uow.session.execute(select(func.count()).select_from(billed_periods)).scalar() == 0
    with pytest.raises(Unauthenticated):
        call(billing, "run_billing", {}, context={"customer_id": 100001})
    with pytest.raises(NotFound):
        get_run(billing, 999999)


def test_a_start_whose_caller_has_given_up_records_nothing(start_billing, due):
    billing = start_billing()
    with pytest.raises(ServiceUnavailable):
        call(billing, "run_billing", {}, context={**STAFF, DEADLINE: repr(time.time() - 0.1)})
    eventlet.sleep(0.5)
    with due.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(billing_runs)).scalar() == 0
        assert uow.session.execute(select(func.count()).select_from(invoices)).scalar() == 0


def test_a_run_stopped_with_its_service_is_aborted_and_the_next_run_completes_it(start_billing, due):
    billing = start_billing()
    run_id = call(billing, "run_billing", {})["run_id"]
    wait_for(lambda: get_run(billing, run_id)["customers_done"] >= 2, message="two customers billed")
    billing.stop()  # graceful: the run ends after its current customer
    with due.unit_of_work() as uow:
        row = uow.session.execute(select(billing_runs).where(billing_runs.c.id == run_id)).one()
        assert row.finished_at is None and row.aborted_at is not None
        assert 2 <= row.invoices < len(CUSTOMERS)
        billed_before = row.invoices
    billing = start_billing()
    assert get_run(billing, run_id)["state"] == "aborted"
    nxt = finished(billing, call(billing, "run_billing", {})["run_id"])
    assert nxt["state"] == "finished" and nxt["resumed_runs"] == [run_id]
    assert nxt["invoices"] == len(CUSTOMERS) - billed_before
    assert get_run(billing, run_id)["resumed_by"] == nxt["run_id"]
    assert_billed_exactly_once(due)


def dead_run(db, as_of, heartbeat_age, owner="anderer-rechner:4242:abcdef"):
    """A run row as a process on another machine leaves it (alive or killed)."""
    beat = utcnow() - dt.timedelta(seconds=heartbeat_age)
    with db.unit_of_work() as uow:
        return uow.session.execute(billing_runs.insert().values(
            as_of=as_of, started_at=beat, heartbeat_at=beat, owner=owner, started_by="cli",
        ).returning(billing_runs.c.id)).scalar_one()


def test_a_run_without_heartbeat_is_aborted_and_resumed(start_billing, due):
    billing = start_billing()
    today = berlin_today()
    alive = dead_run(due, today, heartbeat_age=0)  # another machine runs it right now
    joined = call(billing, "run_billing", {})
    assert joined["run_id"] == alive and joined["already_running"] is True
    assert get_run(billing, alive)["state"] == "running"
    eventlet.sleep(3.2)  # RUN_STALE_AFTER: its machine stopped answering
    assert get_run(billing, alive)["state"] == "aborted" and get_run(billing, alive)["resumed_by"] is None
    later = dead_run(due, today + dt.timedelta(days=1), heartbeat_age=60)  # not resumed: later as_of
    run = finished(billing, call(billing, "run_billing", {})["run_id"])
    assert run["resumed_runs"] == [alive] and run["invoices"] == len(CUSTOMERS)
    assert get_run(billing, alive)["resumed_by"] == run["run_id"]
    assert get_run(billing, later)["state"] == "aborted" and get_run(billing, later)["resumed_by"] is None
    assert_billed_exactly_once(due)


def overdue(db, customer_ids):
    """One invoice per customer, due 8 days ago (a run's as_of is bounded around today)."""
    settings = BillingSettings({})
    for cid in customer_ids:
        with db.unit_of_work() as uow:
            domain.upsert_customer(uow.session, customer(cid))
            domain.issue_invoice(uow, cid, [{"text": "Webhosting", "contract_id": None,
                                             "period_start": None, "period_end": None,
                                             "net": Decimal("10.00"), "vat_rate": Decimal("19.00")}],
                                 settings)
    with db.unit_of_work() as uow:
        uow.session.execute(invoices.update().values(
            due_date=berlin_today() - dt.timedelta(days=8)))


def test_dunning_and_a_statement_import_stop_before_the_callers_deadline_and_say_so(start_billing, run_db):
    billing = start_billing()
    overdue(run_db, [100001, 100002])
    hurried = {**STAFF, DEADLINE: repr(time.time() + 1.0)}  # less than the reserve for answering
    assert call(billing, "run_dunning", {}, context=hurried) == {
        "sent": 0, "customers": 2, "customers_done": 0, "complete": False}
    assert call(billing, "run_dunning", {}) == {"sent": 2, "customers": 2, "customers_done": 2,
                                                "complete": True}
    statement = statement_of([("T-1", "KC100001", "11.90"), ("T-2", "KC100002", "11.90")])
    hurried = {**STAFF, DEADLINE: repr(time.time() + 1.0)}
    partial = call(billing, "import_statement", statement, context=hurried)
    assert (partial["entries"], partial["booked"], partial["not_processed"], partial["complete"]) == \
        (2, 0, 2, False)
    done = call(billing, "import_statement", statement)
    assert (done["booked"], done["already_booked"], done["not_processed"], done["complete"]) == (2, 0, 0, True)
    with run_db.unit_of_work() as uow:
        assert domain.balance_of(uow.session, 100001) == Decimal("0.00")


def statement_of(lines):
    from .camt_files import Tx, statement
    return upload(statement([Tx(amount, text, acct_svcr_ref=ref) for ref, text, amount in lines]))


def upload(content):
    return {"files": [{"field": "file", "filename": "auszug.xml", "content_type": "application/xml",
                       "content_b64": base64.b64encode(content).decode()}]}


def test_statement_uploads_are_bounded_in_size_and_entries(start_billing, run_db):
    billing = start_billing()
    overdue(run_db, [100001])
    too_many = statement_of([(f"T-{i}", "KC100001", "0.01") for i in range(501)])
    with pytest.raises(ValidationFailed) as err:
        call(billing, "import_statement", too_many)
    assert list(err.value.fields) == ["file"] and "mehr als 500 Umsätze" in err.value.fields["file"][0]
    too_big = upload(b"<Document>" + b" " * (5 * 1024 * 1024) + b"</Document>")
    with pytest.raises(ValidationFailed) as err:
        call(billing, "import_statement", too_big)
    assert list(err.value.fields) == ["file"] and "5120 KiB" in err.value.fields["file"][0]
    with run_db.unit_of_work() as uow:  # nothing of either was booked
        assert uow.session.execute(select(func.count()).select_from(bookings).where(
            bookings.c.type == "ZAHLUNG")).scalar() == 0
    assert call(billing, "import_statement", statement_of([("T-ok", "KC100001", "1.00")]))["booked"] == 1


def test_the_scheduled_run_uses_the_same_runs(start_billing, due):
    billing = start_billing()
    with entrypoint_hook(billing, "scheduled_billing_run") as tick:
        tick()
    with due.unit_of_work() as uow:
        run_id = uow.session.execute(select(billing_runs.c.id)).scalar_one()
    assert get_run(billing, run_id)["started_by"] == "timer"
    with entrypoint_hook(billing, "scheduled_billing_run") as tick:
        tick()  # the next tick while it runs: no second run
    run = finished(billing, run_id)
    assert run["invoices"] == len(CUSTOMERS)
    with due.unit_of_work() as uow:
        assert uow.session.execute(select(func.count()).select_from(billing_runs)).scalar() == 1
    assert_billed_exactly_once(due)
    assert run_id not in runs.ACTIVE
