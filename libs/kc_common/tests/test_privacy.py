"""kc_common.privacy: one customer's rows, children by foreign key, secrets left out, bounded."""
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
)
from sqlalchemy.orm import Session

from kc_common import privacy

metadata = MetaData()
people = Table("people", metadata, Column("id", Integer, primary_key=True),
               Column("customer_id", Integer), Column("name", String(50)), Column("password_hash", String(50)),
               Column("totp_secret_enc", String(50)))
notes = Table("notes", metadata, Column("id", Integer, primary_key=True),
              Column("person_id", Integer, ForeignKey("people.id")), Column("text", String(50)))
unrelated = Table("unrelated", metadata, Column("id", Integer, primary_key=True), Column("x", String(5)))


def _session():
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    session = Session(engine)
    session.execute(people.insert(), [
        {"id": i, "customer_id": 1 if i <= 3 else 2, "name": f"p{i}", "password_hash": "h", "totp_secret_enc": "s"}
        for i in range(1, 6)])
    session.execute(notes.insert(), [{"id": i, "person_id": i, "text": f"note {i}"} for i in range(1, 6)])
    session.execute(unrelated.insert(), [{"id": 1, "x": "y"}])
    return session


def test_one_customer_children_no_secrets_bounded():
    part = privacy.customer_part(_session(), metadata, 1, max_rows=2)
    assert set(part) == {"people", "notes"}
    assert [r["name"] for r in part["people"]["rows"]] == ["p1", "p2"] and part["people"]["truncated"]
    assert all(set(r) == {"id", "customer_id", "name"} for r in part["people"]["rows"])
    assert [r["text"] for r in part["notes"]["rows"]] == ["note 1", "note 2"]
    other = privacy.customer_part(_session(), metadata, 2)
    assert [r["name"] for r in other["people"]["rows"]] == ["p4", "p5"] and not other["people"]["truncated"]
    assert [r["text"] for r in other["notes"]["rows"]] == ["note 4", "note 5"]


def test_a_part_too_large_drops_the_largest_table(monkeypatch):
    monkeypatch.setattr(privacy, "MAX_PART_BYTES", 300)
    part = privacy.bounded({"big": {"rows": [{"t": "x" * 100}] * 5, "truncated": False},
                            "small": {"rows": [{"t": "y"}], "truncated": False}})
    assert part["big"] == {"rows": [], "truncated": True, "omitted": 5}
    assert part["small"]["rows"] == [{"t": "y"}]
