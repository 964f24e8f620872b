"""identity's entrypoints: thin; the rules live in the ``domain`` package (one module per concern)."""
import datetime as dt
import logging
from decimal import Decimal

from marshmallow import Schema, fields, validate
from nameko.timer import Timer

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.errors import NotFound, Unauthenticated
from kc_common.events import event_handler
from kc_common.mail import Mailer, message_id_for
from kc_common.privacy import answer_export_request
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import PageQuerySchema, load
from kc_common.settings import Secret, Settings
from kc_identity import mails, schemas, vies
from kc_identity.domain import (
    account,
    av_agreement,
    closure,
    contacts,
    customers,
    login,
    notifications,
    passwords,
    sessions,
    staff,
    throttle,
    two_factor,
    whitelist,
)
from kc_identity.models import metadata
from kc_identity.vault import VaultProvider

log = logging.getLogger(__name__)

_PASSWORD_FIELDS = ("data.current_password", "data.new_password", "data.new_password_repeat")
_PHONE_FIELDS = ("data.phone_password", "data.phone_password_repeat")
TERMS_SLUG = "unternehmer-agb"  # the library document accepted at sign-up (documents service)


class RetentionTimer(Timer):
    """nameko's timer with the interval from config ``RETENTION_INTERVAL`` (seconds)."""

    def setup(self):
        self.interval = float(self.container.config.get("RETENTION_INTERVAL", self.interval))
        super().setup()

# The development key committed in config.yaml (refused outside KC_ENV=development).
DEV_PHONE_PASSWORD_KEY = "G3_fDDK1k_WL0NGt7JxiSqEDVbqD22_--l1iuBTJSVg="
SECRETS = (Secret("PHONE_PASSWORD_KEYS", "PHONE_PASSWORD_KEYS", dev=(DEV_PHONE_PASSWORD_KEY,), many=True),)
_POSITIVE = validate.Range(min=0, min_inclusive=False)


class IdentitySettings(Schema):
    SESSION_IDLE_MINUTES = fields.Float(load_default=60, validate=_POSITIVE)
    SESSION_ABSOLUTE_HOURS = fields.Float(load_default=12, validate=_POSITIVE)
    LOGIN_MAX_FAILURES_PER_ACCOUNT = fields.Integer(load_default=5, validate=validate.Range(min=1))
    LOGIN_MAX_FAILURES_PER_ADDRESS = fields.Integer(load_default=30, validate=validate.Range(min=1))
    LOGIN_THROTTLE_MINUTES = fields.Float(load_default=15, validate=_POSITIVE)
    PHONE_PASSWORD_FRESH_MINUTES = fields.Float(load_default=10, validate=_POSITIVE)
    PHONE_PASSWORD_MAX_FAILURES = fields.Integer(load_default=5, validate=validate.Range(min=1))


class IdentityService(PingMixin):
    name = "identity"

    db = Database(metadata)
    context = CallContext()
    config = Settings(IdentitySettings, secrets=SECRETS)
    vault = VaultProvider()
    mailer = Mailer()
    documents = TimedRpcProxy("documents")
    catalog = TimedRpcProxy("catalog")
    billing = TimedRpcProxy("billing")

    def _setting(self, key, default):
        return float(self.config.get(key, default) or default)

    @property
    def _idle(self):
        return dt.timedelta(minutes=self._setting("SESSION_IDLE_MINUTES", 60))

    @property
    def _absolute(self):
        return dt.timedelta(hours=self._setting("SESSION_ABSOLUTE_HOURS", 12))

    @property
    def _throttle(self):
        return throttle.Throttle(
            per_account=int(self._setting("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)),
            per_address=int(self._setting("LOGIN_MAX_FAILURES_PER_ADDRESS", 30)),
            window=dt.timedelta(minutes=self._setting("LOGIN_THROTTLE_MINUTES", 15)))

    @property
    def _limits(self):
        return account.Limits(
            window=dt.timedelta(minutes=self._setting("ACCOUNT_REQUEST_WINDOW_MINUTES", 60)),
            signup_per_email=int(self._setting("SIGNUP_MAX_PER_EMAIL", 3)),
            signup_per_address=int(self._setting("SIGNUP_MAX_PER_ADDRESS", 10)),
            reset_per_login=int(self._setting("PASSWORD_RESET_MAX_PER_LOGIN", 5)),
            reset_per_address=int(self._setting("PASSWORD_RESET_MAX_PER_ADDRESS", 20)),
            reset_mails_per_account=int(self._setting("PASSWORD_RESET_MAILS_PER_ACCOUNT", 3)),
            reset_ttl=dt.timedelta(minutes=self._setting("PASSWORD_RESET_MINUTES", 30)),
            email_ttl=dt.timedelta(hours=self._setting("EMAIL_LINK_HOURS", 48)),
            set_password_ttl=dt.timedelta(hours=self._setting("SET_PASSWORD_LINK_HOURS", 72)))

    @property
    def _web_url(self):
        return self.config.get("WEB_PUBLIC_URL") or "http://127.0.0.1:8080"

    def _uow(self):
        return self.db.unit_of_work()

    # --- retention of personal logs ---------------------------------------------------------

    @RetentionTimer.decorator(interval=3600)
    def retention_job(self):
        """Prune login attempts, telephone password checks, throttle records and old links."""
        self.prune()

    def prune(self, now=None):
        with self._uow() as uow:
            done = account.prune(uow.session, now=now,
                                 login_events_days=self._setting("LOGIN_EVENTS_RETENTION_DAYS", 180),
                                 phone_checks_days=self._setting("PHONE_CHECKS_RETENTION_DAYS", 90))
        if any(done.values()):
            log.info("retention: deleted %s", done)
        return done

    # --- account lifecycle: sign-up, Passwort vergessen, e-mail confirmation ----------------

    @rpc
    def signup_terms(self):
        """The current Unternehmer-AGB (documents' library) a sign-up accepts."""
        for item in self.documents.list_library()["items"]:
            if item["slug"] == TERMS_SLUG and item.get("version"):
                return schemas.TermsSchema().dump({"slug": item["slug"], "title": item["name"],
                                                   "version": str(item["version"]),
                                                   "date": str(item["date"]) if item.get("date") else None})
        raise NotFound("Die Unternehmer-AGB sind nicht verfügbar.")

    def _vat_valid(self, data):
        """Ask VIES (when enabled) before any transaction opens."""
        vat_id = account.vat_id_to_check(data)
        return vies.from_config(self.config).check(vat_id) if vat_id else None

    @rpc(sensitive_arguments=("data.password", "data.password_repeat"))
    def signup(self, data):
        data = load(schemas.SignupSchema(), data)
        terms = self.signup_terms()
        vat_valid = self._vat_valid(data)
        with self._uow() as uow:
            account.signup(uow, data, client_ip=self.context.client_ip, limits=self._limits,
                           vault=self.vault, terms=terms, vat_valid=vat_valid)
        return {"message": account.SIGNUP_ACCEPTED}

    @rpc
    def resend_verification(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            account.resend_verification(uow, customer_id, limits=self._limits, vault=self.vault,
                                        client_ip=self.context.client_ip)
        return {"message": "Wir haben Ihnen einen neuen Bestätigungslink gesendet."}

    @rpc
    def request_password_reset(self, data):
        data = load(schemas.PasswordResetRequestSchema(), data)
        with self._uow() as uow:
            account.request_password_reset(uow, login=data["login"], client_ip=self.context.client_ip,
                                           limits=self._limits, vault=self.vault)
        return {"message": account.RESET_ACCEPTED}

    @rpc(sensitive_arguments=("data.token", "data.new_password", "data.new_password_repeat"))
    def reset_password(self, data):
        data = load(schemas.PasswordResetSchema(), data)
        with self._uow() as uow:
            account.set_password_by_link(uow, data, client_ip=self.context.client_ip)

    @rpc(sensitive_arguments=("data.token",))
    def confirm_email(self, data):
        data = load(schemas.EmailConfirmSchema(), data)
        with self._uow() as uow:
            result = account.confirm_email(uow, data["token"], client_ip=self.context.client_ip)
        return schemas.EmailConfirmedSchema().dump(result)

    @rpc
    def staff_create_customer(self, data):
        staff_id = self.context.require_staff("support")
        data = load(schemas.NewCustomerSchema(), data)
        vat_valid = self._vat_valid(data)
        with self._uow() as uow:
            result = account.staff_create(uow, data, limits=self._limits, vault=self.vault, vat_valid=vat_valid)
            result["pending_email"] = None
        log.info("customer %s created by staff %s", result["customer_id"], staff_id)
        return schemas.CustomerSchema().dump(result)

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """DS-GVO export: identity's part for the customer, as ``data_export_part`` (to documents)."""
        self.db.handle_once(event, lambda uow, data: answer_export_request(
            uow, metadata, "identity", data, key_columns={"customers": "id"}, exclude=("account_tokens", "recovery_codes")))

    @event_handler("identity", "account_link_issued")
    def on_account_link_issued(self, event):
        """The mail with a single-use link (the token decrypted only here)."""
        def prepare(uow, data):
            row = customers.get_customer_row(uow.session, data["customer_id"])
            return mails.account_link(row, data, self.vault.decrypt(data["token_enc"]), self._web_url)
        self.db.deliver_once(event, prepare, self._mail_for(event))

    @event_handler("identity", "signup_duplicate")
    def on_signup_duplicate(self, event):
        """A sign-up with a registered e-mail: the owner of that address learns it, nobody else."""
        def prepare(uow, data):
            return mails.signup_duplicate(customers.get_customer_row(uow.session, data["customer_id"]), data,
                                          self._web_url)
        self.db.deliver_once(event, prepare, self._mail_for(event))

    # --- login and sessions -----------------------------------------------------------------

    @rpc(sensitive_arguments=("data.password", "data.otp"))
    def login(self, data):
        data = load(schemas.CustomerLoginSchema(), data)
        with self._uow() as uow:  # a failed attempt is committed, then raised (after_commit)
            result = login.attempt_login(uow.session, client_ip=self.context.client_ip,
                                         idle=self._idle, absolute=self._absolute,
                                         throttle=self._throttle, vault=self.vault, **data)
        return schemas.SessionSchema().dump(result)

    @rpc(sensitive_arguments=("token",))
    def authenticate(self, token):
        with self._uow() as uow:
            return sessions.authenticate(uow.session, token=token, idle=self._idle,
                                         client_ip=self.context.client_ip)

    @rpc(sensitive_arguments=("data.password",))
    def staff_login(self, data):
        data = load(schemas.LoginSchema(), data)
        with self._uow() as uow:
            result = login.attempt_staff_login(uow.session, client_ip=self.context.client_ip,
                                               idle=self._idle, absolute=self._absolute,
                                               throttle=self._throttle, **data)
        return schemas.StaffSessionSchema().dump(result)

    @rpc
    def logout(self):
        """End the caller's current session (customer or staff)."""
        if self.context.session_id is None:
            raise Unauthenticated("Bitte melden Sie sich an.")
        with self._uow() as uow:
            sessions.end_session(uow.session, self.context.session_id)
            sessions.sessions_changed(uow, session_id=self.context.session_id)

    @rpc
    def list_sessions(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            items = sessions.list_sessions(uow.session, customer_id, self.context.session_id, self._idle)
        return schemas.SessionListSchema().dump({"items": items})

    @rpc
    def end_session(self, session_id):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            sessions.end_customer_session(uow.session, customer_id, session_id)
            sessions.sessions_changed(uow, session_id=session_id)

    @rpc
    def list_logins(self, params=None):
        customer_id = self.context.require_customer()
        params = load(PageQuerySchema(), params)
        with self._uow() as uow:
            page = sessions.recent_logins(uow.session, customer_id, params["page"], params["per_page"])
        return schemas.LoginEventPageSchema().dump(page)

    # --- address data -----------------------------------------------------------------------

    @rpc
    def get_me(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            row = customers.get_customer_row(uow.session, customer_id)
            pending = account.pending_email(uow.session, customer_id)
        return schemas.CustomerSchema().dump(dict(customers.address_view(row), pending_email=pending))

    @rpc
    def update_address(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.AddressInputSchema(), data)
        def request_email_change(new_email):  # confirmed by a link to the new address
            account.issue_link(uow, purpose=account.CHANGE_EMAIL, customer_id=customer_id, email=new_email,
                               limits=self._limits, vault=self.vault, client_ip=self.context.client_ip)
        with self._uow() as uow:
            result = customers.update_address(uow, customer_id, data, client_ip=self.context.client_ip,
                                              request_email_change=request_email_change)
            result["pending_email"] = account.pending_email(uow.session, customer_id)
        return schemas.CustomerSchema().dump(result)

    # --- passwords --------------------------------------------------------------------------

    @rpc(sensitive_arguments=_PASSWORD_FIELDS)
    def change_password(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.PasswordChangeSchema(), data)
        with self._uow() as uow:
            passwords.change_password(uow, customer_id, data, session_id=self.context.session_id,
                                      client_ip=self.context.client_ip, throttle=self._throttle)

    @rpc(sensitive_arguments=_PHONE_FIELDS)
    def set_phone_password(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.PhonePasswordSetSchema(), data)
        with self._uow() as uow:
            result = passwords.set_phone_password(uow.session, customer_id, data, self.vault)
        return schemas.PhonePasswordStatusSchema().dump(result)

    @rpc
    def phone_password_status(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.PhonePasswordStatusSchema().dump(
                passwords.phone_password_status(uow.session, customer_id))

    @rpc(sensitive_arguments=("data.password",))
    def reveal_phone_password(self, data=None):
        customer_id = self.context.require_customer()
        data = load(schemas.PhonePasswordRevealSchema(), data)
        with self._uow() as uow:
            result = passwords.reveal_phone_password(
                uow.session, customer_id, session_id=self.context.session_id,
                password=data.get("password"), vault=self.vault, client_ip=self.context.client_ip,
                fresh=dt.timedelta(minutes=self._setting("PHONE_PASSWORD_FRESH_MINUTES", 10)),
                throttle=self._throttle)
        return schemas.PhonePasswordSchema().dump(result)

    @rpc(sensitive_arguments=("password",))
    def verify_phone_password(self, customer_id, password):
        """Staff (support) check what a caller says; attempts per customer are limited."""
        staff_id = self.context.require_staff("support")
        with self._uow() as uow:
            result = passwords.verify_phone_password(
                uow.session, int(customer_id), password, staff_id=staff_id, vault=self.vault,
                max_failures=int(self._setting("PHONE_PASSWORD_MAX_FAILURES", 5)),
                window=dt.timedelta(minutes=self._setting("LOGIN_THROTTLE_MINUTES", 15)))
        log.info("telephone password of customer %s checked by staff %s: %s", customer_id, staff_id,
                 "verified" if result["verified"] else "wrong")
        return result

    @rpc(sensitive_arguments=("data.password",))
    def staff_verify_phone_password(self, customer_id, data):
        data = load(schemas.PhonePasswordVerifySchema(), data)
        return self.verify_phone_password(customer_id, data["password"])

    def _mail_for(self, event):
        """Sends a prepared mail (after commit) with a Message-ID stable per event."""
        return lambda mail: self.mailer.send(message_id=message_id_for(event["id"], "identity"), **mail)

    @event_handler("identity", "password_changed")
    def on_password_changed(self, event):
        """Notice mail to the customer after a password change (mandatory security mail)."""
        def prepare(uow, data):
            return mails.password_changed(customers.get_customer_row(uow.session, data["customer_id"]), data)
        self.db.deliver_once(event, prepare, self._mail_for(event))

    # --- two-factor login -------------------------------------------------------------------

    @rpc
    def two_factor_status(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.TwoFactorStatusSchema().dump(two_factor.two_factor_status(uow.session, customer_id))

    @rpc(sensitive_arguments=("data.password",))
    def two_factor_setup(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.PasswordConfirmSchema(), data)
        with self._uow() as uow:
            result = two_factor.two_factor_setup(uow.session, customer_id, data["password"], vault=self.vault,
                                                 client_ip=self.context.client_ip, throttle=self._throttle)
        return schemas.TwoFactorSetupSchema().dump(result)

    @rpc(sensitive_arguments=("data.code",))
    def two_factor_enable(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.TwoFactorCodeSchema(), data)
        with self._uow() as uow:
            result = two_factor.two_factor_enable(uow.session, customer_id, data["code"], vault=self.vault)
        return schemas.RecoveryCodesSchema().dump(result)

    @rpc(sensitive_arguments=("data.password",))
    def two_factor_disable(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.PasswordConfirmSchema(), data)
        with self._uow() as uow:
            two_factor.two_factor_disable(uow.session, customer_id, data["password"],
                                          client_ip=self.context.client_ip, throttle=self._throttle)

    @rpc(sensitive_arguments=("data.password",))
    def two_factor_recovery_codes(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.PasswordConfirmSchema(), data)
        with self._uow() as uow:
            result = two_factor.two_factor_new_codes(uow.session, customer_id, data["password"],
                                                     client_ip=self.context.client_ip,
                                                     throttle=self._throttle)
        return schemas.RecoveryCodesSchema().dump(result)

    # --- account closure (Konto schließen) --------------------------------------------------

    @rpc(sensitive_arguments=("data.password",))
    def request_closure(self, data):
        """The customer asks to close the account (confirmed with the service password)."""
        customer_id = self.context.require_customer()
        data = load(schemas.PasswordConfirmSchema(), data)
        with self._uow() as uow:
            result = closure.request_closure(uow, customer_id, data["password"],
                                             client_ip=self.context.client_ip, throttle=self._throttle)
        return schemas.ClosureStatusSchema().dump(result)

    @rpc
    def closure_status(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.ClosureStatusSchema().dump(closure.status(customers.get_customer_row(uow.session, customer_id)))

    def _check_closure(self, customer_id):
        """Erase once the closure was asked for, no contract is left and the balance is 0.00.
        The RPCs run with no transaction open; ``erase`` re-checks under the row lock."""
        with self._uow() as uow:
            if not closure.pending(uow.session, customer_id):
                return False
        contracts_open = int(self.catalog.open_contracts(customer_id=customer_id)["open"])
        balance = Decimal(str(self.billing.customer_balance(customer_id=customer_id)["balance"]))
        if contracts_open or balance != 0:
            log.info("closure of %s waits: %d contracts open, balance %s", customer_id, contracts_open, balance)
            return False
        with self._uow() as uow:
            return closure.erase(uow, customer_id, open_contracts=contracts_open, balance=str(balance))

    @staticmethod
    def _customer_of(event):
        try:
            return int((event.get("data") or {})["customer_id"])
        except (KeyError, TypeError, ValueError):
            return None

    @event_handler("identity", "closure_requested")
    def on_closure_requested(self, event):
        """A customer without contracts and with a settled balance is erased right away."""
        if self._customer_of(event) is not None:
            self._check_closure(self._customer_of(event))

    @event_handler("catalog", "contract_terminated")
    def on_contract_terminated(self, event):
        if self._customer_of(event) is not None:
            self._check_closure(self._customer_of(event))

    @event_handler("billing", "payment_received")
    def on_payment_received(self, event):
        if self._customer_of(event) is not None:
            self._check_closure(self._customer_of(event))

    @event_handler("documents", "data_export_ready")
    def on_data_export_ready(self, event):
        """The customer's DS-GVO export is in Meine Dokumente: tell them (after commit, once)."""
        def prepare(uow, data):
            return mails.data_export_ready(customers.get_customer_row(uow.session, data["customer_id"]), data,
                                           self._web_url)
        self.db.deliver_once(event, prepare, self._mail_for(event))

    @event_handler("identity", "email_changed")
    def on_email_changed(self, event):
        """Notice to the previous e-mail address (mandatory security mail)."""
        def prepare(uow, data):
            return mails.email_changed(customers.get_customer_row(uow.session, data["customer_id"]), data,
                                       report_to=self.config.get("SECURITY_REPORT_ADDRESS") or "support@kundencenter.example")
        self.db.deliver_once(event, prepare, self._mail_for(event))

    # --- IP whitelist -----------------------------------------------------------------------

    @rpc
    def get_ip_whitelist(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.WhitelistSchema().dump(
                whitelist.get_whitelist(uow.session, customer_id, self.context.client_ip))

    @rpc
    def set_ip_whitelist(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.WhitelistInputSchema(), data)
        with self._uow() as uow:
            result = whitelist.set_whitelist(uow.session, customer_id, data, self.context.client_ip)
            sessions.sessions_changed(uow, customer_id=customer_id)
        return schemas.WhitelistSchema().dump(result)

    # --- contact persons --------------------------------------------------------------------

    @rpc
    def list_contacts(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.ContactListSchema().dump({"items": contacts.list_contacts(uow.session, customer_id)})

    @rpc
    def add_contact(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.ContactInputSchema(), data)
        with self._uow() as uow:
            return schemas.ContactSchema().dump(contacts.add_contact(uow.session, customer_id, data))

    @rpc
    def update_contact(self, contact_id, data):
        customer_id = self.context.require_customer()
        data = load(schemas.ContactInputSchema(), data)
        with self._uow() as uow:
            return schemas.ContactSchema().dump(
                contacts.update_contact(uow.session, customer_id, contact_id, data))

    @rpc
    def delete_contact(self, contact_id):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            contacts.delete_contact(uow.session, customer_id, contact_id)

    # --- notifications ----------------------------------------------------------------------

    @rpc
    def get_notifications(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.NotificationListSchema().dump(notifications.notification_settings(uow.session, customer_id))

    @rpc
    def set_notifications(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.NotificationInputSchema(), data)
        with self._uow() as uow:
            return schemas.NotificationListSchema().dump(
                notifications.set_notifications(uow.session, customer_id, data))

    # --- data-processing agreement ----------------------------------------------------------

    @rpc
    def get_av_agreement(self):
        customer_id = self.context.require_customer()
        with self._uow() as uow:
            return schemas.AvStatusSchema().dump(av_agreement.av_status(uow.session, customer_id))

    @rpc
    def sign_av_agreement(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.AvSignInputSchema(), data)
        with self._uow() as uow:
            result = av_agreement.sign_av(uow, customer_id, data, self.context.client_ip)
        return schemas.AvSignatureSchema().dump(result)

    # --- staff (back office) ----------------------------------------------------------------

    @rpc
    def staff_search_customers(self, params=None):
        self.context.require_staff("support", "billing")
        params = load(schemas.CustomerQuerySchema(), params)
        with self._uow() as uow:
            page = staff.search_customers(uow.session, params["q"], params["page"], params["per_page"])
        return schemas.CustomerPageSchema().dump(page)

    @rpc
    def staff_get_customer(self, customer_id):
        self.context.require_staff("support", "billing")
        with self._uow() as uow:
            return schemas.StaffCustomerSchema().dump(staff.staff_customer_view(uow.session, int(customer_id)))

    @rpc
    def staff_owner_change(self, customer_id, data):
        staff_id = self.context.require_staff("support")
        data = load(schemas.OwnerChangeSchema(), data)
        with self._uow() as uow:
            result = staff.owner_change(uow, int(customer_id), data)
        log.info("owner change of customer %s completed by staff %s", customer_id, staff_id)
        return schemas.CustomerSchema().dump(result)

    @rpc
    def staff_clear_ip_whitelist(self, customer_id):
        staff_id = self.context.require_staff("support")
        with self._uow() as uow:
            whitelist.staff_clear_whitelist(uow.session, int(customer_id))
            sessions.sessions_changed(uow, customer_id=int(customer_id))
        log.info("IP whitelist of customer %s cleared by staff %s", customer_id, staff_id)

    # --- internal RPCs for other services (see docs/contracts.md) -------------------------

    @rpc
    def get_customer(self, customer_id):
        with self._uow() as uow:
            try:
                row = customers.get_customer_row(uow.session, int(customer_id))
            except (TypeError, ValueError):
                raise NotFound("Kunde nicht gefunden.") from None
        return customers.customer_view(row)

    @rpc
    def check_contact(self, customer_id, name, purpose):
        """May ``name`` (a name or an e-mail address) speak for the customer about ``purpose``?"""
        with self._uow() as uow:
            return contacts.check_contact(uow.session, int(customer_id), name, purpose)

    @rpc
    def notification_allowed(self, customer_id, topic):
        with self._uow() as uow:
            return notifications.notification_allowed(uow.session, int(customer_id), topic)
