"""Public routes served by identity."""
from kc_common.errors import (Conflict, Forbidden, NotFound, TooManyRequests, Unauthenticated,
                              Unprocessable, ValidationFailed)
from kc_gateway.http import PUBLIC, STAFF, Route
from kc_identity import schemas as s

_ME = "Meine Daten"
_STAFF = "Staff"

ROUTES = [
    # --- Anmeldung ---
    Route("POST", "/api/v1/session", "identity", "login", auth=PUBLIC, tag="Anmeldung",
          summary="Log in with customer number or e-mail and service password "
                  "(throttled per account and address: 429 + Retry-After; IP whitelist: 403)",
          body=s.LoginSchema, response=s.SessionSchema, status=201,
          errors=(Unauthenticated, Forbidden, TooManyRequests)),
    Route("DELETE", "/api/v1/session", "identity", "logout", tag="Anmeldung",
          summary="Log out (ends the current session)", status=204),
    Route("GET", "/api/v1/me/sessions", "identity", "list_sessions", tag="Anmeldung",
          summary="The customer's active sessions (the current one marked)", response=s.SessionListSchema),
    Route("DELETE", "/api/v1/me/sessions/<session_id>", "identity", "end_session", tag="Anmeldung",
          summary="End one of the customer's sessions", status=204, errors=(NotFound,)),
    Route("GET", "/api/v1/me/logins", "identity", "list_logins", tag="Anmeldung",
          summary="Recent login attempts on this account (paged, newest first)",
          query=s.PageQuerySchema,
          response=s.LoginEventPageSchema),
    # --- Meine Daten: Adressdaten ---
    Route("GET", "/api/v1/me", "identity", "get_me", tag=_ME,
          summary="The logged-in customer with the address data", response=s.CustomerSchema),
    Route("GET", "/api/v1/me/address", "identity", "get_me", tag=_ME,
          summary="Adressdaten (Kundennummer read-only)", response=s.CustomerSchema),
    Route("PUT", "/api/v1/me/address", "identity", "update_address", tag=_ME,
          summary="Change the address data (all fields checked, nothing saved on any error; the company "
                  "only by owner change)", body=s.AddressInputSchema, response=s.CustomerSchema,
          errors=(ValidationFailed, Conflict)),
    # --- Passwörter ---
    Route("PUT", "/api/v1/me/password", "identity", "change_password", tag=_ME,
          summary="Change the service password (ends every other session, notice by e-mail)",
          body=s.PasswordChangeSchema, status=204, errors=(ValidationFailed, TooManyRequests)),
    Route("GET", "/api/v1/me/phone-password", "identity", "phone_password_status", tag=_ME,
          summary="Whether a telephone password is set", response=s.PhonePasswordStatusSchema),
    Route("PUT", "/api/v1/me/phone-password", "identity", "set_phone_password", tag=_ME,
          summary="Set the telephone password (new, repeat)", body=s.PhonePasswordSetSchema,
          response=s.PhonePasswordStatusSchema, errors=(ValidationFailed,)),
    Route("POST", "/api/v1/me/phone-password/reveal", "identity", "reveal_phone_password", tag=_ME,
          summary="Telefon Passwort anzeigen: only within minutes of the login, or with the service password",
          body=s.PhonePasswordRevealSchema, response=s.PhonePasswordSchema,
          errors=(Forbidden, NotFound, ValidationFailed, TooManyRequests)),
    # --- IP-Whitelist ---
    Route("GET", "/api/v1/me/ip-whitelist", "identity", "get_ip_whitelist", tag=_ME,
          summary="The IP whitelist and the address in use now", response=s.WhitelistSchema),
    Route("PUT", "/api/v1/me/ip-whitelist", "identity", "set_ip_whitelist", tag=_ME,
          summary="Replace the IP whitelist ([] = any address); a list excluding the current address needs "
                  "confirm_lockout", body=s.WhitelistInputSchema, response=s.WhitelistSchema,
          errors=(ValidationFailed, Conflict)),
    # --- Ansprechpartner ---
    Route("GET", "/api/v1/me/contacts", "identity", "list_contacts", tag=_ME,
          summary="Contact persons (Ansprechpartner)", response=s.ContactListSchema),
    Route("POST", "/api/v1/me/contacts", "identity", "add_contact", tag=_ME,
          summary="Add a contact person", body=s.ContactInputSchema, response=s.ContactSchema, status=201,
          errors=(ValidationFailed, Unprocessable)),
    Route("PUT", "/api/v1/me/contacts/<contact_id>", "identity", "update_contact", tag=_ME,
          summary="Change a contact person", body=s.ContactInputSchema, response=s.ContactSchema,
          errors=(ValidationFailed, NotFound)),
    Route("DELETE", "/api/v1/me/contacts/<contact_id>", "identity", "delete_contact", tag=_ME,
          summary="Remove a contact person", status=204, errors=(NotFound,)),
    # --- Mitteilungen ---
    Route("GET", "/api/v1/me/notifications", "identity", "get_notifications", tag=_ME,
          summary="Which newsletters and notices the customer receives", response=s.NotificationListSchema),
    Route("PUT", "/api/v1/me/notifications", "identity", "set_notifications", tag=_ME,
          summary="Switch optional topics on or off (mandatory mail cannot be switched off)",
          body=s.NotificationInputSchema, response=s.NotificationListSchema, errors=(ValidationFailed,)),
    # --- Datenschutz (AV) ---
    Route("GET", "/api/v1/me/av-agreement", "identity", "get_av_agreement", tag=_ME,
          summary="The current AV agreement text, whether it is signed, and every signature",
          response=s.AvStatusSchema),
    Route("POST", "/api/v1/me/av-agreement/signatures", "identity", "sign_av_agreement", tag=_ME,
          summary="Conclude the AV agreement (current version) with name and position",
          body=s.AvSignInputSchema, response=s.AvSignatureSchema, status=201,
          errors=(ValidationFailed, Conflict)),
    # --- Staff ---
    Route("POST", "/api/v1/staff/session", "identity", "staff_login", auth=PUBLIC, tag=_STAFF,
          summary="Staff log in (back office realm; its tokens never work on /me routes)",
          body=s.LoginSchema, response=s.StaffSessionSchema, status=201,
          errors=(Unauthenticated, TooManyRequests)),
    Route("DELETE", "/api/v1/staff/session", "identity", "logout", auth=STAFF, tag=_STAFF,
          summary="Staff log out", status=204),
    Route("GET", "/api/v1/staff/customers", "identity", "staff_search_customers", auth=STAFF, tag=_STAFF,
          summary="Look up customers by number, e-mail, name, company or city (support, billing)",
          query=s.CustomerQuerySchema, response=s.CustomerPageSchema, errors=(Forbidden,)),
    Route("GET", "/api/v1/staff/customers/<int:customer_id>", "identity", "staff_get_customer",
          auth=STAFF, tag=_STAFF, summary="One customer with contacts (never the telephone password)",
          response=s.StaffCustomerSchema, errors=(Forbidden, NotFound)),
    Route("POST", "/api/v1/staff/customers/<int:customer_id>/phone-password/verify", "identity",
          "staff_verify_phone_password", auth=STAFF, tag=_STAFF,
          summary="Verify what a caller says is the telephone password (support; attempts limited)",
          body=s.PhonePasswordVerifySchema, response=s.VerifiedSchema,
          errors=(Forbidden, NotFound, Unprocessable, TooManyRequests)),
    Route("PUT", "/api/v1/staff/customers/<int:customer_id>/owner", "identity", "staff_owner_change",
          auth=STAFF, tag=_STAFF, summary="Complete an owner change (Inhaberwechsel): new company and "
                                          "address data (support)",
          body=s.OwnerChangeSchema, response=s.CustomerSchema,
          errors=(Forbidden, NotFound, ValidationFailed, Conflict)),
]
