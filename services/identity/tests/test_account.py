"""identity's account lifecycle on the real bus, PostgreSQL and a real SMTP server:
Passwort vergessen, confirmed e-mail changes, customers created by staff.
(Sign-up needs documents for the current AGB: tests/test_e2e_account.py.)"""
import datetime as dt
import re
from functools import partial

import pytest
from sqlalchemy import select, update

from kc_common import testing
from kc_common.errors import (
    Conflict,
    Forbidden,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from kc_identity import demo, policy
from kc_identity.models import account_tokens, customers
from kc_identity.service import IdentityService

CUSTOMER = {"customer_id": 100001, "client_ip": "192.0.2.10"}
SUPPORT = {"staff_id": "s-1", "staff_roles": ["support"]}
ADDRESS = {"company": "Muster Webdesign GmbH", "last_name": "Mustermann", "first_name": "Max",
           "email": demo.DEMO_EMAIL, "street": "Lister Meile 5", "zip": "30161", "city": "Hannover",
           "country": "DE", "phone": "0511 7654321", "fax": None, "mobile": "", "vat_id": "DE123456788"}
NEW_PASSWORD = "Kompass-Wolke-Birke-91"


call = partial(testing.call, context=CUSTOMER)


def login(container, login="100001", password=demo.DEMO_PASSWORD, ip="192.0.2.10", **extra):
    return call(container, "login", dict(login=login, password=password, **extra), context={"client_ip": ip})


def token_in(mail):
    return re.search(r"token=([A-Za-z0-9_-]+)", mail.get_content()).group(1)


@pytest.fixture
def account_identity(container_factory, config, seeded):
    config = dict(config, PASSWORD_RESET_MAX_PER_LOGIN=4, PASSWORD_RESET_MAX_PER_ADDRESS=6,
                  PASSWORD_RESET_MAILS_PER_ACCOUNT=2, WEB_PUBLIC_URL="https://kc.example")
    container = container_factory(IdentityService, config)
    container.start()
    return container


def test_demo_credentials_pass_the_password_policy():
    assert policy.service_password_problems(demo.DEMO_PASSWORD, customer_id=100001, email=demo.DEMO_EMAIL) == []


# --- Passwort vergessen ----------------------------------------------------------------------

def test_password_reset_by_link_once(account_identity, smtp_server, seeded):
    old = login(account_identity)
    known = call(account_identity, "request_password_reset", {"login": "100001"}, context={"client_ip": "192.0.2.20"})
    unknown = call(account_identity, "request_password_reset", {"login": "niemand@example.org"},
                   context={"client_ip": "192.0.2.20"})
    assert known == unknown and "Wenn zu diesen Angaben ein Kundenkonto besteht" in known["message"]
    mail = smtp_server.wait(1, to=demo.DEMO_EMAIL)[0]
    assert mail["Subject"] == "Neues Service-Passwort festlegen"
    assert "https://kc.example/passwort-neu?token=" in mail.get_content()
    token = token_in(mail)
    with seeded.unit_of_work() as uow:  # only the hash is stored
        stored = uow.session.execute(select(account_tokens.c.token_hash)).scalars().all()
    assert token not in stored and len(stored) == 1
    with pytest.raises(ValidationFailed) as err:  # the policy still applies; the link stays usable
        call(account_identity, "reset_password", {"token": token, "new_password": "Hafen-Leuchtturm-2026x",
                                                  "new_password_repeat": "anders"}, context={})
    assert set(err.value.fields) == {"new_password_repeat"}
    call(account_identity, "reset_password", {"token": token, "new_password": NEW_PASSWORD,
                                              "new_password_repeat": NEW_PASSWORD}, context={"client_ip": "192.0.2.20"})
    with pytest.raises(ValidationFailed) as err:  # single use
        call(account_identity, "reset_password", {"token": token, "new_password": NEW_PASSWORD + "x",
                                                  "new_password_repeat": NEW_PASSWORD + "x"}, context={})
    assert list(err.value.fields) == ["token"]
    with pytest.raises(Unauthenticated):  # every session ended
        call(account_identity, "authenticate", old["token"], context={"client_ip": "192.0.2.10"})
    with pytest.raises(Unauthenticated):
        login(account_identity)
    assert login(account_identity, password=NEW_PASSWORD)["customer_id"] == 100001
    notice = smtp_server.wait(2, to=demo.DEMO_EMAIL)[1]
    assert notice["Subject"] == "Ihr Service-Passwort wurde geändert"


def test_expired_link_is_refused(account_identity, smtp_server, seeded):
    call(account_identity, "request_password_reset", {"login": demo.DEMO_EMAIL}, context={"client_ip": "192.0.2.21"})
    token = token_in(smtp_server.wait(1, to=demo.DEMO_EMAIL)[0])
    with seeded.unit_of_work() as uow:
        uow.session.execute(update(account_tokens).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    with pytest.raises(ValidationFailed) as err:
        call(account_identity, "reset_password", {"token": token, "new_password": NEW_PASSWORD,
                                                  "new_password_repeat": NEW_PASSWORD}, context={})
    assert list(err.value.fields) == ["token"]
    assert login(account_identity)["customer_id"] == 100001  # the old password still works


def test_reset_keeps_two_factor_and_the_ip_whitelist(account_identity, smtp_server, seeded):
    with seeded.unit_of_work() as uow:
        uow.session.execute(update(customers).where(customers.c.id == 100001).values(
            ip_whitelist=["198.51.100.0/24"], totp_secret_enc="x"))
    call(account_identity, "request_password_reset", {"login": "100001"}, context={"client_ip": "192.0.2.22"})
    token = token_in(smtp_server.wait(1, to=demo.DEMO_EMAIL)[0])
    call(account_identity, "reset_password", {"token": token, "new_password": NEW_PASSWORD,
                                              "new_password_repeat": NEW_PASSWORD}, context={})
    with pytest.raises(Forbidden) as err:  # outside the whitelist: refused after the right password
        login(account_identity, password=NEW_PASSWORD, ip="192.0.2.22")
    assert err.value.details["reason"] == "ip_not_allowed"
    with pytest.raises(Unauthenticated) as err:  # inside: the second factor is still asked for
        login(account_identity, password=NEW_PASSWORD, ip="198.51.100.7")
    assert err.value.details["reason"] == "otp_required"


def test_reset_requests_are_throttled_alike_for_known_and_unknown(account_identity, smtp_server):
    answers = {}
    for login_text in ("100001", "unbekannt@example.org"):
        for _ in range(4):
            call(account_identity, "request_password_reset", {"login": login_text},
                 context={"client_ip": f"192.0.2.{30 + len(answers)}"})
        with pytest.raises(TooManyRequests) as err:
            call(account_identity, "request_password_reset", {"login": login_text},
                 context={"client_ip": "192.0.2.99"})
        answers[login_text] = err.value.to_body()
        assert int(err.value.details["retry_after"]) > 0
    assert answers["100001"] == answers["unbekannt@example.org"]
    # per account only two mails went out (silently: the answer stayed the same)
    assert len(smtp_server.wait(2, to=demo.DEMO_EMAIL)) == 2
    for i in range(6):  # per address: six requests from one address, whatever they ask for
        try:
            call(account_identity, "request_password_reset", {"login": f"x{i}@example.org"},
                 context={"client_ip": "203.0.113.5"})
        except TooManyRequests:
            pytest.fail("throttled too early")
    with pytest.raises(TooManyRequests):
        call(account_identity, "request_password_reset", {"login": "y@example.org"},
             context={"client_ip": "203.0.113.5"})


# --- e-mail change ---------------------------------------------------------------------------

def test_email_change_takes_effect_only_when_confirmed(account_identity, smtp_server):
    result = call(account_identity, "update_address", dict(ADDRESS, email="max@neue-adresse.example"))
    assert result["email"] == demo.DEMO_EMAIL and result["pending_email"] == "max@neue-adresse.example"
    mail = smtp_server.wait(1, to="max@neue-adresse.example")[0]
    assert mail["Subject"] == "Bitte bestätigen Sie Ihre neue E-Mail-Adresse"
    assert call(account_identity, "get_me")["email"] == demo.DEMO_EMAIL
    assert login(account_identity, login=demo.DEMO_EMAIL)  # still the old address
    confirmed = call(account_identity, "confirm_email", {"token": token_in(mail)}, context={})
    assert confirmed == {"purpose": "change_email", "email": "max@neue-adresse.example", "customer_id": 100001}
    me = call(account_identity, "get_me")
    assert me["email"] == "max@neue-adresse.example" and me["pending_email"] is None and me["email_verified"]
    notice = smtp_server.wait(1, to=demo.DEMO_EMAIL)[0]
    assert "max@neue-adresse.example" in notice.get_content() and notice["Reply-To"]
    assert "Antworten Sie einfach auf diese E-Mail" in notice.get_content()
    with pytest.raises(ValidationFailed):
        call(account_identity, "confirm_email", {"token": token_in(mail)}, context={})


def test_unconfirmed_email_change_changes_nothing(account_identity, smtp_server):
    call(account_identity, "update_address", dict(ADDRESS, email="erst@neue-adresse.example"))
    first = smtp_server.wait(1, to="erst@neue-adresse.example")[0]
    call(account_identity, "update_address", dict(ADDRESS, email="zweit@neue-adresse.example"))
    smtp_server.wait(1, to="zweit@neue-adresse.example")
    with pytest.raises(ValidationFailed):  # a newer request ends the older link
        call(account_identity, "confirm_email", {"token": token_in(first)}, context={})
    assert call(account_identity, "get_me")["email"] == demo.DEMO_EMAIL
    assert smtp_server.messages(to=demo.DEMO_EMAIL) == []


# --- staff create a customer -----------------------------------------------------------------

def test_staff_create_customer_sends_a_set_password_link(account_identity, smtp_server):
    data = {"customer_type": "company", "company": "Telefon GmbH", "last_name": "Ruf", "first_name": "Rita",
            "email": "rita@telefon.example", "street": "Am Hang 3", "zip": "30159", "city": "Hannover",
            "phone": "0511 222333", "vat_id": "DE 123456788"}
    with pytest.raises(ValidationFailed) as err:
        call(account_identity, "staff_create_customer", dict(data, zip="1", vat_id="DE1"), context=SUPPORT)
    assert set(err.value.fields) == {"zip", "vat_id"}
    created = call(account_identity, "staff_create_customer", data, context=SUPPORT)
    assert created["customer_id"] > 100001 and created["vat_id"] == "DE123456788"
    assert created["email_verified"] is False and created["phone"] == "+49511222333"
    with pytest.raises(ValidationFailed) as err:
        call(account_identity, "staff_create_customer", data, context=SUPPORT)
    assert list(err.value.fields) == ["email"]
    mail = smtp_server.wait(1, to="rita@telefon.example")[0]
    assert mail["Subject"] == "Ihr Kundenkonto wurde angelegt" and str(created["customer_id"]) in mail.get_content()
    call(account_identity, "reset_password", {"token": token_in(mail), "new_password": NEW_PASSWORD,
                                              "new_password_repeat": NEW_PASSWORD}, context={})
    session = login(account_identity, login=str(created["customer_id"]), password=NEW_PASSWORD)
    assert session["email_verified"] is True and session["notice"] is None
    with pytest.raises(Conflict):  # already verified by the link
        call(account_identity, "resend_verification", context={"customer_id": created["customer_id"]})


# --- retention -----------------------------------------------------------------------------

def test_retention_prunes_old_personal_logs_only(seeded):
    from kc_common.db import utcnow
    from kc_identity.domain import account
    from kc_identity.models import login_events, phone_password_checks
    now = utcnow()
    with seeded.unit_of_work() as uow:
        for days in (200, 10):
            uow.session.execute(login_events.insert().values(
                realm="customer", account="100001", customer_id=100001, client_ip="192.0.2.1", success=False,
                reason="bad_credentials", at=now - dt.timedelta(days=days)))
            uow.session.execute(phone_password_checks.insert().values(
                customer_id=100001, staff_id="s-1", success=False, at=now - dt.timedelta(days=days)))
    with seeded.unit_of_work() as uow:
        done = account.prune(uow.session, login_events_days=180, phone_checks_days=90)
    assert done["login_events"] == 1 and done["phone_password_checks"] == 1
    with seeded.unit_of_work() as uow:
        left = uow.session.execute(select(login_events.c.at)).scalars().all()
        assert len(left) == 1 and uow.session.execute(select(phone_password_checks.c.id)).first()
