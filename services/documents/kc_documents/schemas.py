"""documents's RPC contract (also the OpenAPI document's schemas) and the events it consumes."""
from marshmallow import EXCLUDE, Schema, fields, validate

from kc_common.schemas import (
    BaseSchema,
    Boolean,
    Money,
    PageQuerySchema,
    UtcDateTime,
    page_of,
)

KINDS = ("invoice", "av_agreement", "data_export")


# --- the customer's own documents -------------------------------------------------------------

class DocumentSchema(BaseSchema):
    id = fields.String(required=True, metadata={"description": "document_id"})
    kind = fields.String(required=True, metadata={"description": "invoice / av_agreement / data_export"})
    ref = fields.String(required=True, metadata={"description": "Rechnungsnummer bzw. Vereinbarungs-Nr."})
    title = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sha256 = fields.String(required=True)
    document_date = fields.Date(required=True, metadata={"description": "Rechnungsdatum / Abschlussdatum"})
    created_at = UtcDateTime(required=True)
    download_path = fields.String(required=True)


class DataExportSchema(BaseSchema):
    export_id = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "pending / ready"})
    requested_at = UtcDateTime(required=True)
    ready_at = UtcDateTime(allow_none=True)
    document_id = fields.String(allow_none=True, metadata={"description": "the ZIP in Meine Dokumente, once ready"})
    download_path = fields.String(allow_none=True)
    parts_received = fields.List(fields.String(), required=True,
                                 metadata={"description": "services whose part has arrived"})
    parts_expected = fields.List(fields.String(), required=True)


class DocumentQuerySchema(PageQuerySchema):
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))


DocumentPageSchema = page_of(DocumentSchema, "DocumentPageSchema")


class FileSchema(BaseSchema):
    """A file over RPC (the gateway answers with the bytes)."""
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    content_b64 = fields.String(required=True)
    sha256 = fields.String(required=True)


# --- the library --------------------------------------------------------------------------------

class LibraryVersionSchema(BaseSchema):
    version = fields.String(required=True)
    valid_from = fields.Date(required=True)
    note = fields.String(allow_none=True)
    filename = fields.String(required=True)
    sha256 = fields.String(allow_none=True, metadata={"description": "null until first rendered"})
    published_at = UtcDateTime(required=True)
    download_path = fields.String(required=True)


class LibraryEntrySchema(BaseSchema):
    slug = fields.String(required=True)
    name = fields.String(required=True, metadata={"description": "Dokumentname"})
    description = fields.String(required=True, metadata={"description": "Beschreibung"})
    action = fields.String(required=True, metadata={"description": "Download / Zur Übersicht / Zum Onlinehandbuch"})
    kind = fields.String(required=True, metadata={"description": "pdf or link"})
    version = fields.String(allow_none=True)
    date = fields.Date(allow_none=True, metadata={"description": "gültig ab / Stand"})
    download_path = fields.String(allow_none=True)
    url = fields.String(allow_none=True, metadata={"description": "for links"})


class LibraryListSchema(BaseSchema):
    items = fields.List(fields.Nested(LibraryEntrySchema), required=True)


class LibraryVersionListSchema(BaseSchema):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    items = fields.List(fields.Nested(LibraryVersionSchema), required=True)


class UploadedFileSchema(BaseSchema):
    field = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    content_b64 = fields.String(required=True)


class PublishVersionSchema(BaseSchema):
    """multipart/form-data: the PDF in ``file`` plus these fields."""
    version = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,19}$", error="1–20 Zeichen: Ziffern, Buchstaben, Punkt, Bindestrich."))
    valid_from = fields.Date(load_default=None, metadata={"description": "default: today"})
    note = fields.String(load_default=None, validate=validate.Length(max=300))
    file = fields.Raw(load_default=None, metadata={"type": "string", "format": "binary",
                                                   "description": "the PDF"})
    files = fields.List(fields.Nested(UploadedFileSchema), load_default=list,
                        metadata={"description": "filled by the gateway from the upload"})


# --- consumed events (tolerant: publishers may add fields) ----------------------------------------

class _Tolerant(Schema):
    class Meta:
        unknown = EXCLUDE


class TextOrNumber(fields.String):
    """Text that publishers may send as an integer (invoice number, agreement version)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class SellerSchema(_Tolerant):
    name = fields.String(required=True, validate=validate.Length(min=1))
    street = fields.String(required=True)
    zip = fields.String(required=True)
    city = fields.String(required=True)
    country = fields.String(required=True, validate=validate.Length(equal=2))
    vat_id = fields.String(required=True, validate=validate.Length(min=3))
    iban = fields.String(load_default=None, allow_none=True)
    bic = fields.String(load_default=None, allow_none=True)
    bank = fields.String(load_default=None, allow_none=True)
    tax_number = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True)
    website = fields.String(load_default=None, allow_none=True)
    seat = fields.String(load_default=None, allow_none=True)
    register_court = fields.String(load_default=None, allow_none=True)
    register_number = fields.String(load_default=None, allow_none=True)
    managing_directors = fields.String(load_default=None, allow_none=True)
    creditor_id = fields.String(load_default=None, allow_none=True)
    contact_name = fields.String(load_default=None, allow_none=True)
    contact_phone = fields.String(load_default=None, allow_none=True)
    contact_email = fields.String(load_default=None, allow_none=True)
    invoice_email = fields.String(load_default=None, allow_none=True)


class BuyerSchema(_Tolerant):
    customer_id = fields.Integer(required=True)
    company = fields.String(load_default=None, allow_none=True)
    name = fields.String(load_default=None, allow_none=True)
    street = fields.String(load_default="", allow_none=True)
    zip = fields.String(load_default="", allow_none=True)
    city = fields.String(load_default="", allow_none=True)
    country = fields.String(load_default="DE", allow_none=True)
    vat_id = fields.String(load_default=None, allow_none=True)
    contact_person = fields.String(load_default=None, allow_none=True)
    leitweg_id = fields.String(load_default=None, allow_none=True)


class PrecedingInvoiceSchema(_Tolerant):
    number = TextOrNumber(required=True)
    issue_date = fields.Date(load_default=None, allow_none=True)


class SepaSchema(_Tolerant):
    mandate_reference = fields.String(load_default=None, allow_none=True)
    mandate_date = fields.Date(load_default=None, allow_none=True)
    iban = fields.String(load_default=None, allow_none=True)
    creditor_id = fields.String(load_default=None, allow_none=True)


class InvoiceLineSchema(_Tolerant):
    position = fields.Integer(required=True)
    text = fields.String(required=True)
    contract_id = fields.Raw(load_default=None, allow_none=True)
    period_start = fields.Date(load_default=None, allow_none=True)
    period_end = fields.Date(load_default=None, allow_none=True)
    quantity = fields.Decimal(load_default=1, as_string=True)
    unit_net = Money(required=True)
    net = Money(required=True)
    vat_rate = fields.Decimal(required=True, as_string=True)
    vat = Money(required=True)


class VatBreakdownSchema(_Tolerant):
    rate = fields.Decimal(required=True, as_string=True)
    base = Money(required=True)
    amount = Money(required=True)


class InvoiceIssuedSchema(_Tolerant):
    """billing's ``invoice_issued`` data as docs/contracts.md defines it."""
    invoice_id = fields.Raw(required=True)
    # billing sends the number as an integer (Rnr 1000001); accept either, keep it as text
    number = TextOrNumber(required=True, validate=validate.Length(min=1, max=100))
    customer_id = fields.Integer(required=True)
    issued_at = fields.DateTime(required=True)
    due_date = fields.Date(required=True)
    currency = fields.String(load_default="EUR", validate=validate.Length(equal=3))
    net = Money(required=True)
    vat = Money(required=True)
    gross = Money(required=True)
    open_amount = Money(required=True)
    payment_method = fields.String(required=True, validate=validate.OneOf(
        ["transfer", "card", "instant", "sepa"]))
    payment_reference = fields.String(load_default=None, allow_none=True)
    by_post = Boolean(load_default=False)
    invoice_email = fields.String(load_default=None, allow_none=True)
    reverse_charge = Boolean(load_default=False)
    seller = fields.Nested(SellerSchema, required=True)
    buyer = fields.Nested(BuyerSchema, required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True, validate=validate.Length(min=1))
    vat_breakdown = fields.List(fields.Nested(VatBreakdownSchema), required=True,
                                validate=validate.Length(min=1))
    kind = fields.String(load_default="invoice", validate=validate.OneOf(["invoice", "credit_note"]))
    einvoice_profile = fields.String(load_default="en16931", validate=validate.OneOf(["en16931", "xrechnung"]))
    preceding_invoice = fields.Nested(PrecedingInvoiceSchema, load_default=None, allow_none=True)
    sepa = fields.Nested(SepaSchema, load_default=None, allow_none=True)


class AgreementCustomerSchema(_Tolerant):
    company = fields.String(load_default=None, allow_none=True)
    first_name = fields.String(load_default="", allow_none=True)
    last_name = fields.String(load_default="", allow_none=True)
    street = fields.String(load_default="", allow_none=True)
    zip = fields.String(load_default="", allow_none=True)
    city = fields.String(load_default="", allow_none=True)
    country = fields.String(load_default="DE", allow_none=True)


class AvAgreementSignedSchema(_Tolerant):
    """identity's ``av_agreement_signed`` data."""
    agreement_id = fields.Raw(required=True)
    customer_id = fields.Integer(required=True)
    version = TextOrNumber(required=True)  # identity publishes an integer
    title = fields.String(required=True)
    text = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    signer_name = fields.String(required=True)
    signer_position = fields.String(load_default=None, allow_none=True)
    client_ip = fields.String(load_default=None, allow_none=True)
    customer = fields.Nested(AgreementCustomerSchema, load_default=dict)
