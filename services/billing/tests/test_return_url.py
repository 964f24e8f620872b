"""A payment's return_url: only http(s) on an allowed origin, never an open redirect."""
import pytest

from kc_billing.payments import checked_return_url, with_payment_id
from kc_billing.settings import BillingSettings, origin_of
from kc_common.errors import ValidationFailed


@pytest.fixture
def settings():
    return BillingSettings({"PSP_RETURN_URL": "http://127.0.0.1:8080/zahlung",
                            "PSP_RETURN_ORIGINS": "https://Kundencenter.Example:443, https://[2001:db8::1]:8443"})


def test_origins_are_normalised():
    assert origin_of("https://Web.Example:443/x?y") == "https://web.example"
    assert origin_of("http://127.0.0.1:8080/zahlung") == "http://127.0.0.1:8080"
    assert origin_of("https://[2001:DB8::1]:8443/") == "https://[2001:db8::1]:8443"
    for bad in ("javascript:alert(1)", "//evil.example/", "ftp://host/", "http://user:pw@host/",
                "http://host:99999/", "https:///nohost", ""):
        assert origin_of(bad) is None, bad


def test_allowed_return_urls(settings):
    assert checked_return_url(None, settings) == "http://127.0.0.1:8080/zahlung"
    for ok in ("http://127.0.0.1:8080/zahlung", "http://127.0.0.1:8080/konto?x=1",
               "https://kundencenter.example/zahlung", "https://KUNDENCENTER.example:443/zahlung",
               "https://[2001:db8::1]:8443/zahlung"):
        assert checked_return_url(ok, settings) == ok


@pytest.mark.parametrize("bad", [
    "https://evil.example/zahlung", "http://127.0.0.1:8081/zahlung", "https://127.0.0.1:8080/zahlung",
    "http://127.0.0.1:8080@evil.example/", "http://evil.example#@127.0.0.1:8080/",
    "http://127.0.0.1:8080/zahlung#x", "javascript://127.0.0.1:8080/%0aalert(1)", "//127.0.0.1:8080/",
    "http://127.0.0.1:8080\\@evil.example/", "http://127.0.0.1:8080/\nLocation: x",
    "http://kundencenter.example/zahlung",  # the allowed origin is https only
])
def test_refused_return_urls_name_the_field(settings, bad):
    with pytest.raises(ValidationFailed) as exc:
        checked_return_url(bad, settings)
    assert "return_url" in exc.value.details["fields"]


def test_payment_id_is_added_to_the_query():
    assert with_payment_id("http://h/zahlung", "p1") == "http://h/zahlung?payment_id=p1"
    assert with_payment_id("http://h/konto?a=1", "p1") == "http://h/konto?a=1&payment_id=p1"


def test_a_bad_configured_origin_stops_the_service():
    with pytest.raises(RuntimeError):
        BillingSettings({"PSP_RETURN_ORIGINS": "kundencenter.example"})
