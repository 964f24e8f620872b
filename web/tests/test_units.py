"""Unit tests of the web front end without the system: formats, change sets, security rules."""
import re

import pytest

from kc_web import formats
from kc_web.api import ApiError
from kc_web.app import ConfigError, create_app, secret_key_from_env
from kc_web.views.dns import build_change_set, errors_by_row

SECRET = "x" * 40


class FakeApi:
    """Answers like the gateway for the few paths these tests use; records every call."""

    def __init__(self):
        self.calls = []
        self.address_status = 422

    def call(self, method, path, token=None, **kwargs):
        self.calls.append((method, path, token, kwargs))
        if (method, path) == ("POST", "/api/v1/session"):
            if kwargs["json"]["password"] != "richtig":
                raise ApiError(401, "unauthenticated", "Kundennummer/E-Mail oder Passwort ist falsch.")
            notice = "Bitte bestätigen Sie Ihre E-Mail-Adresse." if kwargs["json"]["login"] == "neu" else None
            return {"token": "kcc_secret-token", "customer_id": 100001, "notice": notice}
        if (method, path) == ("GET", "/api/v1/me"):
            return {"first_name": "Max", "last_name": "Mustermann"}
        if (method, path) == ("DELETE", "/api/v1/session"):
            return None
        if (method, path) == ("PUT", "/api/v1/me/address"):
            # 400: the request does not match the schema; 422: a rule refuses it. Same body.
            raise ApiError(self.address_status, "validation_failed", "Die Eingaben sind ungültig.",
                           {"zip": ["Keine Postleitzahl in Deutschland."]})
        if path == "/api/v1/me/products/webhosting":
            return {"items": [], "total": 0, "page": 1, "per_page": 10}
        raise ApiError(404, "not_found", "Nicht gefunden.")

    def parallel(self, *thunks):
        return [t() for t in thunks]


@pytest.fixture
def app():
    return create_app("http://gateway.invalid", SECRET, api=FakeApi(), testing=True)


def csrf_of(client, path="/anmeldung"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client):
    token = csrf_of(client)
    return client.post("/anmeldung", data={"login": "100001", "password": "richtig", "csrf_token": token})


def test_german_formats():
    assert formats.money("1234.5") == "1.234,50\u00a0€"
    assert formats.money("-770.02") == "-770,02\u00a0€"
    assert formats.short_date("2019-05-24") == "24.05.19"
    assert formats.long_date("2019-05-24") == "24.05.2019"
    assert formats.date_time("2026-11-29T08:04:43+00:00") == "29.11.2026, 09:04 Uhr"
    assert formats.number("20000") == "20.000"
    assert formats.month_name("2026-03") == "März 2026"


def test_security_headers_and_cookie(app):
    client = app.test_client()
    resp = client.get("/anmeldung")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    resp = login(client)
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "kcc_secret-token" not in cookie  # encrypted: the token is not readable from the cookie
    assert client.get("/produkte/webhosting").status_code == 200


def test_every_changing_form_needs_the_csrf_token(app):
    client = app.test_client()
    resp = client.post("/anmeldung", data={"login": "100001", "password": "richtig"})
    assert resp.status_code == 400 and "Formular ist abgelaufen" in resp.get_data(as_text=True)
    login(client)
    assert client.post("/abmelden").status_code == 400
    assert client.post("/abmelden", data={"csrf_token": "falsch"}).status_code == 400


def test_logout_ends_the_api_session(app):
    client = app.test_client()
    login(client)
    token = csrf_of(client, "/produkte/webhosting")
    resp = client.post("/abmelden", data={"csrf_token": token})
    assert resp.status_code == 302
    assert ("DELETE", "/api/v1/session", "kcc_secret-token", {}) in app.extensions["kc_api"].calls
    assert client.get("/produkte/webhosting").status_code == 302  # back to the login


def test_wrong_password_is_shown_in_german(app):
    client = app.test_client()
    resp = client.post("/anmeldung", data={"login": "100001", "password": "falsch",
                                           "csrf_token": csrf_of(client)})
    assert resp.status_code == 401
    assert "Kundennummer/E-Mail oder Passwort ist falsch." in resp.get_data(as_text=True)


def test_the_logins_notice_is_shown_after_login(app):
    client = app.test_client()
    resp = client.post("/anmeldung", data={"login": "neu", "password": "richtig", "csrf_token": csrf_of(client)},
                       follow_redirects=True)
    assert resp.status_code == 200 and "Bitte bestätigen Sie Ihre E-Mail-Adresse." in resp.get_data(as_text=True)
    client = app.test_client()
    resp = client.post("/anmeldung", data={"login": "100001", "password": "richtig", "csrf_token": csrf_of(client)},
                       follow_redirects=True)
    assert "Bitte bestätigen Sie Ihre E-Mail-Adresse." not in resp.get_data(as_text=True)


def test_pages_need_a_login_and_only_local_redirects(app):
    client = app.test_client()
    resp = client.get("/konto?page=2")
    assert resp.status_code == 302 and "/anmeldung?weiter=" in resp.headers["Location"]
    token = csrf_of(client)
    resp = client.post("/anmeldung", data={"login": "100001", "password": "richtig", "csrf_token": token,
                                           "weiter": "https://evil.example/"})
    assert resp.headers["Location"].endswith("/produkte/webhosting")


def test_secret_key_rules():
    key, generated = secret_key_from_env({"KC_ENV": "development"})
    assert generated and len(key) >= 32
    with pytest.raises(ConfigError, match="WEB_SECRET_KEY fehlt.*KC_ENV=production"):
        secret_key_from_env({})  # KC_ENV unset counts as production
    with pytest.raises(ConfigError, match="WEB_SECRET_KEY"):
        secret_key_from_env({"KC_ENV": "production"})
    with pytest.raises(ConfigError):
        secret_key_from_env({"KC_ENV": "production", "WEB_SECRET_KEY": "kurz"})
    with pytest.raises(ConfigError, match="Platzhalter"):
        secret_key_from_env({"KC_ENV": "production", "WEB_SECRET_KEY": "CHANGE_ME" * 4})
    assert secret_key_from_env({"KC_ENV": "production", "WEB_SECRET_KEY": SECRET}) == (SECRET, False)


RECORDS = [
    {"name": "@", "type": "SOA", "ttl": 3600, "content": "ns1. host. 1 2 3 4 5", "managed": True},
    {"name": "@", "type": "A", "ttl": 3600, "content": "192.0.2.10"},
    {"name": "www", "type": "A", "ttl": 3600, "content": "192.0.2.10"},
    {"name": "www", "type": "A", "ttl": 3600, "content": "192.0.2.11"},
    {"name": "@", "type": "MX", "ttl": 3600, "content": "10 mx.example."},
]


def row(key, name, type_, ttl, content, delete=False, orig=None):
    return {"key": key, "new": orig is None, "name": name, "type": type_, "ttl": ttl, "content": content,
            "delete": delete, "orig": orig}


def orig(rec):
    return {"name": rec["name"], "type": rec["type"], "ttl": str(rec["ttl"]), "content": rec["content"]}


def test_change_set_edits_deletes_and_adds_in_one():
    rows = [row("r1", "@", "A", "3600", "192.0.2.99", orig=orig(RECORDS[1])),          # edit
            row("r2", "www", "A", "3600", "192.0.2.10", orig=orig(RECORDS[2])),        # unchanged
            row("r3", "www", "A", "3600", "192.0.2.11", delete=True, orig=orig(RECORDS[3])),
            row("r4", "@", "MX", "3600", "10 mx.example.", delete=True, orig=orig(RECORDS[4])),
            row("n0", "mail", "A", "300", "192.0.2.25"),
            row("n1", "", "A", "", "")]                                                 # empty: ignored
    changes, provenance = build_change_set(RECORDS, rows)
    assert changes == [
        {"action": "replace", "name": "@", "type": "A", "records": ["192.0.2.99"], "ttl": 3600},
        {"action": "replace", "name": "www", "type": "A", "records": ["192.0.2.10"], "ttl": 3600},
        {"action": "delete", "name": "@", "type": "MX"},
        {"action": "replace", "name": "mail", "type": "A", "records": ["192.0.2.25"], "ttl": 300},
    ]
    by_row, general = errors_by_row({"changes.3.records.0": ["falsch"], "changes.0.ttl": ["TTL"],
                                     "changes": ["allgemein"]}, provenance)
    assert by_row == {"n0": ["falsch"], "r1": ["TTL"]} and general == ["allgemein"]


def test_change_set_moves_a_record_to_another_name():
    rows = [row("r1", "web", "A", "3600", "192.0.2.10", orig=orig(RECORDS[1]))]
    changes, _ = build_change_set(RECORDS, rows)
    assert changes == [{"action": "delete", "name": "@", "type": "A"},
                       {"action": "replace", "name": "web", "type": "A", "records": ["192.0.2.10"], "ttl": 3600}]


def test_requests_are_counted_by_route_template_not_raw_path(app):
    from prometheus_client import REGISTRY

    def count(route, status):
        return REGISTRY.get_sample_value("kc_http_requests_total", dict(
            app="web", method="GET", route=route, status=status)) or 0

    before = {key: count(*key) for key in [("/health", "200"), ("(unmatched)", "302"),
                                           ("/dokumente/eigene/<document_id>", "302")]}
    client = app.test_client()
    assert client.get("/health").status_code == 200
    # Not logged in: both go to the login page.
    assert client.get("/nirgendwo/4711").status_code == 302
    assert client.get("/dokumente/eigene/4712").status_code == 302
    assert count("/health", "200") - before[("/health", "200")] == 1
    assert count("(unmatched)", "302") - before[("(unmatched)", "302")] == 1
    assert count("/dokumente/eigene/<document_id>", "302") - before[
        ("/dokumente/eigene/<document_id>", "302")] == 1
    labels = {s.labels.get("route") for m in REGISTRY.collect() if m.name == "kc_http_requests"
              for s in m.samples}
    assert not any("471" in (route or "") for route in labels)


def test_web_json_log_lines_carry_the_request_correlation_id(app, monkeypatch):
    import io
    import json
    import logging

    from kc_common import logs
    from kc_web import app as app_module

    monkeypatch.setattr(app_module, "PUBLIC_ENDPOINTS", app_module.PUBLIC_ENDPOINTS | {"_say"})

    @app.get("/_test/say")
    def _say():
        logging.getLogger("kc_web.test").warning("something to say")
        return {"ok": True}

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("web", fmt="json", stream=stream)
    try:
        response = app.test_client().get("/_test/say")
        logging.getLogger("kc_web.test").warning("outside a request")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert response.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    said = [line for line in lines if line["message"] == "something to say"]
    assert said and said[0]["service"] == "web" and said[0]["level"] == "WARNING"
    assert said[0]["correlation_id"].startswith("web-")
    assert "customer_id" not in said[0]  # nobody logged in
    outside = [line for line in lines if line["message"] == "outside a request"]
    assert outside and "correlation_id" not in outside[0]


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_field_is_shown_next_to_it_for_400_and_422(status):
    fake = FakeApi()
    fake.address_status = status
    client = create_app("http://gateway.invalid", SECRET, api=fake, testing=True).test_client()
    assert login(client).status_code == 302
    token = csrf_of(client, "/daten/adresse")
    resp = client.post("/daten/adresse", data={"csrf_token": token, "zip": "1", "version": "1"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400, html
    assert "Keine Postleitzahl in Deutschland." in html and "Die Eingaben sind ungültig." in html
