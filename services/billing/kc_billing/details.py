"""Zahlungsdetails: invoice by post, invoice e-mail, contact person, payment method (+ SEPA),
and so whether an invoice's PDF is mailed."""
import logging
import re

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import select, update

from kc_billing import domain
from kc_billing.models import invoices, payment_details
from kc_common.clock import berlin_today
from kc_common.db import utcnow
from kc_common.errors import ValidationFailed

log = logging.getLogger(__name__)


def validate_iban(value):
    """A German/EU IBAN: check digits, length per country, and a bank schwifty knows."""
    try:
        iban = IBAN(value)
    except SchwiftyException as exc:
        raise ValueError(f"Die IBAN ist ungültig ({exc}).") from None
    if iban.bank is None:
        raise ValueError("Die Bank dieser IBAN ist unbekannt.")
    return iban


LEITWEG_ID = re.compile(r"^[0-9]{2,12}(-[0-9A-Z]{1,30})?-[0-9]{2}$")


def validate_leitweg_id(value):
    """A Leitweg-ID (KoSIT format): Grobadressierung (2–12 digits), optional Feinadressierung
    (up to 30 letters/digits), two check digits (ISO 7064 MOD 97-10 over the rest)."""
    from stdnum.iso7064 import mod_97_10
    text = (value or "").strip().upper()
    if not LEITWEG_ID.match(text):
        raise ValueError("Die Leitweg-ID hat nicht das Format 04011000-1234512345-06 "
                         "(Grobadressierung-Feinadressierung-Prüfziffer).")
    if not mod_97_10.is_valid(text.replace("-", "")):
        raise ValueError("Die Prüfziffer der Leitweg-ID stimmt nicht.")
    return text


def mandate_reference(customer_id, number):
    return f"KC{customer_id}-M{number:03d}"


def update_details(uow, customer_id, data, settings=None):
    """Validate and store; a new IBAN gets a new SEPA mandate (reference + date). Applies to
    the next invoice."""
    session = uow.session
    current = domain.get_details(session, customer_id)
    merged = {**current, **data}
    errors = {}
    iban = None
    if merged["method"] == "sepa":
        if not merged.get("iban"):
            errors["iban"] = ["Für die Lastschrift ist eine IBAN nötig."]
        else:
            try:
                iban = validate_iban(merged["iban"])
            except ValueError as exc:
                errors["iban"] = [str(exc)]
        if not (merged.get("account_holder") or "").strip():
            errors["account_holder"] = ["Bitte geben Sie den Kontoinhaber an."]
        if not data.get("sepa_mandate_accepted") and (iban is None or iban.compact != current.get("iban")):
            errors["sepa_mandate_accepted"] = ["Bitte erteilen Sie das SEPA-Lastschriftmandat."]
    elif data.get("iban"):
        try:
            iban = validate_iban(data["iban"])
        except ValueError as exc:
            errors["iban"] = [str(exc)]
    leitweg_id = merged.get("leitweg_id") or None
    if data.get("leitweg_id"):
        try:
            leitweg_id = validate_leitweg_id(data["leitweg_id"])
        except ValueError as exc:
            errors["leitweg_id"] = [str(exc)]
    elif merged.get("einvoice_profile") == "xrechnung" and not leitweg_id:
        errors["leitweg_id"] = ["Für XRechnung ist die Leitweg-ID des Auftraggebers nötig."]
    if errors:
        raise ValidationFailed("Die Zahlungsdetails sind ungültig.", fields=errors)
    values = {"by_post": merged["by_post"], "invoice_email": merged.get("invoice_email") or None,
              "with_contact_person": merged["with_contact_person"], "method": merged["method"],
              "account_holder": (merged.get("account_holder") or "").strip() or None,
              "einvoice_profile": merged.get("einvoice_profile") or "en16931", "leitweg_id": leitweg_id,
              "updated_at": utcnow()}
    if iban is not None and iban.compact != current.get("iban"):
        count = 1 if not current.get("mandate_reference") else \
            int(current["mandate_reference"].rsplit("-M", 1)[1]) + 1
        values.update(iban=iban.compact, bic=str(iban.bic) if iban.bic else None,
                      bank_name=iban.bank_name, mandate_reference=mandate_reference(customer_id, count),
                      mandate_date=berlin_today())
    exists = session.execute(select(payment_details.c.customer_id).where(
        payment_details.c.customer_id == customer_id).with_for_update()).first()
    if exists:
        session.execute(update(payment_details).where(
            payment_details.c.customer_id == customer_id).values(**values))
    else:
        session.execute(payment_details.insert().values(customer_id=customer_id, **values))
    return view(session, customer_id, settings)


def view(session, customer_id, settings=None):
    details = domain.get_details(session, customer_id)
    details["creditor_id"] = (settings.sepa_creditor_id if settings is not None
                              and details["method"] == "sepa" else None)
    if details["iban"]:
        details["iban_masked"] = details["iban"][:4] + " **** " + details["iban"][-4:]
    else:
        details["iban_masked"] = None
    if not details["invoice_email"]:
        details["invoice_email"] = session.execute(select(domain.customers.c.email).where(
            domain.customers.c.customer_id == customer_id)).scalar()
    return details


def invoice_to_mail(session, document):
    """The invoice whose PDF documents stored (``document_stored``) and the SEPA mandate
    reference its pre-notification names, or None when nothing is mailed: not an invoice
    of this customer, sent by post, or no invoice e-mail address."""
    try:
        number = int(document["ref"])
    except (KeyError, TypeError, ValueError):
        log.warning("document_stored without an invoice number ignored: %r", document.get("ref"))
        return None
    inv = session.execute(invoices.select().where(invoices.c.number == number)).first()
    if inv is None or inv.customer_id != int(document["customer_id"]):
        log.warning("document_stored for unknown invoice %s ignored", document.get("ref"))
        return None
    if inv.by_post or not inv.invoice_email:
        return None
    if inv.payment_method == "sepa":  # the pre-notification needs the mandate
        return inv, domain.get_details(session, inv.customer_id)["mandate_reference"]
    return inv, None
