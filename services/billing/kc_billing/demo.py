"""Demo data for ``make run`` (idempotent): the demo customer's Kundenkonto as the guide tells it.

A year of history made by billing's own functions, with the instants they would have had:
on every day in the last twelve months on which a demo contract's period began, the billing
run's ``billrun.bill_customer`` invoices it (numbers from the series, VAT per rate,
``invoice_issued``: documents renders the PDFs when the system runs); the customer's transfer
of each invoice (value date three days later) is booked the morning after
(``payments.book_transfer``, Zahlungsart U); after the last one a KONTOAUSGLEICH ("Überweisungen/Gutschriften bis zum … wurden einbezogen."). Then, on the
day of the seed, the customer orders an additional IPv4 address: its first month, invoiced at
once (2.38 €), is the small open amount "Zahlung vornehmen" offers to pay.

The demo customer's contracts are catalog's (``kc_catalog.demo.DEMO_CONTRACTS``, with the
same contract ids). billing learns contracts from ``order_placed``, but a seed runs before any
event flows, so the contracts billing schedules are listed here as well; catalog's demo order
arrives later and bills nothing again (``register_order`` leaves known contracts to the
schedule). tests/test_demo_data.py checks that both lists and identity's address agree.

Afterwards billing's schedule holds each contract's next invoice date as catalog shows it
("nächste Rechnung"): the first billing run after ``make run`` bills only periods that begin
from then on.
"""
import datetime as dt
import heapq
import itertools
import sys
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select

from kc_billing import accounts, billrun, domain, payments, schedule
from kc_billing.models import billable_contracts, bookings, invoices
from kc_billing.settings import BillingSettings
from kc_common.clock import BERLIN, berlin_date
from kc_common.db import dialect_insert, utcnow

DEMO_CUSTOMER = 100001
# The invoice address as identity's seed creates the customer (kc_identity.demo). identity's
# customer_updated replaces it when the system runs (any real snapshot is newer than this one).
DEMO_BUYER = {"customer_id": DEMO_CUSTOMER, "company": "Muster Webdesign GmbH", "first_name": "Max",
              "last_name": "Mustermann", "email": "demo@kundencenter.example",
              "street": "Musterstraße 12", "zip": "30159", "city": "Hannover", "country": "DE",
              "vat_id": "DE123456788", "is_business": True}
REPLICA_AS_OF = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
VAT = Decimal("19.00")
SERVER_A, SERVER_B = "flex-demo-01.kundencenter-server.de", "root-demo-01.kundencenter-server.de"


def _c(contract_id, product_id, product_name, kind, name, period, price, start):
    return {"contract_id": contract_id, "product_id": product_id, "product_name": product_name,
            "kind": kind, "domain": name, "period_months": period, "price_net": Decimal(price),
            "vat_rate": VAT, "start": start}


# As billing knows them from order_placed: ``domain`` is the domain, or catalog's label (the
# package's domain, the server's name); ``price_net`` per period (server options included).
DEMO_CONTRACTS = [
    _c(1, "hosting-business", "businesshosting", "hosting", "partnercenter.de", 12, "154.80",
       dt.date(2019, 4, 7)),
    _c(2, "hosting-shop", "shophosting", "hosting", "profihost-demo.de", 12, "298.80", dt.date(2017, 11, 30)),
    _c(3, "domain-connect", "Domainaufschaltung", "domain", "profihost-demo.com", 12, "6.00",
       dt.date(2019, 3, 13)),
    _c(4, "domain-de", "Domain .de", "domain", "profihost-demo.de", 12, "9.90", dt.date(2018, 5, 24)),
    _c(5, "managed-business", "FlexServer - Business", "server", SERVER_A, 1, "118.00", dt.date(2019, 2, 20)),
    _c(6, "root-s", "Root FlexServer - 2 CPU Kerne - 2 GB RAM - 100 GB HDD - 100% HDD Speed", "server",
       SERVER_B, 1, "14.90", dt.date(2018, 7, 20)),
    _c(7, "ssl-dv", "SSL-Zertifikat Domain Validated", "addon", "www.profihost-demo.de", 12, "29.88",
       dt.date(2020, 2, 10)),
    _c(8, "backup-daily", "Backup-Option Täglich", "addon", SERVER_A, 1, "4.90", dt.date(2019, 2, 20)),
]
# Ordered on the day of the seed (catalog's contract 9 starts that day): the open amount.
DEMO_ORDER = _c(9, "ip-additional", "Zusätzliche IPv4-Adresse", "addon", SERVER_A, 1, "2.00", None)

HISTORY_MONTHS = 12
RUN_AT = dt.time(2, 0)            # the billing run of the night a period begins (Europe/Berlin)
TRANSFER_DAYS = 3                  # value date of the customer's transfer, days after the invoice
STATEMENT_AT = (4, dt.time(9, 0))  # the statement is booked the morning after (days, time)


def periods_in_history(contract, today):
    """Start days of the contract's periods that began in the last HISTORY_MONTHS, up to today."""
    begin = today - relativedelta(months=HISTORY_MONTHS)
    starts, n = [], 0
    while True:
        start = contract["start"] + relativedelta(months=contract["period_months"] * n)
        if start > today:
            return starts
        if start > begin:
            starts.append(start)
        n += 1


def _instant(day, time):
    return dt.datetime.combine(day, time, tzinfo=BERLIN).astimezone(dt.UTC)


def seed(db, config, now=None):
    settings = BillingSettings(config or {})
    with db.unit_of_work() as uow:  # all or nothing
        session = uow.session
        if session.execute(select(bookings.c.id).where(bookings.c.customer_id == DEMO_CUSTOMER)
                           .limit(1)).first():
            return  # seeded before (or the customer has a history of their own)
        if session.execute(select(func.count()).select_from(invoices)).scalar_one():
            # Backdated invoices after later ones would break the series' order of dates.
            print("kc_billing.demo: the invoice series is in use already; no demo history.",
                  file=sys.stderr)
            return
        seed_history(uow, settings, now or utcnow())


def _schedule(session, contract, next_invoice_date, at):
    """The contract in billing's schedule, as ``order_placed`` puts it there."""
    session.execute(dialect_insert(session)(billable_contracts).values(
        contract_id=contract["contract_id"], customer_id=DEMO_CUSTOMER,
        product_id=contract["product_id"], product_name=contract["product_name"],
        kind=contract["kind"], domain=contract["domain"], period_months=contract["period_months"],
        price_net=contract["price_net"], vat_rate=contract["vat_rate"],
        next_invoice_date=next_invoice_date, status=schedule.ACTIVE, updated_at=at))


def seed_history(uow, settings, now):
    """The year of invoices, transfers and the settlement, then today's small order."""
    session = uow.session
    today = berlin_date(now)
    domain.upsert_customer(session, DEMO_BUYER, as_of=REPLICA_AS_OF)
    queue, order = [], itertools.count()  # everything in the order it happened

    def plan(at, action, argument):
        heapq.heappush(queue, (at, next(order), action, argument))

    run_days = set()
    for contract in DEMO_CONTRACTS:
        starts = periods_in_history(contract, today)
        _schedule(session, contract, starts[0], _instant(starts[0], RUN_AT))
        run_days.update(starts)
    for day in sorted(run_days):
        plan(_instant(day, RUN_AT), "run", day)

    last_transfer = None
    while queue:
        at, _, action, argument = heapq.heappop(queue)
        at = min(at, now)  # nothing happens after now (a renewal of today is paid "just now")
        if action == "run":
            invoice = billrun.bill_customer(uow, DEMO_CUSTOMER, argument, settings, now=at, wait=True)
            days, time = STATEMENT_AT
            plan(_instant(argument + dt.timedelta(days=days), time), "transfer",
                 (invoice, min(argument + dt.timedelta(days=TRANSFER_DAYS), today)))
        else:
            invoice, value_date = argument
            payments.book_transfer(uow, {
                "transaction_id": f"DEMO-{invoice['number']}", "amount": invoice["gross"],
                "reference": f"KC{DEMO_CUSTOMER}-{invoice['number']}", "value_date": value_date}, now=at)
            last_transfer = (at, value_date)
    at, value_date = last_transfer
    accounts.book_settlement(session, DEMO_CUSTOMER, value_date, now=min(at + dt.timedelta(minutes=1), now))

    # Today: an additional IPv4 address for the managed server; its first month is invoiced at once.
    _schedule(session, DEMO_ORDER, today, now)
    return billrun.bill_customer(uow, DEMO_CUSTOMER, today, settings, now=now, wait=True)
