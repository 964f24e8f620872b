"""Public routes served by billing."""
from kc_billing import schemas as s
from kc_common.errors import (
                              Conflict,
                              Forbidden,
                              NotFound,
                              ServiceUnavailable,
                              Unauthenticated,
                              Unprocessable,
                              ValidationFailed,
)
from kc_gateway.http import PUBLIC, STAFF, Route

TAG = "Meine Buchhaltung"

ROUTES = [
    Route("GET", "/api/v1/me/account", "billing", "get_account", tag=TAG,
          summary="Kundenkonto: balance and bookings (newest first, paged, filter by type and date)",
          query=s.AccountQuerySchema, response=s.AccountSchema, errors=(ValidationFailed,)),
    Route("GET", "/api/v1/me/invoices/<number>", "billing", "get_invoice", tag=TAG,
          summary="One of the customer's invoices (the PDF is served by documents)",
          response=s.InvoiceSchema, errors=(NotFound,)),
    Route("GET", "/api/v1/me/payments/transfer-details", "billing", "get_transfer_details", tag=TAG,
          summary="Zahlung per Überweisung: open amount, bank details and the reference to use",
          response=s.TransferDetailsSchema),
    Route("POST", "/api/v1/me/payments", "billing", "create_payment", tag=TAG,
          summary="Zahlung per Kreditkarte or Sofortüberweisung through the PSP (continue at redirect_url)",
          body=s.CreatePaymentSchema, response=s.PaymentSchema, status=201, idempotent=True, verified_email=True,
          errors=(ValidationFailed, Unprocessable, ServiceUnavailable, Forbidden)),
    Route("GET", "/api/v1/me/payments/<payment_id>", "billing", "get_payment", tag=TAG,
          summary="State of a payment (asks the PSP while it is pending)",
          response=s.PaymentSchema, errors=(NotFound,)),
    Route("GET", "/api/v1/me/payment-details", "billing", "get_payment_details", tag="Meine Daten",
          summary="Zahlungsdetails", response=s.PaymentDetailsSchema),
    Route("PUT", "/api/v1/me/payment-details", "billing", "update_payment_details", tag="Meine Daten",
          summary="Change Zahlungsdetails (apply to the next invoice); SEPA needs a valid IBAN and the mandate",
          body=s.UpdatePaymentDetailsSchema, response=s.PaymentDetailsSchema,
          errors=(ValidationFailed,)),
    Route("POST", "/api/v1/psp/webhook", "billing", "psp_webhook", auth=PUBLIC, tag="Payment provider",
          summary="Signed payment notification of the PSP (HMAC, replay window); booked exactly once",
          raw_body=True, pass_headers=("X-PSP-Signature",), response=s.WebhookAckSchema,
          errors=(Unauthenticated,)),
    Route("POST", "/api/v1/staff/billing/transfers", "billing", "book_transfer", auth=STAFF,
          tag="Staff: billing", summary="Book an incoming bank transfer, matched by its reference",
          body=s.BookTransferSchema, response=s.BookedTransferSchema, status=201,
          errors=(ValidationFailed, Unprocessable)),
    Route("POST", "/api/v1/staff/billing/statements", "billing", "import_statement", auth=STAFF,
          tag="Staff: billing",
          summary="Import a bank statement (camt.053) or notification (camt.054), validated "
                  "against the ISO 20022 XSD: booked credits of the seller's own accounts are "
                  "booked once (the invoice named first, then oldest first), unmatched ones become "
                  "Klärfälle, everything else is reported per transaction",
          multipart=True, body=s.StatementUploadFormSchema, response=s.StatementImportSchema,
          errors=(ValidationFailed,)),
    Route("GET", "/api/v1/staff/billing/clarifications", "billing", "list_clarifications",
          auth=STAFF, tag="Staff: billing",
          summary="Klärfälle: bank credits no customer could be matched to (newest first)",
          query=s.ClarificationQuerySchema, response=s.ClarificationPageSchema,
          errors=(ValidationFailed,)),
    Route("POST", "/api/v1/staff/billing/clarifications/<int:clarification_id>/assign", "billing",
          "assign_clarification", auth=STAFF, tag="Staff: billing",
          summary="Assign a Klärfall to a customer (optionally an invoice): booked then, once; "
                  "409 when it is already assigned to another customer",
          body=s.AssignClarificationSchema, response=s.ClarificationSchema,
          errors=(ValidationFailed, NotFound, Conflict, Unprocessable)),
    Route("POST", "/api/v1/staff/billing/sepa-collections", "billing", "run_sepa_collection",
          auth=STAFF, tag="Staff: billing",
          summary="SEPA collection run for a due date (default today): collects the open, due "
                  "invoices of customers paying by Lastschrift once and answers the pain.008 file "
                  "(FRST/RCUR); the same due date again answers the same collection",
          body=s.RunCollectionSchema, response=s.SepaCollectionSchema, status=201,
          errors=(ValidationFailed,)),
    Route("POST", "/api/v1/staff/billing/credit-notes", "billing", "issue_credit_note", auth=STAFF,
          tag="Staff: billing", summary="Issue a credit note (Gutschrift) to a customer",
          body=s.CreditNoteSchema, response=s.IssuedInvoiceSchema, status=201,
          errors=(ValidationFailed, NotFound)),
    Route("POST", "/api/v1/staff/billing/refunds", "billing", "refund_credit", auth=STAFF,
          tag="Staff: billing", summary="Pay a customer's credit (Guthaben) back (booking ERSTATTUNG)",
          body=s.RefundInputSchema, response=s.RefundSchema, status=201,
          errors=(ValidationFailed, NotFound, Unprocessable)),
    Route("POST", "/api/v1/staff/billing/runs", "billing", "run_billing", auth=STAFF,
          tag="Staff: billing",
          summary="Start a billing run as of a date (default today; at most 7 days ahead): answers "
                  "at once with the run, which goes on in the background (poll "
                  "/api/v1/staff/billing/runs/{run_id}); while a run for that date is running, "
                  "that run (already_running)",
          body=s.RunBillingSchema, response=s.BillingRunStartedSchema, status=202,
          errors=(ValidationFailed,)),
    Route("GET", "/api/v1/staff/billing/invoices/<number>", "billing", "staff_get_invoice", auth=STAFF,
          tag="Staff: billing", summary="Any invoice by number (role billing), also of a closed account: "
          "invoices are kept for 10 years (§ 147 AO)", response=s.InvoiceSchema, errors=(NotFound, Forbidden)),
    Route("GET", "/api/v1/staff/billing/runs", "billing", "list_billing_runs", auth=STAFF,
          tag="Staff: billing", summary="Recent billing runs, newest first (state and counts)",
          query=s.BillingRunQuerySchema, response=s.BillingRunPageSchema, errors=(ValidationFailed,)),
    Route("GET", "/api/v1/staff/billing/runs/<int:run_id>", "billing", "get_billing_run", auth=STAFF,
          tag="Staff: billing",
          summary="A billing run: running, finished (final counts) or aborted (resumed_by: the run "
                  "that completed its work)",
          response=s.BillingRunSchema, errors=(NotFound,)),
]
