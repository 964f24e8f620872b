"""Benchmark (not a test): the billing run over many due contracts on PostgreSQL.

    .venv/bin/python services/billing/bench/bench_run.py [--contracts 100000] [--per-customer 4] [--runs 1]

Creates a scratch database (``KC_TEST_PG_ADMIN_URL``, default the local server),
schedules the contracts (all due), runs the billing run (``--runs`` processes at
once, as two instances would) and prints contracts/second; checks that every
period was billed exactly once; drops the database.
"""
import argparse
import multiprocessing
import sys
import time
import uuid
from decimal import Decimal

from alembic import command
from sqlalchemy import func, select

from kc_billing import billrun
from kc_billing.models import billable_contracts, billed_periods, customers, invoices, metadata
from kc_billing.settings import BillingSettings
from kc_common.clock import berlin_today
from kc_common.db import StandaloneDatabase, utcnow
from kc_common.migrations import alembic_config
from kc_common.testing import create_database, drop_database

AS_OF = berlin_today()  # a run's as_of is bounded around today (runs.check_as_of)


def seed(url, contracts, per_customer):
    db = StandaloneDatabase(metadata, url, "billing")
    now = utcnow()
    n_customers = -(-contracts // per_customer)
    with db.engine.begin() as conn:
        conn.execute(customers.insert(), [
            {"customer_id": 300000 + c, "first_name": "Bench", "last_name": f"Kunde {c}",
             "email": f"k{c}@example.org", "street": "Weg 1", "zip": "30159", "city": "Hannover",
             "country": "DE", "is_business": False, "replicated_at": now} for c in range(n_customers)])
        batch = []
        for i in range(contracts):
            batch.append({"contract_id": i + 1, "customer_id": 300000 + i // per_customer,
                          "product_id": "hosting-business", "product_name": "businesshosting",
                          "kind": "hosting", "domain": None, "period_months": 1,
                          "price_net": Decimal("12.90") + Decimal(i % 7) / 100, "vat_rate": Decimal("19.00"),
                          "next_invoice_date": AS_OF, "status": "active", "updated_at": now})
            if len(batch) == 10000:
                conn.execute(billable_contracts.insert(), batch)
                batch = []
        if batch:
            conn.execute(billable_contracts.insert(), batch)
    db.engine.dispose()
    return n_customers


def one_run(url, queue):
    db = StandaloneDatabase(metadata, url, "billing")
    summary = billrun.run_billing(db, AS_OF, BillingSettings({}))
    db.engine.dispose()
    queue.put({k: str(v) for k, v in summary.items()})


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--per-customer", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1, help="billing runs started at once")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    name = f"kc_bench_billing_{uuid.uuid4().hex[:6]}"
    url = create_database(name)
    try:
        command.upgrade(alembic_config("kc_billing", url), "head")
        t0 = time.perf_counter()
        n_customers = seed(url, args.contracts, args.per_customer)
        print(f"seeded {args.contracts} due contracts of {n_customers} customers "
              f"in {time.perf_counter() - t0:.1f}s")
        queue = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=one_run, args=(url, queue)) for _ in range(args.runs)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        summaries = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
        db = StandaloneDatabase(metadata, url, "billing")
        with db.engine.connect() as conn:
            periods = conn.execute(select(func.count()).select_from(billed_periods)).scalar()
            n_invoices = conn.execute(select(func.count()).select_from(invoices)).scalar()
        db.engine.dispose()
        for s in summaries:
            print("run:", s)
        print(f"billed {periods} contract periods on {n_invoices} invoices in {elapsed:.1f}s "
              f"with {args.runs} run(s): {periods / elapsed:.0f} contracts/s, "
              f"{n_invoices / elapsed:.0f} invoices/s")
        ok = periods == args.contracts and n_invoices == n_customers
        print("exactly once:", "yes" if ok else "NO")
        return 0 if ok else 1
    finally:
        if not args.keep:
            drop_database(name)


if __name__ == "__main__":
    sys.exit(main())
