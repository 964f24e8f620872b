"""Benchmark: record-set changes per second and export on a zone of 10,000 records (PostgreSQL).

    .venv/bin/python services/dns/bench/bench_zone.py [--records 10000] [--changes 300]

Creates a scratch database (``KC_TEST_PG_ADMIN_URL``, default the local
server), fills one zone, then measures, through the same code the RPCs run
(``kc_dns.domain``: row lock, version check, validation, write, serial, outbox):
single-RRset replace change sets, 10-RRset change sets, adding a CNAME (the
rules that scan the zone), export, named-checkzone on the export (if
installed) and a dry-run import of the whole file. Prints figures; asserts nothing.
"""
import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from alembic import command
from sqlalchemy import select, text

from kc_common.db import StandaloneDatabase
from kc_common.migrations import alembic_config
from kc_common.testing import create_database, drop_database
from kc_dns import domain
from kc_dns.models import metadata, records, zones
from kc_dns.rules import Policy

DEFAULTS = {"nameservers": ["ns1.kc.example.", "ns2.kc.example."], "hostmaster": "hm.kc.example.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.kc.example.", "ttl": 3600}
CUSTOMER = 100001
ZONE = "bench-zone.de"


def fill(db, n):
    with db.unit_of_work() as uow:
        domain.create_zones_for_order(uow, {"customer_id": CUSTOMER, "items": [
            {"contract_id": 1, "kind": "domain", "domain": ZONE}]}, DEFAULTS)
        zone_id = uow.session.execute(select(zones.c.id).where(zones.c.name == ZONE)).scalar_one()
        rows = []
        for i in range(n):
            kind = i % 4
            if kind == 0:
                rows.append(dict(name=f"h{i}", type="A", content=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"))
            elif kind == 1:
                rows.append(dict(name=f"h{i}", type="AAAA", content=f"2001:db8::{i:x}"))
            elif kind == 2:
                rows.append(dict(name=f"t{i}", type="TXT", content=f'"record {i} ' + "x" * 40 + '"'))
            else:
                rows.append(dict(name=f"m{i}", type="MX", content=f"10 h{i - 3}.{ZONE}."))
        uow.session.execute(records.insert(), [dict(r, zone_id=zone_id, ttl=3600) for r in rows])
    with db.engine.connect() as conn:   # planner statistics, as autovacuum would have them
        conn.execute(text("ANALYZE records"))
        conn.commit()


def version(db):
    with db.unit_of_work() as uow:
        return uow.session.execute(select(zones.c.version).where(zones.c.name == ZONE)).scalar_one()


def run_changes(db, policy, batches):
    current = version(db)
    start = time.perf_counter()
    for changes in batches:
        with db.unit_of_work() as uow:
            domain.apply_changes(uow, CUSTOMER, ZONE, {"If-Match": str(current)}, changes, policy)
        current += 1
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=300)
    args = parser.parse_args()
    name = f"kcbench_dns_{uuid.uuid4().hex[:6]}"
    url = create_database(name)
    try:
        command.upgrade(alembic_config("kc_dns", url), "head")
        db = StandaloneDatabase(metadata, url, "dns")
        policy = Policy(max_import_records=10 * args.records)   # the bench imports the whole zone
        t = time.perf_counter()
        fill(db, args.records)
        print(f"zone with {args.records + 8} records filled in {time.perf_counter() - t:.2f} s")

        with db.engine.connect() as conn:   # the machine's floor: one round trip, one commit
            t = time.perf_counter()
            for _ in range(200):
                conn.execute(text("SELECT 1"))
            rtt = (time.perf_counter() - t) / 200
            t = time.perf_counter()
            for _ in range(50):
                conn.execute(text("SELECT 1"))
                conn.commit()
            commit = (time.perf_counter() - t) / 50
        print(f"baseline: {rtt * 1000:.2f} ms per query round trip, {commit * 1000:.2f} ms per commit; "
              f"load average {os.getloadavg()[0]:.1f}")

        n = args.changes
        single = [[{"action": "replace", "name": f"h{(i * 4) % args.records}", "type": "A",
                    "ttl": 300 + i % 100, "records": [f"192.0.2.{i % 250 + 1}"]}] for i in range(n)]
        secs = run_changes(db, policy, single)
        print(f"replace 1 RRset per change set:   {n / secs:8.1f} change sets/s "
              f"({secs / n * 1000:.1f} ms each)")

        batch = [[{"action": "replace", "name": f"h{(i * 40 + k * 4) % args.records}", "type": "A",
                   "records": [f"198.51.100.{k + 1}"]} for k in range(10)] for i in range(n // 10)]
        secs = run_changes(db, policy, batch)
        print(f"replace 10 RRsets per change set: {len(batch) / secs:8.1f} change sets/s "
              f"= {len(batch) * 10 / secs:.1f} RRsets/s")

        cname = [[{"action": "add", "name": f"alias{i}", "type": "CNAME", "records": [f"h{i * 4}"]}]
                 for i in range(n // 3)]
        secs = run_changes(db, policy, cname)
        print(f"add a CNAME (referrer scan):      {len(cname) / secs:8.1f} change sets/s")

        with db.unit_of_work() as uow:
            t = time.perf_counter()
            exported = domain.export_zone(uow.session, CUSTOMER, ZONE)
            secs = time.perf_counter() - t
        zone_text = base64.b64decode(exported["content_b64"]).decode()
        print(f"export: {secs * 1000:.0f} ms for {zone_text.count(chr(10))} lines ({len(zone_text) / 1e6:.2f} MB)")
        checker = shutil.which("named-checkzone")
        if checker:
            with tempfile.NamedTemporaryFile("w", suffix=".zone") as fh:
                fh.write(zone_text)
                fh.flush()
                t = time.perf_counter()
                proc = subprocess.run([checker, ZONE, fh.name], capture_output=True, text=True)
                print(f"named-checkzone on the export: {'OK' if proc.returncode == 0 else 'FAILED'} "
                      f"in {time.perf_counter() - t:.2f} s")
        with db.unit_of_work() as uow:
            t = time.perf_counter()
            report = domain.import_zone(uow, CUSTOMER, ZONE, {"If-Match": str(version(db))}, zone_text,
                                        policy, dry_run=True)
            secs = time.perf_counter() - t
        print(f"import (dry run) of the export: {secs:.2f} s, {report['accepted']} records accepted, "
              f"{len(report['rejected'])} rejected")
        db.engine.dispose()
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
