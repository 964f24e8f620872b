"""Public routes served by billing."""
from kc_gateway.http import Route
from kc_billing import schemas as s

ROUTES = [
    Route("GET", "/api/v1/me/account", "billing", "get_account", tag="Meine Buchhaltung",
          summary="Kundenkonto: balance and bookings (newest first, paged)",
          query=s.AccountQuerySchema, response=s.AccountSchema),
]
