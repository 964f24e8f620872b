"""The demo data of `make run` across services, on SQLite and PostgreSQL: identity's, catalog's
and billing's seeds tell one story (the guide's), and the events between them change nothing.

catalog's demo contracts carry fixed ids because billing's demo has billed them for a year
before any event flows; this is where the two lists (and identity's address on the invoices)
are checked against each other. The events are handed over in-process, as the services'
handlers would apply them.
"""
import datetime as dt
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import func, select

from kc_billing import accounts as billing_accounts
from kc_billing import billrun, schedule
from kc_billing import demo as billing_demo
from kc_billing import domain as billing
from kc_billing.models import (
    billable_contracts,
    billed_periods,
    bookings,
    invoice_lines,
    invoices,
)
from kc_billing.models import metadata as billing_metadata
from kc_billing.settings import BillingSettings
from kc_catalog import demo as catalog_demo
from kc_catalog.domain import contracts as catalog_contracts
from kc_catalog.domain import orders as ordering
from kc_catalog.models import contracts, products
from kc_catalog.models import metadata as catalog_metadata
from kc_common import clock
from kc_common.db import StandaloneDatabase, as_utc
from kc_common.migrations import alembic_config
from kc_identity import demo as identity_demo
from kc_identity.domain import customers as identity
from kc_identity.models import metadata as identity_metadata

BERLIN = clock.BERLIN
CUSTOMER = 100001
# The runs below simulate days months ahead: a wide Stichtag window for this test only.
SETTINGS = BillingSettings({"RUN_MAX_DAYS_AHEAD": 800, "RUN_MAX_DAYS_BACK": 800})
# An ordinary day; the 20th before the nightly run (the servers renew that day); a month's end.
NOWS = [dt.datetime(2026, 11, 29, 10, 0, tzinfo=BERLIN), dt.datetime(2026, 12, 20, 1, 30, tzinfo=BERLIN),
        dt.datetime(2027, 2, 28, 23, 50, tzinfo=BERLIN)]


class Demo:
    """The three services' databases, migrated and seeded as `make run` does, at ``now``."""

    def __init__(self, urls, now):
        self.now = now
        self.today = now.date()
        self.identity = StandaloneDatabase(identity_metadata, urls["kc_identity"], "identity")
        self.catalog = StandaloneDatabase(catalog_metadata, urls["kc_catalog"], "catalog")
        self.billing = StandaloneDatabase(billing_metadata, urls["kc_billing"], "billing")

    def seed(self):
        # make run seeds in alphabetical order, the end-to-end tests identity first: either works
        billing_demo.seed(self.billing, {}, now=self.now.astimezone(dt.UTC))
        catalog_demo.seed(self.catalog, {}, today=self.today)
        identity_demo.seed(self.identity, {})

    def outbox(self, db, event_type):
        with db.unit_of_work() as uow:
            return [row["data"] for row in uow.session.execute(select(db.outbox.c.payload)).scalars()
                    if row["type"] == event_type]

    def counts(self):
        with self.billing.unit_of_work() as uow:
            billing_rows = [uow.session.execute(select(func.count()).select_from(t)).scalar_one()
                            for t in (bookings, invoices, billed_periods, billable_contracts, self.billing.outbox)]
        with self.catalog.unit_of_work() as uow:
            catalog_rows = uow.session.execute(select(func.count()).select_from(contracts)).scalar_one()
        return billing_rows, catalog_rows

    def dispose(self):
        for db in (self.identity, self.catalog, self.billing):
            db.engine.dispose()


# PostgreSQL combinations take their database through request.getfixturevalue: marked by hand;
# the SQLite ones migrate and seed three databases each (seconds: not in `make test-unit`).
COMBOS = [pytest.param((kind, now), marks=[pytest.mark.infrastructure if kind == "postgresql" else pytest.mark.slow])
          for kind in ("sqlite", "postgresql") for now in NOWS]


def combo_id(combo):
    return f"{combo[0]}-{combo[1].date().isoformat()}"


def seeded_demo(request, tmp_path):
    kind, now = request.param
    urls = {}
    for package in ("kc_identity", "kc_catalog", "kc_billing"):
        if kind == "sqlite":
            urls[package] = f"sqlite:///{tmp_path}/{package}.db"
            command.upgrade(alembic_config(package, urls[package]), "head")
        else:
            urls[package] = request.getfixturevalue("database_factory")(package, fresh=True)
    demo = Demo(urls, now)
    demo.seed()
    return demo


@pytest.fixture(scope="module", params=COMBOS, ids=combo_id)
def demo(request, tmp_path_factory):
    """Seeded once per database and day, for the tests that only look (and change nothing)."""
    demo = seeded_demo(request, tmp_path_factory.mktemp("demo"))
    yield demo
    demo.dispose()


@pytest.fixture(params=COMBOS, ids=combo_id)
def fresh_demo(request, tmp_path):
    """Seeded for one test that writes."""
    demo = seeded_demo(request, tmp_path)
    yield demo
    demo.dispose()


def test_the_account_opens_at_a_small_open_amount_after_a_paid_year(demo):
    with demo.billing.unit_of_work() as uow:
        s = uow.session
        account = billing_accounts.account(s, CUSTOMER, page=1, per_page=100)
        total = s.execute(select(func.sum(bookings.c.amount)).where(bookings.c.customer_id == CUSTOMER)).scalar()
        standing = billing_accounts.account_standing(s, CUSTOMER, SETTINGS, today=demo.today)
        numbers = [(n, as_utc(at)) for n, at in s.execute(
            select(invoices.c.number, invoices.c.issued_at).order_by(invoices.c.number)).all()]
    items = account["bookings"]["items"]
    assert account["balance"] == total == Decimal("-2.38")
    assert account["balance_text"] == "-2,38\u00a0€ offener Betrag"
    assert standing == {"in_arrears": False, "open_amount": "2.38"}
    # newest first: today's small order, the settlement, then a year of invoices each paid by transfer
    newest = items[0]
    assert (newest["type"], newest["amount"], newest["open_amount"], newest["date"]) == (
        "RE", Decimal("-2.38"), Decimal("2.38"), demo.today)
    assert newest["text"] == (f"Zusätzliche IPv4-Adresse flex-demo-01.kundencenter-server.de "
                              f"{demo.today:%d.%m.%Y}-{schedule.period_end(demo.today, 1):%d.%m.%Y}")
    assert items[1]["type"] == "KONTOAUSGLEICH" and items[1]["amount"] == 0
    assert items[1]["text"].startswith("Überweisungen/Gutschriften bis zum ")
    history = items[2:]
    invoices_ = [b for b in history if b["type"] == "RE"]
    transfers = [b for b in history if b["type"] == "ZAHLUNG"]
    assert len(invoices_) == len(transfers) == 17 and len(history) == 34   # 5 yearly + 12 monthly
    assert all(b["open_amount"] == 0 and b["payment_method"] == "U" for b in invoices_)
    paid = {b["text"].rsplit("-", 1)[1]: b["amount"] for b in transfers}
    assert paid == {str(b["invoice_number"]): -b["amount"] for b in invoices_}
    assert {b["date"] for b in items} <= {demo.today - dt.timedelta(days=d) for d in range(366)}
    # the series: dense from the first number, dates never running backwards
    assert [n for n, _ in numbers] == list(range(billing.FIRST_INVOICE_NUMBER, billing.FIRST_INVOICE_NUMBER + 18))
    assert [at for _, at in numbers] == sorted(at for _, at in numbers)
    assert max(at for _, at in numbers) <= demo.now
    assert len(demo.outbox(demo.billing, "invoice_issued")) == 18   # documents renders 18 PDFs


def test_the_guides_lines_and_vat(demo):
    with demo.billing.unit_of_work() as uow:
        s = uow.session
        domain_line = s.execute(select(invoice_lines.c.text, invoices.c.gross, invoices.c.vat).join(invoices)
                                .where(invoice_lines.c.contract_id == 4)).one()
        monthly = s.execute(select(invoices.c.net, invoices.c.vat, invoices.c.gross).join(invoice_lines)
                            .where(invoice_lines.c.contract_id == 5).order_by(invoices.c.number.desc())
                            .limit(1)).one()
    year = demo.today.year if (demo.today.month, demo.today.day) >= (5, 24) else demo.today.year - 1
    assert domain_line == (f"Domain profihost-demo.de 24.05.{year}-23.05.{year + 1}", Decimal("11.78"),
                           Decimal("1.88"))
    # FlexServer Business with its options + Root FlexServer + daily backup, every 20th: one invoice
    assert monthly == (Decimal("137.80"), Decimal("26.18"), Decimal("163.98"))


def test_catalog_and_billing_agree_and_the_order_event_bills_nothing_again(demo):
    with demo.catalog.unit_of_work() as uow:
        rows = uow.session.execute(select(contracts, products.c.name.label("product_name")).join(
            products, products.c.id == contracts.c.product_id).where(
            contracts.c.customer_id == CUSTOMER).order_by(contracts.c.id)).all()
    with demo.billing.unit_of_work() as uow:
        scheduled = {r.contract_id: r for r in uow.session.execute(select(billable_contracts)).all()}
        billed = set(uow.session.execute(select(billed_periods.c.contract_id, billed_periods.c.period_start)).all())
    assert [r.id for r in rows] == sorted(scheduled) == list(range(1, 10))
    for row in rows:
        mine = scheduled[row.id]
        assert (mine.product_id, mine.product_name, mine.kind, mine.domain, mine.period_months, mine.price_net,
                mine.vat_rate) == (row.product_id, row.product_name, row.kind, row.domain or row.label,
                                   row.period_months, row.price_net, row.vat_rate), row.product_id
        # "nächste Rechnung" as catalog shows it is billing's next invoice date; the running period is billed
        assert mine.next_invoice_date == row.next_invoice_date, row.product_id
        assert (row.id, catalog_contracts.current_period(row)[0]) in billed, row.product_id

    order, = demo.outbox(demo.catalog, "order_placed")
    before = demo.counts()
    with demo.billing.unit_of_work() as uow:
        assert schedule.register_order(uow, order, SETTINGS) is None
    assert demo.counts() == before
    # billing's invoice events reach catalog: every next invoice date stays as it is
    with demo.catalog.unit_of_work() as uow:
        for invoice in demo.outbox(demo.billing, "invoice_issued"):
            assert catalog_contracts.on_invoice_issued(uow, invoice) == []


def test_the_first_billing_runs_bill_only_what_begins_from_then_on(fresh_demo):
    demo = fresh_demo
    assert billrun.run_billing(demo.billing, demo.today, SETTINGS)["invoices"] == 0
    with demo.billing.unit_of_work() as uow:
        rows = uow.session.execute(select(billable_contracts)).all()
    next_day = min(r.next_invoice_date for r in rows)
    due = sorted(r.contract_id for r in rows if r.next_invoice_date == next_day)
    summary = billrun.run_billing(demo.billing, next_day, SETTINGS)
    assert (summary["invoices"], summary["contracts"]) == (1, len(due))
    with demo.billing.unit_of_work() as uow:
        lines = uow.session.execute(select(invoice_lines.c.contract_id, invoice_lines.c.period_start).join(
            invoices).where(invoices.c.run_id == summary["run_id"])).all()
    assert sorted(lines) == [(cid, next_day) for cid in due]


def test_the_invoice_address_is_identitys_demo_customer(demo):
    with demo.identity.unit_of_work() as uow:
        customer = identity.customer_view(identity.find_customer_by_login(uow.session, identity_demo.DEMO_EMAIL))
    assert customer["customer_id"] == CUSTOMER == catalog_demo.DEMO_CUSTOMER == billing_demo.DEMO_CUSTOMER
    assert {k: customer[k] for k in billing.CUSTOMER_FIELDS} == {
        k: billing_demo.DEMO_BUYER[k] for k in billing.CUSTOMER_FIELDS}


def test_seeding_again_changes_nothing_and_later_orders_get_new_contract_ids(fresh_demo):
    demo = fresh_demo
    before = demo.counts()
    demo.seed()
    assert demo.counts() == before
    with demo.catalog.unit_of_work() as uow:
        order_id, _ = ordering.place_order(uow, 100002, [{"product_id": "domain-de", "domain": "neu-kunde.de"}],
                                           today=demo.today)
        new_id = uow.session.execute(select(contracts.c.id).where(contracts.c.order_id == order_id)).scalar_one()
    assert new_id == 10
