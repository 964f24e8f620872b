"""Every document billing issues passes the official EN 16931 and XRechnung Schematrons.

The XML checked is the one embedded in the rendered PDF (``factur-x.xml``), produced from the
``invoice_issued`` payload as billing sends it (``invoice.sample_invoice`` mirrors billing's texts
and signs; services/billing/tests/test_einvoice.py runs the same checks on billing's real events).
Page 1 of every document type is rendered to PNG under ``var/test-artifacts/documents/``.
"""
import copy
import datetime as dt
import io
import os
from decimal import Decimal
from pathlib import Path

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from kc_common.seller import legal_lines, seller_from_config
from kc_documents import av, invoice, library, schemas
from kc_documents.rendering import pdf_text

from .schematron import assert_valid, failed_asserts

pytestmark = pytest.mark.slow  # PDF rendering and Schematron: seconds each (not in `make test-unit`)

LEITWEG = "04011000-1234512345-06"
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
DOCUMENTS = {
    "invoice": {},
    "tariff_change": {"kind": "tariff_change"},
    "credit_note": {"kind": "credit_note"},
    "by_post": {"by_post": True},
    "reverse_charge": {"reverse_charge": True},
    "sepa": {"payment_method": "sepa"},
    "card": {"payment_method": "card"},
}
ARTIFACTS = Path(os.environ.get("KC_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[3] / "var" / "test-artifacts") / "documents"


def payload(name, profile="en16931"):
    data = invoice.sample_invoice(number=f"10000{len(name)}", einvoice_profile=profile,
                                  leitweg_id=LEITWEG if profile == "xrechnung" else None, **DOCUMENTS[name])
    return schemas.InvoiceIssuedSchema().load(data)  # as the event handler gets it


def rendered(inv):
    pdf, xml = invoice.render_invoice(inv)
    filename, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml" and embedded == xml
    return pdf, embedded


def save_page_one(pdf, name):
    """Page 1 as PNG (a test artifact to look at); returns the image."""
    import pypdfium2 as pdfium
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[0].render(scale=1.5).to_pil()
    finally:
        doc.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image.save(ARTIFACTS / f"{name}.png")
    return image


def xpath(xml, path):
    return etree.fromstring(xml).xpath(path, namespaces=NS)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_every_document_passes_the_en16931_schematron(name):
    pdf, xml = rendered(payload(name))
    assert_valid(xml, "en16931")
    # no negative price or quantity anywhere (BR-27 and friends)
    amounts = xpath(xml, "//ram:ChargeAmount/text() | //ram:BilledQuantity/text() | //ram:LineTotalAmount/text()")
    assert amounts and all(not a.startswith("-") for a in amounts)
    save_page_one(pdf, name)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_every_document_passes_the_xrechnung_schematron_for_public_bodies(name):
    inv = payload(name, "xrechnung")
    pdf, xml = rendered(inv)
    assert_valid(xml, "en16931", "xrechnung")
    assert xpath(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()") == [
        invoice.XRECHNUNG_ID]
    assert xpath(xml, "//ram:ApplicableHeaderTradeAgreement/ram:BuyerReference/text()") == [LEITWEG]
    contact = xpath(xml, "//ram:SellerTradeParty/ram:DefinedTradeContact")[0]
    assert [t.strip() for t in contact.itertext() if t.strip()][:1] == [inv["seller"]["contact_name"]]
    text = pdf_text(pdf)
    assert f"Leitweg-ID: {LEITWEG}" in text and "XRechnung" in text


def test_the_schematrons_do_find_violations():
    """Guards the checks above: the old credit lines (negative price) and a missing seller
    contact are reported, so a passing document means something."""
    root = etree.fromstring(invoice.build_xml(payload("tariff_change")))
    price = root.xpath("//ram:NetPriceProductTradePrice/ram:ChargeAmount", namespaces=NS)[0]
    price.text = "-" + price.text
    assert "BR-27" in {rule for rule, _, _ in failed_asserts(etree.tostring(root), "en16931")}
    xml = invoice.build_xml(payload("invoice", "xrechnung"))
    root = etree.fromstring(xml)
    for node in root.xpath("//ram:SellerTradeParty/ram:DefinedTradeContact", namespaces=NS):
        node.getparent().remove(node)
    rules = {(rule, flag) for rule, flag, _ in failed_asserts(etree.tostring(root), "xrechnung")}
    assert ("BR-DE-2", "fatal") in rules


def test_tariff_change_credit_is_a_document_level_allowance():
    inv = payload("tariff_change")
    xml = invoice.build_xml(inv)
    assert xpath(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == ["380"]
    assert len(xpath(xml, "//ram:IncludedSupplyChainTradeLineItem")) == 1
    allowance = xpath(xml, "//ram:ApplicableHeaderTradeSettlement/ram:SpecifiedTradeAllowanceCharge")[0]
    assert allowance.xpath("ram:ChargeIndicator/*/text()", namespaces=NS) == ["false"]
    assert allowance.xpath("ram:ActualAmount/text()", namespaces=NS) == ["8.17"]
    assert allowance.xpath("ram:Reason/text()", namespaces=NS)[0].startswith("Gutschrift businesshosting")
    summation = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    assert xpath(xml, summation + "LineTotalAmount/text()") == ["18.94"]
    assert xpath(xml, summation + "AllowanceTotalAmount/text()") == ["8.17"]
    assert xpath(xml, summation + "TaxBasisTotalAmount/text()") == [str(inv["net"])]
    assert xpath(xml, summation + "GrandTotalAmount/text()") == [str(inv["gross"])]


def test_credit_note_is_a_381_naming_the_corrected_invoice_with_positive_amounts():
    inv = payload("credit_note")
    pdf, xml = rendered(inv)
    assert Decimal(inv["gross"]) < 0  # billing books it negative
    assert xpath(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == ["381"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()") == ["1000001"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/*/text()") == ["20261101"]
    summation = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    assert xpath(xml, summation + "GrandTotalAmount/text()") == ["17.85"]
    assert xpath(xml, summation + "DuePayableAmount/text()") == ["17.85"]
    text = pdf_text(pdf)
    number = inv["number"]
    for expected in [f"Gutschrift {number}", f"Gutschriftsnummer: {number}",
                     "Rechnungskorrektur zu Rechnung 1000001 vom 01.11.2026",
                     "Zu Rechnung: 1000001 vom 01.11.2026", "Wir schreiben Ihnen folgende Beträge gut",
                     "Gutschriftsbetrag brutto 17,85 €", "verrechnen wir mit offenen Rechnungen"]:
        assert expected in text, expected
    for wrong in ["berechnen wir Ihnen", "Rechnungsnummer", "Rechnungsbetrag", "-15,00", "GiroCode",
                  "Bitte überweisen"]:
        assert wrong not in text, wrong
    meta = PdfReader(io.BytesIO(pdf)).metadata
    assert meta.title.endswith(f"Gutschrift {number}")


def test_sepa_invoice_carries_mandate_creditor_id_and_debited_account():
    inv = payload("sepa")
    pdf, xml = rendered(inv)
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()") == ["59"]
    assert xpath(xml, "//ram:DirectDebitMandateID/text()") == ["KC100001-M001"]
    assert xpath(xml, "//ram:CreditorReferenceID/text()") == [inv["seller"]["creditor_id"]]
    assert xpath(xml, "//ram:PayerPartyDebtorFinancialAccount/ram:IBANID/text()") == ["DE02120300000000202051"]
    text = " ".join(pdf_text(pdf).split())
    # pre-notification: amount, due date, mandate reference and creditor id
    for expected in ["Mandatsreferenz: KC100001-M001", f"Gläubiger-ID: {inv['seller']['creditor_id']}",
                     "per SEPA-Lastschrift", "zum 10.12.2026", "(IBAN endet auf 2051)"]:
        assert expected in text, expected


def test_by_post_and_reverse_charge_documents():
    xml = invoice.build_xml(payload("by_post"))
    assert "Rechnung per Post" in xpath(xml, "//ram:SpecifiedTradeProduct/ram:Name/text()")
    xml = invoice.build_xml(payload("reverse_charge"))
    assert set(xpath(xml, "//ram:CategoryCode/text()")) == {"AE"}
    assert xpath(xml, "//ram:ApplicableTradeTax/ram:ExemptionReasonCode/text()") == ["VATEX-EU-AE"]


def test_one_seller_with_the_legally_required_fields_on_every_document():
    seller = seller_from_config({}, environ={})
    lines = legal_lines(seller)
    assert seller["street"] == "Hosting-Allee 1"
    expected = ["Hosting-Allee 1", "Amtsgericht Hannover HRB 123456",
                "Geschäftsführer: Max Mustermann, Erika Beispiel", "USt-IdNr. DE123456789",
                "Steuernummer 25/200/12345", "Sitz: Hannover"]
    assert all(any(e in line for line in lines) for e in expected)
    agreement = {"agreement_id": 7, "customer_id": 100001, "version": "1", "title": "AV-Vertrag",
                 "text": "Text.", "signed_at": dt.datetime(2026, 11, 26, 13, 5, tzinfo=dt.UTC),
                 "signer_name": "Max", "customer": {}}
    docs = {
        "invoice_pdf": invoice.render_invoice(payload("invoice"))[0],
        "av_agreement": av.render_av(agreement, seller),
        "pricelist": library.render_pricelist(library.pricelist_groups([]), seller, dt.date(2026, 11, 26)),
        "agb": library.render_library("library_text.html",
                                      library.template_context("unternehmer-agb", "1.0", dt.date(2026, 1, 1)),
                                      seller),
        "kuendigung": library.render_library("library_form.html",
                                             library.template_context("kuendigung", "1.0", dt.date(2026, 1, 1)),
                                             seller),
    }
    for name, pdf in docs.items():
        text = " ".join(pdf_text(pdf).split())
        for e in expected:
            assert e in text, (name, e)
        assert "Musterstraße 1 " not in text, name
        image = save_page_one(pdf, name)
        assert image.size[0] < image.size[1]  # A4 portrait
        assert image.convert("L").getextrema()[0] < 64  # something dark was drawn


def test_period_once_and_host_names_never_broken():
    inv = payload("invoice")
    inv["lines"][0]["text"] = ("Root FlexServer - 2 CPU Kerne - 2 GB RAM - 100 GB HDD - 100% HDD Speed "
                               "root-demo-01.kundencenter-server.de 01.11.2026-30.11.2026")
    text = pdf_text(invoice.render_invoice(inv)[0])
    assert "root-demo-01.kundencenter-server.de" in text  # one piece, not "root-demo-01.kundencenter-\nserver.de"
    assert text.count("01.11.2026") == 1 and "Leistungszeitraum 01.11.2026 – 30.11.2026" in text
    xml = invoice.build_xml(inv)
    assert xpath(xml, "//ram:SpecifiedTradeProduct/ram:Name/text()") == [
        "Root FlexServer - 2 CPU Kerne - 2 GB RAM - 100 GB HDD - 100% HDD Speed root-demo-01.kundencenter-server.de"]


def test_payment_block_never_alone_on_a_page():
    """Invoice 1000001 used to end with a page holding only the payment block (5–7 long lines
    did it): now the last page always carries at least one line with the totals."""
    base = payload("invoice")
    line = dict(base["lines"][0], text="Root FlexServer - 2 CPU Kerne - 2 GB RAM - 100 GB HDD - 100% HDD "
                                       "Speed root-demo-01.kundencenter-server.de 01.11.2026-30.11.2026")
    for count in range(4, 10):
        inv = copy.deepcopy(base)
        inv["lines"] = [dict(line, position=i) for i in range(1, count + 1)]
        net = line["net"] * count
        vat = (net * Decimal("0.19")).quantize(Decimal("0.01"))
        inv.update(net=net, vat=vat, gross=net + vat, open_amount=net + vat,
                   vat_breakdown=[{"rate": Decimal("19.00"), "base": net, "amount": vat}])
        pages = PdfReader(io.BytesIO(invoice.render_invoice(inv)[0])).pages
        last = pages[-1].extract_text()
        assert "Zahlung:" in last and "Summe netto" in last, count
        if len(pages) > 1:
            assert "Pos." in last and "Leistungszeitraum" in last, count
