"""kc_common.db.UnitOfWork: commit, rollback, and commit-then-raise (``after_commit``).

On embedded SQLite: no broker, no server, fast."""
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from kc_common.db import StandaloneDatabase, add_messaging_tables, after_commit
from kc_common.errors import ServiceUnavailable, Unauthenticated

metadata = MetaData()
attempts = Table("attempts", metadata, Column("id", Integer, primary_key=True), Column("what", String(20)))
add_messaging_tables(metadata)


def _db(tmp_path, name="a"):
    db = StandaloneDatabase(metadata, f"sqlite:///{tmp_path}/{name}.db", "test")
    metadata.create_all(db.engine)
    return db


def _count(db, table=attempts):
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_a_marked_error_commits_the_work_then_reaches_the_caller_as_raised(tmp_path):
    db = _db(tmp_path)
    error = Unauthenticated("Kundennummer/E-Mail oder Passwort ist falsch.")
    with pytest.raises(Unauthenticated) as raised:
        with db.unit_of_work() as uow:
            uow.session.execute(attempts.insert().values(what="failed"))
            uow.emit("login_failed", {"n": 1})
            raise after_commit(error)
    assert raised.value is error and raised.value.message.startswith("Kundennummer")
    assert _count(db) == 1 and _count(db, db.outbox) == 1  # the attempt and its event both kept


def test_an_unmarked_error_rolls_back(tmp_path):
    db = _db(tmp_path)
    with pytest.raises(Unauthenticated):
        with db.unit_of_work() as uow:
            uow.session.execute(attempts.insert().values(what="failed"))
            uow.emit("login_failed", {"n": 1})
            raise Unauthenticated("nein")
    assert _count(db) == 0 and _count(db, db.outbox) == 0


def test_a_marked_error_gives_way_when_the_deadline_has_passed(tmp_path):
    db = _db(tmp_path)
    with pytest.raises(ServiceUnavailable):
        with db.unit_of_work() as uow:
            uow.session.execute(attempts.insert().values(what="failed"))
            uow._deadline = 1.0  # the caller gave up long ago: nothing may happen any more
            raise after_commit(Unauthenticated("nein"))
    assert _count(db) == 0


def test_only_the_innermost_unit_of_work_commits(tmp_path):
    outer_db, inner_db = _db(tmp_path, "outer"), _db(tmp_path, "inner")
    with pytest.raises(Unauthenticated):
        with outer_db.unit_of_work() as outer:
            outer.session.execute(attempts.insert().values(what="outer"))
            with inner_db.unit_of_work() as inner:
                inner.session.execute(attempts.insert().values(what="inner"))
                raise after_commit(Unauthenticated("nein"))
    assert _count(inner_db) == 1 and _count(outer_db) == 0
