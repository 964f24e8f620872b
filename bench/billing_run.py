"""Benchmark (issue 17): the recurring billing run over many due contracts on PostgreSQL.

    PYTHONPATH=... .venv/bin/python bench/billing_run.py [--contracts 100000] [--per-customer 4]

What it does, all in one run on a scratch database (``KC_TEST_PG_ADMIN_URL``, default the
local server; dropped at the end):

1. migrates billing's schema (alembic, as ``kc_common.manage migrate``);
2. the anchor: one ``INSERT … SELECT`` of as many ledger rows as there are contracts into a
   scratch copy of ``bookings`` (same columns and indexes), committed: what writing that
   many rows costs this database right now, with no Python in the loop;
3. seeds N due contracts (``--per-customer`` each) with bulk SQL, and the customers' address
   replica as production has it from identity's ``customer_updated`` events, so the run
   makes no ``identity.get_customer`` RPC (the bench checks that every due customer is
   replicated; a customer without replica would be fetched over the bus, as in production);
4. runs the operator command ``python -m kc_billing.run`` (the real command: its own
   process, startup included) and checks exactly once: one billed period per contract, one
   invoice per customer with the expected gross to the cent, one RE booking and one
   ``invoice_issued`` outbox event per invoice, dense invoice numbers, every contract advanced;
5. seeds a second fresh set of N due contracts (new customers) and starts two runs at once;
   measures until both have finished and checks exactly once again.

Steps 2-5 are repeated ``--rounds`` times (default 2), interleaved, each on a fresh set: the
machine is shared and noisy, so the table shows the means (and each run).

Prints a Markdown table (figure, value, anchor, ratio, target, met) and the load average.
``rows(contracts)`` returns the table's rows for bench/bench.py.
"""
import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg2
from alembic import command

from kc_common.clock import berlin_today
from kc_common.migrations import alembic_config
from kc_common.testing import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0
PRICES = 7  # contract i costs 12.90 + (i % 7) cents net, 19 % VAT
VAT = Decimal("19.00")
FIRST_CUSTOMER = 300000


def _cents(value):
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def price(i):
    return Decimal("12.90") + Decimal(i % PRICES) / 100


def expected_gross(first_contract, contracts, per_customer):
    """Gross per customer index as the rules say: net per line, VAT per rate on the sum, half-up."""
    out = {}
    for c in range(-(-contracts // per_customer)):
        lo = first_contract + c * per_customer
        hi = min(first_contract + contracts, lo + per_customer)
        net = sum((price(i) for i in range(lo, hi)), Decimal("0"))
        out[c] = net + _cents(net * VAT / 100)
    return out


def seed(conn, as_of, *, first_contract, contracts, per_customer, first_customer):
    """N due contracts of ceil(N / per_customer) replicated customers, in two INSERT … SELECTs."""
    n_customers = -(-contracts // per_customer)
    with conn.cursor() as cur:
        cur.execute("""
            INSERT INTO customers (customer_id, first_name, last_name, email, street, zip, city,
                                   country, is_business, replicated_at)
            SELECT %(first)s + c, 'Bench', 'Kunde ' || c, 'k' || (%(first)s + c) || '@example.org',
                   'Weg 1', '30159', 'Hannover', 'DE', false, now()
            FROM generate_series(0, %(n)s - 1) AS c""", {"first": first_customer, "n": n_customers})
        cur.execute("""
            INSERT INTO billable_contracts (contract_id, customer_id, product_id, product_name, kind,
                                            domain, period_months, price_net, vat_rate,
                                            next_invoice_date, status, updated_at)
            SELECT i, %(first_customer)s + (i - %(first_contract)s) / %(per)s, 'hosting-business',
                   'businesshosting', 'hosting', NULL, 1, 12.90 + (i %% %(prices)s) / 100.0, %(vat)s,
                   %(as_of)s, 'active', now()
            FROM generate_series(%(first_contract)s, %(first_contract)s + %(n)s - 1) AS i""",
                    {"first_customer": first_customer, "first_contract": first_contract,
                     "per": per_customer, "prices": PRICES, "vat": VAT, "as_of": as_of, "n": contracts})
    conn.commit()
    return n_customers


def anchor(conn, n):
    """Seconds to write n ledger rows with one INSERT … SELECT into a copy of ``bookings``."""
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_anchor_bookings")
        cur.execute("CREATE TABLE bench_anchor_bookings (LIKE bookings INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        cur.execute("""
            INSERT INTO bench_anchor_bookings (customer_id, booked_at, type, text, amount,
                                               payment_method)
            SELECT 300000 + i / 4, now(), 'RE', 'businesshosting ' || i, -15.35, 'U'
            FROM generate_series(1, %s) AS i""", (n,))
        conn.commit()
        elapsed = time.perf_counter() - t0
        cur.execute("DROP TABLE bench_anchor_bookings")
        conn.commit()
    return elapsed


def start_run(config_path, as_of):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "kc_billing.run", "--config", str(config_path),
                             "--as-of", as_of.isoformat(), "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def timed_runs(config_path, as_of, processes):
    t0 = time.perf_counter()
    procs = [start_run(config_path, as_of) for _ in range(processes)]
    outputs = [proc.communicate()[0] for proc in procs]
    elapsed = time.perf_counter() - t0
    for proc, out in zip(procs, outputs):
        if proc.returncode != 0:
            raise RuntimeError(f"billing run exited {proc.returncode}:\n{out[-3000:]}")
    return elapsed


def check_exactly_once(conn, as_of, *, first_contract, contracts, per_customer, first_customer):
    """Problems found (empty: every contract billed once, every total right to the cent)."""
    problems = []
    last_contract = first_contract + contracts - 1
    n_customers = -(-contracts // per_customer)
    want = expected_gross(first_contract, contracts, per_customer)
    with conn.cursor() as cur:
        cur.execute("""SELECT count(*), count(DISTINCT contract_id), min(period_start), max(period_start)
                       FROM billed_periods WHERE contract_id BETWEEN %s AND %s""",
                    (first_contract, last_contract))
        periods, distinct, lo, hi = cur.fetchone()
        if not (periods == distinct == contracts and lo == hi == as_of):
            problems.append(f"billed periods {periods} ({distinct} contracts, {lo}..{hi}), "
                            f"want {contracts} of {as_of}")
        cur.execute("""SELECT count(*) FROM billable_contracts WHERE contract_id BETWEEN %s AND %s
                       AND next_invoice_date <= %s""", (first_contract, last_contract, as_of))
        if cur.fetchone()[0]:
            problems.append("contracts still due after the run")
        cur.execute("""SELECT customer_id, count(*), sum(gross) FROM invoices
                       WHERE customer_id BETWEEN %s AND %s AND run_id IS NOT NULL GROUP BY customer_id""",
                    (first_customer, first_customer + n_customers - 1))
        got = {cid - first_customer: (n, gross) for cid, n, gross in cur.fetchall()}
        wrong = [c for c in want if got.get(c) != (1, want[c])]
        if wrong or len(got) != len(want):
            c = wrong[0] if wrong else None
            problems.append(f"{len(wrong)} customers without exactly one invoice of the expected gross "
                            f"(e.g. #{c}: {got.get(c)} vs {want.get(c)})")
        cur.execute("""SELECT count(*), count(DISTINCT invoice_id) FROM invoice_lines
                       WHERE contract_id BETWEEN %s AND %s""", (first_contract, last_contract))
        lines, line_invoices = cur.fetchone()
        if lines != contracts or line_invoices != n_customers:
            problems.append(f"{lines} invoice lines on {line_invoices} invoices")
        cur.execute("""SELECT count(*) FROM invoices i
                       WHERE i.customer_id BETWEEN %s AND %s AND i.net <> (
                         SELECT sum(net) FROM invoice_lines l WHERE l.invoice_id = i.id)""",
                    (first_customer, first_customer + n_customers - 1))
        if cur.fetchone()[0]:
            problems.append("invoices whose net is not the sum of their lines")
        cur.execute("""SELECT count(*), count(DISTINCT b.invoice_id), coalesce(sum(b.amount + i.gross), 0)
                       FROM bookings b JOIN invoices i ON i.id = b.invoice_id
                       WHERE b.customer_id BETWEEN %s AND %s AND b.type = 'RE'""",
                    (first_customer, first_customer + n_customers - 1))
        bookings, booked_invoices, mismatch = cur.fetchone()
        if bookings != n_customers or booked_invoices != n_customers or mismatch != 0:
            problems.append(f"{bookings} RE bookings for {booked_invoices} invoices (amount off by {mismatch})")
        cur.execute("""SELECT count(*), count(DISTINCT payload->'data'->>'invoice_id') FROM outbox
                       WHERE event_type = 'invoice_issued'
                       AND (payload->'data'->>'customer_id')::bigint BETWEEN %s AND %s""",
                    (first_customer, first_customer + n_customers - 1))
        events, distinct_events = cur.fetchone()
        if events != distinct_events or events != n_customers:
            problems.append(f"{events} invoice_issued events ({distinct_events} distinct), want {n_customers}")
        cur.execute("SELECT count(*), min(number), max(number) FROM invoices")
        n, lo, hi = cur.fetchone()
        if n and hi - lo + 1 != n:
            problems.append(f"invoice numbers not dense: {n} numbers in {lo}..{hi}")
    return problems


def unreplicated(conn, as_of):
    with conn.cursor() as cur:
        cur.execute("""SELECT count(DISTINCT b.customer_id) FROM billable_contracts b
                       LEFT JOIN customers c ON c.customer_id = b.customer_id
                       WHERE b.next_invoice_date <= %s AND c.replicated_at IS NULL""", (as_of,))
        return cur.fetchone()[0]


def measure(contracts=100_000, per_customer=4, rounds=2):
    """All figures of one bench run (a dict); see the module docstring."""
    as_of = berlin_today()  # a run's as_of is bounded around today (runs.check_as_of)
    name = f"kc_bench_billing_{uuid.uuid4().hex[:6]}"
    url = create_database(name)
    tmp = tempfile.TemporaryDirectory(prefix="kc-bench-billing-")
    out = {"contracts": contracts, "per_customer": per_customer, "rounds": rounds, "anchor": [],
           "one": [], "two": [], "problems": [], "unreplicated": 0}
    try:
        command.upgrade(alembic_config("kc_billing", url), "head")
        config_path = Path(tmp.name) / "billing.yaml"
        config_path.write_text(
            f"SERVICE_PACKAGE: kc_billing\nDATABASE_URL: {url}\n"
            f"AMQP_URI: {os.environ.get('AMQP_URI', 'pyamqp://guest:guest@127.0.0.1:5672/')}\n")
        conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
        n_customers = -(-contracts // per_customer)
        try:
            # Interleaved (this machine is shared and noisy): anchor, 1 process, anchor,
            # 2 processes, ... each run on a fresh set of due contracts (new customers).
            for k, processes in enumerate([1, 2] * rounds):
                fresh = {"first_contract": 1 + k * contracts, "contracts": contracts,
                         "per_customer": per_customer, "first_customer": FIRST_CUSTOMER + k * n_customers}
                out["anchor"].append(anchor(conn, contracts))
                t0 = time.perf_counter()
                out["customers"] = seed(conn, as_of, **fresh)
                out["seed_s"] = time.perf_counter() - t0
                out["unreplicated"] += unreplicated(conn, as_of)
                out["one" if processes == 1 else "two"].append(timed_runs(config_path, as_of, processes))
                out["problems"] += [f"{processes} process(es): {p}"
                                    for p in check_exactly_once(conn, as_of, **fresh)]
        finally:
            conn.close()
    finally:
        tmp.cleanup()
        drop_database(name)
    out["load"] = os.getloadavg()
    return out


def _mean(values):
    return sum(values) / len(values)


def table_rows(m):
    n, customers = m["contracts"], m["customers"]
    anchor_s, one, two = _mean(m["anchor"]), _mean(m["one"]), _mean(m["two"])
    once = not m["problems"]
    return [
        (f"billing run, 1 process: {n:,} due contracts, {customers:,} invoices (PostgreSQL; "
         f"mean of {m['rounds']})",
         f"{one:.1f} s", f"{anchor_s:.2f} s (one INSERT…SELECT of {n:,} ledger rows)",
         f"{one / anchor_s:.0f}", f"≤ {TARGET_SECONDS:.0f} s",
         "met" if one <= TARGET_SECONDS else "not met"),
        (f"billing run, 2 processes at once on a fresh set of {n:,}", f"{two:.1f} s",
         f"{one:.1f} s (1 process)", f"{two / one:.2f}", "≤ 1.0 × 1 process",
         "met" if two <= one else "not met"),
        ("billing run: each run, 1 process / 2 processes",
         " / ".join(", ".join(f"{x:.1f}" for x in m[k]) + " s" for k in ("one", "two")), "", "", "", ""),
        ("billing run: throughput, 1 process / 2 processes",
         f"{n / one:,.0f} / {n / two:,.0f} contracts/s", "", "", "", ""),
        ("billing run: exactly once (periods, invoices, gross to the cent, bookings, events, numbers)",
         "yes" if once else "; ".join(m["problems"]), "", "", "yes", "met" if once else "not met"),
        ("billing run: identity RPCs needed (customers without replica)", str(m["unreplicated"]),
         "", "", "(replica seeded as production has it)", ""),
    ]


def rows(contracts: int) -> list[tuple[str, str, str, str, str, str]]:
    """The table's rows (figure, value, anchor, ratio, target, met) for bench/bench.py."""
    return table_rows(measure(contracts))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="billing_run", description=__doc__.split("\n")[0])
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--per-customer", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of 1 and 2 processes")
    args = parser.parse_args(argv)
    m = measure(args.contracts, args.per_customer, args.rounds)
    print(f"Billing run bench {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in m['load'])} "
          f"(1/5/15 min) at the end; seeding took {m['seed_s']:.1f} s\n")
    print("| figure | value | anchor | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for row in table_rows(m):
        print("| " + " | ".join(row) + " |")
    return 0 if not m["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
