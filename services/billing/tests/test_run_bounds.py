"""Fast unit tests (no bus, no database): the as_of bound, a run's derived state, input bounds."""
import datetime as dt
import subprocess
import sys
from types import SimpleNamespace

import pytest

from kc_billing import camt, runs
from kc_billing.settings import BillingSettings
from kc_common.db import utcnow
from kc_common.errors import ValidationFailed

TODAY = dt.date(2026, 11, 29)
SETTINGS = BillingSettings({})


def refused(as_of, settings=SETTINGS):
    with pytest.raises(ValidationFailed) as err:
        runs.check_as_of(as_of, settings, today=TODAY)
    assert list(err.value.fields) == ["as_of"]
    return err.value.fields["as_of"][0]


def test_as_of_is_bounded_around_today():
    assert runs.check_as_of(TODAY, SETTINGS, today=TODAY) == TODAY
    assert runs.check_as_of(TODAY + dt.timedelta(days=7), SETTINGS, today=TODAY)
    assert runs.check_as_of(TODAY - dt.timedelta(days=31), SETTINGS, today=TODAY)
    # as of 4454-04-01 it billed 172,336 periods into one invoice of 6,219,140.32 EUR
    assert refused(dt.date(4454, 4, 1)) == \
        "Der Stichtag darf höchstens 7 Tage nach heute liegen (spätestens 06.12.2026)."
    assert "höchstens 7 Tage" in refused(TODAY + dt.timedelta(days=8))
    assert refused(TODAY - dt.timedelta(days=32)) == \
        "Der Stichtag darf höchstens 31 Tage vor heute liegen (frühestens 29.10.2026)."
    assert "31 Tage vor heute" in refused(dt.date(1, 1, 1))


def test_the_bound_is_configurable_and_checked():
    wider = BillingSettings({"RUN_MAX_DAYS_AHEAD": "40", "RUN_MAX_DAYS_BACK": "0"})
    assert runs.check_as_of(TODAY + dt.timedelta(days=40), wider, today=TODAY)
    assert "höchstens 0 Tage vor heute" in refused(TODAY - dt.timedelta(days=1), wider)
    for bad in ({"RUN_MAX_DAYS_AHEAD": "-1"}, {"RUN_HEARTBEAT_EVERY": "60", "RUN_STALE_AFTER": "60"},
                {"STATEMENT_MAX_ENTRIES": "0"}, {"RUN_STALE_AFTER": "kurz"}):
        with pytest.raises(RuntimeError):
            BillingSettings(bad)


def run_row(**values):
    now = utcnow()
    row = {"id": 7, "finished_at": None, "aborted_at": None, "started_at": now,
           "heartbeat_at": now, "owner": "anderer-rechner:4242:abcdef"}
    row.update(values)
    return SimpleNamespace(**row)


def test_a_run_is_running_only_while_its_owner_shows_signs_of_life():
    now = utcnow()
    stale = now - dt.timedelta(seconds=SETTINGS.run_stale_after + 1)
    assert runs.state(run_row(), SETTINGS) == runs.RUNNING          # another host, fresh heartbeat
    assert runs.state(run_row(heartbeat_at=stale), SETTINGS) == runs.ABORTED
    # a row from before heartbeats existed, never finished: killed long ago
    assert runs.state(run_row(heartbeat_at=None, owner=None, started_at=stale), SETTINGS) == runs.ABORTED
    assert runs.state(run_row(finished_at=now, heartbeat_at=stale), SETTINGS) == runs.FINISHED
    assert runs.state(run_row(aborted_at=now), SETTINGS) == runs.ABORTED
    # on this host: a process that is gone is known at once, without waiting for the heartbeat
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = runs.owner_id().split(":")[0]
    assert runs.state(run_row(owner=f"{host}:{gone.pid}:feedface"), SETTINGS) == runs.ABORTED
    assert runs.state(run_row(owner=f"{host}:1:feedface"), SETTINGS) == runs.RUNNING  # alive
    # its pid runs (maybe reused by another program): the heartbeat tells
    assert runs.state(run_row(owner=f"{host}:1:feedface", heartbeat_at=stale), SETTINGS) == runs.ABORTED
    # this very process: running only while it executes the run
    mine = run_row(owner=runs.owner_id())
    assert runs.state(mine, SETTINGS) == runs.ABORTED
    runs.ACTIVE.add(mine.id)
    try:
        assert runs.state(mine, SETTINGS) == runs.RUNNING
        # a long step (a customer waiting for a lock) without heartbeat: still running here
        mine.heartbeat_at = stale
        assert runs.state(mine, SETTINGS) == runs.RUNNING
        # a predecessor with the same pid (a restarted container's pid 1) is not this process
        predecessor = run_row(owner=runs.owner_id().rsplit(":", 1)[0] + ":0123456789ab")
        assert runs.state(predecessor, SETTINGS) == runs.ABORTED
    finally:
        runs.ACTIVE.discard(mine.id)


def camt_with(n):
    from .camt_files import Tx, statement
    return statement([Tx("1.00", f"KC100001 {i}", acct_svcr_ref=f"R{i}") for i in range(n)])


def test_a_statement_with_too_many_credit_entries_is_refused():
    assert len(camt.parse(camt_with(5), max_entries=5)) == 5
    with pytest.raises(camt.StatementInvalid, match="mehr als 5 Umsätze"):
        camt.parse(camt_with(6), max_entries=5)
