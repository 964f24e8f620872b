"""Public routes served by identity."""
from kc_common.errors import TooManyRequests, Unauthenticated
from kc_gateway.http import PUBLIC, STAFF, Route
from kc_identity import schemas as s

ROUTES = [
    Route("POST", "/api/v1/session", "identity", "login", auth=PUBLIC, tag="Anmeldung",
          summary="Log in with customer number or e-mail and service password",
          body=s.LoginSchema, response=s.SessionSchema, status=201,
          errors=(Unauthenticated, TooManyRequests)),
    Route("DELETE", "/api/v1/session", "identity", "logout", tag="Anmeldung",
          summary="Log out (ends the current session)", status=204),
    Route("POST", "/api/v1/staff/session", "identity", "staff_login", auth=PUBLIC, tag="Staff",
          summary="Staff log in (back office realm; its tokens never work on /me routes)",
          body=s.LoginSchema, response=s.StaffSessionSchema, status=201,
          errors=(Unauthenticated, TooManyRequests)),
    Route("DELETE", "/api/v1/staff/session", "identity", "logout", auth=STAFF, tag="Staff",
          summary="Staff log out", status=204),
    Route("GET", "/api/v1/me", "identity", "get_me", tag="Meine Daten",
          summary="The logged-in customer", response=s.CustomerSchema),
]
