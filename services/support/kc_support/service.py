"""support's entrypoints: thin; the rules live in ``domain`` (and ``attachments``, ``mails``)."""
import base64
import hmac
import logging

from marshmallow import Schema, fields, validate

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.errors import NotFound, Unauthenticated, ValidationFailed
from kc_common.events import event_handler
from kc_common.mail import Mailer, message_id_for
from kc_common.privacy import answer_export_request
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import load
from kc_common.settings import Secret, Settings
from kc_support import attachments as att
from kc_support import domain, inbound, mails, schemas
from kc_support.models import metadata
from kc_support.storage import AttachmentStorage

log = logging.getLogger(__name__)

PURPOSE = "support"
TOPIC = "support_updates"
INBOUND_HEADER = "X-Inbound-Secret"


# Empty: no replies by mail (the webhook is off); set, it must be your own.
SECRETS = (Secret("SUPPORT_INBOUND_SECRET", "SUPPORT_INBOUND_SECRET", optional=True),)


class SettingsSchema(Schema):
    ATTACHMENT_MAX_FILE_BYTES = fields.Integer(load_default=10 * 1024 * 1024, validate=validate.Range(min=1))
    ATTACHMENT_MAX_TOTAL_BYTES = fields.Integer(load_default=25 * 1024 * 1024, validate=validate.Range(min=1))
    ATTACHMENT_MAX_FILES = fields.Integer(load_default=10, validate=validate.Range(min=1))
    # Replies by mail go to <local>+<request's secret token>@<domain> of this address; empty: none.
    SUPPORT_REPLY_ADDRESS = fields.String(load_default="support@kundencenter.example", allow_none=True)
    # Shared secret of the inbound-mail webhook (header X-Inbound-Secret); empty: webhook off.
    SUPPORT_INBOUND_SECRET = fields.String(load_default=None, allow_none=True)


def _merge_validation(*steps):
    """Run every validation step; raise one ValidationFailed naming all fields."""
    results, errors = [], {}
    for step in steps:
        try:
            results.append(step())
        except ValidationFailed as exc:
            errors.update(exc.fields)
            results.append(None)
    if errors:
        raise ValidationFailed(fields=errors)
    return results


class SupportService(PingMixin):
    name = "support"

    db = Database(metadata)
    context = CallContext()
    settings = Settings(SettingsSchema, secrets=SECRETS)
    store = AttachmentStorage()
    identity = TimedRpcProxy("identity")
    mailer = Mailer()

    # --- helpers ------------------------------------------------------------------------

    @property
    def _limits(self):
        return att.Limits(self.settings["ATTACHMENT_MAX_FILE_BYTES"],
                          self.settings["ATTACHMENT_MAX_TOTAL_BYTES"],
                          self.settings["ATTACHMENT_MAX_FILES"])

    def _form(self, schema, data):
        """Text fields and checked uploads of a multipart form (all errors at once)."""
        data = dict(data or {})
        files = data.pop("files", None)
        return _merge_validation(lambda: load(schema, data),
                                 lambda: att.check_uploads(files, self._limits))

    def _authorised(self, customer_id, name):
        """identity answers who may speak for the customer; an unknown name is refused (403)."""
        contact = self.identity.check_contact(customer_id=customer_id, name=name, purpose=PURPOSE)
        return domain.authorised_author(contact, name)

    def _store(self, uploads):
        """Write the bytes to the store (outside the database); rows for the message."""
        return [{"filename": u.filename, "content_type": u.content_type, "size": u.size,
                 "sha256": self.store.put(u.data)} for u in uploads]

    def _file(self, row):
        return {"filename": row.filename, "content_type": row.content_type,
                "content_b64": base64.b64encode(self.store.get(row.sha256)).decode("ascii"),
                "sha256": row.sha256}

    # --- customer -----------------------------------------------------------------------

    @rpc
    def open_request(self, data):
        """Supportanfrage erstellen: Ihr Name, Betreff, Anfrage, Anhang."""
        customer_id = self.context.require_customer()
        form, uploads = self._form(schemas.OpenRequestSchema(), data)
        author = self._authorised(customer_id, form["name"])
        stored = self._store(uploads)
        with self.db.unit_of_work() as uow:
            number = domain.open_request(uow, customer_id, author, form["subject"], form["message"],
                                         form["category"], stored)
        return self.get_request(number)

    @rpc
    def list_requests(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.RequestQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            page = domain.list_for_customer(uow.session, customer_id, **params)
        return schemas.RequestPageSchema().dump(page)

    @rpc
    def get_request(self, number):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            view = domain.customer_view(uow.session, customer_id, number)
        return schemas.RequestSchema().dump(view)

    @rpc
    def reply(self, number, data):
        customer_id = self.context.require_customer()
        form, uploads = self._form(schemas.CustomerReplySchema(), data)
        with self.db.unit_of_work() as uow:  # 404 before anything else for another's request
            row = domain.customer_view(uow.session, customer_id, number)
        name = self._authorised(customer_id, form["name"])["name"] if form["name"] else row["author_name"]
        stored = self._store(uploads)
        with self.db.unit_of_work() as uow:
            domain.customer_reply(uow, customer_id, number, name, form["message"], stored)
        return self.get_request(number)

    @rpc
    def download_attachment(self, number, attachment_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            row = domain.attachment_for(uow.session, number, attachment_id, customer_id)
        return self._file(row)

    # --- replies by e-mail (inbound-mail webhook of the mail provider / MTA) ------------

    @rpc(sensitive_arguments=("raw_body", "headers"))
    def ingest_mail(self, raw_body, headers=None):
        """A customer's reply by e-mail lands in the thread (token in the address, see inbound)."""
        secret = self.settings["SUPPORT_INBOUND_SECRET"]
        given = (headers or {}).get(INBOUND_HEADER) or ""
        if not secret:
            raise NotFound("Antworten per E-Mail sind nicht eingerichtet.")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise Unauthenticated("Ungültiges Geheimnis für eingehende E-Mails.")
        parsed = inbound.parse_mail((raw_body or "").encode("utf-8", "surrogateescape"),
                                    self.settings["SUPPORT_REPLY_ADDRESS"])
        if parsed["auto_reply"]:
            log.info("automatic reply from %s ignored", parsed["author_address"])
            return {"accepted": False, "number": None, "reason": "auto_reply"}
        uploads = att.check_uploads(parsed["files"], self._limits)
        with self.db.unit_of_work() as uow:  # an unknown token is a 404 before anything is stored
            if domain.request_by_token(uow.session, parsed["token"]) is None:
                raise NotFound("Zu dieser Antwortadresse gibt es keine Supportanfrage.")
        stored = self._store(uploads)
        with self.db.unit_of_work() as uow:
            number = domain.mail_reply(uow, parsed["token"], parsed["author_name"], parsed["body"], stored)
        return {"accepted": True, "number": number, "reason": None}

    # --- staff desk (role support; admin passes) ---------------------------------------

    @rpc
    def staff_list_requests(self, params=None):
        staff_id = self.context.require_staff("support")
        params = load(schemas.StaffRequestQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            page = domain.list_for_staff(uow.session, staff_id, **params)
        return schemas.StaffRequestPageSchema().dump(page)

    @rpc
    def staff_get_request(self, number):
        self.context.require_staff("support")
        with self.db.unit_of_work() as uow:
            view = domain.staff_view(uow.session, number)
        return schemas.StaffRequestSchema().dump(view)

    @rpc
    def staff_assign(self, number, data):
        staff_id = self.context.require_staff("support")
        data = load(schemas.AssignSchema(), data)
        assignee = staff_id if data["staff_id"] == "me" else data["staff_id"]
        with self.db.unit_of_work() as uow:
            domain.assign(uow, number, assignee)
        return self.staff_get_request(number)

    @rpc
    def staff_reply(self, number, data):
        staff_id = self.context.require_staff("support")
        form, uploads = self._form(schemas.StaffReplySchema(), data)
        with self.db.unit_of_work() as uow:  # 404 before anything is stored
            domain.staff_view(uow.session, number)
        stored = self._store(uploads)
        with self.db.unit_of_work() as uow:
            domain.staff_reply(uow, staff_id, number, form["message"], form["state"], stored)
        return self.staff_get_request(number)

    @rpc
    def staff_set_state(self, number, data):
        staff_id = self.context.require_staff("support")
        data = load(schemas.StateSchema(), data)
        with self.db.unit_of_work() as uow:
            domain.change_state(uow, staff_id, number, data["state"], data["category"])
        return self.staff_get_request(number)

    @rpc
    def staff_add_note(self, number, data):
        staff_id = self.context.require_staff("support")
        data = load(schemas.NoteSchema(), data)
        with self.db.unit_of_work() as uow:
            domain.add_note(uow, staff_id, number, data["note"])
        return self.staff_get_request(number)

    def _verify_caller(self, customer_id, caller_name, password):
        """Telephone support: identity checks the caller's name and the telephone password
        (support passes it on, never stores, logs or shows it). -> (contact, name ok, password ok)"""
        contact = self.identity.check_contact(customer_id=customer_id, name=caller_name, purpose=PURPOSE)
        checked = self.identity.verify_phone_password(customer_id=customer_id, password=password)
        return (contact, *domain.caller_check(contact, checked))

    @rpc(sensitive_arguments=("data.phone_password",))
    def staff_record_call(self, number, data):
        """Verify a caller on a request and record the call (verified or not) on it."""
        staff_id = self.context.require_staff("support")
        data = load(schemas.CallInputSchema(), data)
        with self.db.unit_of_work() as uow:
            customer_id = domain.staff_view(uow.session, number)["customer_id"]
        _, name_ok, password_ok = self._verify_caller(customer_id, data["caller_name"], data["phone_password"])
        with self.db.unit_of_work() as uow:
            domain.record_call(uow, staff_id, number, data["caller_name"], name_ok, password_ok, data["note"])
        return self.staff_get_request(number)

    @rpc(sensitive_arguments=("data.phone_password",))
    def staff_open_request(self, data):
        """A new request taken on the phone: only for a verified caller (name and telephone
        password); the verified call is recorded on it and the customer gets the confirmation."""
        staff_id = self.context.require_staff("support")
        data = load(schemas.StaffOpenRequestSchema(), data)
        contact, name_ok, password_ok = self._verify_caller(data["customer_id"], data["caller_name"],
                                                            data["phone_password"])
        domain.require_verified_caller(name_ok, password_ok)
        author = domain.author_of(contact, data["caller_name"])
        with self.db.unit_of_work() as uow:
            number = domain.open_request(uow, data["customer_id"], author, data["subject"], data["message"],
                                         data["category"], via="phone")
            domain.record_call(uow, staff_id, number, data["caller_name"], True, True, data["note"])
        return self.staff_get_request(number)

    @rpc
    def staff_download_attachment(self, number, attachment_id):
        self.context.require_staff("support")
        with self.db.unit_of_work() as uow:
            row = domain.attachment_for(uow.session, number, attachment_id)
        return self._file(row)

    # --- mail, after commit (own events; retried, idempotent) ---------------------------

    def _recipients(self, request):
        customer = self.identity.get_customer(customer_id=request.customer_id)
        to = [customer["email"]] if customer.get("email") else []
        if request.author_email and request.author_email.lower() not in {t.lower() for t in to}:
            to.append(request.author_email)  # a contact person who wrote gets the mail too
        return to

    def _send(self, request, subject, body, message_id=None):
        to = self._recipients(request)
        if not to:
            log.warning("no e-mail address for customer %s; mail for %s not sent",
                        request.customer_id, request.number)
            return
        reply_to = domain.reply_address(self.settings["SUPPORT_REPLY_ADDRESS"], request.reply_token)
        self.mailer.send(to=to, subject=subject, body=body, reply_to=reply_to, message_id=message_id,
                         headers={"X-KC-Support-Request": request.number})

    @property
    def _replies_by_mail(self):
        return bool(self.settings["SUPPORT_REPLY_ADDRESS"])

    def _deliver(self, event):
        """The mail prepared from the database, sent after the read has committed."""
        def deliver(prepared):
            request, subject, body = prepared
            self._send(request, subject, body, message_id_for(event["id"], "support"))
        return deliver

    @event_handler("identity", "customer_erased")
    def on_customer_erased(self, event):
        """Konto geschlossen: the customer's requests are pseudonymised (their numbers stay)."""
        self.db.handle_once(event, domain.forget_customer)

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """DS-GVO export: support's part for the customer, as ``data_export_part`` (to documents)."""
        self.db.handle_once(event, lambda uow, data: answer_export_request(
            uow, metadata, "support", data))

    @event_handler("support", domain.OPENED)
    def mail_request_opened(self, event):
        """Confirmation to the customer (mandatory: it is the answer to their own action)."""
        def prepare(uow, data):
            request = domain.request_by_id(uow.session, data["request_id"])
            message = domain.message_by_id(uow.session, data["message_id"])
            return (request, *mails.opened(request, message, domain.files_of(uow.session, message),
                                           self._replies_by_mail))
        self.db.deliver_once(event, prepare, self._deliver(event))

    @event_handler("support", domain.REPLIED)
    def mail_staff_reply(self, event):
        """Every staff reply goes to the customer (mandatory: the request is handled by e-mail)."""
        def prepare(uow, data):
            if data.get("author") != "staff":  # the customer's own words are not mailed back
                return None
            request = domain.request_by_id(uow.session, data["request_id"])
            message = domain.message_by_id(uow.session, data["message_id"])
            return (request, *mails.staff_replied(request, message, domain.files_of(uow.session, message),
                                                  self._replies_by_mail))
        self.db.deliver_once(event, prepare, self._deliver(event))

    @event_handler("support", domain.STATE_CHANGED)
    def mail_state_changed(self, event):
        """Optional mail: only when the customer wants support updates (Mitteilungen)."""
        data = event["data"]

        def prepare(uow, data):
            request = domain.request_by_id(uow.session, data["request_id"])
            return (request, *mails.state_changed(request, data["old_state"], data["state"],
                                                  self._replies_by_mail))

        def deliver(prepared):
            if not self.identity.notification_allowed(customer_id=data["customer_id"], topic=TOPIC):
                log.info("customer %s does not want %s; no mail for %s", data["customer_id"], TOPIC,
                         data["number"])
                return
            self._deliver(event)(prepared)
        self.db.deliver_once(event, prepare, deliver)
