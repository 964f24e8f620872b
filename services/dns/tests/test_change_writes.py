"""How a change set is written (kc_dns.domain.apply_changes), on SQLite and PostgreSQL.

The write path reads only what the rules need: the zone row is locked, checked against
If-Match and bumped by one UPDATE; the touched names are read with the SOA in one query;
the answer's records come from INSERT … RETURNING. These tests hold it to what a full
re-read of the zone would say.
"""
import datetime as dt

import pytest
from alembic import command
from sqlalchemy import select, update

from kc_common.db import StandaloneDatabase
from kc_common.errors import Conflict, NotFound, ValidationFailed
from kc_common.migrations import alembic_config
from kc_common.testing import truncate_all
from kc_dns import domain
from kc_dns.models import metadata, records, zones
from kc_dns.rules import Policy

CUSTOMER = 100001
ZONE = "schreiben.de"
DEFAULTS = {"nameservers": ["ns1.kc.example.", "ns2.kc.example."], "hostmaster": "hm.kc.example.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.kc.example.", "ttl": 3600}
TODAY = dt.date(2026, 11, 29)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/dns.db"
        command.upgrade(alembic_config("kc_dns", url), "head")
    else:
        url = request.getfixturevalue("database_factory")("kc_dns")
        truncate_all(url)
    database = StandaloneDatabase(metadata, url, "dns")
    with database.unit_of_work() as uow:
        domain.create_zones_for_order(uow, {"customer_id": CUSTOMER, "items": [
            {"contract_id": 1, "kind": "domain", "domain": ZONE}]}, DEFAULTS, today=TODAY)
        zone_id = uow.session.execute(select(zones.c.id).where(zones.c.name == ZONE)).scalar_one()
        uow.session.execute(records.insert(), [
            dict(zone_id=zone_id, name=n, type=t, ttl=3600, content=c) for n, t, c in [
                ("h1", "A", "10.0.0.1"), ("h1", "A", "10.0.0.2"), ("h1", "TXT", '"eins"'),
                ("c1", "CNAME", f"h1.{ZONE}."), ("m1", "MX", f"10 h1.{ZONE}.")]])
    yield database
    database.engine.dispose()


def apply(db, version, *changes, customer=CUSTOMER, zone=ZONE, today=TODAY):
    with db.unit_of_work() as uow:
        return domain.apply_changes(uow, customer, zone, {"If-Match": f'"{version}"'},
                                    list(changes), Policy(), today=today)


def state(db):
    with db.unit_of_work() as uow:
        zone = uow.session.execute(select(zones).where(zones.c.name == ZONE)).one()
        rows = uow.session.execute(select(records.c.id, records.c.name, records.c.type, records.c.ttl,
                                          records.c.content).where(records.c.zone_id == zone.id)
                                   .order_by(records.c.id)).all()
        return zone.version, zone.serial, [tuple(r) for r in rows]


def test_the_answer_holds_the_stored_rows_of_the_sets_written(db):
    version, serial, _ = state(db)
    result = apply(db, version,
                   {"action": "replace", "name": "h1", "type": "A", "ttl": 600,
                    "records": ["10.0.0.9", "10.0.0.8"]},
                   {"action": "add", "name": "h1", "type": "TXT", "records": ["zwei"]},
                   {"action": "add", "name": "@", "type": "TXT", "records": ["apex"]},
                   {"action": "delete", "name": "m1", "type": "MX"})
    after_version, after_serial, rows = state(db)
    assert (result["version"], result["serial"]) == (after_version, after_serial) == (
        version + 1, domain.next_serial(serial, TODAY))
    assert result["etag"] == f'"{after_version}"'
    stored = {(n, t): [] for _, n, t, _, _ in rows}
    for i, n, t, ttl, c in rows:
        stored[(n, t)].append({"id": i, "name": n, "type": t, "ttl": ttl, "content": c})
    written = [("h1", "A"), ("h1", "TXT"), ("@", "TXT")]
    assert sorted((r["id"], r["name"], r["type"], r["ttl"], r["content"]) for r in result["records"]) \
        == sorted((r["id"], r["name"], r["type"], r["ttl"], r["content"]) for k in written
                  for r in stored[k])
    assert {r["content"] for r in stored[("h1", "TXT")]} == {'"eins"', '"zwei"'}
    assert {r["ttl"] for r in stored[("h1", "A")]} == {600}
    assert result["deleted"] == [{"name": "m1", "type": "MX"}] and ("m1", "MX") not in stored
    soa = stored[("@", "SOA")]
    assert len(soa) == 1 and soa[0]["content"].split()[2] == str(after_serial)   # read with "@"


def test_the_serial_rises_to_todays_first_when_it_is_older_and_by_one_otherwise(db):
    version = state(db)[0]
    with db.unit_of_work() as uow:
        uow.session.execute(update(zones).where(zones.c.name == ZONE).values(serial=2020010107))
    first = apply(db, version, {"action": "replace", "name": "h2", "type": "A", "records": ["10.0.0.3"]})
    assert first["serial"] == 2026112901
    second = apply(db, version + 1, {"action": "delete", "name": "h2", "type": "A"})
    assert second["serial"] == 2026112902
    _, serial, rows = state(db)
    assert serial == 2026112902
    assert [c for _, n, t, _, c in rows if t == "SOA"][0].split()[2] == "2026112902"   # not "@"


def test_a_change_at_one_name_meets_the_records_already_there(db):
    """Only the touched names are read, yet a CNAME beside existing data is refused either way
    round, and a second record in a CNAME set too; nothing is written, the version stays."""
    before = state(db)
    version = before[0]
    cases = [
        ({"action": "add", "name": "h1", "type": "CNAME", "records": ["c1"]},
         "Ein CNAME-Eintrag muss allein stehen, dort gibt es aber auch A, TXT"),
        ({"action": "replace", "name": "c1", "type": "AAAA", "records": ["2001:db8::1"]},
         "Ein CNAME-Eintrag muss allein stehen, dort gibt es aber auch AAAA"),
        ({"action": "add", "name": "c1", "type": "CNAME", "records": ["m1"]},
         "nur ein CNAME-Eintrag möglich"),
        ({"action": "add", "name": "h1", "type": "A", "records": ["10.0.0.2"]},
         "Diesen Eintrag gibt es schon"),
        ({"action": "replace", "name": "m2", "type": "MX", "records": ["10 c1"]},
         "Das Ziel ist ein CNAME-Eintrag"),
    ]
    for change, words in cases:
        with pytest.raises(ValidationFailed) as err:
            apply(db, version, change)
        assert words in " ".join(m for ms in err.value.fields.values() for m in ms), (change, err.value.fields)
    assert state(db) == before


def test_a_stale_version_is_a_conflict_and_a_foreign_zone_not_found(db):
    before = state(db)
    with pytest.raises(Conflict) as err:
        apply(db, before[0] - 1, {"action": "replace", "name": "h2", "type": "A", "records": ["10.0.0.3"]})
    assert err.value.details["current_version"] == before[0]
    for kwargs in ({"customer": CUSTOMER + 1}, {"zone": "fremd.de"}):
        with pytest.raises(NotFound):
            apply(db, before[0], {"action": "replace", "name": "h2", "type": "A",
                                  "records": ["10.0.0.3"]}, **kwargs)
    assert state(db) == before


def test_the_source_reads_the_soa_once_and_only_the_names_asked(db):
    with db.unit_of_work() as uow:
        zone_id = uow.session.execute(select(zones.c.id).where(zones.c.name == ZONE)).scalar_one()
        source = domain.SqlSource(uow.session, zone_id, ZONE, with_soa=True)
        sets = source.rows_at({"h1"})
        assert set(sets) == {("h1", "A"), ("h1", "TXT")} and sets[("h1", "A")].records == [
            "10.0.0.1", "10.0.0.2"]
        assert len(source.soa) == 1 and source.soa[0][1].split()[2] == "2026112901"
        assert set(source.rows_at({"c1", "m1"})) == {("c1", "CNAME"), ("m1", "MX")}
        apex = domain.SqlSource(uow.session, zone_id, ZONE, with_soa=True).rows_at({"@", "h1"})
        assert {("@", "SOA"), ("@", "NS"), ("@", "MX"), ("h1", "A")} <= set(apex)
        assert ("c1", "CNAME") not in apex
