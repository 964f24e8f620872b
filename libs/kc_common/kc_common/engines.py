"""How a service connects to its database: PostgreSQL with a pool that checks connections
before use, or SQLite, the embedded default, made to cooperate with eventlet (one write
transaction per process at a time, waited for green; see :class:`SqliteWriteGate`).

:mod:`kc_common.db` builds its engines here (``make_engine``).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from kc_common.errors import ServiceUnavailable


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg2 here: SQLAlchemy 2.1 would pick psycopg 3,
    which does not cooperate with eventlet."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


# --- SQLite as an embedded default that cooperates with eventlet -------------------------

SQLITE_BUSY_PATIENCE = float(os.environ.get("SQLITE_BUSY_PATIENCE", 30.0))


def _is_locked(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text


class SqliteWriteGate:
    """One write transaction at a time per process, waited for cooperatively.

    SQLite allows one writer per file. Its own busy handler sleeps in C, which under
    eventlet freezes the whole process, so the green thread holding the lock can never
    run to release it. Instead: a green semaphore serialises transactions inside the
    process, every transaction starts with ``BEGIN IMMEDIATE`` (takes the write lock up
    front, so no statement later in the transaction can meet a busy database), and a
    busy ``BEGIN`` (another *process* on the same file) is retried with a green sleep.
    """

    def __init__(self, patience: float | None = None) -> None:
        self.patience = SQLITE_BUSY_PATIENCE if patience is None else patience
        self._sem = Semaphore(1)
        self._owner = None
        self._holder = None  # the DBAPI connection whose transaction holds the gate

    def acquire(self, dbapi_connection: Any) -> None:
        me = eventlet.getcurrent()
        if self._owner is me:
            raise RuntimeError("a second transaction on the same SQLite database inside an "
                               "open one would deadlock; finish the first unit of work first")
        if not self._sem.acquire(timeout=self.patience):
            raise ServiceUnavailable("Die Datenbank ist ausgelastet; bitte später erneut versuchen.",
                                     {"reason": "database_busy"})
        self._owner, self._holder = me, dbapi_connection

    def release(self, dbapi_connection: Any) -> None:
        if self._holder is not None and self._holder is dbapi_connection:
            self._owner = self._holder = None
            self._sem.release()

    def begin_immediate(self, conn: Any) -> None:
        deadline = time.monotonic() + self.patience
        delay = 0.002
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise
            eventlet.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)


def _raw(connection: Any) -> Any:
    return getattr(connection, "dbapi_connection", connection)


def _install_sqlite_gate(engine: Engine) -> None:
    gate = SqliteWriteGate()
    engine.kc_write_gate = gate  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        raw = _raw(conn.connection)
        gate.acquire(raw)
        try:
            gate.begin_immediate(conn)
        except BaseException:
            gate.release(raw)
            raise

    # The gate opens once COMMIT/ROLLBACK has really happened; the pool's reset of a
    # returned connection is a rollback too, so a transaction can never leak the gate.
    dialect = engine.dialect
    original_commit, original_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            original_commit(dbapi_connection)
        finally:
            gate.release(_raw(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            original_rollback(dbapi_connection)
        finally:
            gate.release(_raw(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # A short C-level busy wait only as a safety net; contention is waited out green.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 0.1},
                               **kwargs)
        _install_sqlite_gate(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_timeout", 10)
    return create_engine(url, pool_pre_ping=True, **kwargs)
