"""dns on the real bus and PostgreSQL: change sets, conflicts, serials, zone files, removal."""
import base64
import datetime as dt
import importlib.util
import pathlib
import subprocess
from functools import partial

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import select, update

from kc_common import testing
from kc_common.db import StandaloneDatabase
from kc_common.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from kc_common.events import declare_topology
from kc_common.testing import publish, wait_for
from kc_dns import domain
from kc_dns.models import metadata, records, zones
from kc_dns.service import DnsService


def _sibling(name):
    spec = importlib.util.spec_from_file_location(f"kc_dns_tests_{name}",
                                                  pathlib.Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rules = _sibling("test_rules")   # the invalid-input table and the tricky zone, shared
INVALID, NAMED_CHECKZONE, tricky_zone = _rules.INVALID, _rules.NAMED_CHECKZONE, _rules.tricky_zone

OWNER = {"customer_id": 100001}
OTHER = {"customer_id": 100002}
ZONE = "xn--mller-kva.de"
DEFAULTS = {"nameservers": ["ns1.kc.example.", "ns2.kc.example."], "hostmaster": "hostmaster.kc.example.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.kc.example.", "ttl": 3600}


def v(version):
    return {"If-Match": f'"{version}"'}


@pytest.fixture
def db(config):
    database = StandaloneDatabase(metadata, config["DATABASE_URL"], "dns")
    yield database
    database.engine.dispose()


@pytest.fixture
def dns(container_factory, config, db):
    config["DNS_DEFAULTS"] = DEFAULTS
    with db.unit_of_work() as uow:
        domain.create_zones_for_order(uow, {"customer_id": 100001, "items": [
            {"contract_id": 7, "kind": "domain", "domain": "müller.de"},
            {"contract_id": 8, "kind": "domain", "domain": "zweite.de"}]}, DEFAULTS)
        # base records of the invalid-input table (test_rules.base_zone)
        zone_id = uow.session.execute(select(zones.c.id).where(zones.c.name == ZONE)).scalar_one()
        uow.session.execute(records.insert(), [
            dict(zone_id=zone_id, name="alias", type="CNAME", ttl=3600, content=f"www.{ZONE}."),
            dict(zone_id=zone_id, name="intern", type="NS", ttl=3600, content=f"ns1.intern.{ZONE}."),
            dict(zone_id=zone_id, name="ns1.intern", type="A", ttl=3600, content="192.0.2.53")])
    declare_topology(config["AMQP_URI"], [DnsService])
    container = container_factory(DnsService, config)
    container.start()

    def published():   # the setup's zone_changed(created) events are out before a test listens
        with db.unit_of_work() as uow:
            return not uow.session.execute(select(db.outbox.c.id).where(
                db.outbox.c.published_at.is_(None))).first()
    wait_for(published, message="outbox relay")
    return container


call = partial(testing.call, context=OWNER)


def snapshot(db):
    with db.unit_of_work() as uow:
        zone = uow.session.execute(select(zones).where(zones.c.name == ZONE)).one()
        rows = uow.session.execute(select(records.c.name, records.c.type, records.c.ttl,
                                          records.c.content).where(records.c.zone_id == zone.id)
                                   .order_by(records.c.id)).all()
        return zone.version, zone.serial, [tuple(r) for r in rows]


def test_change_set_applies_at_once_serial_once_and_zone_changed(dns, db, capture_events):
    changed = capture_events("dns", "zone_changed")
    version, serial, _ = snapshot(db)
    result = call(dns, "apply_changes", "müller.de", headers=v(version), data={"changes": [
        {"action": "replace", "name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.20"]},
        {"action": "add", "name": "@", "type": "MX", "records": ["20 mail"]},
        {"action": "replace", "name": "mail", "type": "A", "records": ["192.0.2.25"]},
        {"action": "replace", "name": "_dmarc", "type": "TXT", "records": ["v=DMARC1; p=none"]},
        {"action": "delete", "name": "www", "type": "AAAA"}]})
    assert result["version"] == version + 1 and result["etag"] == f'"{version + 1}"'
    today = dt.datetime.now(dt.UTC).date()
    assert result["serial"] == domain.next_serial(serial, today)
    assert result["deleted"] == [{"name": "www", "type": "AAAA"}]
    assert {(r["name"], r["type"]) for r in result["records"]} == {
        ("www", "A"), ("@", "MX"), ("mail", "A"), ("_dmarc", "TXT")}   # the sets it wrote
    zone = call(dns, "get_zone", "müller.de")
    assert (zone["version"], zone["serial"]) == (result["version"], result["serial"])
    soa = [r for r in zone["records"] if r["type"] == "SOA"][0]
    assert soa["content"].split()[2] == str(result["serial"]) and soa["managed"]
    got = {(r["name"], r["type"]): (r["ttl"], r["content"]) for r in zone["records"]}
    assert got[("www", "A")] == (300, "192.0.2.20")
    assert got[("mail", "A")] == (3600, "192.0.2.25")
    assert ("www", "AAAA") not in got
    assert sorted(r["content"] for r in zone["records"] if r["type"] == "MX") == \
        ["10 mx.kc.example.", f"20 mail.{ZONE}."]
    event = changed.wait(1)[0]["data"]
    assert event == {"zone": ZONE, "serial": result["serial"], "customer_id": 100001, "action": "changed"}
    assert len(changed.drain(db.engine.url.render_as_string(hide_password=False))) == 1


def test_every_invalid_input_is_refused_with_its_message_and_nothing_is_saved(dns, db):
    before = snapshot(db)
    for bad, field, words in INVALID:
        good = {"action": "replace", "name": "neu", "type": "A", "records": ["192.0.2.99"]}
        with pytest.raises(ValidationFailed) as err:   # a valid change in the same set is not saved either
            call(dns, "apply_changes", "müller.de", headers=v(before[0]),
                 data={"changes": [good, {k: x for k, x in bad.items() if x is not None}]})
        shifted = field.replace("changes.0", "changes.1", 1)
        fields = err.value.fields
        assert shifted in fields and words in " ".join(fields[shifted]), (bad, fields)
        assert "nicht gespeichert" in err.value.message
    assert snapshot(db) == before


def test_malformed_change_sets_name_the_field(dns):
    with pytest.raises(ValidationFailed) as err:
        call(dns, "apply_changes", "müller.de", headers=v(1),
             data={"changes": [{"action": "upsert", "name": "x", "type": "A", "records": [1]}]})
    assert {"changes.0.action", "changes.0.records.0"} <= set(err.value.fields)
    with pytest.raises(ValidationFailed) as err:
        call(dns, "apply_changes", "müller.de", headers={"If-Match": None},
             data={"changes": [{"action": "delete", "name": "www", "type": "A"}]})
    assert "If-Match" in err.value.fields


def test_stale_version_is_a_conflict_and_changes_nothing(dns, db):
    version = snapshot(db)[0]
    call(dns, "apply_changes", "müller.de", headers=v(version),
         data={"changes": [{"action": "add", "name": "a", "type": "A", "records": ["192.0.2.1"]}]})
    before = snapshot(db)
    with pytest.raises(Conflict) as err:
        call(dns, "apply_changes", "müller.de", headers=v(version),
             data={"changes": [{"action": "add", "name": "b", "type": "A", "records": ["192.0.2.2"]}]})
    assert err.value.details["current_version"] in (version + 1, str(version + 1))
    assert snapshot(db) == before


def test_concurrent_edits_one_wins_per_version_and_never_duplicate(dns, db, config):
    version, serial, _ = snapshot(db)
    outcome = []

    def edit(n, content):
        with ServiceRpcProxy("dns", config, context_data=OWNER) as proxy:
            try:
                proxy.apply_changes("müller.de", headers=v(version), data={"changes": [
                    {"action": "add", "name": "shared", "type": "A", "records": [content]}]})
                outcome.append("ok")
            except Conflict:
                outcome.append("conflict")

    pool = eventlet.GreenPool()
    for n in range(8):  # half add the same record, half different ones
        pool.spawn(edit, n, "192.0.2.1" if n % 2 else f"192.0.2.{100 + n}")
    pool.waitall()
    assert sorted(outcome) == ["conflict"] * 7 + ["ok"]
    after_version, after_serial, rows = snapshot(db)
    assert after_version == version + 1 and after_serial > serial
    assert len([r for r in rows if r[0] == "shared"]) == 1

    # Sessions that reload and retry on 409 all get their change in, each exactly once.
    def retrying(n):
        with ServiceRpcProxy("dns", config, context_data=OWNER) as proxy:
            while True:
                current = proxy.get_zone("müller.de")["version"]
                try:
                    return proxy.apply_changes("müller.de", headers=v(current), data={"changes": [
                        {"action": "add", "name": "many", "type": "TXT", "records": [f"n={n}"]}]})
                except Conflict:
                    eventlet.sleep(0.01)

    results = list(pool.imap(retrying, range(6)))
    final_version, final_serial, rows = snapshot(db)
    assert final_version == after_version + 6
    assert sorted(r["version"] for r in results) == list(range(after_version + 1, final_version + 1))
    assert sorted(r[3] for r in rows if r[0] == "many") == sorted(f'"n={n}"' for n in range(6))
    assert final_serial == after_serial + 6


def test_serial_rolls_over_past_99_changes_a_day(dns, db):
    today = dt.datetime.now(dt.UTC).date()
    with db.unit_of_work() as uow:
        uow.session.execute(update(zones).where(zones.c.name == ZONE)
                            .values(serial=domain.initial_serial(today) + 98))   # YYYYMMDD99
    version = snapshot(db)[0]
    serials = []
    for n in range(3):
        result = call(dns, "apply_changes", "müller.de", headers=v(version + n), data={"changes": [
            {"action": "replace", "name": "roll", "type": "TXT", "records": [f"{n}"]}]})
        serials.append(result["serial"])
    base = int(today.strftime("%Y%m%d")) * 100
    assert serials == [base + 100, base + 101, base + 102]   # (YYYYMMDD+1)00, 01, 02: still rising
    soa = [r for r in call(dns, "get_zone", "müller.de")["records"] if r["type"] == "SOA"][0]
    assert soa["content"].split()[2] == str(base + 102)


def test_another_customers_zone_is_not_found(dns):
    change = {"changes": [{"action": "add", "name": "x", "type": "A", "records": ["192.0.2.1"]}]}
    for method, kwargs in [("get_zone", {}), ("export_zone", {}),
                           ("apply_changes", {"headers": v(1), "data": change}),
                           ("import_zone", {"headers": v(1), "data": {"zone_file": "x A 192.0.2.1"}})]:
        with pytest.raises(NotFound):
            call(dns, method, "müller.de", context=OTHER, **kwargs)
    assert call(dns, "list_zones", context=OTHER)["total"] == 0
    with pytest.raises(Unauthenticated):
        call(dns, "get_zone", "müller.de", context={})
    listed = call(dns, "list_zones")
    assert [z["name_unicode"] for z in listed["items"]] == ["müller.de", "zweite.de"]
    assert listed["items"][0]["record_count"] == 11


def rpc_tricky_changes():
    """test_rules.tricky_zone()'s records as replace changes (apex SOA/NS are the system's)."""
    sets = {}
    for r in tricky_zone():
        if r["type"] == "SOA" or (r["type"] == "NS" and r["name"] == "@"):
            continue
        sets.setdefault((r["name"], r["type"]), []).append(r["content"])
    return [{"action": "replace", "name": n if n == "@" else f"{n}.{ZONE}.", "type": t, "records": c}
            for (n, t), c in sets.items()]


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone missing: run deploy/ensure-tools.sh")
def test_export_passes_named_checkzone_and_imports_back(dns, db, tmp_path):
    version = snapshot(db)[0]
    call(dns, "apply_changes", "müller.de", headers=v(version), data={"changes": rpc_tricky_changes()})
    exported = call(dns, "export_zone", "müller.de")
    assert exported["filename"] == f"{ZONE}.zone"
    text = base64.b64decode(exported["content_b64"]).decode("utf-8")
    path = tmp_path / "export.zone"
    path.write_text(text)
    proc = subprocess.run([NAMED_CHECKZONE, *_rules.STRICT, ZONE, str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + text

    # the export imported into the second zone (origin swapped): everything but SOA/NS comes over
    other = text.replace(ZONE, "zweite.de")
    report = call(dns, "import_zone", "zweite.de", headers=v(1),
                  data={"zone_file": other, "replace_all": True})
    assert report["applied"] and report["rejected"] == [] and report["version"] == 2
    assert sorted(i["text"].split()[3] for i in report["ignored"]) == ["NS", "NS", "SOA"]
    mine = [(r["name"], r["type"], r["content"].replace(ZONE, "zweite.de"))
            for r in call(dns, "get_zone", "müller.de")["records"] if not r["managed"]]
    theirs = [(r["name"], r["type"], r["content"])
              for r in call(dns, "get_zone", "zweite.de")["records"] if not r["managed"]]
    assert sorted(theirs) == sorted(mine)


def test_import_rejects_bad_records_with_a_report_and_applies_the_rest(dns, db):
    zone_file = """$TTL 600
www     IN A     192.0.2.77
www     IN AAAA  192.0.2.77
shop    IN CNAME www
shop    IN TXT   "cname and other data"
@       IN MX    10 192.0.2.1.
ftp     IN PTR   host.example.
_sip._tcp IN SRV 10 5 99999 sip.example.net.
out.example.org. IN A 192.0.2.1
neu     IN TXT   "das hier ist gut"
"""
    dry = call(dns, "import_zone", "müller.de", headers=v(1),
               data={"zone_file": zone_file, "dry_run": True})
    assert not dry["applied"] and dry["version"] == 1
    report = call(dns, "import_zone", "müller.de", headers=v(1), data={"zone_file": zone_file})
    assert report["applied"] and report["version"] == 2
    assert {r["line"] for r in report["rejected"]} == {3, 4, 6, 7, 8, 9}
    assert all(r["message"] for r in report["rejected"])
    assert report["rejected"] == dry["rejected"]
    got = {(r["name"], r["type"]): r for r in call(dns, "get_zone", "müller.de")["records"]}
    assert got[("www", "A")]["content"] == "192.0.2.77" and got[("www", "A")]["ttl"] == 600
    assert got[("neu", "TXT")]["content"] == '"das hier ist gut"'
    assert ("shop", "CNAME") not in got   # the CNAME is refused, the TXT beside it stays
    assert got[("shop", "TXT")]["content"] == '"cname and other data"'
    with pytest.raises(Conflict):
        call(dns, "import_zone", "müller.de", headers=v(1), data={"zone_file": zone_file})
    with pytest.raises(ValidationFailed) as err:
        call(dns, "import_zone", "müller.de", headers=v(2),
             data={"zone_file": "".join(f"h{i} A 192.0.2.1\n" for i in range(5001))})
    assert "höchstens 5000" in err.value.fields["zone_file"][0]


CONTRACT_TERMINATED = {
    "id": "6c1f1d9e-0000-4000-8000-00000000000{n}", "type": "contract_terminated", "source": "catalog",
    "occurred_at": "2026-11-26T10:00:00+00:00",
    "data": {"contract_id": 7, "customer_id": 100001, "kind": "domain", "domain": "müller.de",
             "terminated_on": "2026-11-26"},
}


def test_contract_terminated_removes_the_zone_once(dns, config, capture_events):
    removed = capture_events("dns", "zone_changed")
    stranger = dict(CONTRACT_TERMINATED, id=CONTRACT_TERMINATED["id"].format(n=1),
                    data=dict(CONTRACT_TERMINATED["data"], customer_id=100002, contract_id=99))
    publish(config, stranger)   # someone else's contract never removes this zone
    event = dict(CONTRACT_TERMINATED, id=CONTRACT_TERMINATED["id"].format(n=2))
    publish(config, event)
    publish(config, event)
    assert removed.wait(1)[0]["data"] == {"zone": ZONE, "serial": removed.received[0]["data"]["serial"],
                                          "customer_id": 100001, "action": "removed"}
    with pytest.raises(NotFound):
        call(dns, "get_zone", "müller.de")
    assert len(removed.drain(config["DATABASE_URL"], containers=[dns])) == 1
    assert call(dns, "get_zone", "zweite.de")["name"] == "zweite.de"


def test_import_problems_belong_to_their_own_lines(dns, db):
    """A bad record in a set takes only its own line with it; a CNAME beside an A goes, the A (and
    an MX that needs that A) stays; a delegation without glue is refused; warnings name their line."""
    zone_file = """$ORIGIN xn--mller-kva.de.
$TTL 3600
mail    IN A     192.0.2.25
mail    IN AAAA  2001:db8::25
web     IN A     192.0.2.80
web     IN CNAME www
mx2     IN CNAME mail
@       IN MX    20 mx2
@       IN MX    30 web
@       IN MX    10 mail
kaputt  IN NS    ns1.kaputt
s._tcp  IN SRV   0 5 5060 mail
_sip._tcp IN SRV 0 5 5060 mail
@       IN MX    40 nirgends
"""
    version = snapshot(db)[0]
    report = call(dns, "import_zone", "müller.de", headers=v(version), data={"zone_file": zone_file})
    assert report["applied"], report
    rejected = {r["line"]: r["message"] for r in report["rejected"]}
    assert sorted(rejected) == [6, 8, 11, 14], rejected
    assert "CNAME-Eintrag muss allein stehen" in rejected[6]
    assert "„20 mx2.xn--mller-kva.de.“" in rejected[8] and "ist ein CNAME" in rejected[8]
    assert "Glue" in rejected[11] and "kaputt.müller.de NS" in rejected[11]
    assert "„40 nirgends.xn--mller-kva.de.“" in rejected[14] and "keinen A- oder AAAA" in rejected[14]
    assert [(w["line"], "_dienst._protokoll" in w["message"]) for w in report["warnings"]] == [(12, True)]
    got = {(r["name"], r["type"]): r for r in call(dns, "get_zone", "müller.de")["records"]}
    zone = call(dns, "get_zone", "müller.de")
    mx = sorted(r["content"] for r in zone["records"] if r["type"] == "MX")
    assert mx == [f"10 mail.{ZONE}.", f"30 web.{ZONE}."]     # line 10 is taken, not dropped with 8
    assert ("web", "A") in got and ("web", "CNAME") not in got
    assert ("s._tcp", "SRV") in got and ("kaputt", "NS") not in got


def test_adding_to_an_mx_set_whose_targets_have_addresses_warns_nothing(dns, db):
    version = snapshot(db)[0]
    first = call(dns, "apply_changes", "müller.de", headers=v(version), data={"changes": [
        {"action": "replace", "name": "mail", "type": "A", "records": ["192.0.2.25"]},
        {"action": "replace", "name": "mail", "type": "AAAA", "records": ["2001:db8::25"]},
        {"action": "replace", "name": "@", "type": "MX", "records": ["10 mail"]}]})
    assert first["warnings"] == []
    for n in range(3):
        result = call(dns, "apply_changes", "müller.de", headers=v(first["version"] + n), data={
            "changes": [{"action": "add", "name": "@", "type": "MX",
                         "records": [f"{20 + n} mx{n}.provider.net."]}]})
        assert result["warnings"] == [], result["warnings"]
    with pytest.raises(ValidationFailed) as err:     # the address of a target cannot go
        call(dns, "apply_changes", "müller.de", headers=v(first["version"] + 3), data={"changes": [
            {"action": "delete", "name": "mail", "type": "A"},
            {"action": "delete", "name": "mail", "type": "AAAA"}]})
    assert "ist das Ziel von müller.de MX" in " ".join(err.value.fields["changes.0.name"])
