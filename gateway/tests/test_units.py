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


def test_downloads_document_every_media_type_they_answer_with():
    """An attachment is answered with its own (detected) type, a data export as a ZIP: the
    document names them all (schemathesis checks every answer's Content-Type against it)."""
    paths = openapi.document()["paths"]
    for path in ("/api/v1/me/support/requests/{number}/attachments/{attachment_id}",
                 "/api/v1/staff/support/requests/{number}/attachments/{attachment_id}"):
        media = paths[path]["get"]["responses"]["200"]["content"]
        assert {"application/octet-stream", "text/plain", "application/pdf", "image/png"} <= set(media), path
    assert "application/zip" in paths["/api/v1/me/documents/{document_id}"]["get"]["responses"]["200"]["content"]


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


def _json_request(body, content_type="application/json"):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request
    return Request(EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ())


def _refused(body, content_type="application/json", required=True):
    import pytest

    from kc_common.errors import KcError
    from kc_gateway.service import read_json
    with pytest.raises(KcError) as info:
        read_json(_json_request(body, content_type), required=required)
    return info.value


def test_json_bodies_are_checked_before_the_rpc():
    from kc_gateway.service import read_json
    assert read_json(_json_request(b'{"a": [1, {"b": "\\u00fc"}]}')) == {"a": [1, {"b": "ü"}]}
    assert read_json(_json_request(b"", None), required=False) == {}
    assert _refused(b"").status == 400                                  # a required body is missing
    assert _refused(b'{"a": 1}', "text/plain").status == 415           # JSON sent as text
    assert _refused(b"null", required=False).status == 400             # not an object
    deep = _refused(b"[" * 100_000 + b"]" * 100_000)                   # refused before parsing
    assert deep.status == 400 and "verschachtelt" in deep.message
    surrogate = _refused(b'{"contact": {"name": "\\ud800x"}}')
    assert surrogate.status == 400 and "contact.name" in surrogate.fields


def test_brackets_inside_strings_do_not_count_as_nesting():
    from kc_gateway.service import read_json
    assert read_json(_json_request(b'{"x": "' + b"[{" * 100 + b'\\"]"}')) == {"x": "[{" * 100 + '"]'}


def test_decimals_are_documented_as_strings_with_their_range():
    import re
    from decimal import Decimal as D
    amount = re.compile(openapi.decimal_pattern(2, D("0.01"), D("100000.00")))
    assert all(amount.match(v) for v in ("0.01", "0.5", "1", "99999.99", "100000", "100000.00"))
    assert not any(amount.match(v) for v in ("0", "0.00", "100000.01", "100001", "-1", "1e3", "1.234"))
    doc = openapi.document()
    balance = doc["components"]["schemas"]["Account"]["properties"]["balance"]
    assert balance["type"] == "string" and "pattern" in balance
    contract = doc["paths"]["/api/v1/me/contracts/{contract_id}"]["get"]["parameters"][0]
    assert contract["schema"]["maximum"] == 2**31 - 1


def test_405_names_the_allowed_methods():
    from werkzeug.exceptions import MethodNotAllowed
    resp = response_from_error(MethodNotAllowed(valid_methods=["POST", "GET"]))
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, POST"


def test_a_500_is_logged_with_the_id_the_client_gets(caplog):
    """The gateway logs outside any worker: the request's id is set for its green thread."""
    from kc_common.context import CorrelationFilter, correlation
    with correlation("cid-12345678"), caplog.at_level("ERROR"):
        resp = response_from_error(RuntimeError("kaputt"), "cid-12345678")
        record = caplog.records[-1]
        CorrelationFilter().filter(record)  # as the log handler does, at the time of logging
    assert resp.status_code == 500 and b"cid-12345678" in resp.get_data()
    assert record.correlation_id == "cid-12345678" and "cid-12345678" in record.getMessage()


def test_400_is_the_schema_and_422_what_a_service_refuses_of_a_matching_request():
    """The gateway checks the body against the route's (published) schema before the RPC:
    a mismatch is 400 and the service is never called; a ValidationFailed the service
    raises for a matching request reaches the client as 422 with the same body."""
    import pytest

    from kc_common.errors import InputRefused, ValidationFailed
    from kc_gateway.routes import ROUTES
    from kc_gateway.service import GatewayService

    route_ = next(r for r in ROUTES if (r.method, r.path) == ("POST", "/api/v1/email-confirmations"))
    calls = []

    class Identity:
        def confirm_email(self, data):
            calls.append(data)
            raise ValidationFailed("Der Link ist ungültig.", fields={"token": ["Ungültig."]})

    gateway = SimpleNamespace(state=SimpleNamespace(route=route_, data={}), _authenticate=lambda *a: None,
                              services={"identity": Identity()},
                              sessions=SimpleNamespace(invalidate=lambda **kw: None))
    with pytest.raises(ValidationFailed) as info:
        GatewayService.handle(gateway, _json_request(b'{"token": 5}'))
    assert info.value.status == 400 and list(info.value.fields) == ["token"] and calls == []
    with pytest.raises(ValidationFailed) as info:
        GatewayService.handle(gateway, _json_request(b'{"token": "x", "extra": 1}'))
    assert info.value.status == 400 and list(info.value.fields) == ["extra"] and calls == []

    with pytest.raises(InputRefused) as info:
        GatewayService.handle(gateway, _json_request(b'{"token": "abc"}'))
    assert calls == [{"token": "abc"}]
    resp = response_from_error(info.value)
    assert resp.status_code == 422
    assert resp.get_json() == {"error": "validation_failed", "message": "Der Link ist ungültig.",
                               "fields": {"token": ["Ungültig."]}}


def test_the_document_states_400_where_the_gateway_checks_and_422_where_a_service_judges():
    paths = openapi.document()["paths"]
    order = paths["/api/v1/me/orders"]["post"]["responses"]
    assert {"400", "422"} <= set(order) and "document" in order["400"]["description"]
    # a path value only: nothing the gateway checks against a schema, the service may refuse it
    zone = paths["/api/v1/me/zones/{zone}"]["get"]["responses"]
    assert "422" in zone and "400" not in zone
    # no input at all: neither
    assert not {"400", "422"} & set(paths["/api/v1/me"]["get"]["responses"])


def test_a_multipart_form_is_checked_as_its_schema_describes_it():
    import pytest

    from kc_billing.schemas import StatementUploadFormSchema
    from kc_common.errors import ValidationFailed
    from kc_gateway.service import check_schema, form_fields
    from kc_support.schemas import OpenRequestFormSchema

    upload = {"field": "file", "filename": "auszug.xml", "content_type": "application/xml", "content_b64": ""}
    check_schema(StatementUploadFormSchema, form_fields(StatementUploadFormSchema, {"files": [upload]}))
    with pytest.raises(ValidationFailed) as info:  # the document's required file is missing
        check_schema(StatementUploadFormSchema, form_fields(StatementUploadFormSchema, {"files": []}))
    assert info.value.status == 400 and list(info.value.fields) == ["file"]
    # a text field the form's schema refuses (blank after stripping: shorter than its minLength)
    form = {"name": "Max", "subject": "  ", "message": "Hallo", "files": [dict(upload, field="attachments")]}
    assert form_fields(OpenRequestFormSchema, form)["attachments"] == ["auszug.xml"]
    with pytest.raises(ValidationFailed) as info:
        check_schema(OpenRequestFormSchema, form_fields(OpenRequestFormSchema, form))
    assert "subject" in info.value.fields


def test_a_json_number_for_a_documented_decimal_string_is_a_400_naming_it():
    """schemathesis found PATCH /staff/products with "vat_rate": 0 accepted: marshmallow
    takes a number where the document says a decimal string."""
    import pytest

    from kc_catalog import schemas as catalog
    from kc_common.errors import ValidationFailed
    from kc_gateway.service import check_schema
    with pytest.raises(ValidationFailed) as refused:
        check_schema(catalog.ProductUpdateSchema, {"vat_rate": 0, "price_net": 1.5, "name": "x"})
    assert set(refused.value.fields) == {"vat_rate", "price_net"}
    check_schema(catalog.ProductUpdateSchema, {"vat_rate": "19.00", "price_net": "1.50", "name": "x"})
    # a decimal the document states as a number (traffic in GB) takes one
    check_schema(catalog.TrafficReportSchema, {"items": [{"day": "2000-01-01", "gb": 0.0}]})
