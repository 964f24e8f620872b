"""billing's RPC contract (also the OpenAPI document's schemas)."""

from marshmallow import fields, validate

from kc_common.formats import money_de
from kc_common.schemas import (
    BaseSchema,
    Boolean,
    DecimalRange,
    Money,
    PageQuerySchema,
    UtcDateTime,
    page_of,
)

RETURN_URL_MAX = 500
BOOKING_TYPES = ("RE", "GU", "ZAHLUNG", "KONTOAUSGLEICH", "ERSTATTUNG", "RUECKLASTSCHRIFT", "GEBUEHR")


def amount_between(low, high):
    """Exact Decimal bounds (the OpenAPI document states them as the decimal string's pattern)."""
    return DecimalRange(low, high, error=f"Der Betrag muss zwischen {money_de(low)} und {money_de(high)} liegen.")


class BookingSchema(BaseSchema):
    id = fields.Integer(required=True)
    invoice_number = fields.Integer(allow_none=True, metadata={
        "description": "Rnr; the PDF is served by documents under this number"})
    date = fields.Date(required=True, metadata={"description": "Datum (Europe/Berlin)"})
    type = fields.String(required=True, metadata={
        "description": "Typ: RE = Rechnung, GU = Gutschrift, ZAHLUNG, KONTOAUSGLEICH, ERSTATTUNG, "
                       "RUECKLASTSCHRIFT (returned SEPA debit), GEBUEHR (its fee)"})
    text = fields.String(required=True, metadata={"description": "Erste Position der Rechnung"})
    amount = Money(required=True, metadata={"description": "Betrag in EUR (negativ = Forderung)"})
    payment_method = fields.String(allow_none=True, metadata={
        "description": "Zahlungsart: U = Überweisung, K = Kreditkarte, S = Sofortüberweisung, "
                       "L = Lastschrift"})
    open_amount = Money(allow_none=True, metadata={"description": "invoices: still open"})


BookingPageSchema = page_of(BookingSchema, "BookingPageSchema")


class AccountSchema(BaseSchema):
    balance = Money(required=True, metadata={"description": "Kontostand; negativ = offener Betrag"})
    balance_text = fields.String(required=True, metadata={"example": "-4,00\u00a0€ offener Betrag"})
    currency = fields.String(required=True, dump_default="EUR")
    bookings = fields.Nested(BookingPageSchema, required=True)


class AccountQuerySchema(PageQuerySchema):
    per_page = fields.Integer(load_default=10, validate=validate.OneOf([10, 25, 50, 100]),
                              metadata={"description": "Einträge anzeigen: 10, 25, 50 or 100"})
    type = fields.String(validate=validate.OneOf(BOOKING_TYPES))
    date_from = fields.Date()
    date_to = fields.Date()


class InvoiceLineSchema(BaseSchema):
    position = fields.Integer(required=True)
    text = fields.String(required=True)
    contract_id = fields.Integer(allow_none=True)
    period_start = fields.Date(allow_none=True)
    period_end = fields.Date(allow_none=True)
    quantity = fields.Integer(required=True)
    unit_net = Money(allow_none=True)
    net = Money(required=True)
    vat_rate = fields.Decimal(required=True, places=2, as_string=True)
    vat = Money(allow_none=True)


class InvoiceSchema(BaseSchema):
    number = fields.Integer(required=True)
    kind = fields.String(required=True)
    issue_date = fields.Date(required=True)
    issued_at = UtcDateTime(required=True)
    due_date = fields.Date(allow_none=True)
    currency = fields.String(required=True)
    net = Money(required=True)
    vat = Money(required=True)
    gross = Money(required=True)
    open_amount = Money(required=True)
    payment_method = fields.String(allow_none=True)
    payment_reference = fields.String(allow_none=True)
    by_post = Boolean(required=True)
    reverse_charge = Boolean(required=True)
    seller = fields.Dict(allow_none=True)
    buyer = fields.Dict(allow_none=True)
    vat_breakdown = fields.List(fields.Dict(), allow_none=True)
    einvoice_profile = fields.String(required=True, metadata={"description": "en16931 / xrechnung"})
    preceding_number = fields.Integer(allow_none=True, metadata={
        "description": "credit note: the invoice it corrects (BT-25)"})
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)


class QuoteLineSchema(BaseSchema):
    text = fields.String(required=True, metadata={"description": "the line as the invoice will show it"})
    period_start = fields.Date(allow_none=True)
    period_end = fields.Date(allow_none=True)
    net = Money(required=True)
    vat_rate = fields.Decimal(required=True, places=2, as_string=True)
    vat = Money(required=True, metadata={"description": "informational; VAT is summed per rate"})


class VatRateSchema(BaseSchema):
    rate = fields.Decimal(required=True, places=2, as_string=True)
    base = Money(required=True, metadata={"description": "sum of the nets of this rate"})
    amount = Money(required=True, metadata={"description": "VAT of this rate, rounded half-up once"})


class InvoiceQuoteSchema(BaseSchema):
    """What billing would book now for an order or a tariff change (computed by the code that
    books it: ``domain.price_lines``)."""
    issued = fields.Boolean(required=True, metadata={
        "description": "false: nothing would be invoiced now (e.g. a downgrade at period end)"})
    kind = fields.String(required=True, metadata={"description": "invoice or credit_note"})
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True)
    vat_breakdown = fields.List(fields.Nested(VatRateSchema), required=True)
    net = Money(required=True)
    vat = Money(required=True)
    gross = Money(required=True)
    currency = fields.String(required=True)
    reverse_charge = fields.Boolean(required=True, metadata={
        "description": "EU business outside Germany with a VAT ID: VAT 0, the recipient owes it"})
    reverse_charge_note = fields.String(allow_none=True)
    by_post = fields.Boolean(required=True, metadata={
        "description": "invoices by post carry the postage line"})
    payment_method = fields.String(required=True)


METHOD_CHOICES = ("card", "sepa", "transfer")
EINVOICE_PROFILES = ("en16931", "xrechnung")


class PaymentDetailsSchema(BaseSchema):
    by_post = Boolean(required=True, metadata={"description": "Rechnung per Post (2 € pro Rechnung)"})
    invoice_email = fields.Email(allow_none=True, metadata={"description": "Rechnungs E-Mail"})
    with_contact_person = Boolean(required=True, metadata={"description": "Rechnung mit Ansprechpartner"})
    method = fields.String(required=True, validate=validate.OneOf(METHOD_CHOICES), metadata={
        "description": "Zahlungsart: card = Kreditkarte, sepa = Lastschrift, transfer = Überweisung"})
    iban_masked = fields.String(allow_none=True)
    bic = fields.String(allow_none=True)
    bank_name = fields.String(allow_none=True)
    account_holder = fields.String(allow_none=True)
    mandate_reference = fields.String(allow_none=True, metadata={"description": "Mandatsreferenz"})
    mandate_date = fields.Date(allow_none=True, metadata={"description": "date the mandate was signed"})
    creditor_id = fields.String(allow_none=True, metadata={
        "description": "Gläubiger-Identifikationsnummer of the seller (SEPA method)"})
    einvoice_profile = fields.String(required=True, validate=validate.OneOf(EINVOICE_PROFILES), metadata={
        "description": "E-Rechnung: en16931 = ZUGFeRD/Factur-X EN 16931, xrechnung = XRechnung "
                       "(öffentliche Auftraggeber, mit Leitweg-ID)"})
    leitweg_id = fields.String(allow_none=True, metadata={
        "description": "Leitweg-ID of the public body (BT-10 in XRechnung)"})


class UpdatePaymentDetailsSchema(BaseSchema):
    by_post = Boolean(required=True)
    invoice_email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    with_contact_person = Boolean(required=True)
    method = fields.String(required=True, validate=validate.OneOf(METHOD_CHOICES))
    iban = fields.String(allow_none=True, validate=validate.Length(max=42))
    account_holder = fields.String(allow_none=True, validate=validate.Length(max=200))
    einvoice_profile = fields.String(validate=validate.OneOf(EINVOICE_PROFILES), metadata={
        "description": "default: unchanged (en16931); xrechnung needs a leitweg_id"})
    leitweg_id = fields.String(allow_none=True, validate=validate.Length(max=46), metadata={
        "description": "Leitweg-ID, e.g. 04011000-1234512345-06 (check digits ISO 7064 MOD 97-10)"})
    sepa_mandate_accepted = Boolean(load_default=False, metadata={
        "description": "The customer grants the SEPA direct debit mandate (needed for a new IBAN)"})


class CreatePaymentSchema(BaseSchema):
    method = fields.String(required=True, validate=validate.OneOf(("card", "instant")), metadata={
        "description": "card = Kreditkarte (VISA, Mastercard), instant = Sofortüberweisung"})
    amount = Money(validate=amount_between("0.01", "100000.00"), metadata={
        "description": "0.01 to 100000.00; default: the open amount"})
    return_url = fields.String(validate=validate.Length(min=1, max=RETURN_URL_MAX), metadata={
        "description": "where the PSP sends the customer back (http(s), at most 500 characters, "
                       "an allowed origin: PSP_RETURN_URL's or PSP_RETURN_ORIGINS); "
                       "default PSP_RETURN_URL. `payment_id` is added to its query"})


class PaymentSchema(BaseSchema):
    payment_id = fields.String(required=True)
    method = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "created, pending, succeeded, failed"})
    redirect_url = fields.String(allow_none=True, metadata={"description": "the PSP's confirmation page"})
    failure_reason = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)
    completed_at = UtcDateTime(allow_none=True)


class TransferDetailsSchema(BaseSchema):
    amount = Money(required=True)
    currency = fields.String(required=True)
    account_holder = fields.String(required=True)
    iban = fields.String(required=True)
    bic = fields.String(required=True)
    bank = fields.String(required=True)
    reference = fields.String(required=True, metadata={"description": "Verwendungszweck"})


class WebhookAckSchema(BaseSchema):
    received = Boolean(required=True)


class BookTransferSchema(BaseSchema):
    transaction_id = fields.String(required=True, validate=validate.Length(min=1, max=100),
                                   metadata={"description": "the bank statement line's id"})
    reference = fields.String(required=True, validate=validate.Length(min=1, max=500),
                              metadata={"description": "Verwendungszweck, must contain KC<Kundennummer>"})
    amount = Money(required=True, validate=amount_between("0.01", "10000000.00"))
    value_date = fields.Date(load_default=None)
    payer = fields.String(load_default=None, validate=validate.Length(max=200))


class BookedTransferSchema(BaseSchema):
    booking_id = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    payment_id = fields.String(required=True)
    created = Boolean(required=True)
    settled_invoice_ids = fields.List(fields.Integer())


class RunBillingSchema(BaseSchema):
    as_of = fields.Date(load_default=None, metadata={
        "description": "Stichtag: bill every period starting on or before it (default today, "
                       "Europe/Berlin); at most RUN_MAX_DAYS_AHEAD (7) days ahead and "
                       "RUN_MAX_DAYS_BACK (31) days back, else 400 naming as_of"})


class BillingRunSchema(BaseSchema):
    run_id = fields.Integer(required=True)
    as_of = fields.Date(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("running", "finished", "aborted")),
                          metadata={"description": "running; finished (counts final); aborted (its "
                                                   "process died or stopped: see resumed_by)"})
    started_by = fields.String(allow_none=True, metadata={"description": "staff:<id>, timer or cli"})
    started_at = UtcDateTime(required=True)
    heartbeat_at = UtcDateTime(allow_none=True, metadata={"description": "last sign of life"})
    finished_at = UtcDateTime(allow_none=True)
    aborted_at = UtcDateTime(allow_none=True)
    customers = fields.Integer(required=True, metadata={"description": "customers due at the start"})
    customers_done = fields.Integer(required=True)
    invoices = fields.Integer(required=True)
    contracts = fields.Integer(required=True, metadata={"description": "contract periods billed"})
    gross = Money(required=True)
    skipped = fields.Integer(required=True, metadata={"description": "billed by another run meanwhile"})
    errors = fields.Integer(required=True, metadata={"description": "customers that failed (still due)"})
    resumed_runs = fields.List(fields.Integer(), required=True, metadata={
        "description": "aborted runs whose work this run completed"})
    resumed_by = fields.Integer(allow_none=True, metadata={
        "description": "aborted: the run that completed its work"})


class BillingRunStartedSchema(BillingRunSchema):
    already_running = Boolean(required=True, metadata={
        "description": "true: a run for this as_of was running already; this is that run"})


BillingRunPageSchema = page_of(BillingRunSchema, "BillingRunPageSchema")


class BillingRunQuerySchema(PageQuerySchema):
    pass


class DunningRunSchema(BaseSchema):
    sent = fields.Integer(required=True, metadata={"description": "reminders recorded"})
    customers = fields.Integer(required=True)
    customers_done = fields.Integer(required=True)
    complete = Boolean(required=True, metadata={
        "description": "false: stopped before the caller's deadline; run again for the rest"})


class RefundInputSchema(BaseSchema):
    customer_id = fields.Integer(required=True, validate=validate.Range(min=1))
    amount = Money(required=True, validate=amount_between("0.01", "100000.00"),
                   metadata={"description": "paid back by transfer; at most the customer's credit"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))


class RefundSchema(BaseSchema):
    booking_id = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    amount = Money(required=True)
    balance = Money(required=True, metadata={"description": "the account balance afterwards"})


class CreditNoteSchema(BaseSchema):
    customer_id = fields.Integer(required=True, validate=validate.Range(min=1))
    text = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "what is credited (Gutschrift: …)"})
    net = Money(required=True, validate=amount_between("0.01", "100000.00"),
                metadata={"description": "net amount credited (positive)"})
    vat_rate = fields.Decimal(load_default=None, places=2, as_string=True,
                              validate=DecimalRange("0.00", "100.00",
                                                    error="Der Steuersatz muss zwischen 0 und 100 % liegen."),
                              metadata={"description": "VAT rate in percent; default DEFAULT_VAT_RATE (19.00)"})
    invoice_number = fields.Integer(load_default=None, metadata={"description": "the corrected invoice"})


class IssuedInvoiceSchema(BaseSchema):
    invoice_id = fields.Integer(required=True)
    number = fields.Integer(required=True)
    kind = fields.String(required=True)
    gross = Money(required=True)


class StatementUploadFormSchema(BaseSchema):
    """multipart/form-data of POST /staff/billing/statements (the OpenAPI document, the gateway)."""
    file = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "one camt.053 (.001.02/.001.08) or camt.054 (.001.02/.001.08) XML file"})


class StatementUploadSchema(BaseSchema):
    """The same upload as billing receives it: the gateway's ``files``."""
    files = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=1),
                        metadata={"description": "one camt.053 (.001.02/.001.08) or camt.054 "
                                                 "(.001.02/.001.08) XML file (multipart field 'file')"})


STATEMENT_OUTCOMES = ("booked", "already_booked", "clarification", "not_booked")
NOT_BOOKED_REASONS = ("foreign_account", "not_booked_status", "debit", "reversal", "currency",
                      "amount", "unmatched", "return", "return_unknown")


class StatementItemSchema(BaseSchema):
    transaction_id = fields.String(required=True, metadata={
        "description": "the transaction's identity: the bank's account servicer reference (scoped "
                       "by the account), else the entry reference, else a hash of the whole entry"})
    position = fields.String(required=True, metadata={"description": "statement id / entry number"})
    amount = fields.String(required=True)
    currency = fields.String(allow_none=True)
    status = fields.String(allow_none=True, metadata={"description": "BOOK, PDNG, INFO ..."})
    direction = fields.String(allow_none=True, metadata={"description": "CRDT or DBIT"})
    reference = fields.String(required=True, metadata={"description": "remittance text"})
    outcome = fields.String(required=True, validate=validate.OneOf(STATEMENT_OUTCOMES))
    reason = fields.String(allow_none=True, validate=validate.OneOf(NOT_BOOKED_REASONS), metadata={
        "description": "why it was not booked (not_booked, clarification); return: a return "
                       "debit (Rücklastschrift) of one of our SEPA debits, reversed"})
    message = fields.String(allow_none=True, metadata={"description": "the reason in German"})
    customer_id = fields.Integer(allow_none=True)
    invoice_number = fields.Integer(allow_none=True, metadata={
        "description": "booked: the invoice the remittance named (settled first)"})
    clarification_id = fields.Integer(allow_none=True, metadata={"description": "the Klärfall"})
    known = fields.Boolean(metadata={"description": "clarification: already recorded before"})


class StatementImportSchema(BaseSchema):
    entries = fields.Integer(required=True, metadata={
        "description": "transactions in the file (entries; batch entries split per transaction)"})
    booked = fields.Integer(required=True)
    already_booked = fields.Integer(required=True)
    clarifications = fields.Integer(required=True, metadata={
        "description": "own-account credits that matched no customer: Klärfälle"})
    not_booked = fields.Integer(required=True, metadata={
        "description": "foreign account, pending/info, debit, reversal, other currency"})
    not_processed = fields.Integer(required=True, metadata={
        "description": "entries not looked at before the request's deadline (upload the same "
                       "statement again: what is booked stays booked once)"})
    complete = Boolean(required=True)
    items = fields.List(fields.Nested(StatementItemSchema), required=True, metadata={
        "description": "every transaction processed, with its outcome"})
    unmatched = fields.List(fields.Nested(StatementItemSchema), required=True, metadata={
        "description": "the items that are Klärfälle (assign them to a customer)"})


CLARIFICATION_STATUSES = ("open", "assigned")


class ClarificationSchema(BaseSchema):
    clarification_id = fields.Integer(required=True)
    transaction_id = fields.String(required=True)
    account = fields.String(required=True, metadata={"description": "the seller's account (IBAN)"})
    amount = Money(required=True)
    currency = fields.String(required=True)
    value_date = fields.Date(allow_none=True)
    reference = fields.String(required=True, metadata={"description": "remittance text"})
    payer = fields.String(allow_none=True)
    payer_iban = fields.String(allow_none=True)
    reason = fields.String(required=True, metadata={"description": "why it was not matched"})
    status = fields.String(required=True, validate=validate.OneOf(CLARIFICATION_STATUSES))
    created_at = UtcDateTime(required=True)
    customer_id = fields.Integer(allow_none=True)
    payment_id = fields.String(allow_none=True)
    assigned_by = fields.String(allow_none=True)
    assigned_at = UtcDateTime(allow_none=True)
    created = fields.Boolean(metadata={"description": "assign: false when it was already assigned"})


ClarificationPageSchema = page_of(ClarificationSchema, "ClarificationPageSchema")


class ClarificationQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(CLARIFICATION_STATUSES))


class AssignClarificationSchema(BaseSchema):
    customer_id = fields.Integer(required=True, validate=validate.Range(min=1, max=10**12))
    invoice_number = fields.Integer(validate=validate.Range(min=1, max=10**12), allow_none=True,
                                    metadata={"description": "the invoice to settle first"})


class RunCollectionSchema(BaseSchema):
    due_date = fields.Date(metadata={
        "description": "collection date of the debits: invoices due by then are collected "
                       "(default today + SEPA_LEAD_DAYS, 2; at most 7 days ahead)"})


class SepaDebitSchema(BaseSchema):
    invoice_number = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    amount = Money(required=True)
    end_to_end_id = fields.String(required=True)
    mandate_reference = fields.String(required=True)
    sequence_type = fields.String(required=True, validate=validate.OneOf(("FRST", "RCUR")))
    status = fields.String(required=True, validate=validate.OneOf(("collected", "returned")))
    return_reason = fields.String(allow_none=True)


class SepaCollectionSchema(BaseSchema):
    collection_id = fields.Integer(required=True)
    due_date = fields.Date(required=True)
    message_id = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    started_by = fields.String(allow_none=True)
    count = fields.Integer(required=True)
    total = Money(required=True)
    pain008_version = fields.String(required=True)
    pain008 = fields.String(allow_none=True, metadata={
        "description": "the pain.008 XML for the bank (null: nothing was due)"})
    debits = fields.List(fields.Nested(SepaDebitSchema), required=True)
    created = fields.Boolean(metadata={"description": "false: the collection for this due date "
                                                     "existed already (idempotent)"})
