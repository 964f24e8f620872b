"""Public routes served by dns."""
from kc_common.errors import NotFound
from kc_gateway.http import Route
from kc_dns import schemas as s

ROUTES = [
    Route("GET", "/api/v1/me/zones/<zone>", "dns", "get_zone", tag="DNS",
          summary="A zone of one of the customer's domains with its records",
          response=s.ZoneSchema, errors=(NotFound,)),
]
