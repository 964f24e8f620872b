"""Public routes served by documents ("Meine Dokumente": the library and the customer's own PDFs)."""
from kc_common.errors import Conflict, Forbidden, NotFound, Unprocessable
from kc_documents import schemas as s
from kc_gateway.http import CUSTOMER, STAFF, Route

PDF = "application/pdf"

ROUTES = [
    Route("GET", "/api/v1/library", "documents", "list_library", auth=CUSTOMER, tag="Meine Dokumente",
          summary="The document library: name, description, version, date, download or link",
          response=s.LibraryListSchema),
    Route("GET", "/api/v1/library/<slug>", "documents", "download_library", auth=CUSTOMER,
          tag="Meine Dokumente", summary="Download the current version of a library document (PDF); "
          "the Preisliste is generated from the live catalog", response_content_type=PDF,
          errors=(NotFound, Unprocessable)),
    Route("GET", "/api/v1/library/<slug>/versions", "documents", "list_library_versions", auth=CUSTOMER,
          tag="Meine Dokumente", summary="All published versions of a library document, newest first",
          response=s.LibraryVersionListSchema, errors=(NotFound,)),
    Route("GET", "/api/v1/library/<slug>/versions/<version>", "documents", "download_library",
          auth=CUSTOMER, tag="Meine Dokumente", summary="Download one (also an older) version (PDF)",
          response_content_type=PDF, errors=(NotFound, Unprocessable)),
    Route("POST", "/api/v1/staff/library/<slug>/versions", "documents", "publish_library_version",
          auth=STAFF, tag="Staff", summary="Publish a new version of a library document (PDF upload, "
          "role admin); it becomes current from valid_from, older versions stay retrievable",
          body=s.PublishVersionSchema, multipart=True, response=s.LibraryVersionSchema, status=201,
          errors=(Conflict, Forbidden, NotFound, Unprocessable)),
    Route("GET", "/api/v1/me/documents", "documents", "list_my_documents", tag="Meine Dokumente",
          summary="The customer's own documents (invoices, AV agreement), newest first, paged",
          query=s.DocumentQuerySchema, response=s.DocumentPageSchema),
    Route("GET", "/api/v1/me/documents/<document_id>", "documents", "download_my_document",
          tag="Meine Dokumente", summary="Download one of the customer's own documents (PDF; a data "
          "export is a ZIP)",
          response_content_type=PDF, other_content_types=("application/zip",), errors=(NotFound,)),
    Route("GET", "/api/v1/me/documents/invoices/<number>", "documents", "download_invoice",
          tag="Meine Buchhaltung", summary="The invoice PDF (PDF/A-3 with EN 16931 XML) by invoice "
          "number (Rnr), as linked from the bookings", response_content_type=PDF, errors=(NotFound,)),
    Route("GET", "/api/v1/staff/documents/invoices/<number>", "documents", "staff_download_invoice",
          auth=STAFF, tag="Staff", summary="Any invoice PDF by number (role billing), also of a closed "
          "account (kept for 10 years, § 147 AO)", response_content_type=PDF, errors=(NotFound, Forbidden)),
    Route("POST", "/api/v1/me/data-export", "documents", "request_data_export", tag="Datenschutz",
          summary="Request a DS-GVO data export (Art. 15/20): every service contributes its part; the ZIP "
          "(one JSON per service plus the PDFs) appears in Meine Dokumente and is announced by mail. "
          "While one is pending, the same export is returned", response=s.DataExportSchema, status=202),
    Route("GET", "/api/v1/me/data-export", "documents", "get_data_export", tag="Datenschutz",
          summary="The state of the customer's latest data export (pending / ready, parts received)",
          response=s.DataExportSchema, errors=(NotFound,)),
]
