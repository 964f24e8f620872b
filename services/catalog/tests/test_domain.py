"""catalog's pure rules."""
import pytest

from kc_catalog.domain import gross, normalise_domain


@pytest.mark.parametrize("raw, expected", [
    ("Beispiel.DE", "beispiel.de"), ("müller.de", "xn--mller-kva.de"), ("example.com.", "example.com"),
])
def test_domains_are_normalised_to_a_labels(raw, expected):
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "nodot", "-bad.de", "a" * 64 + ".de", "www.sub.example.de", "bad_char.de"])
def test_malformed_domains_are_refused(raw):
    with pytest.raises(ValueError):
        normalise_domain(raw)


def test_gross_is_rounded_half_up():
    assert str(gross("9.90", "19.00")) == "11.78"


# ---------------------------------------------------------------- lifecycle rules (no bus)
import datetime as dt  # noqa: E402
from decimal import Decimal  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from kc_catalog.demo import current_period  # noqa: E402
from kc_catalog.domain.common import (  # noqa: E402
    ACTIVE,
    CANCELLED,
    PENDING,
    TERMINATED,
    TRANSITIONS,
    check_transition,
    period_price,
)
from kc_catalog.domain.contracts import cancellation_end_date  # noqa: E402
from kc_catalog.domain.traffic import _trend  # noqa: E402
from kc_common.errors import Conflict  # noqa: E402


def contract(status=ACTIVE, next_invoice=dt.date(2027, 1, 1), period=12, notice=30):
    return SimpleNamespace(status=status, next_invoice_date=next_invoice, period_months=period,
                           notice_days=notice)


@pytest.mark.parametrize("today, expected", [
    (dt.date(2026, 11, 1), dt.date(2026, 12, 31)),    # notice kept: end of this term
    (dt.date(2026, 12, 1), dt.date(2026, 12, 31)),    # exactly 30 days before
    (dt.date(2026, 12, 2), dt.date(2027, 12, 31)),    # too late: end of the next term
])
def test_cancellation_ends_with_the_term_the_notice_period_still_reaches(today, expected):
    assert cancellation_end_date(contract(), today) == expected


def test_monthly_contract_cancelled_late_runs_one_more_month():
    assert cancellation_end_date(contract(period=1, notice=14), dt.date(2026, 12, 20)) == dt.date(2027, 1, 31)


def test_pending_contract_ends_at_once():
    assert cancellation_end_date(contract(status=PENDING), dt.date(2026, 11, 26)) == dt.date(2026, 11, 26)


@pytest.mark.parametrize("current, target", [
    (ACTIVE, PENDING), (CANCELLED, ACTIVE), (TERMINATED, ACTIVE), (TERMINATED, CANCELLED),
    (ACTIVE, TERMINATED), (CANCELLED, CANCELLED),
])
def test_illegal_transitions_are_refused(current, target):
    with pytest.raises(Conflict):
        check_transition(current, target)


def test_every_state_has_its_transitions_and_terminated_is_final():
    assert set(TRANSITIONS) == {PENDING, ACTIVE, CANCELLED, TERMINATED}
    assert TRANSITIONS[TERMINATED] == set()
    for current, targets in TRANSITIONS.items():
        for target in targets:
            check_transition(current, target)


def test_period_prices_domains_yearly_others_monthly_with_options():
    domain = SimpleNamespace(kind="domain", price_net=Decimal("9.90"))
    server = SimpleNamespace(kind="server", price_net=Decimal("99.00"))
    option = SimpleNamespace(price_net=Decimal("15.00"))
    assert period_price(domain, 12) == Decimal("9.90")
    assert period_price(server, 3, [option]) == Decimal("342.00")


@pytest.mark.parametrize("current, previous, direction", [
    (Decimal(10), Decimal(10), "flat"), (Decimal(12), Decimal(10), "up"), (Decimal(8), Decimal(10), "down"),
])
def test_traffic_trend(current, previous, direction):
    assert _trend(current, previous)["direction"] == direction


def test_demo_contract_period_runs_to_the_next_invoice_after_today():
    assert current_period(dt.date(2017, 11, 30), 12, dt.date(2026, 11, 26)) == (
        dt.date(2025, 11, 30), dt.date(2026, 11, 30))


def test_settings_fail_fast_on_a_short_secret_and_default_sensibly():
    from kc_catalog.service import CatalogSettings
    from kc_common.settings import SettingsError, validate_settings
    with pytest.raises(SettingsError):
        validate_settings(CatalogSettings, {"LOGIN_LINK_SECRET": "zu-kurz"})
    values = validate_settings(CatalogSettings, {"PANEL_URLS": {"cloud": "https://cloud.example.net/login"}})
    assert values["PANEL_URLS"]["cloud"] == "https://cloud.example.net/login"
    assert values["PANEL_URLS"]["servercon"].startswith("https://servercon.")
    assert values["LOGIN_LINK_TTL"] == 120


@pytest.mark.parametrize("raw", ["pаypal.de", "micrοsoft.de", "gооgle.de", "xn--pypal-4ve.de"])
def test_look_alike_domains_are_refused_in_german(raw):
    """Mixed-script look-alikes (Cyrillic а, Greek ο, also as A-label): kc_common.domains."""
    with pytest.raises(ValueError, match="mischt Schriften"):
        normalise_domain(raw)


@pytest.mark.parametrize("raw", ["münchen.de", "straße.de", "bücher-24.de", "東京abc.jp"])
def test_single_script_idns_stay_orderable(raw):
    assert normalise_domain(raw).startswith("xn--")
