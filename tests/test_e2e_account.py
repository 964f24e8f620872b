"""A customer's account lifecycle through the gateway's HTTP, every service a real process and
every mail through the real SMTP sink: sign-up with double opt-in, Passwort vergessen,
confirmed e-mail changes, customers created by staff; throttling and no enumeration."""
import statistics
import time
import uuid

import pytest
import requests
from sqlalchemy import update

from kc_common.testing import wait_for
from tests.conftest import SIGNUP_ADDRESS, login, mail_link_token

PASSWORD = "Kunden-Passwort-2026"
NEW_PASSWORD = "Kompass-Wolke-Birke-91"
VERIFY = "Bitte bestätigen Sie Ihre E-Mail-Adresse"
RESET = "Neues Service-Passwort festlegen"


def url(system, path):
    return system.url + "/api/v1" + path


def fresh_email(prefix="neu"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"


def from_address():
    """A client address of this test's own (the gateway trusts X-Forwarded-For from 127.0.0.1)."""
    return {"X-Forwarded-For": "10.{}.{}.{}".format(*uuid.uuid4().bytes[:3])}


@pytest.fixture(scope="module")
def terms(system):
    resp = requests.get(url(system, "/signup/terms"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["slug"] == "unternehmer-agb"
    return resp.json()["version"]


def signup_body(terms, email, **extra):
    body = dict(SIGNUP_ADDRESS, customer_type="private", last_name="Neumann", first_name="Nina", email=email,
                password=PASSWORD, password_repeat=PASSWORD, accept_terms=True, terms_version=terms)
    body.update(extra)
    return body


def order(system, headers):
    return requests.post(url(system, "/me/orders"), headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                         json={"items": [{"product_id": "domain-de", "domain": f"neu-{uuid.uuid4().hex[:6]}.de"}]})


def test_sign_up_verify_by_link_then_order(system, terms):
    email = fresh_email()
    resp = requests.post(url(system, "/signup"), json=signup_body(terms, email), headers=from_address())
    assert resp.status_code == 202, resp.text
    assert "bestätigen Sie Ihre E-Mail-Adresse" in resp.json()["message"]
    # Until the link is confirmed: login works and says so; ordering and paying are refused.
    session = requests.post(url(system, "/session"), json={"login": email, "password": PASSWORD}).json()
    assert session["email_verified"] is False and "bestätigen" in session["notice"]
    headers = {"Authorization": "Bearer " + session["token"]}
    me = requests.get(url(system, "/me"), headers=headers).json()
    assert me["email_verified"] is False and me["customer_id"] > 100001 and me["street"] == "Teststraße 1"
    refused = order(system, headers)
    assert refused.status_code == 403 and refused.json()["reason"] == "email_not_verified"
    assert "E-Mail-Adresse" in refused.json()["message"]
    pay = requests.post(url(system, "/me/payments"), headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                        json={"method": "card"})
    assert pay.status_code == 403 and pay.json()["reason"] == "email_not_verified"

    token = mail_link_token(system, email, VERIFY)
    mail = [m for m in system.mails(to=email) if m["Subject"] == VERIFY][0]
    assert str(me["customer_id"]) in mail.get_content()  # the Kundennummer comes by mail
    confirmed = requests.post(url(system, "/email-confirmations"), json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"purpose": "verify_email", "email": email, "customer_id": me["customer_id"]}
    again = requests.post(url(system, "/email-confirmations"), json={"token": token})
    assert again.status_code == 422 and list(again.json()["fields"]) == ["token"]  # used already
    placed = order(system, headers)  # the same session: the verified state is read per request
    assert placed.status_code == 201, placed.text
    assert requests.get(url(system, "/me"), headers=headers).json()["email_verified"] is True


def test_sign_up_with_a_registered_email_answers_alike_and_mails_the_owner(system, terms, make_customer):
    email = fresh_email("vorhanden")
    customer_id, _ = make_customer(email=email)
    new = requests.post(url(system, "/signup"), json=signup_body(terms, fresh_email()), headers=from_address())
    taken = requests.post(url(system, "/signup"), json=signup_body(terms, email.upper(), password=NEW_PASSWORD,
                                                                    password_repeat=NEW_PASSWORD),
                          headers=from_address())
    assert (new.status_code, new.json()) == (taken.status_code, taken.json()) == (202, new.json())
    mail = wait_for(lambda: [m for m in system.mails(to=email) if m["Subject"] == "Sie haben bereits ein Kundenkonto"],
                    message="the mail to the registered address")[0]
    assert str(customer_id) in mail.get_content() and "/passwort-vergessen" in mail.get_content()
    # nothing changed: the old password still logs in, the new one does not
    assert requests.post(url(system, "/session"), json={"login": email, "password": NEW_PASSWORD}).status_code == 401
    login(system, {"login": email, "password": PASSWORD})


def test_sign_up_validates_every_field(system, terms):
    email = fresh_email("pruef")
    bad = signup_body(terms, email, customer_type="company", company="", vat_id="DE1", zip="1",
                      password="nina-" + email.split("@")[0], password_repeat="anders", accept_terms=False)
    resp = requests.post(url(system, "/signup"), json=bad, headers=from_address())
    assert resp.status_code == 422  # matches the schema; the rules refuse it, every field at once
    assert set(resp.json()["fields"]) == {"company", "vat_id", "zip", "password", "password_repeat", "accept_terms"}
    private_vat = requests.post(url(system, "/signup"), json=signup_body(terms, email, vat_id="DE123456788"),
                                headers=from_address())
    assert private_vat.status_code == 422 and list(private_vat.json()["fields"]) == ["vat_id"]
    old_terms = requests.post(url(system, "/signup"), json=signup_body(terms, email, terms_version="0.9"),
                              headers=from_address())
    assert old_terms.status_code == 409 and old_terms.json()["reason"] == "new_version"
    company = requests.post(url(system, "/signup"), headers=from_address(), json=signup_body(
        terms, email, customer_type="company", company="Neu GmbH", vat_id="de 123456788"))
    assert company.status_code == 202, company.text
    mail_link_token(system, email, VERIFY)


def test_sign_up_is_throttled_per_email_and_per_address(system, terms):
    email = fresh_email("drossel")
    for _ in range(3):
        assert requests.post(url(system, "/signup"), json=signup_body(terms, email),
                             headers=from_address()).status_code == 202
    resp = requests.post(url(system, "/signup"), json=signup_body(terms, email), headers=from_address())
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    one = from_address()
    for _ in range(10):
        assert requests.post(url(system, "/signup"), json=signup_body(terms, fresh_email("viele")),
                             headers=one).status_code == 202
    resp = requests.post(url(system, "/signup"), json=signup_body(terms, fresh_email("viele")), headers=one)
    assert resp.status_code == 429


def _identity_db(system):
    from kc_common.db import StandaloneDatabase
    from kc_identity.models import metadata
    return StandaloneDatabase(metadata, system.database_urls["identity"], "identity")


def test_forgotten_password_link_once_sessions_end(system, make_customer):
    email = fresh_email("vergessen")
    _, old_headers = make_customer(email=email)
    resp = requests.post(url(system, "/password-reset"), json={"login": email}, headers=from_address())
    assert resp.status_code == 202
    token = mail_link_token(system, email, RESET)
    weak = requests.put(url(system, "/password-reset"), json={
        "token": token, "new_password": "passwort123", "new_password_repeat": "passwort123"})
    assert weak.status_code == 422 and list(weak.json()["fields"]) == ["new_password"]
    done = requests.put(url(system, "/password-reset"), json={
        "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    second = requests.put(url(system, "/password-reset"), json={
        "token": token, "new_password": NEW_PASSWORD + "!", "new_password_repeat": NEW_PASSWORD + "!"})
    assert second.status_code == 422 and list(second.json()["fields"]) == ["token"]
    assert requests.get(url(system, "/me"), headers=old_headers).status_code == 401  # old sessions gone
    assert requests.post(url(system, "/session"), json={"login": email, "password": PASSWORD}).status_code == 401
    login(system, {"login": email, "password": NEW_PASSWORD})
    wait_for(lambda: [m for m in system.mails(to=email) if m["Subject"] == "Ihr Service-Passwort wurde geändert"],
             message="the notice mail")


def test_expired_reset_link_is_refused(system, make_customer):
    email = fresh_email("abgelaufen")
    make_customer(email=email)
    requests.post(url(system, "/password-reset"), json={"login": email}, headers=from_address())
    token = mail_link_token(system, email, RESET)
    from kc_identity.domain.common import hash_token
    from kc_identity.models import account_tokens
    db = _identity_db(system)
    with db.unit_of_work() as uow:  # as if the link's time had passed
        uow.session.execute(update(account_tokens).where(account_tokens.c.token_hash == hash_token(token))
                            .values(expires_at=account_tokens.c.created_at))
    db.engine.dispose()
    resp = requests.put(url(system, "/password-reset"), json={
        "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD})
    assert resp.status_code == 422 and list(resp.json()["fields"]) == ["token"]
    login(system, {"login": email, "password": PASSWORD})


def test_reset_request_reveals_nothing(system, make_customer):
    email = fresh_email("bekannt")
    customer_id, _ = make_customer(email=email)
    timings = {"known": [], "unknown": []}
    answers = set()
    for i in range(4):
        for kind, login_text in (("known", email if i % 2 else str(customer_id)),
                                 ("unknown", fresh_email("unbekannt"))):
            started = time.monotonic()
            resp = requests.post(url(system, "/password-reset"), json={"login": login_text}, headers=from_address())
            timings[kind].append(time.monotonic() - started)
            answers.add((resp.status_code, resp.text))
    assert len(answers) == 1 and next(iter(answers))[0] == 202
    # same timing class: no slow work (hashing, mail) on either path while the client waits
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    print(f"password reset request: known {known * 1000:.0f} ms, unknown {unknown * 1000:.0f} ms (medians)")
    assert abs(known - unknown) < 0.25


def test_email_change_confirmed_by_the_new_address(system, make_customer):
    email, new_email = fresh_email("alt"), fresh_email("neu-adresse")
    _, headers = make_customer(email=email)
    me = requests.get(url(system, "/me"), headers=headers).json()
    address = {k: me[k] for k in ("company", "last_name", "first_name", "street", "zip", "city", "country", "phone")}
    resp = requests.put(url(system, "/me/address"), headers=headers, json=dict(address, email=new_email))
    assert resp.status_code == 200, resp.text
    assert resp.json()["email"] == email and resp.json()["pending_email"] == new_email
    token = mail_link_token(system, new_email, "Bitte bestätigen Sie Ihre neue E-Mail-Adresse")
    assert requests.get(url(system, "/me"), headers=headers).json()["email"] == email
    confirmed = requests.post(url(system, "/email-confirmations"), json={"token": token})
    assert confirmed.status_code == 200 and confirmed.json()["purpose"] == "change_email"
    assert requests.get(url(system, "/me"), headers=headers).json()["email"] == new_email
    notice = wait_for(lambda: [m for m in system.mails(to=email)
                               if m["Subject"] == "Die E-Mail-Adresse Ihres Kundenkontos wurde geändert"],
                      message="the notice to the old address")[0]
    assert new_email in notice.get_content() and notice["Reply-To"]
    login(system, {"login": new_email, "password": PASSWORD})


def test_staff_create_customer_with_set_password_link(system, staff_headers):
    email = fresh_email("telefon")
    data = dict(SIGNUP_ADDRESS, customer_type="company", company="Telefonbestellung GmbH", last_name="Ruf",
                first_name="Rita", email=email, vat_id="DE123456788")
    assert requests.post(url(system, "/staff/customers"), headers=staff_headers("billing"),
                         json=data).status_code == 403
    resp = requests.post(url(system, "/staff/customers"), headers=staff_headers("support"), json=data)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["company"] == "Telefonbestellung GmbH" and created["email_verified"] is False
    token = mail_link_token(system, email, "Ihr Kundenkonto wurde angelegt")
    assert requests.put(url(system, "/password-reset"), json={
        "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD}).status_code == 204
    headers = login(system, {"login": str(created["customer_id"]), "password": NEW_PASSWORD})
    assert order(system, headers).status_code == 201  # the link confirmed the address


def test_new_routes_are_in_the_openapi_document(system):
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    for path in ("/api/v1/signup", "/api/v1/signup/terms", "/api/v1/password-reset", "/api/v1/email-confirmations",
                 "/api/v1/me/email-verification", "/api/v1/staff/customers"):
        assert path in paths
    assert set(paths["/api/v1/password-reset"]) >= {"post", "put"}


def _csrf(html):
    import re
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_web_pages_register_confirm_and_reset(system):
    """The German pages: Registrieren → E-Mail bestätigen → Passwort vergessen → neues Passwort."""
    browser = requests.Session()
    email = fresh_email("web")
    page = browser.get(system.web_url + "/registrieren")
    assert page.status_code == 200 and "Unternehmer AGB" in page.text
    form = dict(SIGNUP_ADDRESS, customer_type="private", first_name="Wera", last_name="Web", email=email,
                password=PASSWORD, password_repeat=PASSWORD, terms_version=_version(page.text),
                csrf_token=_csrf(page.text))
    refused = browser.post(system.web_url + "/registrieren", data=form)  # AGB not accepted
    assert refused.status_code == 400 and "Allgemeinen Geschäftsbedingungen" in refused.text
    done = browser.post(system.web_url + "/registrieren", data=dict(form, accept_terms="1"))
    assert done.status_code == 200 and "Vielen Dank für Ihre Registrierung" in done.text
    token = mail_link_token(system, email, VERIFY)
    page = browser.get(system.web_url + "/email-bestaetigen", params={"token": token})
    confirmed = browser.post(system.web_url + "/email-bestaetigen", data={"token": token,
                                                                         "csrf_token": _csrf(page.text)})
    assert confirmed.status_code == 200 and "ist bestätigt" in confirmed.text
    again = browser.post(system.web_url + "/email-bestaetigen", data={"token": token,
                                                                     "csrf_token": _csrf(page.text)})
    assert again.status_code == 400 and "ungültig, abgelaufen oder wurde bereits verwendet" in again.text

    page = browser.get(system.web_url + "/passwort-vergessen")
    sent = browser.post(system.web_url + "/passwort-vergessen", data={"login": email, "csrf_token": _csrf(page.text)})
    assert sent.status_code == 200 and "Wenn zu diesen Angaben ein Kundenkonto besteht" in sent.text
    token = mail_link_token(system, email, RESET)
    page = browser.get(system.web_url + "/passwort-neu", params={"token": token})
    saved = browser.post(system.web_url + "/passwort-neu", data={
        "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD,
        "csrf_token": _csrf(page.text)})
    assert saved.status_code == 200 and "Ihr neues Service-Passwort ist gespeichert" in saved.text
    login(system, {"login": email, "password": NEW_PASSWORD})


def _version(html):
    import re
    return re.search(r'name="terms_version" value="([^"]+)"', html).group(1)
