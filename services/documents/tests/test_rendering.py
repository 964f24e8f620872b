"""Rendering without the bus: invoice fields, the embedded e-invoice, AV, library, safety."""
import io
import re
from decimal import Decimal

import facturx
import pytest
from pypdf import PdfReader

from kc_documents import av, invoice, library, rendering
from kc_documents.formatting import money_de
from kc_documents.rendering import pdf_text

pytestmark = pytest.mark.slow  # WeasyPrint renders PDFs: seconds (not in `make test-unit`)


@pytest.fixture(scope="module")
def big_invoice():
    inv = invoice.sample_invoice(number="RE-2026-001234", lines=2)
    line = inv["lines"][1]
    line.update(text="Managed FlexServer Business", unit_net="1037.45", net="1037.45", vat="197.12")
    inv["lines"][0].update(vat="2.45")
    inv.update(net="1050.35", vat="199.57", gross="1249.92", open_amount="1249.92",
               vat_breakdown=[{"rate": "19.00", "base": "1050.35", "amount": "199.57"}])
    pdf, xml = invoice.render_invoice(inv)
    return inv, pdf, xml


def test_invoice_pdf_shows_every_field_in_german_formats(big_invoice):
    inv, pdf, _ = big_invoice
    text = pdf_text(pdf)
    for expected in [
        "Rechnung RE-2026-001234", "Rechnungsdatum: 26.11.2026", "Fällig am: 10.12.2026",
        "Kundennummer: 100001", "KundenCenter Hosting GmbH", "Hosting-Allee 1", "30159 Hannover",
        "USt-IdNr. DE123456789", "Beispiel GmbH", "Erika Musterfrau", "Musterweg 5", "10115 Berlin",
        "businesshosting (Paket 1) für beispiel-1.de", "Managed FlexServer Business",
        "Leistungszeitraum 01.11.2026 – 30.11.2026", "1.037,45 €", "1.050,35 €", "199,57 €",
        "1.249,92 €", "19 %", "Zahlungsart: Überweisung", "KC100001-RE-2026-001234",
        "IBAN: DE89 3704 0044 0532 0130 00", "BIC: COBADEFFXXX", "Offener Betrag",
        "bis zum 10.12.2026", "GiroCode",
    ]:
        assert expected in text, expected
    assert "Reverse Charge" not in text
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_invoice_is_pdfa3_with_schema_valid_en16931_xml(big_invoice):
    inv, pdf, xml = big_invoice
    filename, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml" and embedded == xml
    assert facturx.xml_check_xsd(embedded, flavor="factur-x", level="en16931")
    assert facturx.get_level(__import__("lxml.etree").etree.fromstring(embedded)) == "en16931"
    text = embedded.decode()
    assert "<ram:ID>urn:cen.eu:en16931:2017</ram:ID>" in text
    assert "RE-2026-001234" in text and "1249.92" in text and "DE89370400440532013000" in text
    metadata = PdfReader(io.BytesIO(pdf)).xmp_metadata
    raw = metadata.stream.get_data().decode()
    assert "<pdfaid:part>3</pdfaid:part>" in raw and "fx:ConformanceLevel" in raw


def test_reverse_charge_invoice_has_the_note_and_category_ae():
    inv = invoice.sample_invoice(number="RE-RC-1", reverse_charge=True)
    pdf, xml = invoice.render_invoice(inv)
    text = pdf_text(pdf)
    assert "Steuerschuldnerschaft des Leistungsempfängers" in text and "ATU12345678" in text
    assert "<ram:CategoryCode>AE</ram:CategoryCode>" in xml.decode()
    assert "VATEX-EU-AE" in xml.decode()


def test_girocode_only_for_an_open_amount_paid_by_transfer():
    assert invoice.girocode(invoice.sample_invoice()).startswith("data:image/png;base64,")
    assert invoice.girocode(invoice.sample_invoice(payment_method="card")) is None
    assert invoice.girocode(invoice.sample_invoice(open_amount="0.00")) is None
    text = pdf_text(invoice.render_invoice(invoice.sample_invoice(payment_method="sepa"))[0])
    assert "Lastschrift (SEPA)" in text and "GiroCode" not in text


def test_epc_payload_carries_iban_amount_and_reference():
    import segno.helpers
    inv = invoice.sample_invoice()
    # Same call as invoice.girocode: the EPC text the QR code encodes.
    data = segno.helpers._make_epc_qr_data(
        name=inv["seller"]["name"], iban=inv["seller"]["iban"], amount=Decimal(inv["open_amount"]),
        text=inv["payment_reference"], bic=inv["seller"]["bic"], encoding="utf-8")
    lines = data.split("\n") if isinstance(data, str) else data.decode().split("\n")
    assert lines[0] == "BCD" and "DE89370400440532013000" in lines and "EUR15.35" in lines


def test_av_agreement_shows_signer_details():
    agreement = {"agreement_id": 17, "customer_id": 100001, "version": "2026-01",
                 "title": "Vereinbarung zur Auftragsverarbeitung",
                 "text": "§ 1 Gegenstand\n\nDer Auftragnehmer verarbeitet Daten.\n\n§ 2 Dauer",
                 "signed_at": "2026-11-26T13:05:00+00:00", "signer_name": "Max Mustermann",
                 "signer_position": "Geschäftsführer", "client_ip": "203.0.113.7",
                 "customer": {"company": "Beispiel GmbH", "first_name": "Max", "last_name": "Mustermann",
                              "street": "Musterweg 5", "zip": "10115", "city": "Berlin", "country": "DE"}}
    text = pdf_text(av.render_av(agreement, {"name": "KundenCenter Hosting GmbH", "street": "A 1",
                                             "zip": "30159", "city": "Hannover"}))
    for expected in ["Vereinbarung zur Auftragsverarbeitung", "Max Mustermann (Geschäftsführer)",
                     "26.11.2026, 14:05 Uhr", "203.0.113.7", "Beispiel GmbH", "Kundennummer 100001",
                     "Der Auftragnehmer verarbeitet Daten.", "§ 2 Dauer"]:
        assert expected in text, expected


def test_pricelist_from_products_with_gross_prices():
    products = [{"id": "domain-de", "kind": "domain", "name": "Domain .de", "price_net": "9.90",
                 "vat_rate": "19.00", "periods": [12]},
                {"id": "hosting-shop", "kind": "hosting", "name": "shophosting", "price_net": "24.90",
                 "vat_rate": "19.00", "periods": [1, 12]}]
    import datetime as dt
    text = pdf_text(library.render_pricelist(library.pricelist_groups(products),
                                             {"name": "P", "street": "S", "zip": "1", "city": "C"},
                                             dt.date(2026, 11, 26)))
    assert "Stand: 26.11.2026" in text
    assert "Domain .de" in text and "9,90 €" in text and "11,78 €" in text
    assert "shophosting" in text and "29,63 €" in text and "monatlich, jährlich" in text


def test_fetcher_serves_bundled_assets_only():
    fetcher = rendering._fetcher_class()()
    assert fetcher.fetch(rendering.BASE_URL + "fonts/DejaVuSans.ttf").read()[:4] == b"\x00\x01\x00\x00"
    for url in ["http://example.com/x.png", "https://example.com/a.css", "file:///etc/passwd",
                rendering.BASE_URL + "../templates/base.html", "ftp://example.com/x"]:
        with pytest.raises(ValueError):
            fetcher.fetch(url)


def test_a_url_in_the_data_is_never_fetched(monkeypatch):
    import urllib.request
    calls = []
    monkeypatch.setattr(urllib.request.OpenerDirector, "open",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError("network")))
    html = ('<html><body><img src="http://203.0.113.1/track.png">'
            '<link rel="stylesheet" href="https://203.0.113.1/x.css"><p>Hallo</p></body></html>')
    pdf = rendering.html_to_pdf(html)
    assert "Hallo" in pdf_text(pdf) and calls == []


def test_incomplete_invoice_event_is_refused_naming_the_fields():
    from kc_common.errors import Unprocessable
    from kc_documents import domain, schemas
    minimal = {"invoice_id": 1, "number": "RE-1", "customer_id": 100001, "net": "9.90", "vat": "1.88",
               "gross": "11.78", "issued_at": "2026-11-26T10:00:00+00:00"}
    with pytest.raises(Unprocessable) as err:
        domain.parse_event(schemas.InvoiceIssuedSchema(), minimal, "invoice_issued")
    assert {"seller", "buyer", "lines", "due_date"} <= set(err.value.details["fields"])


def _euro(amount):
    return money_de(amount).replace("\u00a0", " ")  # as the text reads


def _page_texts(pdf):
    return [(page.extract_text() or "").replace("\u00a0", " ") for page in PdfReader(io.BytesIO(pdf)).pages]


def test_long_invoice_runs_over_pages_with_header_page_numbers_and_carry_over():
    inv = invoice.sample_invoice(number="RE-LANG-1", lines=60)
    nets = {line["position"]: Decimal(line["net"]) for line in inv["lines"]}
    pdf, xml = invoice.render_invoice(inv)
    pages = _page_texts(pdf)
    count = len(pages)
    assert count >= 4
    seen = []
    for number, text in enumerate(pages, 1):
        assert f"Seite {number} von {count}" in text
        positions = [int(p) for p in re.findall(r"^(\d+) businesshosting \(Paket", text, re.M)]
        seen += positions
        carries = re.findall(r"Übertrag: ([\d.]+,\d\d €)", text)
        expected = []
        if positions and positions[0] > 1:  # carried in: the lines before this page
            expected.append(_euro(sum(nets[p] for p in nets if p < positions[0])))
        if number < count:  # carried on: the lines up to the end of this page
            assert "Pos. Beschreibung Menge Einzelpreis netto USt. Betrag netto" in pages[number]
            expected.append(_euro(sum(nets[p] for p in nets if p <= positions[-1])))
        assert sorted(carries) == sorted(expected), (number, carries, expected)
    assert seen == list(range(1, 61))  # every line once, in order, none split over two pages
    last = pages[-1]
    assert "Summe netto" in last and _euro(inv["net"]) in last and "Offener Betrag" in last
    assert xml.count(b"<ram:IncludedSupplyChainTradeLineItem>") == 60
    raw = PdfReader(io.BytesIO(pdf)).xmp_metadata.stream.get_data().decode()
    assert "<pdfaid:part>3</pdfaid:part>" in raw and facturx.get_xml_from_pdf(pdf, check_xsd=False)[1] == xml


def test_carried_totals_are_exact_decimal_sums():
    lines = [{"net": "0.10"}, {"net": "0.20"}, {"net": "1234.56"}]
    rows, total = invoice.carried_rows(lines, "EUR")
    assert [(before, after) for _, before, after in rows] == [
        ("", "Übertrag: 0,10\u00a0€"), ("Übertrag: 0,10\u00a0€", "Übertrag: 0,30\u00a0€"),
        ("Übertrag: 0,30\u00a0€", "Übertrag: 1.234,86\u00a0€")]
    assert total == "Übertrag: 1.234,86\u00a0€"
