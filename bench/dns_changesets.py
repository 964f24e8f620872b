"""DNS change sets of one record set each on a zone of 10,000 records (issue 17).

    PYTHONPATH=... python bench/dns_changesets.py [--database sqlite|postgresql]
                                                   [--records 10000] [--seconds 5]

Creates a fresh database (a SQLite file in a temporary directory, or a scratch
PostgreSQL database through ``kc_common.testing.create_database``), migrates it,
fills one zone with 10,000 records in one bulk insert, then applies change sets
of one record set each (replace of an A, AAAA, TXT or MX set, each time another
name) through :func:`kc_dns.service.apply_changes`: what the ``apply_changes`` RPC
runs once the caller is known (load the body, unit of work with row lock, If-Match
check, validation, write, serial, outbox event, dump the answer). The RPC hop
itself (gateway, broker, nameko worker) is not in these figures: bench/bench.py
measures it for reads.

Anchor, measured in the same run and interleaved with the product: one bare write
transaction on the same database and engine: ``UPDATE`` of one row, ``INSERT`` of one
row, ``COMMIT`` (SQLAlchemy Core, text statements): the floor of any change set
that writes and commits.

Also: the zone's export (:func:`kc_dns.domain.export_zone`) against a bare
``SELECT`` of the zone's records (name, type, ttl, content) fetched into Python.

Prints a Markdown table (figure, value, anchor, ratio, target, met) and the load
average. ``rows(database)`` returns the table's rows for bench/bench.py. Asserts nothing.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager

from alembic import command
from sqlalchemy import select, text

from kc_common.db import StandaloneDatabase
from kc_common.migrations import alembic_config
from kc_dns import domain, service
from kc_dns.models import metadata, records, zones
from kc_dns.rules import Policy

DEFAULTS = {"nameservers": ["ns1.kc.example.", "ns2.kc.example."], "hostmaster": "hm.kc.example.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.kc.example.", "ttl": 3600}
CUSTOMER = 100001
ZONE = "bench-zone.de"
TARGET_PER_S = 1000


@contextmanager
def scratch_database(database):
    """A migrated, empty dns database; removed afterwards."""
    if database == "sqlite":
        tmp = tempfile.mkdtemp(prefix="kcbench_dns_")
        url = f"sqlite:///{tmp}/dns.db"
        try:
            command.upgrade(alembic_config("kc_dns", url), "head")
            yield url
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif database == "postgresql":
        from kc_common.testing import create_database, drop_database
        name = f"kcbench_dns_{uuid.uuid4().hex[:8]}"
        url = create_database(name)
        try:
            command.upgrade(alembic_config("kc_dns", url), "head")
            yield url
        finally:
            drop_database(name)
    else:
        raise ValueError(f"unknown database {database!r} (sqlite or postgresql)")


def zone_rows(n):
    """``n`` records: per host A, AAAA and TXT; every 5th host also an MX and a CNAME to it."""
    rows, j = [], 0
    while len(rows) < n:
        host = f"h{j}"
        rows.append(("A", host, f"10.{j >> 16 & 255}.{j >> 8 & 255}.{j & 255}"))
        rows.append(("AAAA", host, f"2001:db8::{j:x}"))
        rows.append(("TXT", host, f'"host {j} ' + "x" * 40 + '"'))
        if j % 5 == 0:
            rows.append(("MX", f"m{j}", f"10 {host}.{ZONE}."))
            rows.append(("CNAME", f"c{j}", f"{host}.{ZONE}."))
        j += 1
    return rows[:n], j


def fill(db, n):
    """The zone (default records, as an order creates it) plus ``n`` records in one insert;
    returns the number of hosts."""
    rows, hosts = zone_rows(n)
    with db.unit_of_work() as uow:
        domain.create_zones_for_order(uow, {"customer_id": CUSTOMER, "items": [
            {"contract_id": 1, "kind": "domain", "domain": ZONE}]}, DEFAULTS)
        zone_id = uow.session.execute(select(zones.c.id).where(zones.c.name == ZONE)).scalar_one()
        uow.session.execute(records.insert(), [
            dict(zone_id=zone_id, name=name, type=rtype, ttl=3600, content=content)
            for rtype, name, content in rows])
    with db.engine.connect() as conn:   # planner statistics, as autovacuum would have them
        conn.execute(text("ANALYZE"))
        conn.commit()
    return hosts


def change_set(i, hosts):
    """The ``i``-th change set: one record set replaced, the name moving through the zone."""
    j = (i * 7919) % hosts
    kind = i % 4
    if kind == 0:
        change = {"action": "replace", "name": f"h{j}", "type": "A", "ttl": 300 + i % 100,
                  "records": [f"192.0.2.{i % 250 + 1}"]}
    elif kind == 1:
        change = {"action": "replace", "name": f"h{j}", "type": "AAAA",
                  "records": [f"2001:db8:1::{i % 65536:x}"]}
    elif kind == 2:
        change = {"action": "replace", "name": f"h{j}", "type": "TXT",
                  "records": [f"v=spf1 ip4:192.0.2.{i % 250 + 1} -all"]}
    else:
        k = (j // 5) * 5
        change = {"action": "replace", "name": f"m{k}", "type": "MX",
                  "records": [f"{10 + i % 10} h{(k + 1) % hosts}"]}
    return {"changes": [change]}


TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK      # utime + stime
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


class Bench:
    def __init__(self, url, n_records):
        self.db = StandaloneDatabase(metadata, url, "dns")
        self.backends = []
        self.policy = Policy()
        self.hosts = fill(self.db, n_records)
        with self.db.unit_of_work() as uow:
            self.version = uow.session.execute(
                select(zones.c.version).where(zones.c.name == ZONE)).scalar_one()
            self.n_records = uow.session.execute(text(
                "SELECT count(*) FROM records")).scalar_one()
        with self.db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_anchor (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
            conn.execute(text("CREATE TABLE bench_anchor_log (id INTEGER NOT NULL, n INTEGER NOT NULL)"))
            conn.execute(text("INSERT INTO bench_anchor VALUES (1, 0)"))
        self.i = 0

    def find_backends(self):
        """PostgreSQL: the server processes of this database (their CPU counts too)."""
        if self.db.engine.dialect.name == "postgresql":
            with self.db.engine.connect() as conn:
                self.backends = [r[0] for r in conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))]

    def cpu(self):
        """CPU seconds of this process and of the database's server processes."""
        return time.process_time() + sum(_proc_cpu(pid) for pid in self.backends)

    def change_sets(self, seconds):
        """Change sets applied in ``seconds``; returns (count, elapsed)."""
        count, start = 0, time.perf_counter()
        end = start + seconds
        while True:
            service.apply_changes(self.db, CUSTOMER, ZONE, change_set(self.i, self.hosts),
                                  {"If-Match": f'"{self.version}"'}, self.policy)
            self.version += 1
            self.i += 1
            count += 1
            now = time.perf_counter()
            if now >= end:
                return count, now - start

    def anchor(self, seconds):
        """Bare UPDATE+INSERT transactions in ``seconds``; returns (count, elapsed)."""
        update = text("UPDATE bench_anchor SET n = n + 1 WHERE id = 1")
        insert = text("INSERT INTO bench_anchor_log (id, n) VALUES (:id, :n)")
        count, start = 0, time.perf_counter()
        end = start + seconds
        while True:
            with self.db.engine.begin() as conn:
                conn.execute(update)
                conn.execute(insert, {"id": 1, "n": count})
            count += 1
            now = time.perf_counter()
            if now >= end:
                return count, now - start

    def export(self):
        with self.db.unit_of_work() as uow:
            start = time.perf_counter()
            domain.export_zone(uow.session, CUSTOMER, ZONE)
            return time.perf_counter() - start

    def bare_select(self):
        stmt = text("SELECT name, type, ttl, content FROM records WHERE zone_id = "
                    "(SELECT id FROM zones WHERE name = :zone)")
        with self.db.engine.connect() as conn:
            start = time.perf_counter()
            conn.execute(stmt, {"zone": ZONE}).all()
            return time.perf_counter() - start


def measure(database="sqlite", n_records=10_000, seconds=5.0, rounds=5):
    with scratch_database(database) as url:
        bench = Bench(url, n_records)
        try:
            bench.change_sets(0.3)            # warm-up: compiled-statement caches, imports
            bench.anchor(0.1)
            bench.find_backends()
            product, anchor = [0, 0.0, 0.0], [0, 0.0, 0.0]   # count, wall s, CPU s
            for _ in range(rounds):           # interleaved: both see the same machine
                for total, run, secs in ((anchor, bench.anchor, seconds / rounds / 3),
                                         (product, bench.change_sets, seconds / rounds)):
                    cpu = bench.cpu()
                    count, wall = run(secs)
                    total[0] += count
                    total[1] += wall
                    total[2] += bench.cpu() - cpu
            exports, selects = [], []
            for _ in range(9):                # interleaved too; medians
                exports.append(bench.export())
                selects.append(bench.bare_select())
            exports.sort()
            selects.sort()
            return {"database": database, "records": bench.n_records,
                    "change_sets": product[0], "change_sets_per_s": product[0] / product[1],
                    "anchor_per_s": anchor[0] / anchor[1],
                    "cpu_ms": product[2] / product[0] * 1000, "anchor_cpu_ms": anchor[2] / anchor[0] * 1000,
                    "export_ms": exports[4] * 1000, "select_ms": selects[4] * 1000,
                    "load": os.getloadavg()}
        finally:
            bench.db.engine.dispose()


def table_rows(m):
    db, n = m["database"], f"{m['records']:,}"
    per_s, anchor = m["change_sets_per_s"], m["anchor_per_s"]
    ok = per_s >= TARGET_PER_S
    return [
        (f"DNS change sets of 1 record set/s, zone of {n} records ({db})", f"{per_s:,.0f}/s",
         f"{anchor:,.0f}/s", f"{per_s / anchor:.2f}", f"≥ {TARGET_PER_S:,}/s",
         "met" if ok else "not met"),
        (f"DNS ms per change set, wall clock ({db})", f"{1000 / per_s:.2f} ms",
         f"{1000 / anchor:.2f} ms", f"{anchor / per_s:.1f}", f"≤ {1000 / TARGET_PER_S:.2f} ms",
         "met" if ok else "not met"),
        (f"DNS CPU ms per change set, client{' + server' if db == 'postgresql' else ''} ({db})",
         f"{m['cpu_ms']:.2f} ms", f"{m['anchor_cpu_ms']:.2f} ms",
         f"{m['cpu_ms'] / m['anchor_cpu_ms']:.1f}", f"≤ {1000 / TARGET_PER_S:.2f} ms",
         "met" if m["cpu_ms"] <= 1000 / TARGET_PER_S else "not met"),
        (f"DNS zone export, {n} records ({db})", f"{m['export_ms']:.0f} ms",
         f"{m['select_ms']:.0f} ms", f"{m['export_ms'] / m['select_ms']:.1f}", "—", "—"),
    ]


def rows(database: str = "sqlite") -> list[tuple[str, str, str, str, str, str]]:
    """The table's rows (for bench/bench.py): figure, value, anchor, ratio, target, met."""
    return table_rows(measure(database))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    m = measure(args.database, args.records, args.seconds)
    print("| figure | value | anchor | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for row in table_rows(m):
        print("| " + " | ".join(row) + " |")
    print()
    print(f"{m['change_sets']} change sets; anchor: one bare UPDATE of a row + INSERT of a row + "
          f"COMMIT on the same database (change sets) and a bare SELECT of the zone's records "
          f"(export); CPU: this process{' and its PostgreSQL server processes' if m['database'] == 'postgresql' else ''} "
          f"(/proc); load average {' '.join(f'{x:.2f}' for x in m['load'])} "
          f"on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
