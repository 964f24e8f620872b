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
# BIND 9.18's strict checks: bad owner/target names, MX/NS that are addresses, MX and SRV
# pointing at CNAMEs, in-zone MX targets without addresses, duplicate records, integrity
STRICT = ["-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail", "-S", "fail", "-r", "fail",
          "-i", "full"]


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
    (change("add", "@", "MX", "20 alias"), "changes.0.records.1", "CNAME"),
    (change("add", "@", "MX", "20 nomail"), "changes.0.records.1", "keinen A- oder AAAA-Eintrag"),
    (change("add", "_sip._tcp", "SRV", "10 5 5060 nix"), "changes.0.records.0", "keinen A- oder AAAA"),
    (change("add", "neu", "NS", "ns1.neu", "ns.example.net."), "changes.0.records.0", "Glue"),
    (change("add", "neu", "NS", "nix.intern"), "changes.0.records.0", "Glue"),
    (change("add", "neu", "NS", "nix"), "changes.0.records.0", "keinen A- oder AAAA"),
    (change("delete", "ns1.intern", "A"), "changes.0.name", "ist das Ziel von intern.müller.de NS"),
    (change("add", "@", "MX", "10 mail_server.example.net."), "changes.0.records.0.exchange",
     "Hostname"),
    (change("add", "x", "MX", "5 ."), "changes.0.records.0.preference", "Priorität 0"),
    (change("add", "_sip._tcp", "SRV", "10 5 70000 sip.example.net."), "changes.0.records.0.port",
     "außerhalb"),
    (change("add", "_sip._tcp", "SRV", "10 -1 5060 sip.example.net."), "changes.0.records.0.weight",
     "außerhalb"),
    (change("add", "_sip._tcp", "SRV", "10 5 5060 2001:db8::5"), "changes.0.records.0.target",
     "keine IP-Adresse"),
    (change("add", "_sip._tcp", "SRV", "10 5 5060 alias"), "changes.0.records.0", "CNAME"),
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
    assert [p.field for p in result.problems] == ["changes.1.name"]
    assert "ist das Ziel von müller.de MX" in result.problems[0].message


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


def test_an_in_zone_mx_target_needs_an_address_in_the_same_change_set_at_the_latest():
    result = plan(change("add", "@", "MX", "20 mail"))       # named-checkzone -m fail refuses it
    assert [p.field for p in result.problems] == ["changes.0.records.1"]
    assert "keinen A- oder AAAA-Eintrag" in result.problems[0].message
    assert plan(change("add", "@", "MX", "20 mail"), change("add", "mail", "AAAA", "2001:db8::25")).ok


def test_adding_to_an_mx_set_checks_the_existing_targets_as_they_are():
    sets = {**base_zone(), ("@", "MX"): Rrset(3600, [f"10 mail.{ZONE}."]),
            ("mail", "A"): Rrset(3600, ["192.0.2.25"]), ("mail", "AAAA"): Rrset(3600, ["2001:db8::25"])}
    result = plan(change("add", "@", "MX", "20 mx.provider.net."), sets=sets)
    assert result.ok and result.warnings == [], (result.problems, result.warnings)


def wild_zone():
    return {**base_zone(), ("*.wc", "CNAME"): Rrset(3600, [f"www.{ZONE}."]),
            ("*.wa", "A"): Rrset(3600, ["192.0.2.80"]), ("x.ent.wc", "A"): Rrset(3600, ["192.0.2.81"])}


@pytest.mark.parametrize("target, fault", [
    ("host.wc", "Platzhalter-CNAME *.wc.müller.de"),   # exists only through a wildcard CNAME
    ("a.b.wc", "Platzhalter-CNAME"),
    ("host.wa", None),                                  # a wildcard A answers (as in BIND)
    ("ent.wc", "keinen A- oder AAAA"),                  # an empty non-terminal: no wildcard match
    ("x.ent.wc", None),
    ("deep.x.intern", None),                            # the delegated zone answers for it
    ("alias", "ist ein CNAME"),
])
def test_mx_and_srv_targets_are_followed_like_bind_does(target, fault):
    for ch in (change("replace", "@", "MX", f"10 {target}.{ZONE}."),
               change("replace", "_smtp._tcp", "SRV", f"0 0 25 {target}.{ZONE}.")):
        result = changeset.plan(ZONE, [ch], MemorySource(wild_zone()), POLICY)
        if fault is None:
            assert result.ok, result.problems
        else:
            assert [p.field for p in result.problems] == ["changes.0.records.0"]
            assert fault in result.problems[0].message


def test_changes_that_break_a_target_elsewhere_are_refused():
    sets = {**wild_zone(), ("@", "MX"): Rrset(3600, [f"10 host.wa.{ZONE}.", f"20 x.a.wa.{ZONE}."]),
            ("_x._tcp", "SRV"): Rrset(3600, [f"0 0 1 x.ent.wc.{ZONE}."])}
    for ch, words in [
        (change("delete", "*.wa", "A"), "host.wa.müller.de ist das Ziel von müller.de MX"),
        (change("replace", "host.wa", "TXT", "shadows the wildcard"), "keinen A- oder AAAA"),
        (change("replace", "*.wa", "CNAME", "www"), "Platzhalter-CNAME"),
        (change("delete", "x.ent.wc", "A"), "ist das Ziel von _x._tcp.müller.de SRV"),
        (change("replace", "a.wa", "A", "192.0.2.9"), "x.a.wa.müller.de ist das Ziel"),  # no *.a.wa
        (change("replace", "ent.wc", "DNAME", "example.net."), "DNAME"),
    ]:
        result = changeset.plan(ZONE, [ch], MemorySource(sets), POLICY)
        assert not result.ok and words in " ".join(p.message for p in result.problems), \
            (ch, result.problems)
        assert {p.field for p in result.problems} == {"changes.0.name"}, result.problems


def test_srv_owner_outside_the_usual_form_is_accepted_with_a_warning_as_bind_does():
    for owner in ("s._tcp", "sip", "_sip._xyz"):
        result = plan(change("add", owner, "SRV", "10 5 5060 sip.example.net."))
        assert result.ok, result.problems
        assert [w.field for w in result.warnings] == ["changes.0.name"]
        assert "_dienst._protokoll" in result.warnings[0].message
    assert plan(change("add", "_sip._tcp", "SRV", "10 5 5060 sip.example.net.")).warnings == []


def test_glue_may_stand_at_the_delegated_name_itself():
    result = plan(change("replace", "blah", "NS", "blah"), change("replace", "blah", "A", "192.0.2.6"))
    assert result.ok, result.problems


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
        change("replace", "@", "MX", "10 mx.kc.example.", "20 host.bücher"),   # via the wildcard AAAA
        change("replace", "self", "NS", "self", "ns.example.net."),   # glue at the delegation itself
        change("replace", "self", "A", "192.0.2.55"),
        change("replace", "s._tcp", "SRV", "0 0 1 bücher"),      # an owner BIND takes (a warning)
        change("replace", "gc._msdcs", "A", "192.0.2.56"),       # BIND's check-names exceptions
        change("replace", "a._spf", "A", "192.0.2.57"),
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
    proc = subprocess.run([NAMED_CHECKZONE, *STRICT, zone, str(path)], capture_output=True, text=True)
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


BIND_REFUSES = [   # records added to base_zone(): named-checkzone (strict) and the rules both refuse
    [("@", "MX", f"20 nomail.{ZONE}.")],
    [("@", "MX", f"20 x.wc.{ZONE}."), ("*.wc", "CNAME", f"www.{ZONE}.")],
    [("_s._tcp", "SRV", f"0 0 1 alias.{ZONE}.")],
    [("@", "MX", f"20 x.deep.wc.{ZONE}."), ("*.wc", "CNAME", f"www.{ZONE}.")],
    [("www", "CNAME", "web.example.net.")],
    [("@", "MX", f"20 x.a.wa.{ZONE}."), ("*.wa", "A", "192.0.2.8"), ("a.wa", "A", "192.0.2.9")],
]


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone missing: run deploy/ensure-tools.sh")
@pytest.mark.parametrize("extra", BIND_REFUSES, ids=[" + ".join(f"{n} {t}" for n, t, _ in e)
                                                     for e in BIND_REFUSES])
def test_what_named_checkzone_refuses_the_rules_refuse(extra, tmp_path):
    records = [{"name": n, "type": t, "ttl": v.ttl, "content": c}
               for (n, t), v in base_zone().items() for c in v.records]
    assert_checkzone(ZONE, zonefile.export_text(ZONE, 1, records, "now"), tmp_path)   # base loads
    records += [{"name": n, "type": t, "ttl": 3600, "content": c} for n, t, c in extra]
    path = tmp_path / "bad.db"
    path.write_text(zonefile.export_text(ZONE, 1, records, "now"), encoding="utf-8")
    proc = subprocess.run([NAMED_CHECKZONE, *STRICT, ZONE, str(path)], capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout
    result = plan(*[change("add", n, t, c) for n, t, c in extra])
    assert not result.ok and result.problems[0].change is not None


@pytest.mark.parametrize("name", ["pаypal", "shop.gооgle", "xn--pypal-4ve"])
def test_look_alike_names_are_refused(name):
    """Mixed scripts in a name (kc_common.domains), as registries refuse them."""
    with pytest.raises(rules.RuleError, match="mischt Schriften"):
        rules.owner_name(name, "example.de")
    assert rules.owner_name("münchen", "example.de") == "xn--mnchen-3ya"
