"""Public routes served by dns."""
from kc_common.errors import Conflict, NotFound
from kc_dns import schemas as s
from kc_gateway.http import Route

ROUTES = [
    Route("GET", "/api/v1/me/zones", "dns", "list_zones", tag="DNS",
          summary="The zones of the customer's domains (paged)",
          query=s.ZoneQuerySchema, response=s.ZonePageSchema),
    Route("GET", "/api/v1/me/zones/<zone>", "dns", "get_zone", tag="DNS",
          summary="A zone of one of the customer's domains with its records; "
                  "`version`/`etag` is what If-Match expects",
          response=s.ZoneSchema, errors=(NotFound,), etag_field="etag"),
    Route("POST", "/api/v1/me/zones/<zone>/changes", "dns", "apply_changes", tag="DNS",
          summary="Apply a change set (add/replace/delete record sets) atomically; "
                  "header If-Match: the zone's version (stale: 409, nothing changed)",
          body=s.ChangeSetSchema, response=s.ChangeResultSchema,
          errors=(NotFound, Conflict), pass_headers=("If-Match",), required_headers=("If-Match",), etag_field="etag"),
    Route("GET", "/api/v1/me/zones/<zone>/file", "dns", "export_zone", tag="DNS",
          summary="The zone as an RFC 1035 master file",
          response_content_type="text/dns", errors=(NotFound,)),
    Route("POST", "/api/v1/me/zones/<zone>/import", "dns", "import_zone", tag="DNS",
          summary="Import a zone file as one change set (header If-Match); rejected "
                  "records are reported, the rest is applied (or only checked: dry_run)",
          body=s.ImportSchema, response=s.ImportResultSchema,
          errors=(NotFound, Conflict), pass_headers=("If-Match",), required_headers=("If-Match",), etag_field="etag"),
]
