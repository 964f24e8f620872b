"""identity's RPC contract: what goes in and out (also used for the OpenAPI document)."""
from marshmallow import fields, validate

from kc_common.schemas import (  # noqa: F401 (PageQuerySchema: routes)
    NON_BLANK,
    BaseSchema,
    Boolean,
    PageQuerySchema,
    UtcDateTime,
    page_of,
)

_PW = {"required": True, "load_only": True, "validate": validate.Length(min=1, max=1024)}


class LoginSchema(BaseSchema):
    login = fields.String(required=True, validate=validate.Length(min=1, max=254),
                          metadata={"description": "Kundennummer oder E-Mail"})
    password = fields.String(**_PW)


class CustomerLoginSchema(LoginSchema):
    otp = fields.String(allow_none=True, load_only=True, validate=validate.Length(max=32), metadata={
        "description": "Bestätigungscode (TOTP) oder Wiederherstellungscode, wenn die Zwei-Faktor-Anmeldung "
                       "aktiv ist (die Antwort 401 sagt otp_required)"})


class SessionSchema(BaseSchema):
    token = fields.String(required=True)
    token_type = fields.String(required=True, dump_default="Bearer")
    customer_id = fields.Integer(required=True)
    expires_at = UtcDateTime(required=True)
    email_verified = fields.Boolean(metadata={"description": "False until the sign-up's e-mail link is "
                                                             "confirmed (no orders or payments until then)"})
    notice = fields.String(allow_none=True, metadata={"description": "German notice to show, e.g. that the "
                                                                     "e-mail address still needs confirming"})


def _opt(max_len, description, filled=False):
    """An optional text; ``filled``: when sent, it must not be blank (a mandatory field; the
    domain refuses a blank one together with every other bad field)."""
    return fields.String(allow_none=True, validate=validate.Length(max=max_len),
                         metadata=dict({"description": description}, **({"pattern": NON_BLANK} if filled else {})))


class AddressInputSchema(BaseSchema):
    """Adressdaten verwalten. Every field is checked and each bad one named; nothing is saved on any
    error. ``company`` may only be sent unchanged (a change needs an owner change)."""
    company = fields.String(allow_none=True, validate=validate.Length(max=300), metadata={
        "description": "Firma: nur per Inhaberwechsel änderbar (only the current value is accepted here)",
        "readOnly": True})
    last_name = _opt(300, "Name", filled=True)
    first_name = _opt(300, "Vorname", filled=True)
    email = _opt(300, "E-Mail", filled=True)
    street = _opt(300, "Straße und Hausnummer", filled=True)
    zip = _opt(40, "PLZ (passend zum Land)", filled=True)
    city = _opt(300, "Ort", filled=True)
    country = _opt(40, "Land, ISO 3166 alpha-2 (Standard DE)", filled=True)
    phone = _opt(60, "Telefon (wird in E.164 gespeichert)", filled=True)
    fax = _opt(60, "Fax (optional)")
    mobile = _opt(60, "Handy (optional)")
    vat_id = _opt(40, "USt-IdNr. (optional, EU)")
    version = fields.Integer(allow_none=True, metadata={"description": "Optimistic lock: the version read"})


class CustomerSchema(BaseSchema):
    customer_id = fields.Integer(dump_only=True, metadata={"description": "Kundennummer"})
    company = fields.String()
    last_name = fields.String()
    first_name = fields.String()
    email = fields.Email()
    street = fields.String(allow_none=True)
    zip = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    fax = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    vat_id = fields.String(allow_none=True)
    is_business = Boolean()
    version = fields.Integer()
    updated_at = UtcDateTime()
    email_verified = fields.Boolean(metadata={"description": "The e-mail address is confirmed (double opt-in)"})
    pending_email = fields.String(allow_none=True, metadata={
        "description": "A new e-mail address waiting for its confirmation link (the change happens then)"})


class StaffSessionSchema(BaseSchema):
    token = fields.String(required=True)
    token_type = fields.String(required=True, dump_default="Bearer")
    staff_id = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    expires_at = UtcDateTime(required=True)


# --- passwords ---

class PasswordChangeSchema(BaseSchema):
    current_password = fields.String(**_PW, metadata={"description": "Aktuelles Service Passwort"})
    new_password = fields.String(**_PW, metadata={"description": "Neues Service Passwort"})
    new_password_repeat = fields.String(**_PW, metadata={"description": "Neues Service Passwort wiederholen"})


class PhonePasswordSetSchema(BaseSchema):
    phone_password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024),
                                   metadata={"description": "Telefon Passwort (6 bis 64 Zeichen)",
                                             "minLength": 6, "maxLength": 64})
    phone_password_repeat = fields.String(**_PW, metadata={"description": "Telefon Passwort wiederholen"})


class PhonePasswordStatusSchema(BaseSchema):
    phone_password_set = Boolean(required=True)
    phone_password_set_at = UtcDateTime(allow_none=True)


class PhonePasswordRevealSchema(BaseSchema):
    password = fields.String(load_only=True, allow_none=True, validate=validate.Length(max=1024),
                             metadata={"description": "Service-Passwort; nötig, wenn die Anmeldung älter "
                                                      "als PHONE_PASSWORD_FRESH_MINUTES ist"})


class PhonePasswordSchema(BaseSchema):
    phone_password = fields.String(required=True)
    phone_password_set_at = UtcDateTime(allow_none=True)


class PhonePasswordVerifySchema(BaseSchema):
    password = fields.String(**_PW, metadata={"description": "What the caller says"})


class VerifiedSchema(BaseSchema):
    verified = Boolean(required=True)


# --- sessions and logins ---

class SessionInfoSchema(BaseSchema):
    id = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    last_seen_at = UtcDateTime(required=True)
    expires_at = UtcDateTime(required=True)
    client_ip = fields.String(allow_none=True)
    current = Boolean(required=True)


class SessionListSchema(BaseSchema):
    items = fields.List(fields.Nested(SessionInfoSchema), required=True)


class LoginEventSchema(BaseSchema):
    at = UtcDateTime(required=True)
    client_ip = fields.String(allow_none=True)
    success = Boolean(required=True)
    reason = fields.String(required=True, metadata={
        "description": "ok, bad_credentials, ip_not_allowed, reauth_failed"})


LoginEventPageSchema = page_of(LoginEventSchema)


# --- IP whitelist ---

class WhitelistInputSchema(BaseSchema):
    entries = fields.List(fields.Raw(), required=True,
                          metadata={"description": "IPv4/IPv6 addresses or networks (CIDR); [] = any"})
    confirm_lockout = Boolean(load_default=False, metadata={
        "description": "Required when the list would exclude the address in use now"})


class WhitelistSchema(BaseSchema):
    entries = fields.List(fields.String(), required=True)
    client_ip = fields.String(allow_none=True)
    client_ip_allowed = Boolean(required=True)


# --- contact persons ---

class ContactInputSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(max=300), metadata={"pattern": NON_BLANK})
    email = fields.String(allow_none=True, validate=validate.Length(max=300))
    phone = fields.String(allow_none=True, validate=validate.Length(max=60))
    role = fields.String(allow_none=True, validate=validate.Length(max=300),
                         metadata={"description": "Funktion, z. B. Technik, Buchhaltung"})
    relation = fields.String(load_default="external", validate=validate.OneOf(["internal", "external"]))
    may_support = Boolean(load_default=False, metadata={"description": "darf Supportanfragen stellen"})
    may_billing = Boolean(load_default=False, metadata={"description": "darf Rechnungsfragen klären"})


class ContactSchema(BaseSchema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    role = fields.String()
    relation = fields.String()
    may_support = Boolean()
    may_billing = Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ContactListSchema(BaseSchema):
    items = fields.List(fields.Nested(ContactSchema), required=True)


# --- notifications ---

class NotificationInputSchema(BaseSchema):
    newsletter = Boolean()
    product_news = Boolean()
    maintenance = Boolean()
    invoice_notice = Boolean()
    support_updates = Boolean()
    invoice = Boolean(metadata={"description": "mandatory: only true is accepted", "enum": [True]})
    security = Boolean(metadata={"description": "mandatory: only true is accepted", "enum": [True]})


class NotificationTopicSchema(BaseSchema):
    topic = fields.String(required=True)
    label = fields.String(required=True)
    enabled = Boolean(required=True)
    mandatory = Boolean(required=True)


class NotificationListSchema(BaseSchema):
    items = fields.List(fields.Nested(NotificationTopicSchema), required=True)


# --- AV agreement ---

class AvTextSchema(BaseSchema):
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    text = fields.String(required=True)
    valid_from = fields.String(required=True)
    text_sha256 = fields.String(required=True)


class AvSignatureSchema(BaseSchema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    signer_name = fields.String(required=True)
    signer_position = fields.String(required=True)
    signed_at = UtcDateTime(required=True)
    client_ip = fields.String(allow_none=True)
    text_sha256 = fields.String(required=True)


class AvStatusSchema(BaseSchema):
    current = fields.Nested(AvTextSchema, required=True)
    signed = Boolean(required=True, metadata={"description": "the current version is signed"})
    signatures = fields.List(fields.Nested(AvSignatureSchema), required=True)


class AvSignInputSchema(BaseSchema):
    version = fields.Integer(required=True, metadata={"description": "the version the customer read"})
    signer_name = fields.String(required=True, validate=validate.Length(max=200), metadata={"pattern": NON_BLANK})
    signer_position = fields.String(required=True, validate=validate.Length(max=100),
                                    metadata={"pattern": NON_BLANK})
    accept = Boolean(required=True, metadata={"enum": [True], "description": "must be true"})


# --- staff ---

class CustomerQuerySchema(PageQuerySchema):
    q = fields.String(load_default="", validate=validate.Length(max=200),
                      metadata={"description": "Kundennummer, E-Mail, Name, Firma oder Ort"})


CustomerPageSchema = page_of(CustomerSchema)


class StaffCustomerSchema(CustomerSchema):
    contacts = fields.List(fields.Nested(ContactSchema))
    phone_password_set = Boolean()
    ip_whitelist = fields.List(fields.String())
    two_factor_enabled = Boolean()
    av_signed = Boolean()


class OwnerChangeSchema(AddressInputSchema):
    """Inhaberwechsel: the new company (required) and whatever else the new owner changes."""
    company = _opt(300, "Firma", filled=True)


# --- two-factor login ---

class PasswordConfirmSchema(BaseSchema):
    password = fields.String(**_PW, metadata={"description": "Service-Passwort zur Bestätigung"})


class TwoFactorCodeSchema(BaseSchema):
    code = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=32),
                         metadata={"description": "6-stelliger Code der Authenticator-App"})


class TwoFactorStatusSchema(BaseSchema):
    enabled = Boolean(required=True)
    enabled_at = UtcDateTime(allow_none=True)
    setup_pending = Boolean(required=True)
    recovery_codes_left = fields.Integer(required=True)


class TwoFactorSetupSchema(BaseSchema):
    secret = fields.String(required=True, metadata={"description": "Base32 secret (manual entry)"})
    otpauth_uri = fields.String(required=True, metadata={"description": "otpauth:// URI for a QR code"})


class RecoveryCodesSchema(BaseSchema):
    recovery_codes = fields.List(fields.String(), required=True,
                                 metadata={"description": "shown once; each works once"})


# --- account lifecycle: sign-up, Passwort vergessen, e-mail confirmation ---

class AcceptedSchema(BaseSchema):
    message = fields.String(required=True, metadata={"description": "German text to show"})


class PasswordResetRequestSchema(BaseSchema):
    login = fields.String(required=True, validate=validate.Length(min=1, max=254),
                          metadata={"description": "Kundennummer oder E-Mail"})


class PasswordResetSchema(BaseSchema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "The token of the link from the mail"})
    new_password = fields.String(**_PW, metadata={"description": "Neues Service Passwort"})
    new_password_repeat = fields.String(**_PW, metadata={"description": "Neues Service Passwort wiederholen"})


class EmailConfirmSchema(BaseSchema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200),
                          metadata={"description": "The token of the link from the mail"})


class EmailConfirmedSchema(BaseSchema):
    purpose = fields.String(required=True, metadata={"description": "verify_email (sign-up) or change_email"})
    email = fields.String(required=True)
    customer_id = fields.Integer(required=True)


class TermsSchema(BaseSchema):
    slug = fields.String(required=True)
    title = fields.String(required=True)
    version = fields.String(required=True, metadata={"description": "Send it back as terms_version"})
    date = fields.String(allow_none=True, metadata={"description": "valid from (ISO date)"})


class NewCustomerSchema(BaseSchema):
    """A new customer's data: validated like Adressdaten; a company needs its name (VAT id optional,
    checked by format; by VIES when VIES_ENABLED)."""
    customer_type = fields.String(load_default="private", validate=validate.OneOf(["private", "company"]),
                                  metadata={"description": "private (Privatperson) or company (Firma)"})
    company = _opt(300, "Firma (nur bei company)")
    last_name = _opt(300, "Name")
    first_name = _opt(300, "Vorname")
    email = _opt(300, "E-Mail")
    street = _opt(300, "Straße und Hausnummer")
    zip = _opt(40, "PLZ (passend zum Land)")
    city = _opt(300, "Ort")
    country = fields.String(load_default="DE", validate=validate.Length(max=40),
                            metadata={"description": "Land, ISO 3166 alpha-2"})
    phone = _opt(60, "Telefon")
    fax = _opt(60, "Fax (optional)")
    mobile = _opt(60, "Handy (optional)")
    vat_id = _opt(40, "USt-IdNr. (optional, nur bei company)")


class SignupSchema(NewCustomerSchema):
    password = fields.String(**_PW, metadata={"description": "Service Passwort (Passwort-Richtlinie)"})
    password_repeat = fields.String(**_PW, metadata={"description": "Service Passwort wiederholen"})
    accept_terms = fields.Boolean(required=True, metadata={"description": "Unternehmer-AGB akzeptiert"})
    terms_version = fields.String(required=True, validate=validate.Length(max=20),
                                  metadata={"description": "The version accepted (GET /api/v1/signup/terms)"})


class ClosureStatusSchema(BaseSchema):
    state = fields.String(required=True, metadata={
        "description": "none / requested (contracts end by their notice periods; erased once the last "
                       "has ended and the balance is settled) / erased"})
    requested_at = UtcDateTime(allow_none=True)
    erased_at = UtcDateTime(allow_none=True)
