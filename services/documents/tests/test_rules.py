"""documents' rules as pure functions (no renderer, bus or database): which library version a
download gets, where and under which names documents are kept, which events are parked, the
price list's groups."""
import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest

from kc_common.errors import ServiceUnavailable, Unprocessable
from kc_documents import domain, library
from kc_documents.pool import TIMEOUT_REASON
from kc_documents.schemas import AvAgreementSignedSchema

TODAY = dt.date(2026, 11, 26)


def version(name, valid_from):
    return SimpleNamespace(version=name, valid_from=valid_from)


# ---------------------------------------------------------------- the library's versions

def test_a_download_gets_the_newest_version_already_valid():
    versions = [version("3", dt.date(2027, 1, 1)), version("2", dt.date(2026, 6, 1)),
                version("1", dt.date(2025, 1, 1))]  # newest first
    assert domain.current_version(versions, TODAY).version == "2"
    assert domain.current_version(versions, dt.date(2027, 1, 1)).version == "3"  # valid from that day


def test_before_any_version_is_valid_the_oldest_is_given_and_without_versions_none():
    versions = [version("2", dt.date(2027, 6, 1)), version("1", dt.date(2027, 1, 1))]
    assert domain.current_version(versions, TODAY).version == "1"
    assert domain.current_version([], TODAY) is None


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("text, name", [
    ("RE-2026/000123", "RE-2026-000123"), ("../../etc/passwd", "..-..-etc-passwd"),
    ("Müller & Söhne", "M-ller-S-hne"), ("///", "x"), (1000001, "1000001"), ("a" * 100, "a" * 80),
])
def test_names_keep_only_safe_characters(text, name):
    assert domain.safe_name(text) == name


def test_a_documents_key_names_kind_customer_reference_and_content():
    digest = "ab" * 32
    assert domain.document_key("invoice", 7, "RE-2026/1", digest) == f"invoice/7/RE-2026-1-{'ab' * 8}.pdf"
    assert domain.document_key("invoice", 7, "RE-2026/1", "cd" * 32) != domain.document_key(
        "invoice", 7, "RE-2026/1", digest)  # other bytes never overwrite the first PDF


def test_download_names_say_what_the_document_is():
    assert domain.invoice_filename("RE-2026/1") == "Rechnung_RE-2026-1.pdf"
    assert domain.invoice_filename("GS-1", "credit_note") == "Gutschrift_GS-1.pdf"
    assert domain.av_filename("AV 12") == "AV-Vereinbarung_AV-12.pdf"
    assert library.filename("preisliste", "2026-11-26") == "Preisliste_v2026-11-26.pdf"
    assert library.filename("unbekannt", 3) == "unbekannt_v3.pdf"


# ---------------------------------------------------------------- events that are parked

def test_an_invoice_over_the_line_limit_is_parked_naming_why():
    domain.check_invoice_size({"number": "RE-1", "lines": [{}] * 3}, 3)
    domain.check_invoice_size(None, 3)
    with pytest.raises(Unprocessable) as err:
        domain.check_invoice_size({"number": "RE-1", "lines": [{}] * 1001}, 1000)
    assert err.value.to_body()["reason"] == "too_many_lines"
    assert "1.001 Positionen" in str(err.value) and "höchstens 1.000" in str(err.value)


def test_an_incomplete_event_is_refused_naming_its_fields():
    with pytest.raises(Unprocessable) as err:
        domain.parse_event(AvAgreementSignedSchema(), {"customer_id": "sieben"}, "av_agreement_signed")
    fields = err.value.to_body()["fields"]
    assert {"agreement_id", "customer_id", "title", "signed_at"} <= set(fields)
    assert "av_agreement_signed: Daten unvollständig" in str(err.value)


class Renderer:
    """A render pool that fails the way it is told to (a fake of kc_documents.pool)."""

    def __init__(self, error=None):
        self.error = error

    def run(self, fn, *args):
        if self.error:
            raise self.error
        return fn(*args)


def test_a_render_past_the_time_limit_is_parked_a_busy_or_crashed_pool_is_retried():
    assert domain.render_or_park(Renderer(), "Rechnung RE-1", lambda x: x * 2, 21) == 42
    slow = ServiceUnavailable("zu langsam", {"reason": TIMEOUT_REASON, "timeout": 60})
    with pytest.raises(Unprocessable) as err:
        domain.render_or_park(Renderer(slow), "Rechnung RE-1", len, "x")
    assert err.value.to_body()["reason"] == "render_timeout" and "60 s" in str(err.value)
    busy = ServiceUnavailable("ausgelastet", {"reason": "busy"})
    with pytest.raises(ServiceUnavailable):
        domain.render_or_park(Renderer(busy), "Rechnung RE-1", len, "x")


# ---------------------------------------------------------------- the price list

def test_the_price_list_groups_by_kind_in_the_guides_order_with_gross_prices():
    groups = library.pricelist_groups([
        {"id": "x", "kind": "custom", "name": "Sonderleistung", "price_net": "1.00", "vat_rate": "19.00"},
        {"id": "root-s", "kind": "server", "name": "Root S", "price_net": "14.90", "vat_rate": "19.00",
         "periods": [1, 12]},
        {"id": "domain-de", "kind": "domain", "name": ".de", "price_net": "9.90", "vat_rate": "19.00",
         "periods": [12, 24]},
        {"id": "hosting", "kind": "hosting", "name": "businesshosting", "price_net": "12.90",
         "vat_rate": "19.00", "periods": [3]},
    ])
    assert [label for label, _ in groups] == ["Webhosting", "Domains", "Server", "custom"]
    domain_row = groups[1][1][0]
    assert (domain_row["gross"], domain_row["unit"], domain_row["periods"]) == (
        Decimal("11.78"), "je Jahr", "jährlich, 24 Monate")
    assert groups[2][1][0]["unit"] == "je Monat" and groups[2][1][0]["gross"] == Decimal("17.73")
    assert groups[0][1][0]["periods"] == "vierteljährlich"
