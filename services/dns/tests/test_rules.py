"""Validation, change planning, serials and zone files: pure logic, no bus, no database.

named-checkzone (Debian's bind9-utils; `make test` installs it through
deploy/ensure-tools.sh) checks every exported zone here.
"""
import datetime as dt
import shutil
import subprocess

import pytest

from kc_dns import changeset, domain, rules, zonefile
from kc_dns.changeset import MemorySource, Rrset

ZONE = "xn--mller-kva.de"          # müller.de
POLICY = rules.Policy()
NAMED_CHECKZONE = shutil.which("named-checkzone")


def base_zone():
    return {
        ("@", "SOA"): Rrset(3600, ["ns1.kc.example. hostmaster.kc.example. 2026112601 10800 3600 "
                                   "604800 3600"]),
        ("@", "NS"): Rrset(3600, ["ns1.kc.example.", "ns2.kc.example."]),
        ("@", "A"): Rrset(3600, ["192.0.2.10"]),
        ("www", "A"): Rrset(3600, ["192.0.2.10"]),
        ("@", "MX"): Rrset(3600, ["10 mx.kc.example."]),
        ("alias", "CNAME"): Rrset(3600, [f"www.{ZONE}."]),
        ("intern", "NS"): Rrset(3600, [f"ns1.intern.{ZONE}."]),
        ("ns1.intern", "A"): Rrset(3600, ["192.0.2.53"]),
    }


def plan(*changes, sets=None):
    return changeset.plan(ZONE, list(changes), MemorySource(sets or base_zone()), POLICY)


def change(action, name, rtype, *records, ttl=None):
    return {"action": action, "name": name, "type": rtype, "ttl": ttl,
            "records": list(records) if records else None}


# Each invalid input: the change, the field it must name, words its message must contain.
INVALID = [
    (change("add", "x", "A", "192.0.2.300"), "changes.0.records.0", "keine gültige IPv4-Adresse"),
    (change("add", "x", "A", "2001:db8::1"), "changes.0.records.0", "Typ AAAA"),
    (change("add", "x", "AAAA", "192.0.2.1"), "changes.0.records.0", "Typ A verwenden"),
    (change("add", "x", "A", "192.0.2.1", "192.0.2.1"), "changes.0.records.1", "doppelt"),
    (change("add", "www", "A", "192.0.2.10"), "changes.0.records.0", "gibt es schon"),
    (change("add", "www", "A", "192.0.2.11", ttl=600), "changes.0.ttl", "dieselbe TTL"),
    (change("replace", "x", "A", "192.0.2.1", ttl=10), "changes.0.ttl", "außerhalb von 60 bis 86400"),
    (change("replace", "x", "A", "192.0.2.1", ttl=864000), "changes.0.ttl", "außerhalb"),
    (change("add", "a" * 64, "A", "192.0.2.1"), "changes.0.name", "länger als 63"),
    (change("add", ".".join(["a" * 60] * 4), "A", "192.0.2.1"), "changes.0.name", "253"),
    (change("add", "a..b", "A", "192.0.2.1"), "changes.0.name", "leeren Namensteil"),
    (change("add", "foo bar", "TXT", "x"), "changes.0.name", "unzulässige Zeichen"),
    (change("add", "-x", "A", "192.0.2.1"), "changes.0.name", "Bindestrich"),
    (change("add", "a.*", "A", "192.0.2.1"), "changes.0.name", "nur als erster"),
    (change("add", "_dmarc", "A", "192.0.2.1"), "changes.0.name", "kein gültiger Hostname"),
    (change("add", "www.example.org.", "A", "192.0.2.1"), "changes.0.name", "nicht in der Zone"),
    (change("add", "@", "CNAME", "www"), "changes.0.name", "nicht erlaubt"),
    (change("add", "@", "DNAME", "other.example."), "changes.0.name", "nicht erlaubt"),
    (change("add", "www", "CNAME", "web.example.net."), "changes.0.name", "allein stehen"),
    (change("add", "alias", "TXT", "hallo"), "changes.0.name", "allein stehen"),
    (change("add", "alias", "CNAME", "other.example."), "changes.0.records", "nur ein CNAME"),
    (change("add", "d", "DNAME", "a.example.", "b.example."), "changes.0.records", "nur ein DNAME"),
    (change("replace", "@", "SOA", "ns.x. hm.x. 1 2 3 4 5"), "changes.0.type", "vom System verwaltet"),
    (change("replace", "@", "NS", "ns.other.example."), "changes.0.name", "vom System verwaltet"),
    (change("add", "shop", "NS", "192.0.2.1"), "changes.0.records.0", "keine IP-Adresse"),
    (change("add", "@", "MX", "10 192.0.2.1"), "changes.0.records.0.exchange", "keine IP-Adresse"),
    (change("add", "@", "MX", "70000 mail.example.net."), "changes.0.records.0.preference",
     "außerhalb von 0 bis 65535"),
    (change("add", "@", "MX", "zehn mail.example.net."), "changes.0.records.0.preference",
     "ganze Zahl"),
    (change("add", "@", "MX", "mail.example.net."), "changes.0.records.0", "2 Angaben"),
    (change("add", "@", "MX", "20 alias"), "changes.0.records", "CNAME"),
    (change("add", "@", "MX", "10 mail_server.example.net."), "changes.0.records.0.exchange",
     "Hostname"),
    (change("add", "x", "MX", "5 ."), "changes.0.records.0.preference", "Priorität 0"),
    (change("add", "sip", "SRV", "10 5 5060 sip.example.net."), "changes.0.name", "_dienst._protokoll"),
    (change("add", "_sip._xyz", "SRV", "10 5 5060 sip.example.net."), "changes.0.name", "_protokoll"),
    (change("add", "_sip._tcp", "SRV", "10 5 70000 sip.example.net."), "changes.0.records.0.port",
     "außerhalb"),
    (change("add", "_sip._tcp", "SRV", "10 -1 5060 sip.example.net."), "changes.0.records.0.weight",
     "außerhalb"),
    (change("add", "_sip._tcp", "SRV", "10 5 5060 2001:db8::5"), "changes.0.records.0.target",
     "keine IP-Adresse"),
    (change("add", "_sip._tcp", "SRV", "10 5 5060 alias"), "changes.0.records", "CNAME"),
    (change("add", "@", "CAA", '0 issuer "letsencrypt.org"'), "changes.0.records.0.tag", "unbekannt"),
    (change("add", "@", "CAA", '7 issue "letsencrypt.org"'), "changes.0.records.0.flags", "0 oder 128"),
    (change("add", "@", "CAA", '0 iodef "security@example.de"'), "changes.0.records.0.value",
     "mailto"),
    (change("add", "@", "CAA", '0 issue "lets encrypt"'), "changes.0.records.0.value", "unzulässige"),
    (change("add", "@", "TXT", '"offen'), "changes.0.records.0", "Anführungszeichen"),
    (change("add", "@", "TXT", "x" * 4001), "changes.0.records.0", "höchstens 4000"),
    (change("add", "@", "TXT", "  "), "changes.0.records.0", "fehlt"),
    (change("add", "@", "TXT"), "changes.0.records", "mindestens einen"),
    (change("add", "@", "PTR", "x.example."), "changes.0.type", "nicht unterstützt"),
    (change("add", "x.intern", "TXT", "verdeckt"), "changes.0.name", "delegierten Subdomain"),
    (change("add", "www", "NS", "ns.example.net."), "changes.0.name", "delegiert"),
    (change("replace", "alias", "DNAME", "x.example."), "changes.0.name", "allein stehen"),
    (change("delete", "nix", "A"), "changes.0.name", "keine solchen Einträge"),
    (change("delete", "www", "A", "192.0.2.99"), "changes.0.records.0", "gibt es nicht"),
    (change("add", "*.x", "NS", "ns.example.net."), "changes.0.name", "Platzhalter"),
    (change("add", "bad", "CNAME", "*.example.net."), "changes.0.records.0", "Platzhalter"),
]


@pytest.mark.parametrize("bad, field, words", INVALID, ids=[f"{i}-{c['type']}-{f}"
                                                             for i, (c, f, _) in enumerate(INVALID)])
def test_invalid_input_is_rejected_naming_field_and_record(bad, field, words):
    result = plan(bad)
    assert not result.ok and result.writes == {}
    messages = {p.field: p.message for p in result.problems}
    assert field in messages, messages
    assert words in messages[field], messages[field]


def test_a_new_delegation_over_existing_names_is_refused():
    sets = {**base_zone(), ("x.shop", "TXT"): Rrset(3600, ['"hallo"'])}
    result = plan(change("add", "shop", "NS", "ns.example.net."), sets=sets)
    assert ["x.shop.müller.de TXT" in p.message for p in result.problems] == [True]


def test_a_name_an_mx_points_at_cannot_become_a_cname():
    result = plan(change("delete", "www", "A"), change("add", "www", "CNAME", "web.example.net."),
                  sets={**base_zone(), ("@", "MX"): Rrset(3600, [f"10 www.{ZONE}."])})
    assert "als Ziel verwendet" in result.problems[0].message


def test_valid_changes_are_canonical():
    result = plan(
        change("replace", "Bücher", "A", "192.0.2.5"),
        change("replace", "www.müller.de", "AAAA", "2001:DB8:0:0::5"),
        change("add", "@", "MX", "20 mail", "30 mx.provider.net"),
        change("replace", "_imaps._tcp.mail", "SRV", "0 1 993 mail"),
        change("replace", "_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@müller.de"),
        change("replace", "@", "CAA", "0 issue letsencrypt.org", '128 iodef "mailto:sec@example.de"'),
        change("replace", "mail", "A", "192.0.2.25"),
        change("delete", "www", "A", "192.0.2.10"),
        change("replace", "*.shop", "CNAME", "www"),
        change("replace", "null", "MX", "0 ."),
    )
    assert result.ok, result.problems
    w = result.writes
    assert w[("xn--bcher-kva", "A")].records == ["192.0.2.5"]
    assert w[("www", "AAAA")].records == ["2001:db8::5"]
    assert w[("@", "MX")].records == ["10 mx.kc.example.", f"20 mail.{ZONE}.", "30 mx.provider.net."]
    assert w[("_imaps._tcp.mail", "SRV")].records == [f"0 1 993 mail.{ZONE}."]
    assert w[("_dmarc", "TXT")].records == ['"v=DMARC1; p=none; rua=mailto:dmarc@m\\195\\188ller.de"']
    assert w[("@", "CAA")].records == ['0 issue "letsencrypt.org"', '128 iodef "mailto:sec@example.de"']
    assert w[("www", "A")] is None        # its only record deleted: the set is gone
    assert w[("*.shop", "CNAME")].records == [f"www.{ZONE}."]


def test_dotted_targets_are_in_the_zone_when_the_zone_has_that_name():
    result = plan(change("replace", "shop", "NS", "ns1.shop", "ns1.intern", "ns.provider.net"),
                  change("replace", "ns1.shop", "A", "192.0.2.60"),
                  change("replace", "@", "MX", "10 mx.provider.net", "20 ns1.intern"))
    assert result.ok, result.problems
    assert result.writes[("shop", "NS")].records == [
        f"ns1.shop.{ZONE}.", f"ns1.intern.{ZONE}.", "ns.provider.net."]
    assert result.writes[("@", "MX")].records == ["10 mx.provider.net.", f"20 ns1.intern.{ZONE}."]


def test_mx_target_without_address_is_a_warning_not_an_error():
    result = plan(change("add", "@", "MX", "20 mail"))
    assert result.ok and "keinen A- oder AAAA-Eintrag" in result.warnings[0].message


@pytest.mark.parametrize("text, strings", [
    ("v=spf1 include:_spf.example.net ~all", ['"v=spf1 include:_spf.example.net ~all"']),
    ('"eins" "zwei"', ['"eins"', '"zwei"']),
    ('"mit \\"Zitat\\" und \\\\"', ['"mit \\"Zitat\\" und \\\\"']),
    ("a" * 300, ['"' + "a" * 255 + '"', '"' + "a" * 45 + '"']),
    ('"' + "b" * 300 + '"', ['"' + "b" * 255 + '"', '"' + "b" * 45 + '"']),
    ("ä" * 200, None),   # 400 octets: split between characters, never inside one
])
def test_txt_is_split_into_strings_of_255_octets_and_quoted(text, strings):
    content = rules.canonical_content("TXT", text, ZONE, POLICY)
    import dns.rdata
    rdata = dns.rdata.from_text("IN", "TXT", content)
    assert all(len(s) <= 255 for s in rdata.strings)
    if strings is not None:
        assert content == " ".join(strings)
    else:
        assert b"".join(rdata.strings).decode("utf-8") == text
        assert [len(s) for s in rdata.strings] == [254, 146]


@pytest.mark.parametrize("old, today, new", [
    (2026112601, dt.date(2026, 11, 26), 2026112602),
    (2026112698, dt.date(2026, 11, 26), 2026112699),
    (2026112699, dt.date(2026, 11, 26), 2026112700),    # the 100th change of a day rolls over
    (2026112700, dt.date(2026, 11, 26), 2026112701),    # ... and keeps rising
    (2026112703, dt.date(2026, 11, 27), 2026112704),    # the calendar has not caught up yet
    (2026112703, dt.date(2026, 11, 28), 2026112801),    # it has
    (2026010105, dt.date(2026, 11, 26), 2026112601),
])
def test_serial_rises_date_based_and_past_99_a_day(old, today, new):
    assert domain.next_serial(old, today) == new


def test_serial_rises_once_per_change_for_150_changes_in_a_day():
    serial, today = domain.initial_serial(dt.date(2026, 11, 26)), dt.date(2026, 11, 26)
    seen = [serial]
    for _ in range(150):
        serial = domain.next_serial(serial, today)
        seen.append(serial)
    assert seen == sorted(set(seen)) and seen[-1] - seen[0] == 150


def tricky_zone():
    """Every kind of record the service can hold, through the rules."""
    sets = base_zone()
    result = changeset.plan(ZONE, [
        change("replace", "_dmarc", "TXT", "v=DMARC1; p=reject; " + "x" * 600),
        change("replace", "dkim._domainkey", "TXT", '"v=DKIM1; k=rsa; p=" "' + "A" * 400 + '"'),
        change("replace", "quote", "TXT", 'Er sagte "hallo"; \\ Ende', "ümläut ; kein Kommentar"),
        change("replace", "bücher", "A", "192.0.2.7"),
        change("replace", "*.bücher", "AAAA", "2001:db8::7"),
        change("replace", "_sip._tcp", "SRV", "10 60 5060 www", "20 0 5060 sip.example.net."),
        change("replace", "_caldav._tcp", "SRV", "0 0 0 ."),
        change("replace", "@", "CAA", "0 issue letsencrypt.org", "0 issuewild ;",
               '0 iodef "mailto:security@example.de"'),
        change("replace", "shop", "NS", f"ns1.shop.{ZONE}.", "ns.example.net."),
        change("replace", "ns1.shop", "A", "192.0.2.54"),
        change("replace", "ns1.shop", "AAAA", "2001:db8::54"),
        change("replace", "alt", "DNAME", "example.net."),
        change("replace", "nomail", "MX", "0 ."),
        change("replace", "blog", "CNAME", "myblog.example.com."),
    ], MemorySource(sets), POLICY)
    assert result.ok, result.problems
    for key, value in result.writes.items():
        sets[key] = value
    return [{"name": k[0], "type": k[1], "ttl": v.ttl, "content": c}
            for k, v in sets.items() if v for c in v.records]


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone missing: run deploy/ensure-tools.sh")
def test_named_checkzone_accepts_an_exported_tricky_zone(tmp_path):
    text = zonefile.export_text(ZONE, 2026112601, tricky_zone(), "2026-11-26T10:00:00Z")
    assert_checkzone(ZONE, text, tmp_path)


def assert_checkzone(zone, text, tmp_path):
    path = tmp_path / "zone.db"
    path.write_text(text, encoding="utf-8")
    # strict: bad host names, MX/NS that are addresses, MX/SRV pointing at CNAMEs all fail
    proc = subprocess.run([NAMED_CHECKZONE, "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail",
                           "-S", "fail", "-r", "fail", zone, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr + text
    assert "is a CNAME" not in proc.stdout and "appears to be an address" not in proc.stdout


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone missing: run deploy/ensure-tools.sh")
def test_named_checkzone_rejects_what_the_rules_reject(tmp_path):
    """The check is not blind: a zone the rules refuse is refused by named-checkzone too."""
    bad = [{"name": "@", "type": "SOA", "ttl": 3600,
            "content": "ns1.kc.example. hm.kc.example. 1 2 3 4 5"},
           {"name": "@", "type": "NS", "ttl": 3600, "content": "ns1.kc.example."},
           {"name": "www", "type": "A", "ttl": 3600, "content": "192.0.2.1"},
           {"name": "www", "type": "CNAME", "ttl": 3600, "content": "x.example."}]
    path = tmp_path / "bad.db"
    path.write_text(zonefile.export_text(ZONE, 1, bad, "now"))
    assert subprocess.run([NAMED_CHECKZONE, ZONE, str(path)], capture_output=True).returncode != 0


def test_exported_zone_reads_back_identically():
    records = tricky_zone()
    text = zonefile.export_text(ZONE, 2026112601, records, "now")
    parsed, rejected = zonefile.parse(text, ZONE)
    assert rejected == []
    back = sorted((rules.owner_name(r["owner"], ZONE), r["type"], r["ttl"], r["content"])
                  for r in parsed)
    assert back == sorted((r["name"], r["type"], r["ttl"], r["content"]) for r in records)


def test_zone_file_reader_handles_the_master_file_syntax():
    text = f"""$TTL 1h
$ORIGIN {ZONE}.
@   IN SOA ns1.kc.example. hm.kc.example. (
        2026112601 ; serial
        10800 3600 604800 3600 )
    IN  NS  ns1.kc.example.
www 300 IN A 192.0.2.1
        IN AAAA 2001:db8::1
txt IN TXT "a;b" ; a comment
$ORIGIN sub.{ZONE}.
host A 192.0.2.2
bad A 999.1.1.1
$INCLUDE other.db
x   CH  A 192.0.2.3
"""
    parsed, rejected = zonefile.parse(text, ZONE)
    got = [(r["line"], r["owner"], r["type"], r["ttl"], r["content"]) for r in parsed]
    assert got == [
        (3, f"{ZONE}.", "SOA", 3600, "ns1.kc.example. hm.kc.example. 2026112601 10800 3600 604800 3600"),
        (6, f"{ZONE}.", "NS", 3600, "ns1.kc.example."),
        (7, f"www.{ZONE}.", "A", 300, "192.0.2.1"),
        (8, f"www.{ZONE}.", "AAAA", None or 3600, "2001:db8::1"),
        (9, f"txt.{ZONE}.", "TXT", 3600, '"a;b"'),
        (11, f"host.sub.{ZONE}.", "A", 3600, "192.0.2.2"),
    ]
    assert [r["line"] for r in rejected] == [12, 13, 14]


@pytest.mark.parametrize("name", ["pаypal", "shop.gооgle", "xn--pypal-4ve"])
def test_look_alike_names_are_refused(name):
    """Mixed scripts in a name (kc_common.domains), as registries refuse them."""
    with pytest.raises(rules.RuleError, match="mischt Schriften"):
        rules.owner_name(name, "example.de")
    assert rules.owner_name("münchen", "example.de") == "xn--mnchen-3ya"
