"""identity through the gateway's HTTP with every process real: Meine Daten, logins, staff."""
import uuid

import pytest
import requests

from kc_common.testing import wait_for
from tests.conftest import login

ADDRESS = {"company": "", "last_name": "Musterfrau", "first_name": "Erika", "street": "Hauptstraße 5",
           "zip": "10115", "city": "Berlin", "country": "DE", "phone": "030 1234567",
           "fax": "", "mobile": "0171 2345678", "vat_id": None}
NEW_PASSWORD = "Korallen-Fuchs-Teich-81"


@pytest.fixture
def customer(make_customer):
    """A fresh customer of this test: (id, headers, email, password)."""
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.org"
    customer_id, headers = make_customer(email=email)
    return customer_id, headers, email, "Kunden-Passwort-2026"


def url(system, path):
    return system.url + "/api/v1" + path


def test_address_data_is_validated_and_saved(system, customer):
    customer_id, headers, email, _ = customer
    me = requests.get(url(system, "/me/address"), headers=headers).json()
    assert me["customer_id"] == customer_id and me["email"] == email
    resp = requests.put(url(system, "/me/address"), headers=headers, json=dict(ADDRESS, email=email))
    assert resp.status_code == 200, resp.text
    saved = resp.json()
    assert saved["phone"] == "+49301234567" and saved["zip"] == "10115" and saved["customer_id"] == customer_id

    bad = dict(ADDRESS, email="kaputt@", zip="1011", phone="12", vat_id="DE1", city="", street="Anders 1")
    resp = requests.put(url(system, "/me/address"), headers=headers, json=bad)
    # strings as the schema says; the service's rules refuse them, every field at once
    assert resp.status_code == 422 and resp.json()["error"] == "validation_failed"
    assert set(resp.json()["fields"]) == {"email", "zip", "phone", "vat_id", "city"}
    assert requests.get(url(system, "/me/address"), headers=headers).json() == saved  # nothing saved

    resp = requests.put(url(system, "/me/address"), headers=headers,
                        json=dict(ADDRESS, email=email, company="Neue Firma GmbH"))
    assert resp.status_code == 422 and "Inhaberwechsel" in resp.json()["fields"]["company"][0]
    resp = requests.put(url(system, "/me/address"), headers=headers,
                        json=dict(ADDRESS, email=email, city="Potsdam", zip="14467", version=saved["version"] - 1))
    assert resp.status_code == 409
    without_country = {k: v for k, v in ADDRESS.items() if k != "country"}
    resp = requests.put(url(system, "/me/address"), headers=headers,
                        json=dict(without_country, email=email, street="Hauptstraße 7"))
    assert resp.status_code == 200 and resp.json()["country"] == "DE" and resp.json()["street"] == "Hauptstraße 7"


def test_service_password_change(system, customer):
    customer_id, headers, email, password = customer
    other = login(system, {"login": str(customer_id), "password": password})
    resp = requests.put(url(system, "/me/password"), headers=headers, json={
        "current_password": "falsch", "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["current_password"]
    resp = requests.put(url(system, "/me/password"), headers=headers, json={
        "current_password": password, "new_password": str(customer_id) + "abcdefgh",
        "new_password_repeat": str(customer_id) + "abcdefgh"})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["new_password"]
    resp = requests.put(url(system, "/me/password"), headers=headers, json={
        "current_password": password, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD})
    assert resp.status_code == 204, resp.text
    assert requests.get(url(system, "/me"), headers=headers).status_code == 200
    assert requests.get(url(system, "/me"), headers=other).status_code == 401   # other sessions ended
    assert requests.post(url(system, "/session"), json={"login": email, "password": password}).status_code == 401
    login(system, {"login": email, "password": NEW_PASSWORD})
    mail = wait_for(lambda: [m for m in system.mails(to=email) if m["Subject"] == "Ihr Service-Passwort wurde geändert"],
                    message="the password notice")[0]
    assert str(customer_id) in mail.get_content()


def test_too_many_failed_logins_get_429_with_retry_after(system, customer):
    customer_id, headers, email, password = customer
    for _ in range(5):
        assert requests.post(url(system, "/session"), json={"login": email, "password": "falsch"}).status_code == 401
    resp = requests.post(url(system, "/session"), json={"login": str(customer_id), "password": password})
    assert resp.status_code == 429 and resp.json()["error"] == "too_many_requests"
    assert 0 < int(resp.headers["Retry-After"]) <= 900
    logins = requests.get(url(system, "/me/logins"), headers=headers).json()
    assert logins["total"] >= 6 and logins["items"][0]["success"] is False


def test_ip_whitelist_locks_out_other_networks(system, make_customer):
    _, locked = make_customer()
    resp = requests.put(url(system, "/me/ip-whitelist"), headers=locked, json={"entries": ["10.0.0.0/8"]})
    assert resp.status_code == 409 and resp.json()["client_ip"] == "127.0.0.1"
    assert resp.json()["reason"] == "confirmation_required"
    resp = requests.put(url(system, "/me/ip-whitelist"), headers=locked, json={"entries": ["10.0.0.0/8", "nix"]})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["entries.1"]  # no address
    resp = requests.put(url(system, "/me/ip-whitelist"), headers=locked,
                        json={"entries": ["10.0.0.0/8"], "confirm_lockout": True})
    assert resp.status_code == 200 and resp.json()["client_ip_allowed"] is False
    resp = requests.get(url(system, "/me"), headers=locked)           # the existing session
    assert resp.status_code == 403 and "IP-Whitelist" in resp.json()["message"]

    email = f"wl-{uuid.uuid4().hex[:8]}@example.org"
    _, allowed = make_customer(email=email)
    resp = requests.put(url(system, "/me/ip-whitelist"), headers=allowed,
                        json={"entries": ["127.0.0.0/8", "2001:db8::/32"]})
    assert resp.status_code == 200 and resp.json()["entries"] == ["127.0.0.0/8", "2001:db8::/32"]
    assert requests.get(url(system, "/me"), headers=allowed).status_code == 200
    login(system, {"login": email, "password": "Kunden-Passwort-2026"})


def test_login_from_outside_the_whitelist_is_refused(system, make_customer, staff_headers):
    email = f"wl-{uuid.uuid4().hex[:8]}@example.org"
    customer_id, headers = make_customer(email=email)
    assert requests.put(url(system, "/me/ip-whitelist"), headers=headers,
                        json={"entries": ["192.0.2.0/24"], "confirm_lockout": True}).status_code == 200
    resp = requests.post(url(system, "/session"), json={"login": email, "password": "Kunden-Passwort-2026"})
    assert resp.status_code == 403 and "IP-Whitelist" in resp.json()["message"]
    assert resp.json()["reason"] == "ip_not_allowed"
    # A wrong password still gets the plain 401 (nothing about the whitelist to strangers).
    resp = requests.post(url(system, "/session"), json={"login": email, "password": "falsch"})
    assert resp.status_code == 401
    # Support lifts the whitelist of a customer who locked themself out.
    assert requests.delete(url(system, f"/staff/customers/{customer_id}/ip-whitelist"),
                           headers=staff_headers("support")).status_code == 204
    login(system, {"login": email, "password": "Kunden-Passwort-2026"})


def test_sessions_are_listed_and_ended_but_not_another_customers(system, customer, make_customer):
    customer_id, headers, _, password = customer
    second = login(system, {"login": str(customer_id), "password": password})
    items = requests.get(url(system, "/me/sessions"), headers=headers).json()["items"]
    assert len(items) == 2 and sum(i["current"] for i in items) == 1
    other_session = next(i["id"] for i in items if not i["current"])
    _, intruder = make_customer()
    assert requests.delete(url(system, f"/me/sessions/{other_session}"), headers=intruder).status_code == 404
    assert requests.get(url(system, "/me"), headers=second).status_code == 200
    assert requests.delete(url(system, f"/me/sessions/{other_session}"), headers=headers).status_code == 204
    assert requests.get(url(system, "/me"), headers=second).status_code == 401


def test_phone_password_shown_to_the_customer_verified_by_staff(system, customer, staff_headers):
    customer_id, headers, _, _ = customer
    assert requests.get(url(system, "/me/phone-password"), headers=headers).json()["phone_password_set"] is False
    resp = requests.put(url(system, "/me/phone-password"), headers=headers,
                        json={"phone_password": "Weser-Boot-77", "phone_password_repeat": "Weser-Boot-78"})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["phone_password_repeat"]
    resp = requests.put(url(system, "/me/phone-password"), headers=headers,
                        json={"phone_password": "Weser-Boot-77", "phone_password_repeat": "Weser-Boot-77"})
    assert resp.status_code == 200 and resp.json()["phone_password_set"] is True
    resp = requests.post(url(system, "/me/phone-password/reveal"), headers=headers, json={})
    assert resp.status_code == 200 and resp.json()["phone_password"] == "Weser-Boot-77"

    support = staff_headers("support")
    verify = url(system, f"/staff/customers/{customer_id}/phone-password/verify")
    assert requests.post(verify, headers=support, json={"password": "Weser-Boot-77"}).json() == {"verified": True}
    assert requests.post(verify, headers=support, json={"password": "geraten"}).json() == {"verified": False}
    assert requests.post(verify, headers=headers, json={"password": "Weser-Boot-77"}).status_code == 401
    assert requests.post(verify, headers=staff_headers("billing"),
                         json={"password": "Weser-Boot-77"}).status_code == 403
    for _ in range(4):
        requests.post(verify, headers=support, json={"password": "geraten"})
    resp = requests.post(verify, headers=support, json={"password": "Weser-Boot-77"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Weser-Boot-77" not in system.log("identity") + system.log("gateway")


def test_contacts_of_another_customer_are_not_found(system, customer, make_customer):
    _, headers, _, _ = customer
    resp = requests.post(url(system, "/me/contacts"), headers=headers, json={
        "name": "Paul Technik", "email": "paul@example.org", "role": "Technik", "may_support": True})
    assert resp.status_code == 201, resp.text
    contact = resp.json()
    resp = requests.post(url(system, "/me/contacts"), headers=headers, json={"name": "Ohne Kontakt",
                                                                             "phone": "12"})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["phone"]
    assert [c["id"] for c in requests.get(url(system, "/me/contacts"), headers=headers).json()["items"]] == \
        [contact["id"]]
    _, intruder = make_customer()
    assert requests.get(url(system, "/me/contacts"), headers=intruder).json()["items"] == []
    assert requests.put(url(system, f"/me/contacts/{contact['id']}"), headers=intruder,
                        json={"name": "Gekapert", "email": "x@example.org"}).status_code == 404
    assert requests.delete(url(system, f"/me/contacts/{contact['id']}"), headers=intruder).status_code == 404
    resp = requests.put(url(system, f"/me/contacts/{contact['id']}"), headers=headers,
                        json={"name": "Paul Technik", "email": "paul@example.org", "may_billing": True})
    assert resp.status_code == 200 and resp.json()["may_billing"] is True
    assert requests.delete(url(system, f"/me/contacts/{contact['id']}"), headers=headers).status_code == 204


def test_notifications_and_mandatory_mail(system, customer):
    _, headers, _, _ = customer
    items = {i["topic"]: i for i in requests.get(url(system, "/me/notifications"), headers=headers).json()["items"]}
    assert items["newsletter"]["enabled"] is False and items["invoice"]["mandatory"] is True
    resp = requests.put(url(system, "/me/notifications"), headers=headers, json={"newsletter": True})
    assert {i["topic"]: i["enabled"] for i in resp.json()["items"]}["newsletter"] is True
    resp = requests.put(url(system, "/me/notifications"), headers=headers, json={"invoice": False})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["invoice"]  # mandatory
    resp = requests.put(url(system, "/me/notifications"), headers=headers, json={"spam": True})
    assert resp.status_code == 400 and "spam" in resp.json()["fields"]  # unknown field: the schema


def test_av_agreement_is_signed_once_per_version(system, customer):
    _, headers, _, _ = customer
    status = requests.get(url(system, "/me/av-agreement"), headers=headers).json()
    assert status["signed"] is False and "Auftragsverarbeitung" in status["current"]["text"]
    body = {"version": status["current"]["version"], "signer_name": "Erika Musterfrau",
            "signer_position": "Inhaberin", "accept": True}
    resp = requests.post(url(system, "/me/av-agreement/signatures"), headers=headers, json=dict(body, accept=False))
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["accept"]
    resp = requests.post(url(system, "/me/av-agreement/signatures"), headers=headers, json=body)
    assert resp.status_code == 201 and resp.json()["client_ip"] == "127.0.0.1"
    assert requests.post(url(system, "/me/av-agreement/signatures"), headers=headers, json=body).status_code == 409
    status = requests.get(url(system, "/me/av-agreement"), headers=headers).json()
    assert status["signed"] is True and len(status["signatures"]) == 1


def test_staff_look_up_customers_and_complete_an_owner_change(system, customer, staff_headers):
    customer_id, headers, email, _ = customer
    support = staff_headers("support")
    found = requests.get(url(system, "/staff/customers"), headers=support, params={"q": email}).json()
    assert found["total"] == 1 and found["items"][0]["customer_id"] == customer_id
    assert requests.get(url(system, "/staff/customers"), headers=headers).status_code == 401
    detail = requests.get(url(system, f"/staff/customers/{customer_id}"), headers=support).json()
    assert detail["email"] == email and "phone_password" not in detail
    assert requests.get(url(system, "/staff/customers/999999"), headers=support).status_code == 404
    resp = requests.put(url(system, f"/staff/customers/{customer_id}/owner"), headers=staff_headers("billing"),
                        json={"company": "Neue Inhaber GmbH"})
    assert resp.status_code == 403
    resp = requests.put(url(system, f"/staff/customers/{customer_id}/owner"), headers=support,
                        json={"company": "Neue Inhaber GmbH", "vat_id": "DE123456788"})
    assert resp.status_code == 200 and resp.json()["is_business"] is True
    assert requests.get(url(system, "/me/address"), headers=headers).json()["company"] == "Neue Inhaber GmbH"


def test_openapi_documents_the_identity_routes(system):
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    for path in ("/api/v1/me/address", "/api/v1/me/password", "/api/v1/me/phone-password/reveal",
                 "/api/v1/me/ip-whitelist", "/api/v1/me/contacts/{contact_id}", "/api/v1/me/notifications",
                 "/api/v1/me/av-agreement/signatures", "/api/v1/me/sessions/{session_id}",
                 "/api/v1/staff/customers/{customer_id}/owner"):
        assert path in paths, path


def test_two_factor_login(system, customer):
    import pyotp
    customer_id, headers, email, password = customer
    setup = requests.post(url(system, "/me/two-factor/setup"), headers=headers, json={"password": password}).json()
    resp = requests.post(url(system, "/me/two-factor/enable"), headers=headers,
                         json={"code": pyotp.TOTP(setup["secret"]).now()})
    assert resp.status_code == 200, resp.text
    codes = resp.json()["recovery_codes"]
    resp = requests.post(url(system, "/session"), json={"login": email, "password": password})
    assert resp.status_code == 401 and resp.json()["reason"] == "otp_required"
    resp = requests.post(url(system, "/session"), json={"login": email, "password": password, "otp": codes[1]})
    assert resp.status_code == 201
    assert requests.get(url(system, "/me/two-factor"), headers=headers).json()["recovery_codes_left"] == 9
