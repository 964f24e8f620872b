"""DNS through the gateway's HTTP, every service a real process: edit, conflict, export, import, removal."""
import shutil
import subprocess
import uuid

import pytest
import requests
from kombu import Connection

from kc_common.testing import wait_for

NAMED_CHECKZONE = shutil.which("named-checkzone")


@pytest.fixture(scope="module")
def ordered(system, demo_headers):
    """A domain the demo customer ordered (catalog -> order_placed -> dns): (domain, contract id)."""
    domain = f"dns-grüße-{uuid.uuid4().hex[:6]}.de"       # an IDN: the zone is its A-label
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo_headers,
                         json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert resp.status_code == 201, resp.text
    wait_for(lambda: requests.get(f"{system.url}/api/v1/me/zones/{domain}", headers=demo_headers).ok,
             message="the zone")
    zone = requests.get(f"{system.url}/api/v1/me/zones/{domain}", headers=demo_headers).json()
    assert zone["name"].startswith("xn--") and zone["name_unicode"] == domain
    return zone["name"], resp.json()["contracts"][0]["id"]


def zone_url(system, domain, suffix=""):
    return f"{system.url}/api/v1/me/zones/{domain}{suffix}"


def test_edit_a_zone_with_versions_through_the_gateway(system, demo_headers, ordered):
    domain, _ = ordered
    zones = requests.get(system.url + "/api/v1/me/zones", headers=demo_headers).json()
    assert domain in [z["name"] for z in zones["items"]] and zones["total"] >= 1
    got = requests.get(zone_url(system, domain), headers=demo_headers)
    zone = got.json()
    etag = got.headers["ETag"]  # the header, as HTTP clients expect it
    assert etag == zone["etag"]
    body = {"changes": [
        {"action": "replace", "name": "www", "type": "CNAME", "records": ["@"]},
        {"action": "delete", "name": "www", "type": "A"},
        {"action": "delete", "name": "www", "type": "AAAA"},
        {"action": "replace", "name": "_sip._tcp", "type": "SRV", "records": ["10 5 5060 sip.example.net."]},
        {"action": "replace", "name": "@", "type": "TXT", "records": ["v=spf1 mx -all", "x" * 300]},
        {"action": "replace", "name": "@", "type": "CAA", "records": ['0 issue "letsencrypt.org"']},
        {"action": "replace", "name": "büro", "type": "NS", "records": ["ns1.example.net."]},
    ]}
    resp = requests.post(zone_url(system, domain, "/changes"), headers={**demo_headers, "If-Match": etag},
                         json=body)
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert changed["version"] == zone["version"] + 1 and changed["serial"] > zone["serial"]
    assert {(r["name"], r["type"]) for r in changed["records"]} >= {("www", "CNAME"), ("_sip._tcp", "SRV")}

    # the same (now stale) version again: 409, nothing changed
    stale = requests.post(zone_url(system, domain, "/changes"), headers={**demo_headers, "If-Match": etag},
                          json={"changes": [{"action": "add", "name": "x", "type": "A",
                                             "records": ["192.0.2.1"]}]})
    assert stale.status_code == 409 and stale.json()["error"] == "conflict"
    # a change set the zone's rules refuse: 422 naming the field, nothing changed
    bad = requests.post(zone_url(system, domain, "/changes"),
                        headers={**demo_headers, "If-Match": changed["etag"]},
                        json={"changes": [{"action": "add", "name": "x", "type": "A", "records": ["192.0.2.1"]},
                                          {"action": "add", "name": "www", "type": "TXT", "records": ["hi"]}]})
    assert bad.status_code == 422 and "allein stehen" in bad.json()["fields"]["changes.1.name"][0]
    missing = requests.post(zone_url(system, domain, "/changes"), headers=demo_headers, json=body)
    assert missing.status_code == 400 and "If-Match" in missing.json()["fields"]  # a required header
    after = requests.get(zone_url(system, domain), headers=demo_headers).json()
    assert (after["version"], after["serial"]) == (changed["version"], changed["serial"])
    assert not {("x", "A"), ("www", "TXT")} & {(r["name"], r["type"]) for r in after["records"]}


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone missing: run deploy/ensure-tools.sh")
def test_export_is_a_valid_zone_file_and_imports(system, demo_headers, ordered, tmp_path):
    domain, _ = ordered
    version = requests.get(zone_url(system, domain), headers=demo_headers).json()["version"]
    resp = requests.post(zone_url(system, domain, "/changes"),
                         headers={**demo_headers, "If-Match": f'"{version}"'}, json={"changes": [
        {"action": "replace", "name": "@", "type": "CAA", "records": ['0 issue "letsencrypt.org"']},
        {"action": "replace", "name": "büro", "type": "NS", "records": ["ns1.büro", "ns2.example.net."]},
        {"action": "replace", "name": "ns1.büro", "type": "A", "records": ["192.0.2.53"]},
        {"action": "replace", "name": "_imaps._tcp", "type": "SRV", "records": ["0 1 993 @"]},
        {"action": "replace", "name": "dkim._domainkey", "type": "TXT", "records": ["p=" + "A" * 700]}]})
    assert resp.status_code == 200, resp.text
    resp = requests.get(zone_url(system, domain, "/file"), headers=demo_headers)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/dns")
    assert f"{domain}.zone" in resp.headers["Content-Disposition"]
    path = tmp_path / "zone.db"
    path.write_bytes(resp.content)
    assert "xn--bro-hoa\t" in resp.text and 'CAA\t0 issue "letsencrypt.org"' in resp.text
    proc = subprocess.run([NAMED_CHECKZONE, "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail",
                           "-S", "fail", "-r", "fail", "-i", "full", domain, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + resp.text

    version = requests.get(zone_url(system, domain), headers=demo_headers).json()["version"]
    zone_file = resp.text + "neu 300 IN A 192.0.2.44\nkaputt IN MX 10 192.0.2.1.\n"
    report = requests.post(zone_url(system, domain, "/import"),
                           headers={**demo_headers, "If-Match": f'"{version}"'},
                           json={"zone_file": zone_file}).json()
    assert report["applied"] and report["version"] == version + 1
    assert [r["line"] for r in report["rejected"]] == [zone_file.count("\n")]
    assert "IP-Adresse" in report["rejected"][0]["message"]
    records = requests.get(zone_url(system, domain), headers=demo_headers).json()["records"]
    assert {"name": "neu", "type": "A", "ttl": 300, "content": "192.0.2.44"}.items() <= \
        [r for r in records if r["name"] == "neu"][0].items()


def test_another_customers_zone_is_not_found_on_every_route(system, make_customer, ordered):
    domain, _ = ordered
    _, other = make_customer()
    for method, suffix, kwargs in [("get", "", {}), ("get", "/file", {}),
                                   ("post", "/changes", {"json": {"changes": [
                                       {"action": "delete", "name": "www", "type": "A"}]}}),
                                   ("post", "/import", {"json": {"zone_file": "x A 192.0.2.1"}})]:
        resp = getattr(requests, method)(zone_url(system, domain, suffix),
                                         headers={**other, "If-Match": '"1"'}, **kwargs)
        assert resp.status_code == 404 and resp.json()["error"] == "not_found", (suffix, resp.text)
    assert requests.get(system.url + "/api/v1/me/zones", headers=other).json()["total"] == 0


def test_openapi_describes_the_dns_operations(system):
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    assert {"/api/v1/me/zones", "/api/v1/me/zones/{zone}", "/api/v1/me/zones/{zone}/changes",
            "/api/v1/me/zones/{zone}/file", "/api/v1/me/zones/{zone}/import"} <= set(paths)
    assert "409" in paths["/api/v1/me/zones/{zone}/changes"]["post"]["responses"]


def test_contract_terminated_removes_the_zone(system, demo_headers):
    # catalog's side of contract_terminated is built in parallel: the event is published as its
    # contract (docs/contracts.md) describes it, on the system's own bus.
    domain = f"weg-{uuid.uuid4().hex[:6]}.de"
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo_headers,
                         json={"items": [{"product_id": "domain-de", "domain": domain}]})
    contract = resp.json()["contracts"][0]
    wait_for(lambda: requests.get(zone_url(system, domain), headers=demo_headers).ok)
    event = {"id": str(uuid.uuid4()), "type": "contract_terminated", "source": "catalog",
             "occurred_at": "2026-11-26T12:00:00+00:00",
             "data": {"contract_id": contract["id"], "customer_id": 100001, "kind": "domain",
                      "domain": domain, "terminated_on": "2026-11-26"}}
    with Connection(system.env["AMQP_URI"]) as conn:
        conn.Producer(serializer="json").publish(event, exchange="catalog.events",
                                                 routing_key="contract_terminated")
    wait_for(lambda: requests.get(zone_url(system, domain), headers=demo_headers).status_code == 404,
             message="the zone to go")
