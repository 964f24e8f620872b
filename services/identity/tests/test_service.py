"""identity on the real bus and PostgreSQL: logins, address data, passwords, whitelist,
contacts, notifications, AV agreement and the staff operations."""
import datetime as dt
import logging
from functools import partial

import pytest
from sqlalchemy import select, update

from kc_common import testing
from kc_common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
    ValidationFailed,
)
from kc_common.testing import wait_for
from kc_identity import av, demo
from kc_identity.domain import customers as customer_rules
from kc_identity.models import customers, sessions

CUSTOMER = {"customer_id": 100001, "client_ip": "192.0.2.10"}
SUPPORT = {"staff_id": "s-1", "staff_roles": ["support"]}
ADDRESS = {"company": "Muster Webdesign GmbH", "last_name": "Mustermann", "first_name": "Max",
           "email": demo.DEMO_EMAIL, "street": "Lister Meile 5", "zip": "30161", "city": "Hannover",
           "country": "DE", "phone": "0511 7654321", "fax": None, "mobile": "", "vat_id": "DE123456788"}


call = partial(testing.call, context=CUSTOMER)


def login(container, login="100001", password=demo.DEMO_PASSWORD, ip="192.0.2.10"):
    return call(container, "login", {"login": login, "password": password}, context={"client_ip": ip})


def session_context(container, token, ip="192.0.2.10"):
    principal = call(container, "authenticate", token, context={"client_ip": ip})
    return {"customer_id": principal["customer_id"], "session_id": principal["session_id"], "client_ip": ip}


def new_customer(db, email="kunde@example.org", password="Kunden-Passwort-2026"):
    with db.unit_of_work() as uow:
        return customer_rules.create_customer(uow, email=email, password=password,
                                              last_name="Musterfrau", first_name="Erika")


# --- login ---------------------------------------------------------------------------------

def test_login_then_authenticate(identity):
    session = login(identity, login=demo.DEMO_EMAIL.upper())
    assert session["customer_id"] == 100001 and session["token"].startswith("kcc_")
    principal = call(identity, "authenticate", session["token"], context={"client_ip": "192.0.2.10"})
    assert principal["kind"] == "customer" and principal["customer_id"] == 100001


def test_wrong_password_and_unknown_login_get_the_same_answer(identity):
    answers = []
    for creds in ({"login": "100001", "password": "falsch"}, {"login": "nobody@example.org", "password": "falsch"}):
        with pytest.raises(Unauthenticated) as err:
            call(identity, "login", creds, context={"client_ip": "192.0.2.11"})
        answers.append(err.value.to_body())
    assert answers[0] == answers[1]


def test_failed_logins_are_throttled_per_account_and_per_address(identity):
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            login(identity, password="falsch", ip="198.51.100.1")
    with pytest.raises(TooManyRequests) as err:  # the right password does not help now
        login(identity, ip="198.51.100.2")
    assert 0 < int(err.value.details["retry_after"]) <= 15 * 60
    # Per address (limit 8 in the test config): many accounts from one address.
    for i in range(8):
        with pytest.raises(Unauthenticated):
            login(identity, login=f"nobody{i}@example.org", password="falsch", ip="203.0.113.9")
    with pytest.raises(TooManyRequests):
        login(identity, login="other@example.org", password="falsch", ip="203.0.113.9")
    # The customer sees the attempts.
    logins = call(identity, "list_logins", {"per_page": 100})
    assert logins["total"] == 5 and {e["reason"] for e in logins["items"]} == {"bad_credentials"}


def test_logout_ends_the_session_and_sessions_are_listed_and_ended(identity, seeded):
    first, second = login(identity), login(identity)
    ctx = session_context(identity, first["token"])
    listed = call(identity, "list_sessions", context=ctx)["items"]
    assert len(listed) == 2 and [s["current"] for s in listed].count(True) == 1
    other_id = next(s["id"] for s in listed if not s["current"])
    # Another customer cannot end it (404), the owner can.
    other = new_customer(seeded)
    with pytest.raises(NotFound):
        call(identity, "end_session", other_id, context={"customer_id": other})
    call(identity, "end_session", other_id, context=ctx)
    with pytest.raises(Unauthenticated):
        call(identity, "authenticate", second["token"])
    call(identity, "logout", context=ctx)
    with pytest.raises(Unauthenticated):
        call(identity, "authenticate", first["token"])


# --- IP whitelist --------------------------------------------------------------------------

def test_ip_whitelist_guards_login_and_existing_sessions(identity):
    token = login(identity, ip="192.0.2.10")["token"]
    with pytest.raises(ValidationFailed) as err:
        call(identity, "set_ip_whitelist", {"entries": ["192.0.2.0/24", "300.1.1.1", "fe80::/10"]})
    assert list(err.value.fields) == ["entries.1"]
    # A list that excludes the address in use needs an explicit confirmation.
    with pytest.raises(Conflict):
        call(identity, "set_ip_whitelist", {"entries": ["198.51.100.0/24"]})
    assert call(identity, "get_ip_whitelist")["entries"] == []
    saved = call(identity, "set_ip_whitelist", {"entries": ["192.0.2.0/24", "2001:db8::/32"]})
    assert saved["entries"] == ["192.0.2.0/24", "2001:db8::/32"] and saved["client_ip_allowed"] is True
    assert login(identity, ip="2001:db8::5")["token"]
    with pytest.raises(Forbidden) as err:
        login(identity, ip="203.0.113.50")
    assert "IP-Whitelist" in err.value.message
    assert call(identity, "authenticate", token, context={"client_ip": "192.0.2.99"})["customer_id"] == 100001
    with pytest.raises(Forbidden):
        call(identity, "authenticate", token, context={"client_ip": "203.0.113.50"})
    call(identity, "set_ip_whitelist", {"entries": []})
    assert call(identity, "authenticate", token, context={"client_ip": "203.0.113.50"})


# --- address data --------------------------------------------------------------------------

def test_seeded_customer_is_published_when_the_service_starts(container_factory, config, seeded,
                                                              capture_events):
    from kc_identity.service import IdentityService
    events = capture_events("identity", "customer_updated")
    container_factory(IdentityService, config).start()
    data = events.wait(1)[0]["data"]
    assert data["customer_id"] == 100001 and data["city"] == "Hannover" and data["zip"] == "30159"
    assert data["is_business"] is True and data["vat_id"] == "DE123456788"


def test_address_change_is_validated_saved_and_published(identity, capture_events):
    events = capture_events("identity", "customer_updated")
    before = call(identity, "get_me")
    saved = call(identity, "update_address", dict(ADDRESS, version=before["version"]))
    assert saved["phone"] == "+495117654321" and saved["mobile"] is None and saved["street"] == "Lister Meile 5"
    assert saved["version"] == before["version"] + 1 and saved["customer_id"] == 100001
    # (the seed's own customer_updated may arrive first: the relay publishes it at start)
    data = wait_for(lambda: next((e["data"] for e in events.wait(0, timeout=0.1)
                                  if e["data"]["street"] == "Lister Meile 5"), None), message="the change")
    assert data["phone"] == "+495117654321" and data["customer_id"] == 100001
    assert set(data) >= {"customer_id", "company", "first_name", "last_name", "email", "street", "zip", "city",
                         "country", "phone", "fax", "mobile", "vat_id", "is_business"}
    # A stale version conflicts.
    with pytest.raises(Conflict):
        call(identity, "update_address", dict(ADDRESS, city="Celle", zip="29221", version=before["version"]))


def test_bad_fields_are_each_named_and_nothing_is_saved(identity, config, capture_events):
    events = capture_events("identity", "customer_updated")
    before = call(identity, "get_me")
    bad = dict(ADDRESS, company="Andere Firma AG", email="kaputt@", zip="3016", phone="12345",
               fax="abc", vat_id="DE000", first_name="", street="Neue Straße 1")
    with pytest.raises(ValidationFailed) as err:
        call(identity, "update_address", bad)
    fields = err.value.fields
    assert set(fields) == {"company", "email", "zip", "phone", "fax", "vat_id", "first_name"}
    assert "Inhaberwechsel" in fields["company"][0]
    assert call(identity, "get_me") == before
    with pytest.raises(ValidationFailed) as err:
        call(identity, "update_address", dict(ADDRESS, unknown_field="x"))
    assert "unknown_field" in err.value.fields
    assert all(e["data"]["street"] != "Neue Straße 1" for e in events.drain(config["DATABASE_URL"]))


def test_email_of_another_customer_is_refused(identity, seeded):
    new_customer(seeded, email="vergeben@example.org")
    with pytest.raises(ValidationFailed) as err:
        call(identity, "update_address", dict(ADDRESS, email="Vergeben@example.org"))
    assert list(err.value.fields) == ["email"]


# --- passwords -----------------------------------------------------------------------------

NEW_PASSWORD = "Korallen-Fuchs-Teich-81"


def test_password_change_checks_ends_other_sessions_and_mails(identity, smtp_server):
    mine, other = login(identity), login(identity)
    ctx = session_context(identity, mine["token"])
    with pytest.raises(ValidationFailed) as err:
        call(identity, "change_password", {"current_password": "falsch", "new_password": NEW_PASSWORD,
                                           "new_password_repeat": NEW_PASSWORD}, context=ctx)
    assert list(err.value.fields) == ["current_password"]
    with pytest.raises(ValidationFailed) as err:
        call(identity, "change_password", {"current_password": demo.DEMO_PASSWORD, "new_password": "passwort123",
                                           "new_password_repeat": "passwort124"}, context=ctx)
    assert set(err.value.fields) == {"new_password", "new_password_repeat"}
    call(identity, "change_password", {"current_password": demo.DEMO_PASSWORD, "new_password": NEW_PASSWORD,
                                       "new_password_repeat": NEW_PASSWORD}, context=ctx)
    assert call(identity, "authenticate", mine["token"], context={"client_ip": "192.0.2.10"})
    with pytest.raises(Unauthenticated):
        call(identity, "authenticate", other["token"])
    with pytest.raises(Unauthenticated):
        login(identity)
    assert login(identity, password=NEW_PASSWORD)
    mail = smtp_server.wait(1, to=demo.DEMO_EMAIL)[0]
    assert "Service-Passwort" in mail["Subject"] and "100001" in mail.get_content()


def test_wrong_current_passwords_are_throttled(identity):
    for _ in range(5):
        with pytest.raises(ValidationFailed):
            call(identity, "change_password", {"current_password": "falsch", "new_password": NEW_PASSWORD,
                                               "new_password_repeat": NEW_PASSWORD})
    with pytest.raises(TooManyRequests):
        call(identity, "change_password", {"current_password": demo.DEMO_PASSWORD, "new_password": NEW_PASSWORD,
                                           "new_password_repeat": NEW_PASSWORD})


def test_wrong_password_rechecks_are_recorded_and_throttled_like_logins(identity):
    """Re-checks before sensitive changes fail *and* are committed (``after_commit``)."""
    for method in ("two_factor_setup", "two_factor_disable", "two_factor_recovery_codes", "request_closure",
                   "reveal_phone_password"):
        with pytest.raises(ValidationFailed) as err:
            call(identity, method, {"password": "falsch"})
        assert list(err.value.fields) == ["password"]
    logins = call(identity, "list_logins", {"per_page": 100})
    assert logins["total"] == 5 and {e["reason"] for e in logins["items"]} == {"reauth_failed"}
    with pytest.raises(TooManyRequests):  # the right password does not help now
        call(identity, "two_factor_setup", {"password": demo.DEMO_PASSWORD})
    assert call(identity, "closure_status")["state"] == "none"


def test_phone_password_is_encrypted_shown_only_when_fresh_and_never_logged(identity, seeded, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Weser-Boot-77"
    ctx = session_context(identity, login(identity)["token"])
    with pytest.raises(ValidationFailed) as err:
        call(identity, "set_phone_password", {"phone_password": secret, "phone_password_repeat": "anders"},
             context=ctx)
    assert list(err.value.fields) == ["phone_password_repeat"]
    call(identity, "set_phone_password", {"phone_password": secret, "phone_password_repeat": secret}, context=ctx)
    with seeded.engine.connect() as conn:
        stored = conn.execute(select(customers.c.phone_password_enc).where(customers.c.id == 100001)).scalar()
    assert secret not in stored
    assert call(identity, "reveal_phone_password", {}, context=ctx)["phone_password"] == secret
    # An older session must give the service password again.
    with seeded.engine.begin() as conn:
        conn.execute(update(sessions).where(sessions.c.id == ctx["session_id"]).values(
            created_at=sessions.c.created_at - dt.timedelta(hours=1)))
    with pytest.raises(Forbidden):
        call(identity, "reveal_phone_password", {}, context=ctx)
    with pytest.raises(ValidationFailed):
        call(identity, "reveal_phone_password", {"password": "falsch"}, context=ctx)
    assert call(identity, "reveal_phone_password", {"password": demo.DEMO_PASSWORD},
                context=ctx)["phone_password"] == secret
    # Staff verify what the caller says; a customer cannot.
    assert call(identity, "verify_phone_password", 100001, secret, context=SUPPORT) == {"verified": True}
    assert call(identity, "staff_verify_phone_password", 100001, {"password": "geraten"},
                context=SUPPORT) == {"verified": False}
    with pytest.raises(Unauthenticated):
        call(identity, "verify_phone_password", 100001, secret)
    with pytest.raises(NotFound):
        call(identity, "verify_phone_password", 999999, secret, context=SUPPORT)
    assert secret not in caplog.text and demo.DEMO_PASSWORD not in caplog.text


def test_phone_password_guesses_are_limited(identity):
    for _ in range(5):
        assert call(identity, "verify_phone_password", 100001, "geraten", context=SUPPORT)["verified"] is False
    with pytest.raises(TooManyRequests) as err:
        call(identity, "verify_phone_password", 100001, demo.DEMO_PHONE_PASSWORD, context=SUPPORT)
    assert int(err.value.details["retry_after"]) > 0


# --- contacts, notifications ---------------------------------------------------------------

def test_contacts_and_check_contact(identity, seeded):
    contact = call(identity, "add_contact", {"name": "Paul Buchhalter", "email": "paul@example.org",
                                             "phone": "0511 999888", "role": "Buchhaltung",
                                             "may_billing": True})
    assert contact["phone"] == "+49511999888" and contact["may_support"] is False
    with pytest.raises(ValidationFailed) as err:
        call(identity, "add_contact", {"name": "", "email": "x@", "phone": "1"})
    assert set(err.value.fields) == {"name", "email", "phone"}
    assert call(identity, "check_contact", 100001, "Buchhalter, Paul", "billing")["authorised"] is True
    assert call(identity, "check_contact", 100001, "paul@example.org", "support")["authorised"] is False
    assert call(identity, "check_contact", 100001, "Erika Technik", "support")["kind"] == "contact"
    assert call(identity, "check_contact", 100001, "max  MUSTERMANN", "support")["authorised"] is True
    assert call(identity, "check_contact", 100001, "Eve Intruder", "support")["authorised"] is False
    assert call(identity, "check_contact", 999999, "Max Mustermann", "support")["authorised"] is False
    call(identity, "update_contact", contact["id"], dict(name="Paul Buchhalter", email="paul@example.org",
                                                         may_support=True))
    assert call(identity, "check_contact", 100001, "Paul Buchhalter", "support")["authorised"] is True
    # Another customer neither sees nor changes it.
    other = {"customer_id": new_customer(seeded)}
    assert call(identity, "list_contacts", context=other)["items"] == []
    with pytest.raises(NotFound):
        call(identity, "update_contact", contact["id"], {"name": "Gekapert", "email": "a@b.de"}, context=other)
    with pytest.raises(NotFound):
        call(identity, "delete_contact", contact["id"], context=other)
    call(identity, "delete_contact", contact["id"])
    assert call(identity, "check_contact", 100001, "Paul Buchhalter", "billing")["authorised"] is False


def test_notification_preferences(identity):
    items = {i["topic"]: i for i in call(identity, "get_notifications")["items"]}
    assert items["newsletter"]["enabled"] is False and items["maintenance"]["enabled"] is True
    assert items["invoice"]["mandatory"] is True
    assert call(identity, "notification_allowed", 100001, "newsletter") is False
    call(identity, "set_notifications", {"newsletter": True, "maintenance": False})
    assert call(identity, "notification_allowed", 100001, "newsletter") is True
    assert call(identity, "notification_allowed", 100001, "maintenance") is False
    assert call(identity, "notification_allowed", 100001, "invoice") is True
    with pytest.raises(ValidationFailed) as err:
        call(identity, "set_notifications", {"security": False, "newsletter": False})
    assert list(err.value.fields) == ["security"]
    assert call(identity, "notification_allowed", 100001, "newsletter") is True  # nothing saved
    with pytest.raises(ValidationFailed):
        call(identity, "notification_allowed", 100001, "spam")


# --- AV agreement --------------------------------------------------------------------------

def test_av_agreement_signing_and_a_new_version(identity, capture_events, monkeypatch):
    events = capture_events("identity", "av_agreement_signed")
    status = call(identity, "get_av_agreement")
    assert status["signed"] is False and status["current"]["version"] == 1
    with pytest.raises(ValidationFailed) as err:
        call(identity, "sign_av_agreement", {"version": 1, "signer_name": " ", "signer_position": "",
                                             "accept": False})
    assert set(err.value.fields) == {"signer_name", "signer_position", "accept"}
    sig = call(identity, "sign_av_agreement", {"version": 1, "signer_name": "Max Mustermann",
                                               "signer_position": "Geschäftsführer", "accept": True})
    data = events.wait(1)[0]["data"]
    assert data["agreement_id"] == sig["id"] and data["client_ip"] == "192.0.2.10"
    assert data["customer"]["company"] == "Muster Webdesign GmbH" and data["text"] == av.current().text
    with pytest.raises(Conflict):
        call(identity, "sign_av_agreement", {"version": 1, "signer_name": "Max Mustermann",
                                             "signer_position": "Geschäftsführer", "accept": True})
    monkeypatch.setattr(av, "VERSIONS", av.VERSIONS + [av.AvVersion(2, "2027-01-01", "AV, Version 2", "Neu.")])
    status = call(identity, "get_av_agreement")
    assert status["signed"] is False and status["current"]["version"] == 2 and len(status["signatures"]) == 1
    with pytest.raises(Conflict):  # signing what one read before is not signing the current text
        call(identity, "sign_av_agreement", {"version": 1, "signer_name": "Max Mustermann",
                                             "signer_position": "Geschäftsführer", "accept": True})
    call(identity, "sign_av_agreement", {"version": 2, "signer_name": "Max Mustermann",
                                         "signer_position": "Geschäftsführer", "accept": True})
    status = call(identity, "get_av_agreement")
    assert status["signed"] is True and [s["version"] for s in status["signatures"]] == [2, 1]


# --- staff ---------------------------------------------------------------------------------

def test_staff_look_up_and_complete_an_owner_change(identity, capture_events):
    events = capture_events("identity", "customer_updated")
    found = call(identity, "staff_search_customers", {"q": "muster"}, context=SUPPORT)
    assert found["total"] == 1 and found["items"][0]["customer_id"] == 100001
    assert call(identity, "staff_search_customers", {"q": "100001"}, context=SUPPORT)["total"] == 1
    detail = call(identity, "staff_get_customer", 100001, context=SUPPORT)
    assert detail["contacts"][0]["name"] == "Erika Technik" and "phone_password" not in detail
    with pytest.raises(Unauthenticated):
        call(identity, "staff_search_customers", {})
    with pytest.raises(Forbidden):
        call(identity, "staff_owner_change", 100001, {"company": "Neu GmbH"},
             context={"staff_id": "b-1", "staff_roles": ["billing"]})
    with pytest.raises(ValidationFailed) as err:
        call(identity, "staff_owner_change", 100001, {"company": "", "zip": "1"}, context=SUPPORT)
    assert set(err.value.fields) == {"company", "zip"}
    changed = call(identity, "staff_owner_change", 100001, {"company": "Neue Inhaber GmbH", "last_name": "Neumann"},
                   context=SUPPORT)
    assert changed["company"] == "Neue Inhaber GmbH" and changed["last_name"] == "Neumann"
    assert changed["city"] == "Hannover"
    wait_for(lambda: any(e["data"]["company"] == "Neue Inhaber GmbH" for e in events.wait(0, timeout=0.1)),
             message="customer_updated of the owner change")
    with pytest.raises(NotFound):
        call(identity, "staff_owner_change", 999999, {"company": "X GmbH"}, context=SUPPORT)
    call(identity, "set_ip_whitelist", {"entries": ["198.51.100.0/24"], "confirm_lockout": True})
    with pytest.raises(Forbidden):
        call(identity, "staff_clear_ip_whitelist", 100001, context={"staff_id": "b-1", "staff_roles": ["billing"]})
    call(identity, "staff_clear_ip_whitelist", 100001, context=SUPPORT)
    assert call(identity, "get_ip_whitelist")["entries"] == []


def test_get_customer_and_unknown_customer(identity, seeded):
    assert call(identity, "get_customer", 100001)["street"] == "Musterstraße 12"
    with pytest.raises(NotFound):
        call(identity, "get_customer", 424242)
    plain = new_customer(seeded, email="ohne-telefonpasswort@example.org")
    with pytest.raises(Unprocessable):
        call(identity, "verify_phone_password", plain, "x", context=SUPPORT)


# --- two-factor login ----------------------------------------------------------------------

def test_two_factor_login_with_totp_and_recovery_codes(identity):
    import time

    import pyotp
    with pytest.raises(ValidationFailed) as err:
        call(identity, "two_factor_setup", {"password": "falsch"})
    assert list(err.value.fields) == ["password"]
    setup = call(identity, "two_factor_setup", {"password": demo.DEMO_PASSWORD})
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    with pytest.raises(ValidationFailed):
        call(identity, "two_factor_enable", {"code": "000000" if totp.now() != "000000" else "111111"})
    codes = call(identity, "two_factor_enable", {"code": totp.now()})["recovery_codes"]
    assert len(codes) == 10
    assert call(identity, "two_factor_status")["enabled"] is True

    with pytest.raises(Unauthenticated) as err:       # the right password alone is not enough now
        login(identity)
    assert err.value.details.get("reason") == "otp_required"
    with pytest.raises(Unauthenticated):
        call(identity, "login", {"login": "100001", "password": demo.DEMO_PASSWORD, "otp": "123"},
             context={"client_ip": "192.0.2.10"})
    next_code = totp.at(time.time() + 30)  # the enabling code's step is used up
    assert call(identity, "login", {"login": "100001", "password": demo.DEMO_PASSWORD, "otp": next_code},
                context={"client_ip": "192.0.2.10"})["token"]
    with pytest.raises(Unauthenticated):  # the same code twice
        call(identity, "login", {"login": "100001", "password": demo.DEMO_PASSWORD, "otp": next_code},
             context={"client_ip": "192.0.2.10"})
    assert call(identity, "login", {"login": "100001", "password": demo.DEMO_PASSWORD, "otp": codes[0]},
                context={"client_ip": "192.0.2.10"})["token"]
    with pytest.raises(Unauthenticated):  # a recovery code works once
        call(identity, "login", {"login": "100001", "password": demo.DEMO_PASSWORD, "otp": codes[0]},
             context={"client_ip": "192.0.2.10"})
    assert call(identity, "two_factor_status")["recovery_codes_left"] == 9
    call(identity, "two_factor_disable", {"password": demo.DEMO_PASSWORD})
    assert login(identity)["token"]


def test_key_rotation_re_encrypts_the_telephone_passwords(config, seeded):
    """Rotation: prepend a new key (old values still decrypt), re-encrypt, drop the old key."""
    from cryptography.fernet import Fernet

    from kc_identity.rotate_keys import rotate
    from kc_identity.vault import Vault
    old_key, new_key = config["PHONE_PASSWORD_KEYS"], Fernet.generate_key().decode()
    totp_secret = "JBSWY3DPEHPK3PXP"
    with seeded.engine.begin() as conn:  # an enrolled TOTP secret (and a pending one), old key
        conn.execute(customers.update().where(customers.c.id == 100001).values(
            totp_secret_enc=Vault(old_key).encrypt(totp_secret),
            totp_pending_enc=Vault(old_key).encrypt("PENDINGPENDING22")))

    def stored():
        with seeded.engine.connect() as conn:
            return conn.execute(select(customers.c.phone_password_enc, customers.c.totp_secret_enc,
                                       customers.c.totp_pending_enc)
                                .where(customers.c.id == 100001)).one()
    both = Vault(f"{new_key},{old_key}")
    assert [both.decrypt(v) for v in stored()] == [demo.DEMO_PHONE_PASSWORD, totp_secret, "PENDINGPENDING22"]
    with pytest.raises(RuntimeError):
        Vault(new_key).decrypt(stored()[0])
    assert rotate(seeded, both) == 3
    after = Vault(new_key)  # the old key dropped
    assert [after.decrypt(v) for v in stored()] == [demo.DEMO_PHONE_PASSWORD, totp_secret, "PENDINGPENDING22"]
    with pytest.raises(RuntimeError):
        Vault(old_key).decrypt(stored()[1])


