"""Figures for identity's hot paths (no targets asserted; prints numbers).

``authenticate`` runs on every gateway request; ``login`` is dominated by argon2id on purpose.
Runs against a scratch PostgreSQL database (KC_TEST_PG_ADMIN_URL), no bus:

    .venv/bin/python services/identity/bench/authenticate.py [N]
"""
import datetime as dt
import sys
import time
import uuid

from alembic import command

from kc_common.db import StandaloneDatabase
from kc_common.migrations import alembic_config
from kc_common.testing import create_database, drop_database
from kc_identity import demo, domain
from kc_identity.models import metadata


def main(n=2000):
    name = f"kct_bench_identity_{uuid.uuid4().hex[:6]}"
    url = create_database(name)
    try:
        command.upgrade(alembic_config("kc_identity", url), "head")
        db = StandaloneDatabase(metadata, url, "identity")
        demo.seed(db, {})
        idle, absolute = dt.timedelta(hours=1), dt.timedelta(hours=12)
        throttle = domain.Throttle()
        with db.unit_of_work() as uow:
            uow.session.execute(domain.customers.update().values(ip_whitelist=["192.0.2.0/24", "2001:db8::/32"]))
        start = time.perf_counter()
        logins = 20
        for _ in range(logins):
            with db.unit_of_work() as uow:
                result, error = domain.attempt_login(uow.session, login="100001", password=demo.DEMO_PASSWORD,
                                                     client_ip="192.0.2.1", idle=idle, absolute=absolute,
                                                     throttle=throttle)
            assert error is None
        login_ms = (time.perf_counter() - start) / logins * 1000
        token = result["token"]
        start = time.perf_counter()
        for _ in range(n):
            with db.unit_of_work() as uow:
                domain.authenticate(uow.session, token=token, idle=idle, client_ip="192.0.2.1")
        auth_ms = (time.perf_counter() - start) / n * 1000
        print(f"login (argon2id verify + throttle check + session): {login_ms:.1f} ms each ({logins} runs)")
        print(f"authenticate (session + whitelist, one transaction): {auth_ms:.3f} ms each, "
              f"{1000 / auth_ms:.0f}/s on one connection ({n} runs)")
        db.engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
