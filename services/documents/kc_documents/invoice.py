"""Invoice documents: the PDF (PDF/A-3b) with its EN 16931 e-invoice XML embedded.

Built from billing's ``invoice_issued`` event alone (docs/contracts.md). The
functions here are pure and CPU-bound: :func:`render_invoice` runs in a worker
process (:mod:`kc_documents.pool`).

* XML: Factur-X / ZUGFeRD 2 profile EN 16931 (CII), built with ``drafthorse``
  (which validates it against the Factur-X EN 16931 XSD while serialising) and
  checked again with ``factur-x``'s XSD check before it is embedded.
* PDF: weasyprint renders ``templates/invoice.html`` as PDF/A-3b; ``factur-x``
  embeds the XML (``factur-x.xml``, AFRelationship Data) and writes the XMP
  Factur-X extension schema, so readers and accounting software find the data.
* GiroCode: an EPC QR code (``segno``) for the open amount when the invoice
  is to be paid by bank transfer.
"""
from decimal import Decimal

from kc_documents.formatting import as_date, date_de, money_de

PAYMENT_LABELS = {
    "transfer": "Überweisung",
    "card": "Kreditkarte",
    "instant": "Sofortüberweisung",
    "sepa": "Lastschrift (SEPA)",
}
# UNTDID 4461 payment means codes (EN 16931 BT-81).
PAYMENT_CODES = {"transfer": "58", "card": "54", "instant": "68", "sepa": "59"}
REVERSE_CHARGE_NOTE = ("Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge): "
                       "Die Umsatzsteuer schuldet der Leistungsempfänger (§ 13b UStG, Art. 196 MwStSystRL).")
REVERSE_CHARGE_REASON = "Steuerschuldnerschaft des Leistungsempfängers"
# The most lines of an invoice that is rendered: a hard bound on one job's work (measured:
# 2,000 lines ~22 s CPU and 0.4 GB in the worker, 5,000 lines ~55 s and 0.9 GB; see
# bench/bench_render.py). An invoice_issued event with more is parked naming why.
MAX_LINES = 5000
CARRY = "Übertrag: {}"


def D(value):
    return Decimal(str(value)) if value is not None and value != "" else Decimal("0")


def vat_category(rate, reverse_charge):
    if reverse_charge:
        return "AE"
    return "S" if D(rate) > 0 else "Z"


def payment_terms_text(inv):
    method = inv["payment_method"]
    due = date_de(inv.get("due_date"))
    open_amount = D(inv.get("open_amount"))
    if open_amount <= 0:
        return "Der Rechnungsbetrag ist bereits beglichen."
    if method == "transfer":
        return (f"Bitte überweisen Sie {money_de(open_amount, inv['currency'])} bis zum {due} "
                f"unter Angabe des Verwendungszwecks „{inv.get('payment_reference') or inv['number']}“.")
    if method == "sepa":
        return (f"Der Betrag von {money_de(open_amount, inv['currency'])} wird zum {due} "
                f"per SEPA-Lastschrift von Ihrem Konto eingezogen.")
    if method == "card":
        return f"Der Betrag von {money_de(open_amount, inv['currency'])} wird Ihrer Kreditkarte belastet."
    return (f"Bitte zahlen Sie {money_de(open_amount, inv['currency'])} bis zum {due} "
            f"per Sofortüberweisung im KundenCenter (Meine Buchhaltung → Zahlung vornehmen).")


def girocode(inv):
    """EPC QR code (GiroCode) for the open amount as a PNG data URI, or None when it does not apply.

    PNG, not SVG: weasyprint draws a QR code's SVG path far slower than it embeds a tiny PNG.
    """
    import segno.helpers
    seller = inv["seller"]
    amount = D(inv.get("open_amount"))
    if inv["payment_method"] != "transfer" or amount <= 0 or not seller.get("iban"):
        return None
    if (inv.get("currency") or "EUR") != "EUR":
        return None
    qr = segno.helpers.make_epc_qr(
        name=seller["name"][:70], iban=seller["iban"].replace(" ", ""), amount=amount,
        text=(inv.get("payment_reference") or inv["number"])[:140], bic=seller.get("bic") or None,
        encoding="utf-8")
    return qr.png_data_uri(scale=4, border=0)


def carried_rows(lines, currency):
    """(line, carry before it, carry after it): the running net total of the lines, as the page
    margins show it where a page ends and the next begins ("Übertrag: 1.234,56 €"). Decimal
    throughout; nothing is carried into the first line."""
    rows, total = [], Decimal("0")
    for line in lines:
        before = CARRY.format(money_de(total, currency)) if rows else ""
        total += D(line["net"])
        rows.append((line, before, CARRY.format(money_de(total, currency))))
    return rows, CARRY.format(money_de(total, currency))


def invoice_context(inv):
    """Everything the template shows; amounts stay Decimal, formatting is the template's."""
    lines = sorted(inv["lines"], key=lambda line: int(line.get("position") or 0))
    buyer = inv["buyer"]
    rows, carry_total = carried_rows(lines, inv.get("currency") or "EUR")
    digits = max(len(str(line.get("position") or "")) for line in lines)
    return {
        "inv": inv,
        "seller": inv["seller"],
        "buyer": buyer,
        "buyer_name": buyer.get("company") or buyer.get("name") or "",
        "lines": lines,
        "rows": rows,
        "carry_total": carry_total,
        # "Pos." wide enough for the longest number (1.5 mm padding each side, ~2.2 mm a digit)
        "pos_width": f"{max(Decimal('9'), Decimal('3.2') + Decimal('2.2') * digits)}mm",
        "breakdown": sorted(inv["vat_breakdown"], key=lambda b: D(b["rate"]), reverse=True),
        "payment_label": PAYMENT_LABELS.get(inv["payment_method"], inv["payment_method"]),
        "payment_terms": payment_terms_text(inv),
        "girocode": girocode(inv),
        "reverse_charge_note": REVERSE_CHARGE_NOTE if inv.get("reverse_charge") else None,
        "paid": D(inv["gross"]) - D(inv.get("open_amount")),
        "open_amount": D(inv.get("open_amount")),
        "D": D,
    }


def _date(value):
    return as_date(value)


def build_xml(inv):
    """The EN 16931 (Factur-X profile EN 16931) CII XML; drafthorse validates it against the XSD."""
    from drafthorse.models.accounting import ApplicableTradeTax
    from drafthorse.models.document import Document
    from drafthorse.models.note import IncludedNote
    from drafthorse.models.party import TaxRegistration
    from drafthorse.models.payment import PaymentMeans, PaymentTerms
    from drafthorse.models.tradelines import LineItem

    currency = inv.get("currency") or "EUR"
    seller, buyer = inv["seller"], inv["buyer"]
    rc = bool(inv.get("reverse_charge"))
    doc = Document()
    doc.context.guideline_parameter.id = "urn:cen.eu:en16931:2017"
    doc.header.id = inv["number"]
    doc.header.type_code = "380"  # commercial invoice
    doc.header.issue_date_time = _date(inv["issued_at"])
    if rc:
        note = IncludedNote()
        note.content = REVERSE_CHARGE_NOTE
        doc.header.notes.add(note)

    agreement = doc.trade.agreement
    agreement.buyer_reference = str(buyer.get("customer_id") or inv["customer_id"])
    agreement.seller.name = seller["name"]
    agreement.seller.address.line_one = seller.get("street") or None
    agreement.seller.address.postcode = seller.get("zip") or None
    agreement.seller.address.city_name = seller.get("city") or None
    agreement.seller.address.country_id = seller.get("country") or "DE"
    if seller.get("vat_id"):
        agreement.seller.tax_registrations.add(TaxRegistration(id=("VA", seller["vat_id"])))
    if seller.get("tax_number"):
        agreement.seller.tax_registrations.add(TaxRegistration(id=("FC", seller["tax_number"])))
    agreement.buyer.id = str(buyer.get("customer_id") or inv["customer_id"])
    agreement.buyer.name = buyer.get("company") or buyer.get("name")
    if buyer.get("company") and buyer.get("name"):
        agreement.buyer.contact.person_name = buyer["name"]
    elif buyer.get("contact_person"):
        agreement.buyer.contact.person_name = buyer["contact_person"]
    agreement.buyer.address.line_one = buyer.get("street") or None
    agreement.buyer.address.postcode = buyer.get("zip") or None
    agreement.buyer.address.city_name = buyer.get("city") or None
    agreement.buyer.address.country_id = buyer.get("country") or "DE"
    if buyer.get("vat_id"):
        agreement.buyer.tax_registrations.add(TaxRegistration(id=("VA", buyer["vat_id"])))

    starts = [_date(li["period_start"]) for li in inv["lines"] if li.get("period_start")]
    ends = [_date(li["period_end"]) for li in inv["lines"] if li.get("period_end")]
    doc.trade.delivery.event.occurrence = min(starts) if starts else _date(inv["issued_at"])

    settlement = doc.trade.settlement
    settlement.currency_code = currency
    settlement.payment_reference = inv.get("payment_reference") or inv["number"]
    means = PaymentMeans()
    means.type_code = PAYMENT_CODES.get(inv["payment_method"], "ZZZ")
    means.information.add(PAYMENT_LABELS.get(inv["payment_method"], inv["payment_method"]))
    if inv["payment_method"] == "transfer" and seller.get("iban"):
        means.payee_account.iban = seller["iban"].replace(" ", "")
        means.payee_account.account_name = seller["name"]
        if seller.get("bic"):
            means.payee_institution.bic = seller["bic"]
    settlement.payment_means.add(means)
    if starts and ends:
        settlement.period.start = min(starts)
        settlement.period.end = max(ends)

    for b in inv["vat_breakdown"]:
        tax = ApplicableTradeTax()
        tax.calculated_amount = D(b["amount"])
        tax.basis_amount = D(b["base"])
        tax.type_code = "VAT"
        tax.category_code = vat_category(b["rate"], rc)
        if rc:
            tax.exemption_reason = REVERSE_CHARGE_REASON
            tax.exemption_reason_code = "VATEX-EU-AE"
        tax.rate_applicable_percent = D(b["rate"])
        settlement.trade_tax.add(tax)

    terms = PaymentTerms()
    terms.description = payment_terms_text(inv)
    if inv.get("due_date"):
        terms.due = _date(inv["due_date"])
    settlement.terms.add(terms)

    total_net = sum((D(li["net"]) for li in inv["lines"]), Decimal("0"))
    summ = settlement.monetary_summation
    summ.line_total = total_net
    summ.charge_total = Decimal("0.00")
    summ.allowance_total = Decimal("0.00")
    summ.tax_basis_total = D(inv["net"])
    summ.tax_total = (D(inv["vat"]), currency)
    summ.grand_total = D(inv["gross"])
    summ.prepaid_total = D(inv["gross"]) - D(inv.get("open_amount"))
    summ.due_amount = D(inv.get("open_amount"))

    for li in sorted(inv["lines"], key=lambda line: int(line.get("position") or 0)):
        item = LineItem()
        item.document.line_id = str(li["position"])
        item.product.name = li["text"][:500]
        item.agreement.net.amount = D(li["unit_net"])
        item.delivery.billed_quantity = (D(li.get("quantity") or 1), "C62")
        item.settlement.trade_tax.type_code = "VAT"
        item.settlement.trade_tax.category_code = vat_category(li["vat_rate"], rc)
        item.settlement.trade_tax.rate_applicable_percent = D(li["vat_rate"])
        if li.get("period_start") and li.get("period_end"):
            item.settlement.period.start = _date(li["period_start"])
            item.settlement.period.end = _date(li["period_end"])
        item.settlement.monetary_summation.total_amount = D(li["net"])
        doc.trade.items.add(item)

    return doc.serialize(schema="FACTUR-X_EN16931")


def check_xml(xml_bytes):
    """Raise unless the XML is valid against the Factur-X EN 16931 schema (factur-x's XSD)."""
    import facturx
    facturx.xml_check_xsd(xml_bytes, flavor="factur-x", level="en16931")
    return True


def render_invoice(inv):
    """The invoice PDF/A-3b with the validated EN 16931 XML embedded -> (pdf, xml)."""
    import facturx
    from kc_documents.rendering import render_pdf
    xml = build_xml(inv)
    check_xml(xml)
    base_pdf = render_pdf("invoice.html", pdf_variant="pdf/a-3b", **invoice_context(inv))
    seller = inv["seller"]["name"]
    pdf = facturx.generate_from_binary(
        base_pdf, xml, flavor="factur-x", level="en16931", check_xsd=False, lang="de-DE",
        pdf_metadata={"author": seller, "keywords": "Rechnung, Factur-X, ZUGFeRD, EN 16931",
                      "title": f"{seller}: Rechnung {inv['number']}",
                      "subject": f"Rechnung {inv['number']} vom {date_de(inv['issued_at'])}"})
    return pdf, xml


def sample_invoice(number="RE-2026-000123", customer_id=100001, payment_method="transfer",
                   reverse_charge=False, lines=1, open_amount=None):
    """A complete ``invoice_issued`` payload (tests, benchmark, demo)."""
    items, net_sum = [], Decimal("0")
    rate = Decimal("0.00") if reverse_charge else Decimal("19.00")
    for i in range(1, lines + 1):
        unit = Decimal("12.90") * i
        vat = (unit * rate / 100).quantize(Decimal("0.01"))
        items.append({"position": i, "text": f"businesshosting (Paket {i}) für beispiel-{i}.de",
                      "contract_id": 500 + i, "period_start": "2026-11-01", "period_end": "2026-11-30",
                      "quantity": "1", "unit_net": str(unit), "net": str(unit), "vat_rate": str(rate),
                      "vat": str(vat)})
        net_sum += unit
    vat = (net_sum * rate / 100).quantize(Decimal("0.01"))
    gross = net_sum + vat
    return {
        "invoice_id": 4711, "number": number, "customer_id": customer_id,
        "issued_at": "2026-11-26T10:15:00+00:00", "due_date": "2026-12-10", "currency": "EUR",
        "net": str(net_sum), "vat": str(vat), "gross": str(gross),
        "open_amount": str(gross if open_amount is None else open_amount),
        "payment_method": payment_method, "payment_reference": f"{number} KD {customer_id}",
        "by_post": False, "invoice_email": "rechnung@beispiel.de", "reverse_charge": reverse_charge,
        "seller": {"name": "KundenCenter Hosting GmbH", "street": "Hosting-Allee 1", "zip": "30159",
                   "city": "Hannover", "country": "DE", "vat_id": "DE123456789",
                   "iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "bank": "Commerzbank"},
        "buyer": {"customer_id": customer_id, "company": "Beispiel GmbH", "name": "Erika Musterfrau",
                  "street": "Musterweg 5", "zip": "10115", "city": "Berlin",
                  "country": "AT" if reverse_charge else "DE",
                  "vat_id": "ATU12345678" if reverse_charge else None, "contact_person": None},
        "lines": items,
        "vat_breakdown": [{"rate": str(rate), "base": str(net_sum), "amount": str(vat)}],
    }
