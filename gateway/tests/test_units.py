"""The gateway's pure parts: client address, OpenAPI paths and document, error bodies."""
from types import SimpleNamespace

from openapi_spec_validator import validate

from kc_common.errors import NotFound, TooManyRequests
from kc_gateway import openapi
from kc_gateway.http import client_ip, parse_networks, response_from_error


def _request(peer, forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return SimpleNamespace(remote_addr=peer, headers=headers)


def test_forwarded_header_is_ignored_unless_the_peer_is_a_trusted_proxy():
    assert client_ip(_request("203.0.113.9", "1.2.3.4"), []) == "203.0.113.9"
    trusted = parse_networks("10.0.0.0/8, ::1")
    assert client_ip(_request("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"
    assert client_ip(_request("10.1.1.1", "1.2.3.4, 10.2.2.2"), trusted) == "1.2.3.4"


def test_openapi_paths_and_document_are_valid():
    assert openapi.openapi_path("/api/v1/me/zones/<zone>/x/<int:id>") == "/api/v1/me/zones/{zone}/x/{id}"
    doc = openapi.document()
    validate(doc)
    assert "/api/v1/me/orders" in doc["paths"]
    order = doc["paths"]["/api/v1/me/orders"]["post"]
    assert {"201", "400", "401", "409"} <= set(order["responses"])
    assert any(p.get("name") == "Idempotency-Key" for p in order["parameters"])


def test_error_bodies_never_echo_internal_text():
    resp = response_from_error(RuntimeError("secret dsn postgres://x"), "cid")
    assert resp.status_code == 500 and b"secret" not in resp.get_data()
    assert response_from_error(NotFound("weg")).status_code == 404
    limited = response_from_error(TooManyRequests("langsam", {"retry_after": 30}))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"


def test_an_outage_in_the_gateway_itself_is_a_503_not_a_500():
    import sqlalchemy.exc
    from kombu.exceptions import OperationalError
    for exc in (OperationalError("[Errno 111] Connection refused"),
                sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("secret host"))):
        resp = response_from_error(exc, "cid")
        assert resp.status_code == 503, exc
        assert b"secret" not in resp.get_data() and b"Errno" not in resp.get_data()
        assert resp.get_json()["reason"] == "dependency_unavailable"
