"""Public routes served by support: the customer's requests and the staff desk."""
from kc_common.errors import (
                              Forbidden,
                              NotFound,
                              ServiceUnavailable,
                              TooManyRequests,
                              Unauthenticated,
                              ValidationFailed,
)
from kc_gateway.http import PUBLIC, STAFF, Route
from kc_support import schemas as s

TAG = "Supportanfrage erstellen"
STAFF_TAG = "Staff: Support"
ME = "/api/v1/me/support/requests"
DESK = "/api/v1/staff/support/requests"
OCTET = "application/octet-stream"

ROUTES = [
    # --- customer ---------------------------------------------------------------------
    Route("POST", ME, "support", "open_request", tag=TAG,
          summary="Open an authorised support request (Ihr Name, Betreff, Anfrage, Anhang); "
                  "403 when the name is neither the customer nor a registered contact person",
          body=s.OpenRequestFormSchema, multipart=True, response=s.RequestSchema, status=201,
          errors=(Forbidden,)),
    Route("GET", ME, "support", "list_requests", tag=TAG,
          summary="The customer's support requests with their state (paged, newest activity first)",
          query=s.RequestQuerySchema, response=s.RequestPageSchema),
    Route("GET", ME + "/<number>", "support", "get_request", tag=TAG,
          summary="One request with its thread (replies of the support team included)",
          response=s.RequestSchema, errors=(NotFound,)),
    Route("POST", ME + "/<number>/messages", "support", "reply", tag=TAG,
          summary="Reply to a request (text and attachments); reopens a closed request",
          body=s.CustomerReplyFormSchema, multipart=True, response=s.RequestSchema, status=201,
          errors=(NotFound, Forbidden)),
    Route("GET", ME + "/<number>/attachments/<int:attachment_id>", "support", "download_attachment",
          tag=TAG, summary="Download an attachment of the customer's own request",
          response_content_type=OCTET,
          other_content_types=tuple(s.ATTACHMENT_TYPES), errors=(NotFound,)),
    # --- replies by e-mail: the mail provider's / MTA's inbound webhook ----------------
    Route("POST", "/api/v1/support/inbound-mail", "support", "ingest_mail", auth=PUBLIC, tag=TAG,
          summary="Inbound mail webhook: the raw message (message/rfc822) for support+<token>@…; "
                  "authenticated with the shared secret in X-Inbound-Secret",
          raw_body=True, pass_headers=("X-Inbound-Secret",), response=s.InboundMailResultSchema,
          status=201, errors=(Unauthenticated, NotFound, ValidationFailed)),
    # --- staff desk (role support) ----------------------------------------------------
    Route("GET", DESK, "support", "staff_list_requests", auth=STAFF, tag=STAFF_TAG,
          summary="List and filter support requests (state, category, assignee, customer, q)",
          query=s.StaffRequestQuerySchema, response=s.StaffRequestPageSchema, errors=(Forbidden,)),
    Route("POST", DESK, "support", "staff_open_request", auth=STAFF, tag=STAFF_TAG,
          summary="Open a request taken on the phone: only for a verified caller (name + telephone "
                  "password, checked by identity); the verified call is recorded on it",
          body=s.StaffOpenRequestSchema, response=s.StaffRequestSchema, status=201,
          errors=(Forbidden, NotFound, TooManyRequests, ServiceUnavailable)),
    Route("GET", DESK + "/<number>", "support", "staff_get_request", auth=STAFF, tag=STAFF_TAG,
          summary="A request with its whole thread, internal notes and recorded calls",
          response=s.StaffRequestSchema, errors=(Forbidden, NotFound)),
    Route("PUT", DESK + "/<number>/assignee", "support", "staff_assign", auth=STAFF, tag=STAFF_TAG,
          summary="Assign the request (a staff id, 'me', or null to unassign)",
          body=s.AssignSchema, response=s.StaffRequestSchema, errors=(Forbidden, NotFound)),
    Route("POST", DESK + "/<number>/replies", "support", "staff_reply", auth=STAFF, tag=STAFF_TAG,
          summary="Reply to the customer (multipart: message, state?, attachments; mailed); the request "
                  "becomes 'answered' unless another state is given",
          body=s.StaffReplyFormSchema, multipart=True, response=s.StaffRequestSchema, status=201,
          errors=(Forbidden, NotFound)),
    Route("PUT", DESK + "/<number>/state", "support", "staff_set_state", auth=STAFF, tag=STAFF_TAG,
          summary="Change the state (and category); the customer is told by mail if they want support updates",
          body=s.StateSchema, response=s.StaffRequestSchema, errors=(Forbidden, NotFound)),
    Route("POST", DESK + "/<number>/notes", "support", "staff_add_note", auth=STAFF, tag=STAFF_TAG,
          summary="Add an internal note (never shown to the customer)",
          body=s.NoteSchema, response=s.StaffRequestSchema, status=201, errors=(Forbidden, NotFound)),
    Route("POST", DESK + "/<number>/calls", "support", "staff_record_call", auth=STAFF, tag=STAFF_TAG,
          summary="Telephone support: verify the caller (name + telephone password, checked by identity) "
                  "and record the call on the request",
          body=s.CallInputSchema, response=s.StaffRequestSchema, status=201,
          errors=(Forbidden, NotFound, TooManyRequests, ServiceUnavailable)),
    Route("GET", DESK + "/<number>/attachments/<int:attachment_id>", "support",
          "staff_download_attachment", auth=STAFF, tag=STAFF_TAG,
          summary="Download an attachment of a request", response_content_type=OCTET,
          other_content_types=tuple(s.ATTACHMENT_TYPES), errors=(Forbidden, NotFound)),
]
