"""identity's throttle, session, whitelist and new-password rules as pure functions (no bus,
no database): the interface tests are not their only guard."""
import datetime as dt
from types import SimpleNamespace

import pytest

from kc_common.errors import Conflict, ValidationFailed
from kc_identity.domain.contacts import clean_contact, speaker
from kc_identity.domain.passwords import new_password_errors
from kc_identity.domain.sessions import answer_lifetime, session_open
from kc_identity.domain.throttle import blocked_until, counting_start
from kc_identity.domain.whitelist import check_lockout

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
WINDOW = dt.timedelta(minutes=15)


# ---------------------------------------------------------------- failed-attempt limits

def test_failures_count_in_the_window_and_only_after_the_last_success():
    since = NOW - WINDOW
    assert counting_start(since, None) == since
    assert counting_start(since, NOW - 3 * MIN) == NOW - 3 * MIN   # a later success clears the count
    assert counting_start(since, NOW - 60 * MIN) == since          # an old success changes nothing
    naive = (NOW - 2 * MIN).replace(tzinfo=None)                    # as SQLite hands it back
    assert counting_start(since, naive) == NOW - 2 * MIN


def test_under_the_limit_nothing_is_blocked():
    assert blocked_until([NOW - 5 * MIN] * 4, 5, WINDOW) is None
    assert blocked_until([], 1, WINDOW) is None


def test_at_the_limit_the_block_lasts_until_the_oldest_counted_failure_leaves_the_window():
    failures = [NOW - 10 * MIN, NOW - 8 * MIN, NOW - 6 * MIN, NOW - 4 * MIN, NOW - 2 * MIN]
    assert blocked_until(failures, 5, WINDOW) == NOW + 5 * MIN
    # past the limit the block follows the failure that keeps the count at the limit
    assert blocked_until([NOW - 14 * MIN] + failures, 5, WINDOW) == NOW + 5 * MIN
    assert blocked_until(failures, 3, WINDOW) == NOW + 9 * MIN
    naive = [f.replace(tzinfo=None) for f in failures]
    assert blocked_until(naive, 5, WINDOW) == NOW + 5 * MIN


# ---------------------------------------------------------------- sessions

def session(ended_at=None, expires_at=NOW + 60 * MIN, last_seen_at=NOW - 5 * MIN):
    return SimpleNamespace(ended_at=ended_at, expires_at=expires_at, last_seen_at=last_seen_at)


@pytest.mark.parametrize("row, open_", [
    (session(), True),
    (session(ended_at=NOW - MIN), False),                       # logged out
    (session(expires_at=NOW), False),                           # absolute expiry reached
    (session(last_seen_at=NOW - 30 * MIN), False),              # idle for the whole idle limit
    (session(last_seen_at=(NOW - 29 * MIN).replace(tzinfo=None)), True),  # naive = UTC (SQLite)
])
def test_a_session_counts_until_ended_expired_or_idle(row, open_):
    assert session_open(row, dt.timedelta(minutes=30), NOW) is open_


def test_an_answer_stays_true_until_the_idle_limit_or_the_absolute_expiry():
    idle = dt.timedelta(minutes=30)
    assert answer_lifetime(NOW + 60 * MIN, NOW, idle, NOW) == 1800.0        # idle first
    assert answer_lifetime(NOW + 10 * MIN, NOW, idle, NOW) == 600.0         # expiry first
    assert answer_lifetime(NOW - MIN, NOW - 40 * MIN, idle, NOW) == 0.0     # never negative


# ---------------------------------------------------------------- the IP whitelist

def test_a_whitelist_without_the_callers_address_needs_confirmation():
    with pytest.raises(Conflict) as err:
        check_lockout(["198.51.100.0/24"], "203.0.113.9", confirmed=False)
    assert err.value.to_body()["reason"] == "confirmation_required"
    assert "203.0.113.9" in str(err.value)
    check_lockout(["198.51.100.0/24"], "203.0.113.9", confirmed=True)


def test_a_whitelist_with_the_callers_address_or_an_empty_one_needs_none():
    check_lockout(["198.51.100.0/24"], "198.51.100.7", confirmed=False)
    check_lockout([], "203.0.113.9", confirmed=False)
    with pytest.raises(Conflict):  # an unknown address is never in the list
        check_lockout(["198.51.100.0/24"], None, confirmed=False)


# ---------------------------------------------------------------- a new service password

GOOD = "Korallen-Fuchs-Teich-81"


def never(_password):
    return False


def test_a_good_new_password_repeated_exactly_passes():
    assert new_password_errors(GOOD, GOOD, customer_id=100001, email="max@example.org", is_current=never) == {}


def test_the_new_password_must_differ_from_the_current_one():
    errors = new_password_errors(GOOD, GOOD, customer_id=100001, email=None, is_current=lambda p: p == GOOD)
    assert errors == {"new_password": ["Das neue Passwort muss sich vom aktuellen unterscheiden."]}


def test_a_weak_password_is_not_compared_with_the_current_one_and_a_wrong_repeat_is_named():
    compared = []
    errors = new_password_errors("kurz", "kurz!", customer_id=100001, email=None,
                                 is_current=lambda p: compared.append(p) or True)
    assert compared == []
    assert errors["new_password"] == ["Das Passwort muss mindestens 10 Zeichen lang sein."]
    assert errors["new_password_repeat"] == ["Die Wiederholung stimmt nicht mit dem neuen Passwort überein."]


def test_the_customer_number_is_no_password():
    errors = new_password_errors("x100001-Blau-Wal!", "x100001-Blau-Wal!", customer_id=100001, email=None,
                                 is_current=never)
    assert errors == {"new_password": [
        "Das Passwort darf weder Ihre Kundennummer noch Ihre E-Mail-Adresse enthalten."]}


# ---------------------------------------------------------------- who may speak for a customer

CUSTOMER = SimpleNamespace(first_name="Max", last_name="Mustermann", email="max@beispiel.de")


def contact(name, email=None, *, support=False, billing=False, contact_id="c1"):
    return SimpleNamespace(id=contact_id, name=name, email=email, may_support=support, may_billing=billing)


@pytest.mark.parametrize("name", ["Max Mustermann", "mustermann, max", "  MAX   mustermann ",
                                  "Max@Beispiel.de"])
def test_the_customer_may_always_speak_named_in_any_order_case_or_by_e_mail(name):
    answer = speaker(CUSTOMER, [], name, "billing")
    assert answer == {"authorised": True, "kind": "customer", "contact_id": None,
                      "name": "Max Mustermann", "email": "max@beispiel.de"}


def test_a_contact_person_speaks_only_with_the_permission_for_the_purpose():
    petra = contact("Petra Partner", "petra@agentur.example", support=True)
    assert speaker(CUSTOMER, [petra], "partner petra", "support")["authorised"] is True
    denied = speaker(CUSTOMER, [petra], "petra@agentur.example", "billing")
    assert denied == {"authorised": False, "kind": "contact", "contact_id": "c1",
                      "name": "Petra Partner", "email": "petra@agentur.example"}


def test_a_stranger_a_part_of_a_name_or_an_unknown_customer_is_denied():
    petra = contact("Petra Partner", support=True)
    for name in ("Mallory", "Max", "Petra", ""):
        assert speaker(CUSTOMER, [petra], name, "support")["authorised"] is False
    assert speaker(None, [petra], "Petra Partner", "support") == {
        "authorised": False, "kind": None, "contact_id": None, "name": "Petra Partner", "email": None}


def test_a_contact_needs_a_name_and_an_e_mail_address_or_a_phone_number():
    cleaned = clean_contact({"name": "  Petra   Partner ", "email": "Petra@Agentur.example",
                             "role": " IT  Leitung ", "may_support": 1}, "DE")
    assert (cleaned["name"], cleaned["email"], cleaned["role"]) == ("Petra Partner", "petra@agentur.example",
                                                                    "IT Leitung")
    assert (cleaned["relation"], cleaned["may_support"], cleaned["may_billing"]) == ("external", True, False)
    with pytest.raises(ValidationFailed) as err:
        clean_contact({"name": " ", "role": "x" * 101}, "DE")
    assert set(err.value.fields) == {"name", "email", "role"}
