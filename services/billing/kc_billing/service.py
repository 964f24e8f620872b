"""billing's entrypoints: thin; the rules live in ``domain``, ``schedule``, ``payments``,
``details`` and ``dunning``."""
import base64
import datetime as dt
import logging
import os

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy.exc import IntegrityError

from kc_common.context import CallContext
from kc_common.db import Database, utcnow
from kc_common.errors import (NotFound, ServiceUnavailable, Unauthenticated, Unprocessable,
                              ValidationFailed)
from kc_common.events import event_handler
from kc_common.mail import Mailer, message_id_for
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import load
from kc_billing import camt, details, domain, dunning, payments, schedule, schemas
from kc_billing.models import invoices, metadata
from kc_billing.psp import PspError, WebhookRejected, provider_from_settings
from kc_billing.settings import BillingSettings

log = logging.getLogger(__name__)

RUN_EVERY = float(os.environ.get("BILLING_RUN_EVERY", 3600))
RECONCILE_EVERY = float(os.environ.get("PSP_RECONCILE_EVERY", 30))
DUNNING_EVERY = float(os.environ.get("DUNNING_EVERY", 3600))


class Settings(DependencyProvider):
    def setup(self):
        self.settings = BillingSettings(self.container.config)
        self.provider = provider_from_settings(self.settings)

    def get_dependency(self, worker_ctx):
        return self


class BillingService(PingMixin):
    name = "billing"

    db = Database(metadata)
    context = CallContext()
    cfg = Settings()
    identity = TimedRpcProxy("identity")
    documents = TimedRpcProxy("documents")
    mailer = Mailer()

    # --- helpers ----------------------------------------------------------------------------

    @property
    def settings(self):
        return self.cfg.settings

    def _ensure_customer(self, customer_id):
        """Billing needs the buyer's address: from the replica, else ask identity once."""
        with self.db.unit_of_work() as uow:
            if domain.customer_known(uow.session, customer_id):
                return
        data = self.identity.get_customer(customer_id=customer_id)
        with self.db.unit_of_work() as uow:
            domain.upsert_customer(uow.session, data, as_of=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))

    # --- events consumed --------------------------------------------------------------------

    @event_handler("catalog", "order_placed")
    def on_order_placed(self, event):
        self._ensure_customer(event["data"]["customer_id"])
        self.db.handle_once(event, lambda uow, data: schedule.register_order(uow, data, self.settings))

    @event_handler("catalog", "contract_changed")
    def on_contract_changed(self, event):
        self._ensure_customer(event["data"]["customer_id"])
        self.db.handle_once(event, lambda uow, data: schedule.change_contract(uow, data, self.settings))

    @event_handler("catalog", "contract_cancelled")
    def on_contract_cancelled(self, event):
        self.db.handle_once(event, schedule.cancel_contract)

    @event_handler("catalog", "contract_terminated")
    def on_contract_terminated(self, event):
        self.db.handle_once(event, schedule.terminate_contract)

    @event_handler("identity", "customer_updated")
    def on_customer_updated(self, event):
        occurred = dt.datetime.fromisoformat(event["occurred_at"])
        self.db.handle_once(event, lambda uow, data: domain.upsert_customer(uow.session, data, occurred))

    @event_handler("documents", "document_stored")
    def on_document_stored(self, event):
        """An invoice PDF is ready: mail it to the invoice address (unless sent by post)."""
        data = event["data"]
        if data.get("kind") != "invoice":
            return

        def prepare(uow, data):
            try:
                number = int(data["ref"])
            except (KeyError, TypeError, ValueError):
                log.warning("document_stored without an invoice number ignored: %r", data.get("ref"))
                return None
            inv = uow.session.execute(invoices.select().where(invoices.c.number == number)).first()
            if inv is None or inv.customer_id != int(data["customer_id"]):
                log.warning("document_stored for unknown invoice %s ignored", data.get("ref"))
                return None
            if inv.by_post or not inv.invoice_email:
                return None
            return inv

        def deliver(inv):
            doc = self.documents.get_document(document_id=data["document_id"])
            self.mailer.send(
                to=inv.invoice_email, subject=f"Ihre Rechnung {inv.number}",
                body=invoice_mail_text(inv), message_id=message_id_for(event["id"], "billing"),
                attachments=[(doc.get("filename") or f"Rechnung-{inv.number}.pdf",
                              doc.get("content_type") or "application/pdf",
                              base64.b64decode(doc["content_b64"]))])
        self.db.deliver_once(event, prepare, deliver)

    @event_handler("billing", "dunning_notice")
    def on_dunning_notice(self, event):
        def deliver(data):
            self.mailer.send(to=data["invoice_email"],
                             subject=f"Zahlungserinnerung zu Rechnung {data['number']}",
                             body=dunning_mail_text(data, self.settings),
                             message_id=message_id_for(event["id"], "billing"))
        self.db.deliver_once(event, lambda uow, data: data if data.get("invoice_email") else None,
                             deliver)

    # --- timers -----------------------------------------------------------------------------

    @timer(interval=RUN_EVERY)
    def scheduled_billing_run(self):
        summary = self._run(domain.today_local())
        log.info("scheduled billing run: %s", summary)

    @timer(interval=RECONCILE_EVERY)
    def reconcile_payments(self):
        older = utcnow() - dt.timedelta(seconds=self.settings.psp_reconcile_after)
        with self.db.unit_of_work() as uow:
            todo = payments.reconcilable(uow.session, older)
        for row in todo:
            self._reconcile(row.id, row.psp_payment_id)

    @timer(interval=DUNNING_EVERY)
    def scheduled_dunning(self):
        dunning.run_dunning(self.db, domain.today_local(), self.settings)

    def _run(self, as_of):
        return schedule.run_billing(self.db, as_of, self.settings,
                                    fetch_customer=lambda cid: self.identity.get_customer(customer_id=cid))

    def _reconcile(self, payment_id, psp_payment_id):
        try:
            outcome = self.cfg.provider.get_payment(psp_payment_id)
        except PspError as exc:
            log.warning("reconciling payment %s: %s", payment_id, exc)
            return
        with self.db.unit_of_work() as uow:
            payments.apply_outcome(uow, payment_id, outcome["status"], outcome["amount"],
                                   outcome.get("reason"), psp_payment_id)

    # --- Kundenkonto ------------------------------------------------------------------------

    @rpc
    def get_account(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.AccountQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.AccountSchema().dump(domain.account(uow.session, customer_id, **params))

    @rpc
    def get_invoice(self, number):
        customer_id = self.context.require_customer()
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise NotFound("Rechnung nicht gefunden.")
        with self.db.unit_of_work() as uow:
            return schemas.InvoiceSchema().dump(domain.get_invoice(uow.session, customer_id, number))

    @rpc
    def account_standing(self):
        """For catalog's order policy: is the calling customer in arrears?"""
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return domain.account_standing(uow.session, customer_id, self.settings)

    # --- Zahlungsdetails --------------------------------------------------------------------

    @rpc
    def get_payment_details(self):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.PaymentDetailsSchema().dump(details.view(uow.session, customer_id))

    @rpc
    def update_payment_details(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.UpdatePaymentDetailsSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.PaymentDetailsSchema().dump(details.update_details(uow, customer_id, data))

    # --- Zahlung vornehmen ------------------------------------------------------------------

    @rpc
    def get_transfer_details(self):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.TransferDetailsSchema().dump(
                payments.transfer_details(uow.session, customer_id, self.settings))

    @rpc
    def create_payment(self, data, idempotency_key=None):
        """Card or instant transfer through the PSP; the customer continues at ``redirect_url``."""
        customer_id = self.context.require_customer()
        data = load(schemas.CreatePaymentSchema(), data)
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise ValidationFailed(fields={"Idempotency-Key": ["1 bis 200 Zeichen."]})
        for attempt in (1, 2):
            try:
                with self.db.unit_of_work() as uow:
                    row, _ = payments.start_payment(uow, customer_id, data["method"],
                                                    data.get("amount"), idempotency_key)
                break
            except IntegrityError:  # the same key raced in: the second attempt finds it
                if attempt == 2:
                    raise
        if row.status == payments.CREATED:
            try:
                psp = self.cfg.provider.create_payment(
                    reference=row.id, amount=row.amount, currency=row.currency, method=row.method,
                    description=f"Kundenkonto KC{customer_id}", idempotency_key=row.id,
                    return_url=f"{self.settings.psp_return_url}?payment_id={row.id}")
            except PspError as exc:
                log.warning("PSP create failed for payment %s: %s", row.id, exc)
                raise ServiceUnavailable("Der Zahlungsdienstleister ist nicht erreichbar. "
                                         "Bitte versuchen Sie es erneut.")
            with self.db.unit_of_work() as uow:
                payments.attach_psp(uow, row.id, psp)
                row = payments.get_payment(uow.session, customer_id, row.id)
        return schemas.PaymentSchema().dump(payments.payment_view(row))

    @rpc
    def get_payment(self, payment_id):
        """The payment's state; a pending one is asked at the PSP (the return page)."""
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            row = payments.get_payment(uow.session, customer_id, str(payment_id)[:36])
        if row.status == payments.PENDING and row.psp_payment_id:
            self._reconcile(row.id, row.psp_payment_id)
            with self.db.unit_of_work() as uow:
                row = payments.get_payment(uow.session, customer_id, row.id)
        return schemas.PaymentSchema().dump(payments.payment_view(row))

    @rpc
    def psp_webhook(self, raw_body=None, headers=None):
        """The PSP's signed notification (public route): verified, then booked exactly once."""
        try:
            event = self.cfg.provider.parse_webhook(raw_body, headers)
        except WebhookRejected as exc:
            log.warning("PSP webhook rejected: %s", exc)
            raise Unauthenticated("Ungültige Signatur.")
        with self.db.unit_of_work() as uow:
            booked = payments.apply_outcome(uow, event["reference"], event["status"], event["amount"],
                                            event["reason"], event["psp_payment_id"])
        log.info("PSP webhook %s for payment %s (%s): %s", event["event_id"], event["reference"],
                 event["status"], "booked" if booked else "nothing to do")
        return {"received": True}

    # --- staff ------------------------------------------------------------------------------

    @rpc
    def book_transfer(self, data):
        """Staff (billing) book an incoming bank transfer, matched by its reference."""
        self.context.require_staff("billing")
        data = load(schemas.BookTransferSchema(), data)
        for attempt in (1, 2):
            try:
                with self.db.unit_of_work() as uow:
                    result = payments.book_transfer(uow, data)
                return schemas.BookedTransferSchema().dump(result)
            except IntegrityError:  # the same statement line raced in: now it is found
                if attempt == 2:
                    raise

    @rpc
    def import_statement(self, data):
        """Staff (billing) upload a CAMT.053 statement: credit entries booked by reference."""
        self.context.require_staff("billing")
        data = load(schemas.StatementUploadSchema(), data)
        try:
            entries = camt.parse(base64.b64decode(data["files"][0].get("content_b64") or ""))
        except (camt.StatementInvalid, ValueError) as exc:
            raise ValidationFailed("Der Kontoauszug ist ungültig.", fields={"file": [str(exc)]})
        result = {"entries": len(entries), "booked": 0, "already_booked": 0, "unmatched": []}
        settled_up_to = {}  # customer -> latest value date booked from this statement
        for entry in entries:  # one transaction per entry: a bad line never blocks the others
            try:
                with self.db.unit_of_work() as uow:
                    booked = payments.book_transfer(uow, entry)
                result["booked" if booked["created"] else "already_booked"] += 1
                if booked["created"]:
                    day = entry.get("value_date") or domain.today_local()
                    customer = booked["customer_id"]
                    settled_up_to[customer] = max(day, settled_up_to.get(customer, day))
            except Unprocessable as exc:
                result["unmatched"].append({"transaction_id": entry["transaction_id"],
                                            "amount": str(entry["amount"]),
                                            "reference": entry["reference"], "reason": exc.message})
            except IntegrityError:  # a concurrent import booked it
                result["already_booked"] += 1
        for customer_id, up_to in settled_up_to.items():
            with self.db.unit_of_work() as uow:
                domain.book_settlement(uow.session, customer_id, up_to)
        return schemas.StatementImportSchema().dump(result)

    @rpc
    def refund_credit(self, data):
        """Staff (billing) pay a customer's credit (Guthaben) back: an ERSTATTUNG booking."""
        self.context.require_staff("billing")
        data = load(schemas.RefundInputSchema(), data)
        self._ensure_customer(data["customer_id"])
        with self.db.unit_of_work() as uow:
            return schemas.RefundSchema().dump(domain.refund_credit(
                uow, data["customer_id"], data["amount"], data["reason"]))

    @rpc
    def issue_credit_note(self, data):
        """Staff (billing) correct an invoice: a credit note booked as GU, never an edit."""
        self.context.require_staff("billing")
        data = load(schemas.CreditNoteSchema(), data)
        self._ensure_customer(data["customer_id"])
        with self.db.unit_of_work() as uow:
            return schemas.IssuedInvoiceSchema().dump(domain.credit_note(uow, data, self.settings))

    @rpc
    def run_billing(self, data=None):
        """Staff (billing) start a billing run now (the timer runs it on schedule)."""
        self.context.require_staff("billing")
        data = load(schemas.RunBillingSchema(), data)
        return schemas.RunSummarySchema().dump(self._run(data.get("as_of") or domain.today_local()))

    @rpc
    def run_dunning(self, data=None):
        self.context.require_staff("billing")
        data = load(schemas.RunBillingSchema(), data)
        return {"sent": dunning.run_dunning(self.db, data.get("as_of") or domain.today_local(),
                                            self.settings)}


def invoice_mail_text(inv):
    return (f"Guten Tag,\n\nanbei erhalten Sie Ihre Rechnung {inv.number} über "
            f"{inv.gross:.2f} EUR.\n"
            + (f"Bitte überweisen Sie den Betrag bis zum {inv.due_date:%d.%m.%Y} unter Angabe "
               f"von {inv.payment_reference}.\n" if inv.payment_method == "transfer" else "")
            + "\nMit freundlichen Grüßen\nIhr KundenCenter-Team\n")


def dunning_mail_text(data, settings):
    due = dt.date.fromisoformat(data["due_date"])
    seller = settings.seller
    return (f"Guten Tag,\n\nzu Rechnung {data['number']} (fällig am {due:%d.%m.%Y}) ist noch "
            f"ein Betrag von {data['open_amount']} EUR offen ({data['level']}. Erinnerung).\n"
            f"Bitte überweisen Sie ihn auf {seller['iban']} ({seller['bank']}) mit dem "
            f"Verwendungszweck {data['payment_reference']} oder zahlen Sie im KundenCenter.\n\n"
            "Mit freundlichen Grüßen\nIhr KundenCenter-Team\n")
