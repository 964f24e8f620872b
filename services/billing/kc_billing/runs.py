"""Billing run records: the as_of bound, starting a run, heartbeat, finish, aborted and resumed.

A run's state is derived from its row, never left to the process that may have died:

* ``finished``: ``finished_at`` is set (the counts are final);
* ``aborted``: ``aborted_at`` is set (stopped, or found dead by a later run), or its process
  is gone for sure (same host and the pid no longer runs; or this very process, which no
  longer runs it), or — when that cannot be told (another host) — the run has not recorded a
  heartbeat for ``RUN_STALE_AFTER`` seconds;
* ``running``: otherwise (the counts are the progress at the last heartbeat).

Every run starts by taking over the aborted runs whose ``as_of`` is not later than its own:
it marks them ``resumed_by`` itself and, since a run bills everything due up to its as_of
(customers are claimed chunk by chunk, a killed run's chunk rolled back), completes their
work; its summary lists them as ``resumed_runs``.
"""
import datetime as dt
import os
import socket
import uuid
from decimal import Decimal

from sqlalchemy import func, select, update

from kc_billing.models import billing_runs, counters
from kc_common.clock import berlin_today
from kc_common.db import as_utc, dialect_insert, utcnow
from kc_common.errors import NotFound, ValidationFailed
from kc_common.schemas import money

RUNNING, FINISHED, ABORTED = "running", "finished", "aborted"
STATES = (RUNNING, FINISHED, ABORTED)
_START_LOCK = "billing_run_start"  # a counters row: starts are serialised on its row lock

# Runs this process is executing right now (the CLI and the service alike).
ACTIVE = set()
_TOKEN = uuid.uuid4().hex[:12]


def owner_id():
    """``host:pid:token`` of this process (the token tells a restarted pid 1 from its predecessor)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def check_as_of(as_of, settings, today=None, field="as_of"):
    """A run's Stichtag within ``RUN_MAX_DAYS_BACK`` .. ``RUN_MAX_DAYS_AHEAD`` days of today.

    Everything due is billed by a run as of today, so a date further ahead only bills the
    future (as of 4454 it billed 172,336 periods) and one further back is a typo.
    """
    today = today or berlin_today()
    latest = today + dt.timedelta(days=settings.run_max_days_ahead)
    earliest = today - dt.timedelta(days=settings.run_max_days_back)
    if as_of > latest:
        raise ValidationFailed("Der Stichtag liegt zu weit in der Zukunft.", fields={field: [
            f"Der Stichtag darf höchstens {settings.run_max_days_ahead} Tage nach heute liegen "
            f"(spätestens {latest:%d.%m.%Y})."]})
    if as_of < earliest:
        raise ValidationFailed("Der Stichtag liegt zu weit in der Vergangenheit.", fields={field: [
            f"Der Stichtag darf höchstens {settings.run_max_days_back} Tage vor heute liegen "
            f"(frühestens {earliest:%d.%m.%Y})."]})
    return as_of


def owner_alive(owner, run_id):
    """Whether the process that owns ``run_id`` still runs it: True, False, or None (unknown:
    another host, or no owner recorded; only the heartbeat can tell)."""
    try:
        host, pid, token = owner.rsplit(":", 2)
        pid = int(pid)
    except (AttributeError, ValueError):
        return None
    if host != socket.gethostname():
        return None
    if pid == os.getpid():  # this process, or a predecessor with the same pid (container pid 1)
        return token == _TOKEN and run_id in ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return None  # a process with that pid runs: the heartbeat tells whether it is ours


def state(row, settings, now=None):
    if row.finished_at is not None:
        return FINISHED
    if row.aborted_at is not None:
        return ABORTED
    alive = owner_alive(row.owner, row.id)
    if alive is not None:
        return RUNNING if alive else ABORTED
    now = now or utcnow()
    beat = as_utc(row.heartbeat_at or row.started_at)
    return ABORTED if (now - beat).total_seconds() > settings.run_stale_after else RUNNING


def _serialise_starts(session):
    """Row lock of one counters row: two starts never both see 'nothing running'.

    (On SQLite ``BEGIN IMMEDIATE`` already serialises every write transaction.)"""
    session.execute(dialect_insert(session)(counters).values(name=_START_LOCK, value=0)
                    .on_conflict_do_nothing())
    session.execute(select(counters.c.value).where(counters.c.name == _START_LOCK).with_for_update())


def start(session, as_of, settings, *, started_by, join=True, now=None):
    """Record a new run as of ``as_of``; returns ``(view, created)``.

    With ``join`` a run for the same as_of that is still running is returned instead
    (``created`` False): starting twice does the work once. Aborted runs with an as_of not
    later than this one's are taken over (``resumed_by``).
    """
    check_as_of(as_of, settings)
    now = now or utcnow()
    _serialise_starts(session)
    open_runs = session.execute(select(billing_runs).where(
        billing_runs.c.finished_at.is_(None), billing_runs.c.resumed_by.is_(None))
        .order_by(billing_runs.c.id)).all()
    if join:
        for row in open_runs:
            if row.as_of == as_of and state(row, settings, now) == RUNNING:
                return view(session, row, settings, now), False
    run_id = session.execute(billing_runs.insert().values(
        as_of=as_of, started_at=now, heartbeat_at=now, started_by=started_by, owner=owner_id(),
    ).returning(billing_runs.c.id)).scalar_one()
    ACTIVE.add(run_id)  # this process runs it from now on (execute_run forgets it at its end)
    dead = [row.id for row in open_runs
            if row.as_of <= as_of and state(row, settings, now) == ABORTED]
    if dead:
        session.execute(update(billing_runs).where(billing_runs.c.id.in_(dead)).values(
            aborted_at=func.coalesce(billing_runs.c.aborted_at, now), resumed_by=run_id))
    return get(session, run_id, settings, now), True


def heartbeat(session, run_id, progress=None, now=None):
    """The run is alive; ``progress``: counts so far (customers, customers_done, invoices, ...)."""
    values = {k: v for k, v in (progress or {}).items()
              if k in ("customers", "customers_done", "invoices", "contracts", "skipped", "errors",
                       "gross")}
    session.execute(update(billing_runs).where(billing_runs.c.id == run_id).values(
        heartbeat_at=now or utcnow(), **values))


def finish(session, run_id, summary, now=None):
    now = now or utcnow()
    heartbeat(session, run_id, summary, now)
    session.execute(update(billing_runs).where(billing_runs.c.id == run_id).values(finished_at=now))


def abort(session, run_id, progress=None, now=None):
    """The run stops before its end (service stopping, Ctrl-C, an error): shown as aborted,
    the next run completes its work."""
    now = now or utcnow()
    heartbeat(session, run_id, progress, now)
    session.execute(update(billing_runs).where(
        billing_runs.c.id == run_id, billing_runs.c.finished_at.is_(None)).values(
        aborted_at=func.coalesce(billing_runs.c.aborted_at, now)))


def resumed_runs(session, run_id):
    return session.execute(select(billing_runs.c.id).where(billing_runs.c.resumed_by == run_id)
                           .order_by(billing_runs.c.id)).scalars().all()


def view(session, row, settings, now=None):
    return {"run_id": row.id, "as_of": row.as_of, "state": state(row, settings, now),
            "started_by": row.started_by, "started_at": row.started_at,
            "heartbeat_at": row.heartbeat_at, "finished_at": row.finished_at,
            "aborted_at": row.aborted_at, "customers": row.customers,
            "customers_done": row.customers_done, "invoices": row.invoices,
            "contracts": row.contracts, "gross": money(row.gross or Decimal("0")),
            "skipped": row.skipped, "errors": row.errors,
            "resumed_runs": resumed_runs(session, row.id), "resumed_by": row.resumed_by}


def get(session, run_id, settings, now=None):
    row = session.execute(select(billing_runs).where(billing_runs.c.id == run_id)).first()
    if row is None:
        raise NotFound("Abrechnungslauf nicht gefunden.")
    return view(session, row, settings, now)


def page(session, settings, *, page, per_page):
    """Recent runs, newest first."""
    total = session.execute(select(func.count()).select_from(billing_runs)).scalar_one()
    rows = session.execute(select(billing_runs).order_by(billing_runs.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    now = utcnow()
    return {"items": [view(session, row, settings, now) for row in rows], "total": total,
            "page": page, "per_page": per_page}
