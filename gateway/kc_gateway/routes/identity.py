"""Public routes served by identity."""
from kc_common.errors import (
                              Conflict,
                              Forbidden,
                              NotFound,
                              TooManyRequests,
                              Unauthenticated,
                              Unprocessable,
                              ValidationFailed,
)
from kc_gateway.http import PUBLIC, STAFF, Route
from kc_identity import schemas as s

_ME = "Meine Daten"
_STAFF = "Staff"
_ACCOUNT = "Konto"

ROUTES = [
    # --- Anmeldung ---
    Route("POST", "/api/v1/session", "identity", "login", auth=PUBLIC, tag="Anmeldung",
          summary="Log in with customer number or e-mail and service password "
                  "(throttled per account and address: 429 + Retry-After; IP whitelist: 403)",
          body=s.CustomerLoginSchema, response=s.SessionSchema, status=201,
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
    # --- Konto: Registrieren, Passwort vergessen, E-Mail bestätigen ---
    Route("GET", "/api/v1/signup/terms", "identity", "signup_terms", auth=PUBLIC, tag=_ACCOUNT,
          summary="The current Unternehmer-AGB version a sign-up accepts (send it back as terms_version)",
          response=s.TermsSchema, errors=(NotFound,)),
    Route("POST", "/api/v1/signup", "identity", "signup", auth=PUBLIC, tag=_ACCOUNT,
          summary="Register as a new customer (private person or company). Always 202 for valid input: a "
                  "verification link goes to the e-mail address (or, when it is registered already, a mail "
                  "saying so). Throttled per e-mail and per address (429)",
          body=s.SignupSchema, response=s.AcceptedSchema, status=202,
          errors=(ValidationFailed, Conflict, TooManyRequests)),
    Route("POST", "/api/v1/email-confirmations", "identity", "confirm_email", auth=PUBLIC, tag=_ACCOUNT,
          summary="Confirm an e-mail address with the token of a link (sign-up verification or e-mail "
                  "change); single use, expiring", body=s.EmailConfirmSchema, response=s.EmailConfirmedSchema,
          errors=(ValidationFailed, Conflict)),
    Route("POST", "/api/v1/me/email-verification", "identity", "resend_verification", tag=_ACCOUNT,
          summary="Send the sign-up's verification link again", response=s.AcceptedSchema, status=202,
          errors=(Conflict, TooManyRequests)),
    Route("POST", "/api/v1/password-reset", "identity", "request_password_reset", auth=PUBLIC, tag=_ACCOUNT,
          summary="Passwort vergessen: mail a single-use link (Kundennummer or e-mail). The same 202 whether "
                  "or not the account exists; throttled per login and per address (429)",
          body=s.PasswordResetRequestSchema, response=s.AcceptedSchema, status=202,
          errors=(ValidationFailed, TooManyRequests)),
    Route("PUT", "/api/v1/password-reset", "identity", "reset_password", auth=PUBLIC, tag=_ACCOUNT,
          summary="Set a new service password with the link's token (also staff's set-password link): every "
                  "session ends, a notice mail goes out; two-factor login stays on",
          body=s.PasswordResetSchema, status=204, errors=(ValidationFailed,)),
    # --- Meine Daten: Adressdaten ---
    Route("GET", "/api/v1/me", "identity", "get_me", tag=_ME,
          summary="The logged-in customer with the address data", response=s.CustomerSchema),
    Route("GET", "/api/v1/me/address", "identity", "get_me", tag=_ME,
          summary="Adressdaten (Kundennummer read-only)", response=s.CustomerSchema),
    Route("PUT", "/api/v1/me/address", "identity", "update_address", tag=_ME,
          summary="Change the address data (all fields checked, nothing saved on any error; the company "
                  "only by owner change; a new e-mail address takes effect when it confirms the link mailed "
                  "to it: pending_email)", body=s.AddressInputSchema, response=s.CustomerSchema,
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
    # --- Zwei-Faktor-Anmeldung ---
    Route("GET", "/api/v1/me/two-factor", "identity", "two_factor_status", tag="Anmeldung",
          summary="Whether the two-factor login (TOTP) is on, and recovery codes left",
          response=s.TwoFactorStatusSchema),
    Route("POST", "/api/v1/me/two-factor/setup", "identity", "two_factor_setup", tag="Anmeldung",
          summary="Start setting up TOTP (service password required): secret and otpauth URI",
          body=s.PasswordConfirmSchema, response=s.TwoFactorSetupSchema,
          errors=(ValidationFailed, Conflict, TooManyRequests)),
    Route("POST", "/api/v1/me/two-factor/enable", "identity", "two_factor_enable", tag="Anmeldung",
          summary="Confirm the setup with a code: TOTP is on; the recovery codes are shown once",
          body=s.TwoFactorCodeSchema, response=s.RecoveryCodesSchema, errors=(ValidationFailed, Unprocessable)),
    Route("POST", "/api/v1/me/closure", "identity", "request_closure", tag="Datenschutz",
          summary="Konto schließen (service password required): every contract is cancelled by its notice "
          "period; once the last has ended and the balance is settled, the personal data is erased or "
          "pseudonymised in every service (invoices and bookings are kept for 10 years, § 147 AO). Asking "
          "again answers the same state", body=s.PasswordConfirmSchema, response=s.ClosureStatusSchema,
          status=202, errors=(ValidationFailed, TooManyRequests)),
    Route("GET", "/api/v1/me/closure", "identity", "closure_status", tag="Datenschutz",
          summary="The state of the account closure (none / requested / erased)",
          response=s.ClosureStatusSchema),
    Route("POST", "/api/v1/me/two-factor/disable", "identity", "two_factor_disable", tag="Anmeldung",
          summary="Switch the two-factor login off (service password required)",
          body=s.PasswordConfirmSchema, status=204, errors=(ValidationFailed, TooManyRequests)),
    Route("POST", "/api/v1/me/two-factor/recovery-codes", "identity", "two_factor_recovery_codes",
          tag="Anmeldung", summary="Replace the recovery codes (service password required)",
          body=s.PasswordConfirmSchema, response=s.RecoveryCodesSchema,
          errors=(ValidationFailed, Unprocessable, TooManyRequests)),
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
    Route("POST", "/api/v1/staff/customers", "identity", "staff_create_customer", auth=STAFF, tag=_STAFF,
          summary="Create a customer (orders taken on the phone; support): validated like a sign-up; the "
                  "customer gets a link to set the service password", body=s.NewCustomerSchema,
          response=s.CustomerSchema, status=201, errors=(Forbidden, ValidationFailed)),
    Route("GET", "/api/v1/staff/customers/<int:customer_id>", "identity", "staff_get_customer",
          auth=STAFF, tag=_STAFF, summary="One customer with contacts (never the telephone password)",
          response=s.StaffCustomerSchema, errors=(Forbidden, NotFound)),
    Route("POST", "/api/v1/staff/customers/<int:customer_id>/phone-password/verify", "identity",
          "staff_verify_phone_password", auth=STAFF, tag=_STAFF,
          summary="Verify what a caller says is the telephone password (support; attempts limited)",
          body=s.PhonePasswordVerifySchema, response=s.VerifiedSchema,
          errors=(Forbidden, NotFound, Unprocessable, TooManyRequests)),
    Route("DELETE", "/api/v1/staff/customers/<int:customer_id>/ip-whitelist", "identity",
          "staff_clear_ip_whitelist", auth=STAFF, tag=_STAFF, status=204,
          summary="Lift a customer's IP whitelist (a customer who locked themself out; support)",
          errors=(Forbidden, NotFound)),
    Route("PUT", "/api/v1/staff/customers/<int:customer_id>/owner", "identity", "staff_owner_change",
          auth=STAFF, tag=_STAFF, summary="Complete an owner change (Inhaberwechsel): new company and "
                                          "address data (support)",
          body=s.OwnerChangeSchema, response=s.CustomerSchema,
          errors=(Forbidden, NotFound, ValidationFailed, Conflict)),
]
