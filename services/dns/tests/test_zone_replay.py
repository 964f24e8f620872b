"""Public test zones (dnspython, PowerDNS, BIND; see tests/data/README.md) replayed through the
import API on both databases: every line is either taken over exactly, ignored (SOA and the zone's
NS are the system's) or rejected with its own reason; an unsupported type is named; a supported
type is rejected only where the table below says why (there the product is stricter than BIND
or the file itself is broken); what was taken over exports into a zone named-checkzone accepts
with the strict flags."""
import base64
import importlib.util
import pathlib
import re
import subprocess
from functools import partial

import pytest

from kc_common import testing
from kc_common.events import declare_topology
from kc_dns import domain, rules, zonefile
from kc_dns.service import DnsService

DATA = pathlib.Path(__file__).with_name("data")
OWNER = {"customer_id": 100001}
DEFAULTS = {"nameservers": ["ns1.kc.example.", "ns2.kc.example."], "hostmaster": "hostmaster.kc.example.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.kc.example.", "ttl": 3600}


def _sibling(name):
    spec = importlib.util.spec_from_file_location(f"kc_dns_tests_{name}",
                                                  pathlib.Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMED_CHECKZONE = _sibling("test_rules").NAMED_CHECKZONE
STRICT = _sibling("test_rules").STRICT


def single_label_to(text, label, zone):
    """A file for the single-label zone ``label.`` rewritten for ``zone`` (customers' zones have
    at least two labels): absolute names ending in ``label.`` and the bare owner ``label``."""
    text = re.sub(rf"(?<![\w.-]){label}\.(?=[\s;)]|$)", zone + ".", text, flags=re.M)
    text = re.sub(rf"(?<=\.){label}\.(?=[\s;)]|$)", zone + ".", text, flags=re.M)
    return re.sub(rf"^{label}(?=\s)", zone + ".", text, flags=re.M)


NO_ADDRESS = "keinen A- oder AAAA-Eintrag"
NULL_MX = "braucht die Priorität 0"
ROOT = "die DNS-Wurzel"
TTL = "außerhalb von 60 bis 86400"

# file, zone it is imported into, rewrite, {line: words of the expected rejection} for the
# supported types (unsupported types are checked generically).
ZONES = [
    ("dnspython/example", "example.de", lambda t: single_label_to(t, "example", "example.de"), {
        30: NO_ADDRESS, 63: NO_ADDRESS, 108: NO_ADDRESS,      # MX 10 mail: there is no mail
        52: ROOT, 61: ROOT,                                  # CNAME . / DNAME .
        109: NULL_MX,                                        # MX 10 .
        220: "Das Tag „tbs“ ist unbekannt"}),
    ("pdns/test.com", "test.com", None, {
        13: NULL_MX, 14: NO_ADDRESS, 17: ROOT,
        23: NO_ADDRESS}),      # NS ns-test.example.net without the final dot: in the zone
    ("pdns/wtest.com", "wtest.com", None, {14: "nur über den Platzhalter-CNAME *.wtest.com"}),
    ("pdns/minimal.com", "minimal.com", None, {}),
    ("pdns/nztest.com", "nztest.com", None, {16: "nicht in der Zone", 17: "nicht in der Zone"}),
    ("pdns/unit.test", "unit.test", None, {4: NO_ADDRESS, 6: NULL_MX}),
    ("pdns/dnssec-parent.com", "dnssec-parent.com", None, {}),
    ("pdns/2.0.192.in-addr.arpa", "2.0.192.in-addr.arpa", None, {}),
    ("bind9/good1.db", "example.de", None, {   # NS beside a DNAME: BIND lets the NS occlude it
        7: "daneben sind keine weiteren Einträge (DNAME)", 9: "unterhalb des DNAME-Eintrags"}),
    ("bind9/good-gc-msdcs.db", "example.de", None, {}),
    ("bind9/good-occulted-ns-by-ns.db", "example.de",
     lambda t: single_label_to(t, "example", "example.de"),
     {12: "unterhalb der delegierten Subdomain foo.example.de"}),   # occluded: BIND ignores it
    ("bind9/good-occulted-ns-by-dname.db", "example.de",
     lambda t: single_label_to(t, "example", "example.de"),
     {10: "DNAME-Eintrag ist für die Domain selbst", 12: NO_ADDRESS}),
    ("bind9/good-spf-exception.db", "example.de", None, {}),
    ("bind9/good-svcb.db", "example.de", None, {}),
    ("bind9/good-dns-sd-reverse.db", "example.de", None, {}),
    ("bind9/zone1.db", "zone1.com", None, {}),
    ("bind9/spf.db", "example.de", None, {4: TTL, 6: TTL, 8: TTL}),      # TTL 0
    ("bind9/bad-cname-and-a.db", "example.de", None, {7: "Ein CNAME-Eintrag muss allein stehen"}),
    ("bind9/bad-cname-and-mx.db", "example.de", None, {6: NULL_MX}),   # then the CNAME stands alone
    ("bind9/warn.no-a.server.glue.db", "example.de", None, {}),
]


@pytest.fixture
def dns(container_factory, config):
    config["DNS_DEFAULTS"] = DEFAULTS
    declare_topology(config["AMQP_URI"], [DnsService])
    container = container_factory(DnsService, config)
    container.start()
    _CONTAINER[:] = [container]
    return container


call = partial(testing.call, context=OWNER)


_CONTAINER = []


def call_zone(zone):
    return call(_CONTAINER[0], "get_zone", zone)


def check_export(dns, zone, tmp_path):
    exported = call(dns, "export_zone", zone)
    text = base64.b64decode(exported["content_b64"]).decode("utf-8")
    path = tmp_path / f"{zone}.zone"
    path.write_text(text, encoding="utf-8")
    if NAMED_CHECKZONE is None:
        pytest.skip("named-checkzone missing: run deploy/ensure-tools.sh")
    proc = subprocess.run([NAMED_CHECKZONE, *STRICT, zone, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr + text


def test_public_test_zones_replay_through_the_import(dns, config, tmp_path):
    from kc_common.db import StandaloneDatabase
    from kc_dns.models import metadata
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "dns")
    try:
        with db.unit_of_work() as uow:
            domain.create_zones_for_order(uow, {"customer_id": 100001, "items": [
                {"contract_id": n, "kind": "domain", "domain": zone}
                for n, zone in enumerate(sorted({z for _, z, _, _ in ZONES}))]}, DEFAULTS)
    finally:
        db.engine.dispose()
    for path, zone, rewrite, expected in ZONES:
        text = (DATA / path).read_text(encoding="utf-8", errors="replace")
        text = rewrite(text) if rewrite else text
        if not text.lstrip().startswith("$ORIGIN") and "$ORIGIN" not in text.split("\n", 30)[0]:
            text = f"$ORIGIN {zone}.\n" + text
        version = call(dns, "get_zone", zone)["version"]
        report = call(dns, "import_zone", zone, headers={"If-Match": str(version)},
                      data={"zone_file": text, "replace_all": True})
        check_report(path, zone, text, report, expected)
        check_export(dns, zone, tmp_path)


def file_types(text):
    """(line, type) of every record entry of a master file, read independently of the import."""
    found = []
    for line, entry, owner_omitted in zonefile.logical_entries(text):
        if entry.startswith("$"):
            continue
        tokens = entry.split()[0 if owner_omitted else 1:]
        while tokens and (tokens[0][0].isdigit() or tokens[0].upper() in ("IN", "CH", "HS")):
            tokens = tokens[1:]
        found.append((line, tokens[0].upper()))
    return found


def check_report(path, zone, text, report, expected):
    rejected = {r["line"]: r["message"] for r in report["rejected"]}
    ignored = {r["line"] for r in report["ignored"]}
    assert not rejected.keys() & ignored, path
    types = dict(file_types(text))
    unsupported = {line for line, t in types.items() if t not in rules.TYPES and t != "SOA"}
    for line in unsupported:     # every unsupported type reported by name, on its line
        assert f"Der Typ {types[line]} wird nicht unterstützt" in rejected.get(line, ""), \
            (path, line, rejected.get(line))
    stricter = {line: m for line, m in rejected.items() if line not in unsupported}
    assert sorted(stricter) == sorted(expected), (path, stricter)
    for line, words in expected.items():
        assert words in stricter[line], (path, line, stricter[line])
    assert all(types[line] in ("SOA", "NS") for line in ignored), path
    # everything else is in the zone exactly as the file says
    records, _ = zonefile.parse(text, zone)
    got = {(r["name"], r["type"], r["content"]) for r in call_zone(zone)["records"]}
    want = {(rules.owner_name(r["owner"], zone), r["type"],
             rules.canonical_content(r["type"], r["content"], zone, rules.Policy()))
            for r in records if r["line"] not in rejected and r["line"] not in ignored}
    assert want <= got, (path, want - got)
    assert report["accepted"] == len(want), path
