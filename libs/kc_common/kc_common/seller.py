"""The provider (seller) — one source for every document and mail.

Invoices, credit notes, the AV agreement, the price list, the library forms and the mails all
print the provider's data; it is defined here once. Each value can be overridden by an
environment variable (or a nameko config key) of the same name, ``SELLER_*``; services do not
repeat the defaults in their config files.

Besides address and bank, what German law requires on a GmbH's business letters and invoices:
legal form in the name, seat, register court and number, every managing director (§ 35a GmbHG),
and the tax number or VAT id (§ 14 Abs. 4 UStG). ``contact_*`` is the seller contact of the
e-invoice (EN 16931 BG-6, mandatory in XRechnung), ``creditor_id`` the SEPA creditor identifier
(Gläubiger-ID) on direct-debit invoices.

billing copies this dict into each ``invoice_issued`` event (the invoice keeps the seller data of
its date); documents uses it for its own documents. Neither imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS = {
    "SELLER_NAME": "KundenCenter Hosting GmbH",
    "SELLER_STREET": "Hosting-Allee 1",
    "SELLER_ZIP": "30159",
    "SELLER_CITY": "Hannover",
    "SELLER_COUNTRY": "DE",
    "SELLER_EMAIL": "service@kundencenter.example",
    "SELLER_PHONE": "+49 (0)511 5151 8181",
    "SELLER_WEBSITE": "www.kundencenter.example",
    "SELLER_VAT_ID": "DE123456789",
    "SELLER_TAX_NUMBER": "25/200/12345",
    "SELLER_SEAT": "Hannover",
    "SELLER_REGISTER_COURT": "Amtsgericht Hannover",
    "SELLER_REGISTER_NUMBER": "HRB 123456",
    "SELLER_MANAGING_DIRECTORS": "Max Mustermann, Erika Beispiel",
    "SELLER_IBAN": "DE89370400440532013000",
    "SELLER_BIC": "COBADEFFXXX",
    "SELLER_BANK": "Commerzbank",
    "SELLER_CREDITOR_ID": "DE98ZZZ09999999999",
    "SELLER_CONTACT_NAME": "Buchhaltung",
    "SELLER_CONTACT_PHONE": "+49 (0)511 5151 8181",
    "SELLER_CONTACT_EMAIL": "buchhaltung@kundencenter.example",
    "SELLER_INVOICE_EMAIL": "rechnung@kundencenter.example",
}
REQUIRED = ("SELLER_NAME", "SELLER_STREET", "SELLER_ZIP", "SELLER_CITY", "SELLER_COUNTRY",
            "SELLER_REGISTER_COURT", "SELLER_REGISTER_NUMBER", "SELLER_MANAGING_DIRECTORS")


def seller_from_config(config: Mapping[str, Any] | None = None,
                       environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The seller dict: config key, else environment variable, else the default above.

    Fails fast when a legally required value is empty or neither tax number nor VAT id is set.
    """
    config = config or {}
    environ = os.environ if environ is None else environ

    def get(key: str) -> str:
        for source in (config, environ):
            value = source.get(key)
            if value not in (None, ""):
                return str(value).strip()
        return DEFAULTS[key]

    missing = [key for key in REQUIRED if not get(key)]
    if missing or not (get("SELLER_VAT_ID") or get("SELLER_TAX_NUMBER")):
        raise RuntimeError("seller: missing " + ", ".join(missing or ["SELLER_VAT_ID or SELLER_TAX_NUMBER"]))
    seller: dict[str, Any] = {key[len("SELLER_"):].lower(): get(key) or None for key in DEFAULTS}
    seller["country"] = seller["country"].upper()
    if seller["iban"]:
        seller["iban"] = seller["iban"].replace(" ", "")
    return seller


def legal_lines(seller: Mapping[str, str]) -> list[str]:
    """The statutory lines of a business letter (German), for footers and mail signatures."""
    company = " · ".join(p for p in (
        seller.get("name"), seller.get("street"),
        " ".join(p for p in (seller.get("zip"), seller.get("city")) if p)) if p)
    register = " · ".join(p for p in (
        f"Sitz: {seller['seat']}" if seller.get("seat") else None,
        " ".join(p for p in (seller.get("register_court"), seller.get("register_number")) if p) or None,
        f"Geschäftsführer: {seller['managing_directors']}" if seller.get("managing_directors") else None)
        if p)
    tax = " · ".join(p for p in (
        f"USt-IdNr. {seller['vat_id']}" if seller.get("vat_id") else None,
        f"Steuernummer {seller['tax_number']}" if seller.get("tax_number") else None) if p)
    return [line for line in (company, register, tax) if line]


def mail_signature(seller: Mapping[str, str], team: str = "Ihr KundenCenter-Team") -> str:
    """Closing of a mail: greeting, team, and the provider's statutory details (business letter)."""
    return "Mit freundlichen Grüßen\n" + team + "\n\n-- \n" + "\n".join(legal_lines(seller)) + "\n"
