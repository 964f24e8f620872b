"""Hostile input through the real gateway: every answer a clear 4xx in the one error body."""
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests


@pytest.fixture(scope="module")
def demo(demo_headers):
    return demo_headers


def _error(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    body = resp.json()
    assert body["error"] and body["message"]
    return body


def test_page_and_ids_beyond_the_database_are_400_or_404(system, demo):
    for path in ("/api/v1/me/contracts", "/api/v1/me/zones", "/api/v1/me/logins"):
        body = _error(requests.get(system.url + path, headers=demo, params={"page": 2**63}), 400)
        assert "page" in body["fields"]
    for path in ("/api/v1/me/contracts/99999999999999999999999999",
                 "/api/v1/me/contracts/99999999999999999999999999/traffic",
                 "/api/v1/me/contracts/2147483648"):
        _error(requests.get(system.url + path, headers=demo), 404)
    # Where another method has a rule for the same pattern, werkzeug said 405 (schemathesis
    # found it): no rule takes an id past the database's range, whatever the method.
    for method in ("post", "get"):
        _error(getattr(requests, method)(system.url + "/api/v1/me/contracts/2147483648/cancellation",
                                         headers=demo), 404)


@pytest.mark.parametrize("method, path", [("post", "/api/v1/me/contacts"), ("put", "/api/v1/me/address")])
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_before_parsing(system, demo, method, path, depth):
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    resp = getattr(requests, method)(system.url + path, headers={**demo, "Content-Type": "application/json"},
                                     data=body)
    assert "_body" in _error(resp, 400)["fields"]


def test_lone_surrogate_is_refused_naming_the_field(system, demo):
    resp = requests.post(system.url + "/api/v1/me/contacts",
                         headers={**demo, "Content-Type": "application/json"},
                         data='{"name": "\\ud800x", "email": "a@example.org"}')
    assert "name" in _error(resp, 400)["fields"]


def test_media_type_missing_body_and_booleans_are_checked(system, demo):
    resp = requests.post(system.url + "/api/v1/me/contacts", headers={**demo, "Content-Type": "text/plain"},
                         data=json.dumps({"name": "Text", "email": "text@example.org"}))
    _error(resp, 415)
    _error(requests.post(system.url + "/api/v1/me/contacts", headers=demo), 400)
    for path, field, body in [
            ("/api/v1/me/payment-details", "sepa_mandate_accepted",
             {"method": "sepa", "by_post": False, "with_contact_person": False,
              "sepa_mandate_accepted": 1}),
            ("/api/v1/me/ip-whitelist", "confirm_lockout", {"entries": [], "confirm_lockout": 0})]:
        body_ = _error(requests.put(system.url + path, headers=demo, json=body), 400)
        assert field in body_["fields"], body_


def test_405_carries_allow_and_downloads_nosniff(system, demo):
    resp = requests.put(system.url + "/api/v1/products")
    _error(resp, 405)
    assert resp.headers["Allow"] == "GET, HEAD" or "GET" in resp.headers["Allow"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    zones = requests.get(system.url + "/api/v1/me/zones", headers=demo).json()["items"]
    export = requests.get(system.url + f"/api/v1/me/zones/{zones[0]['name']}/file", headers=demo)
    assert export.status_code == 200 and export.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("length", [9_000, 200_000])
def test_long_urls_get_414_in_the_error_body(system, length):
    """eventlet alone answers an empty 414 or resets the connection; the gateway answers JSON."""
    url = urlsplit(system.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"GET /api/v1/products?q={'a' * length} HTTP/1.1\r\nHost: x\r\n"
                     f"Accept: application/json\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and b"application/json" in head
    assert json.loads(body)["error"] == "uri_too_long"


@pytest.mark.parametrize("domain", ["pаypal.de", "micrοsoft.de", "gооgle.de"])
def test_look_alike_domains_are_refused_for_orders(system, demo, domain):
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo,
                         json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert "mischt Schriften" in _error(resp, 422)["fields"]["items.0.domain"][0]
