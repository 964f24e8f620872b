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
import re
from decimal import Decimal

from kc_documents.formatting import as_date, date_de, money_de

PAYMENT_LABELS = {
    "transfer": "Überweisung",
    "card": "Kreditkarte",
    "instant": "Sofortüberweisung",
    "sepa": "Lastschrift (SEPA)",
}
# UNTDID 4461 payment means codes (EN 16931 BT-81). Card payments run through the payment
# service provider, which alone knows the card: 68 (online payment service), since 54 would need
# the card's number (BG-18, mandatory with 48/54/55 in XRechnung, BR-DE-24-a).
PAYMENT_CODES = {"transfer": "58", "card": "68", "instant": "68", "sepa": "59"}
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
    if is_credit_note(inv):
        return (f"Den Betrag von {money_de(-D(inv['gross']), inv['currency'])} verrechnen wir mit offenen "
                f"Rechnungen; ein verbleibendes Guthaben erstatten wir Ihnen auf Wunsch.")
    if open_amount <= 0:
        return "Der Rechnungsbetrag ist bereits beglichen."
    if method == "transfer":
        return (f"Bitte überweisen Sie {money_de(open_amount, inv['currency'])} bis zum {due} "
                f"unter Angabe des Verwendungszwecks „{inv.get('payment_reference') or inv['number']}“.")
    if method == "sepa":
        sepa = inv.get("sepa") or {}
        creditor_id = sepa.get("creditor_id") or inv["seller"].get("creditor_id")
        iban = (sepa.get("iban") or "").replace(" ", "")
        return (f"Der Betrag von {money_de(open_amount, inv['currency'])} wird zum {due} "
                f"per SEPA-Lastschrift von Ihrem Konto"
                + (f" (IBAN endet auf {iban[-4:]})" if iban else "")
                + " eingezogen"
                + (f", Mandatsreferenz {sepa['mandate_reference']}" if sepa.get("mandate_reference") else "")
                + (f", Gläubiger-ID {creditor_id}" if creditor_id else "") + ".")
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


PERIOD_IN_TEXT = re.compile(r"\s*\d{2}\.\d{2}\.\d{4}\s*[-–]\s*\d{2}\.\d{2}\.\d{4}")
# Spoken as host/domain names: kept on one line (a break after "-" reads as a hyphenation).
HOST_NAME = re.compile(r"(?<![\w.-])(?:[\w-]+\.)+[A-Za-z\u00c0-\u024f]{2,}(?![\w-])")
XRECHNUNG_ID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
EN16931_ID = "urn:cen.eu:en16931:2017"
CREDIT_MEANS = "97"  # UNTDID 4461: clearing between partners (a credit note is set off / refunded)


def is_credit_note(inv):
    return inv.get("kind") == "credit_note" or D(inv["gross"]) < 0


def description(line):
    """The line's text without the service period billing writes into it (the period is shown
    once, as "Leistungszeitraum", and is structured data in the XML)."""
    text = line["text"]
    if line.get("period_start") and line.get("period_end"):
        text = PERIOD_IN_TEXT.sub("", text, count=1)
    return " ".join(text.split()) or line["text"]


def hosts_nowrap(text):
    """HTML of ``text`` with host names (``beispiel-1.de``) in a no-wrap span; others escaped."""
    from markupsafe import Markup, escape
    out, last = [], 0
    for match in HOST_NAME.finditer(text):
        out.append(escape(text[last:match.start()]))
        host = match.group(0)
        out.append(Markup('<span class="host">{}</span>').format(host) if len(host) <= 40 else escape(host))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def signed_view(inv):
    """The document as EN 16931 wants it: no negative prices or quantities.

    A credit note (billing's ``kind`` credit_note, negative total) becomes a commercial credit
    note (381) with every amount's sign turned. On either, a line that is still negative (the
    credit part of a tariff change, the charge part of a credit note) becomes a document-level
    allowance (BG-20) with its VAT category and rate, its text as the reason.
    """
    sign = Decimal("-1") if is_credit_note(inv) else Decimal("1")
    lines = sorted(inv["lines"], key=lambda line: int(line.get("position") or 0))
    items, allowances = [], []
    for line in lines:
        net = D(line["net"]) * sign
        row = dict(line, net=net, unit_net=D(line["unit_net"]) * sign, description=description(line))
        (items if net >= 0 else allowances).append(row)
    if not items:  # EN 16931 needs one line (BR-16); a document of only credits has a 0 line
        items.append(dict(lines[0], net=Decimal("0.00"), unit_net=Decimal("0.00"),
                          description=description(lines[0])))
    breakdown = [dict(b, base=D(b["base"]) * sign, amount=D(b["amount"]) * sign)
                 for b in sorted(inv["vat_breakdown"], key=lambda b: D(b["rate"]), reverse=True)]
    line_total = sum((r["net"] for r in items), Decimal("0"))
    allowance_total = -sum((r["net"] for r in allowances), Decimal("0"))
    gross = D(inv["gross"]) * sign
    if sign < 0:  # the credit is owed to the customer (set off against open items or paid out)
        prepaid, due = Decimal("0.00"), gross
    else:
        prepaid, due = D(inv["gross"]) - D(inv.get("open_amount")), D(inv.get("open_amount"))
    return {"sign": sign, "credit_note": sign < 0, "items": items, "allowances": allowances,
            "breakdown": breakdown, "line_total": line_total, "allowance_total": allowance_total,
            "net": D(inv["net"]) * sign, "vat": D(inv["vat"]) * sign, "gross": gross,
            "prepaid": prepaid, "due": due}


def title(inv):
    if not is_credit_note(inv):
        return f"Rechnung {inv['number']}"
    return f"Gutschrift {inv['number']}"


def invoice_context(inv):
    """Everything the template shows; amounts stay Decimal, formatting is the template's."""
    view = signed_view(inv)
    credit = view["credit_note"]
    lines = sorted(inv["lines"], key=lambda line: int(line.get("position") or 0))
    shown = [dict(line, net=D(line["net"]) * view["sign"], unit_net=D(line["unit_net"]) * view["sign"],
                  description=description(line)) for line in lines]
    buyer = inv["buyer"]
    rows, carry_total = carried_rows(shown, inv.get("currency") or "EUR")
    digits = max(len(str(line.get("position") or "")) for line in lines)
    preceding = inv.get("preceding_invoice") or None
    return {
        "inv": inv,
        "title": title(inv),
        "credit_note": credit,
        "preceding": preceding,
        "seller": inv["seller"],
        "hosts_nowrap": hosts_nowrap,
        "buyer": buyer,
        "buyer_name": buyer.get("company") or buyer.get("name") or "",
        "lines": shown,
        "rows": rows,
        "carry_total": carry_total,
        # "Pos." wide enough for the longest number (1.5 mm padding each side, ~2.2 mm a digit)
        "pos_width": f"{max(Decimal('9'), Decimal('3.2') + Decimal('2.2') * digits)}mm",
        "breakdown": view["breakdown"],
        "net": view["net"], "gross": view["gross"],
        "payment_label": PAYMENT_LABELS.get(inv["payment_method"], inv["payment_method"]),
        "payment_terms": payment_terms_text(inv),
        "sepa": inv.get("sepa") if inv["payment_method"] == "sepa" and not credit else None,
        "girocode": None if credit else girocode(inv),
        "reverse_charge_note": REVERSE_CHARGE_NOTE if inv.get("reverse_charge") else None,
        "xrechnung": inv.get("einvoice_profile") == "xrechnung",
        "paid": view["prepaid"],
        "open_amount": view["due"],
        "D": D,
    }


def legal_lines(seller):
    from kc_common.seller import legal_lines as lines
    return lines(seller)


def _date(value):
    return as_date(value)


def _tax(target, rate, rc):
    target.type_code = "VAT"
    target.category_code = vat_category(rate, rc)
    target.rate_applicable_percent = D(rate)


def build_xml(inv):
    """The EN 16931 CII XML — Factur-X profile EN 16931, or XRechnung 3.0 (CII) for customers
    with that profile; drafthorse validates it against the Factur-X EN 16931 XSD.

    Passes the official EN 16931 and XRechnung Schematrons (tests/test_einvoice.py): no negative
    price (credits are document-level allowances or the document is a credit note 381 naming
    the invoice it corrects, BT-25), seller contact (BG-6), electronic addresses (BT-34/BT-49),
    payment instructions per means (BG-17 credit transfer, BG-19 direct debit)."""
    from drafthorse.models.accounting import ApplicableTradeTax, CategoryTradeTax
    from drafthorse.models.document import Document
    from drafthorse.models.note import IncludedNote
    from drafthorse.models.party import TaxRegistration
    from drafthorse.models.payment import PaymentMeans, PaymentTerms
    from drafthorse.models.trade import TradeAllowanceCharge
    from drafthorse.models.tradelines import LineItem

    currency = inv.get("currency") or "EUR"
    seller, buyer = inv["seller"], inv["buyer"]
    rc = bool(inv.get("reverse_charge"))
    xrechnung = inv.get("einvoice_profile") == "xrechnung"
    view = signed_view(inv)
    credit = view["credit_note"]
    doc = Document()
    doc.context.guideline_parameter.id = XRECHNUNG_ID if xrechnung else EN16931_ID
    doc.header.id = str(inv["number"])
    doc.header.type_code = "381" if credit else "380"  # credit note / commercial invoice
    doc.header.issue_date_time = _date(inv["issued_at"])
    notes = [REVERSE_CHARGE_NOTE] if rc else []
    preceding = inv.get("preceding_invoice") or None
    if credit and preceding:
        notes.append(f"Rechnungskorrektur zu Rechnung {preceding['number']}"
                     + (f" vom {date_de(preceding['issue_date'])}" if preceding.get("issue_date") else ""))
    legal = legal_lines(seller)
    if legal:
        notes.append("\n".join(legal))
    for text in notes:
        note = IncludedNote()
        note.content = text
        if text is notes[-1] and legal:
            note.subject_code = "REG"  # UNTDID 4451: regulatory information
        doc.header.notes.add(note)

    agreement = doc.trade.agreement
    # BT-10: the Leitweg-ID for public bodies (XRechnung), else the customer number
    agreement.buyer_reference = (buyer.get("leitweg_id") if xrechnung and buyer.get("leitweg_id")
                                 else str(buyer.get("customer_id") or inv["customer_id"]))
    agreement.seller.name = seller["name"]
    if seller.get("register_number"):
        agreement.seller.legal_organization.id = seller["register_number"]
        agreement.seller.legal_organization.trade_name = seller["name"]
    if seller.get("register_court") or seller.get("managing_directors"):
        agreement.seller.description = "; ".join(p for p in (
            f"Sitz: {seller['seat']}" if seller.get("seat") else None,
            " ".join(p for p in (seller.get("register_court"), seller.get("register_number")) if p),
            f"Geschäftsführer: {seller['managing_directors']}" if seller.get("managing_directors") else None)
            if p)
    contact = agreement.seller.contact
    contact.person_name = seller.get("contact_name") or seller["name"]
    contact.telephone.number = seller.get("contact_phone") or seller.get("phone") or None
    contact.email.address = seller.get("contact_email") or seller.get("email") or None
    agreement.seller.address.line_one = seller.get("street") or None
    agreement.seller.address.postcode = seller.get("zip") or None
    agreement.seller.address.city_name = seller.get("city") or None
    agreement.seller.address.country_id = seller.get("country") or "DE"
    seller_mail = seller.get("invoice_email") or seller.get("email")
    if seller_mail:
        agreement.seller.electronic_address.uri_ID = ("EM", seller_mail)
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
    if inv.get("invoice_email"):
        agreement.buyer.electronic_address.uri_ID = ("EM", inv["invoice_email"])
    if buyer.get("vat_id"):
        agreement.buyer.tax_registrations.add(TaxRegistration(id=("VA", buyer["vat_id"])))

    starts = [_date(li["period_start"]) for li in inv["lines"] if li.get("period_start")]
    ends = [_date(li["period_end"]) for li in inv["lines"] if li.get("period_end")]
    doc.trade.delivery.event.occurrence = min(starts) if starts else _date(inv["issued_at"])

    settlement = doc.trade.settlement
    settlement.currency_code = currency
    settlement.payment_reference = inv.get("payment_reference") or str(inv["number"])
    means = PaymentMeans()
    method = inv["payment_method"]
    sepa = inv.get("sepa") or {}
    if credit:
        means.type_code = CREDIT_MEANS
        means.information.add("Verrechnung mit offenen Posten bzw. Erstattung des Guthabens")
    else:
        means.type_code = PAYMENT_CODES.get(method, "ZZZ")
        means.information.add(PAYMENT_LABELS.get(method, method))
        if method == "transfer" and seller.get("iban"):
            means.payee_account.iban = seller["iban"].replace(" ", "")
            means.payee_account.account_name = seller["name"]
            if seller.get("bic"):
                means.payee_institution.bic = seller["bic"]
        if method == "sepa":
            if sepa.get("iban"):
                means.payer_account.iban = sepa["iban"].replace(" ", "")  # BT-91
            creditor_id = sepa.get("creditor_id") or seller.get("creditor_id")
            if creditor_id:
                settlement.creditor_reference_id = creditor_id  # BT-90
    settlement.payment_means.add(means)
    if starts and ends:
        settlement.period.start = min(starts)
        settlement.period.end = max(ends)
    if credit and preceding:
        settlement.invoice_referenced_document.issuer_assigned_id = str(preceding["number"])  # BT-25
        if preceding.get("issue_date"):
            settlement.invoice_referenced_document.issue_date_time = _date(preceding["issue_date"])

    for b in view["breakdown"]:
        tax = ApplicableTradeTax()
        tax.calculated_amount = b["amount"]
        tax.basis_amount = b["base"]
        tax.type_code = "VAT"
        tax.category_code = vat_category(b["rate"], rc)
        if rc:
            tax.exemption_reason = REVERSE_CHARGE_REASON
            tax.exemption_reason_code = "VATEX-EU-AE"
        tax.rate_applicable_percent = D(b["rate"])
        settlement.trade_tax.add(tax)

    for row in view["allowances"]:
        allowance = TradeAllowanceCharge()
        allowance.indicator = False
        allowance.actual_amount = -row["net"]
        allowance.reason = row["description"][:500]
        tax = CategoryTradeTax()
        _tax(tax, row["vat_rate"], rc)
        allowance.trade_tax.add(tax)
        settlement.allowance_charge.add(allowance)

    terms = PaymentTerms()
    terms.description = payment_terms_text(inv)
    if inv.get("due_date") and not credit:
        terms.due = _date(inv["due_date"])
    if method == "sepa" and not credit and sepa.get("mandate_reference"):
        terms.debit_mandate_id = sepa["mandate_reference"]  # BT-89
    settlement.terms.add(terms)

    summ = settlement.monetary_summation
    summ.line_total = view["line_total"]
    summ.charge_total = Decimal("0.00")
    summ.allowance_total = view["allowance_total"]
    summ.tax_basis_total = view["net"]
    summ.tax_total = (view["vat"], currency)
    summ.grand_total = view["gross"]
    summ.prepaid_total = view["prepaid"]
    summ.due_amount = view["due"]

    for li in view["items"]:
        item = LineItem()
        item.document.line_id = str(li["position"])
        item.product.name = li["description"][:500]
        item.agreement.net.amount = li["unit_net"]
        item.delivery.billed_quantity = (D(li.get("quantity") or 1), "C62")
        _tax(item.settlement.trade_tax, li["vat_rate"], rc)
        if li.get("period_start") and li.get("period_end"):
            item.settlement.period.start = _date(li["period_start"])
            item.settlement.period.end = _date(li["period_end"])
        item.settlement.monetary_summation.total_amount = li["net"]
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
        pdf_metadata={"author": seller,
                      "keywords": ("Gutschrift, " if is_credit_note(inv) else "Rechnung, ")
                      + ("XRechnung, EN 16931" if inv.get("einvoice_profile") == "xrechnung"
                         else "Factur-X, ZUGFeRD, EN 16931"),
                      "title": f"{seller}: {title(inv)}",
                      "subject": f"{title(inv)} vom {date_de(inv['issued_at'])}"})
    return pdf, xml


def sample_invoice(number="RE-2026-000123", customer_id=100001, payment_method="transfer",
                   reverse_charge=False, lines=1, open_amount=None, kind="invoice", by_post=False,
                   einvoice_profile="en16931", leitweg_id=None):
    """A complete ``invoice_issued`` payload as billing sends it (tests, benchmark, demo).

    ``kind``: ``invoice``; ``tariff_change`` (a credit for the rest of the old package's period
    and the new package's charge, as billing's proration writes them); ``credit_note`` (a
    staff credit for invoice 1000001: negative, as billing books it)."""
    from kc_common.seller import seller_from_config
    rate = Decimal("0.00") if reverse_charge else Decimal("19.00")
    specs = []
    if kind == "credit_note":
        specs.append(("Gutschrift: Ausfall am 03.11.2026 (zu Rechnung 1000001)", None, None,
                      Decimal("-15.00")))
    elif kind == "tariff_change":
        specs.append(("Gutschrift businesshosting beispiel-1.de 12.11.2026-30.11.2026 (19/30 Tage)",
                      "2026-11-12", "2026-11-30", Decimal("-8.17")))
        specs.append(("Tarifwechsel premiumhosting beispiel-1.de 12.11.2026-30.11.2026 (19/30 Tage)",
                      "2026-11-12", "2026-11-30", Decimal("18.94")))
    else:
        for i in range(1, lines + 1):
            specs.append((f"businesshosting (Paket {i}) für beispiel-{i}.de 01.11.2026-30.11.2026",
                          "2026-11-01", "2026-11-30", Decimal("12.90") * i))
    if by_post:
        specs.append(("Rechnung per Post", None, None, Decimal("2.00")))
    items, net_sum = [], Decimal("0")
    for i, (text, start, end, unit) in enumerate(specs, 1):
        vat = (unit * rate / 100).quantize(Decimal("0.01"))
        items.append({"position": i, "text": text, "contract_id": None if start is None else 500 + i,
                      "period_start": start, "period_end": end, "quantity": "1", "unit_net": str(unit),
                      "net": str(unit), "vat_rate": str(rate), "vat": str(vat)})
        net_sum += unit
    vat = (net_sum * rate / 100).quantize(Decimal("0.01"))
    gross = net_sum + vat
    credit = gross < 0
    seller = seller_from_config({}, environ={})
    return {
        "invoice_id": 4711, "number": number, "customer_id": customer_id,
        "kind": "credit_note" if credit else "invoice",
        "issued_at": "2026-11-26T10:15:00+00:00", "due_date": "2026-12-10", "currency": "EUR",
        "net": str(net_sum), "vat": str(vat), "gross": str(gross),
        "open_amount": str(Decimal("0.00") if credit else gross if open_amount is None else open_amount),
        "payment_method": payment_method, "payment_reference": f"KC{customer_id}-{number}",
        "by_post": by_post, "invoice_email": "rechnung@beispiel.de", "reverse_charge": reverse_charge,
        "seller": seller,
        "buyer": {"customer_id": customer_id, "company": "Beispiel GmbH", "name": "Erika Musterfrau",
                  "street": "Musterweg 5", "zip": "10115", "city": "Berlin",
                  "country": "AT" if reverse_charge else "DE",
                  "vat_id": "ATU12345678" if reverse_charge else None, "contact_person": None,
                  "leitweg_id": leitweg_id},
        "lines": items,
        "vat_breakdown": [{"rate": str(rate), "base": str(net_sum), "amount": str(vat)}],
        "einvoice_profile": einvoice_profile,
        "preceding_invoice": {"number": 1000001, "issue_date": "2026-11-01"} if credit else None,
        "sepa": ({"mandate_reference": f"KC{customer_id}-M001", "mandate_date": "2026-10-15",
                  "iban": "DE02120300000000202051", "creditor_id": seller["creditor_id"]}
                 if payment_method == "sepa" else None),
    }
