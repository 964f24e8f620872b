"""support's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import ValidationError, fields, validate

from kc_common.schemas import BaseSchema, Boolean, PageQuerySchema, UtcDateTime, page_of

# The media types an attachment may have (detected from its bytes, kc_support.attachments)
# and the file extensions each may carry (first = canonical). Part of the contract: a download
# answers with the attachment's own type (the gateway documents them all).
ATTACHMENT_TYPES = {
    "application/pdf": ("pdf",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "image/bmp": ("bmp",),
    "image/tiff": ("tif", "tiff"),
    "application/zip": ("zip",),
    "application/gzip": ("gz", "tgz"),
    "application/x-tar": ("tar",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("docx",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("xlsx",),
    "application/vnd.oasis.opendocument.text": ("odt",),
    "application/vnd.oasis.opendocument.spreadsheet": ("ods",),
    "text/plain": ("txt", "log", "csv", "conf", "cfg", "ini", "json", "xml", "yaml", "yml",
                   "md", "sql", "htaccess", "eml", "php", "html", "htm", "js", "css", "sh", "py"),
}

# category -> what the customer reads
CATEGORIES = {
    "hosting": "Webhosting",
    "domain": "Domain / DNS",
    "server": "Server",
    "email": "E-Mail",
    "billing": "Buchhaltung / Rechnung",
    "contract": "Vertrag / Bestellung",
    "other": "Sonstiges",
}
# state -> what the customer reads
STATES = {
    "open": "offen",
    "answered": "beantwortet – wartet auf Ihre Antwort",
    "closed": "geschlossen",
}

NUMBER = validate.Regexp(r"^SR-\d{6,}$", error="Eine Anfragenummer wie SR-000042.")


NO_NUL = validate.Regexp(r"^[^\x00]*\Z", error="Enthält unzulässige Zeichen.")
ONE_LINE = validate.Regexp(r"^[^\x00-\x1f\x7f]*\Z", error="Nur eine Zeile ohne Steuerzeichen.")


def not_blank(value):
    if not value.strip():
        raise ValidationError("Darf nicht leer sein.")


# The same rules for the OpenAPI document (one pattern): not blank, and no NUL / one line.
_TEXT_PATTERN = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f\x85][^\x00-\x1f\x7f]*$"


def _text(max_len, one_line=False, **kwargs):
    """A required, non-blank string (stripped); one line (names, subjects: they go in mail headers)."""
    kwargs["metadata"] = dict(kwargs.get("metadata") or {},
                              pattern=_LINE_PATTERN if one_line else _TEXT_PATTERN)
    return fields.String(validate=[validate.Length(min=1, max=max_len, error=f"1 bis {max_len} Zeichen."),
                                   not_blank, ONE_LINE if one_line else NO_NUL], **kwargs)


class _Stripped(BaseSchema):
    """Strips the string fields before validating them."""

    no_strip = ()

    def load(self, data, *args, **kwargs):
        if isinstance(data, dict):
            data = {k: (v.strip() if isinstance(v, str) and k not in self.no_strip else v)
                    for k, v in data.items()}
        return super().load(data, *args, **kwargs)


# --- customer ---------------------------------------------------------------------------

class OpenRequestSchema(_Stripped):
    """The form "Supportanfrage erstellen" (text fields; files come separately)."""

    name = _text(200, one_line=True, required=True, metadata={"description": "Ihr Name: the customer or a registered "
                                                               "contact person (Ansprechpartner)"})
    subject = _text(200, one_line=True, required=True, metadata={"description": "Betreff"})
    message = _text(20000, required=True, metadata={"description": "Anfrage"})
    category = fields.String(load_default="other", validate=validate.OneOf(list(CATEGORIES)),
                             metadata={"description": "Kategorie: " + ", ".join(CATEGORIES)})


_FILES = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}),
                     metadata={"maxItems": 10,  # kc_support.attachments.Limits.max_files
                               "description": "Anhang: one or more files (field repeated). Allowed: PDF, "
                                              "images, text, ZIP/GZIP/TAR, DOCX/XLSX/ODT/ODS; type "
                                              "checked by content; limits per file and per request."})


class OpenRequestFormSchema(OpenRequestSchema):
    """multipart/form-data of POST /me/support/requests (for the OpenAPI document)."""
    attachments = _FILES


class CustomerReplySchema(_Stripped):
    message = _text(20000, required=True, metadata={"description": "Antwort"})
    name = fields.String(load_default=None, validate=[validate.Length(min=1, max=200), ONE_LINE],
                         metadata={"description": "Ihr Name (default: who opened the request)"})


class CustomerReplyFormSchema(CustomerReplySchema):
    attachments = _FILES


class AttachmentSchema(BaseSchema):
    id = fields.Integer(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sha256 = fields.String(required=True)


class MessageSchema(BaseSchema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "customer | staff (| note for staff)"})
    author_name = fields.String(required=True)
    via = fields.String(required=True, metadata={"description": "web | email | phone"})
    body = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)


class RequestSummarySchema(BaseSchema):
    number = fields.String(required=True)
    subject = fields.String(required=True, metadata={"description": "Betreff"})
    category = fields.String(required=True)
    category_text = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "open | answered | closed"})
    state_text = fields.String(required=True, metadata={"description": "Status, German"})
    author_name = fields.String(required=True, metadata={"description": "Ihr Name"})
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    closed_at = UtcDateTime(allow_none=True)


class RequestSchema(RequestSummarySchema):
    messages = fields.List(fields.Nested(MessageSchema), required=True)


class RequestQuerySchema(PageQuerySchema):
    state = fields.String(load_default=None, validate=validate.OneOf(list(STATES)))


RequestPageSchema = page_of(RequestSummarySchema, "SupportRequestPageSchema")


class FileSchema(BaseSchema):
    """A file download (the gateway answers with the bytes)."""
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    content_b64 = fields.String(required=True)
    sha256 = fields.String(required=True)


class InboundMailResultSchema(BaseSchema):
    accepted = Boolean(required=True, metadata={"description": "false: an automatic reply, ignored"})
    number = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


# --- staff desk -------------------------------------------------------------------------

class StaffRequestQuerySchema(PageQuerySchema):
    state = fields.String(load_default=None, validate=validate.OneOf(list(STATES)))
    category = fields.String(load_default=None, validate=validate.OneOf(list(CATEGORIES)))
    assignee = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                             metadata={"description": "a staff id, 'me' or 'none' (unassigned)"})
    customer_id = fields.Integer(load_default=None)
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=200),
                      metadata={"description": "search in number and subject"})


class StaffRequestSummarySchema(RequestSummarySchema):
    customer_id = fields.Integer(required=True)
    author_kind = fields.String(required=True, metadata={"description": "customer | contact"})
    assignee_staff_id = fields.String(allow_none=True)


StaffRequestPageSchema = page_of(StaffRequestSummarySchema, "StaffSupportRequestPageSchema")


class StaffMessageSchema(MessageSchema):
    staff_id = fields.String(allow_none=True)
    internal = Boolean(required=True, metadata={"description": "notes: never shown to the customer"})


class CallSchema(BaseSchema):
    id = fields.Integer(required=True)
    staff_id = fields.String(required=True)
    caller_name = fields.String(required=True)
    name_authorised = Boolean(required=True)
    password_verified = Boolean(required=True)
    verified = Boolean(required=True)
    note = fields.String(required=True)
    created_at = UtcDateTime(required=True)


class StaffRequestSchema(StaffRequestSummarySchema):
    contact_id = fields.String(allow_none=True)
    author_email = fields.String(allow_none=True)
    messages = fields.List(fields.Nested(StaffMessageSchema), required=True)
    calls = fields.List(fields.Nested(CallSchema), required=True)


class AssignSchema(BaseSchema):
    staff_id = fields.String(required=True, allow_none=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "a staff id, 'me', or null to unassign"})


class StaffReplySchema(_Stripped):
    message = _text(20000, required=True)
    state = fields.String(load_default="answered", validate=validate.OneOf(list(STATES)),
                          metadata={"description": "state after the reply (default answered)"})


class StaffReplyFormSchema(StaffReplySchema):
    attachments = _FILES


class StateSchema(BaseSchema):
    state = fields.String(required=True, validate=validate.OneOf(list(STATES)))
    category = fields.String(load_default=None, validate=validate.OneOf(list(CATEGORIES)))


class NoteSchema(_Stripped):
    note = _text(20000, required=True, metadata={"description": "internal: never shown to the customer"})


class CallInputSchema(_Stripped):
    no_strip = ("phone_password",)
    caller_name = _text(200, one_line=True, required=True, metadata={"description": "who is calling"})
    phone_password = fields.String(required=True, validate=[validate.Length(min=1, max=200), not_blank],
        metadata={"description": "what the caller says; checked by identity, never stored or shown"})
    note = fields.String(load_default="", validate=[validate.Length(max=20000), NO_NUL])


class StaffOpenRequestSchema(CallInputSchema):
    """A request taken on the phone for a verified caller."""
    customer_id = fields.Integer(required=True, validate=validate.Range(min=1),
                                 metadata={"description": "Kundennummer"})
    subject = _text(200, one_line=True, required=True)
    message = _text(20000, required=True, metadata={"description": "what the caller asks for"})
    category = fields.String(load_default="other", validate=validate.OneOf(list(CATEGORIES)))
