"""billing's entrypoints: thin; the rules live in ``domain``, ``schedule``, ``runs``,
``payments``, ``details``, ``statements``, ``sepa`` and ``dunning``, the mail texts in ``mails``."""
import base64
import datetime as dt
import logging
import os

import eventlet
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy.exc import IntegrityError

from kc_billing import (
    accounts,
    billrun,
    details,
    domain,
    dunning,
    mails,
    payments,
    runs,
    schedule,
    schemas,
    sepa,
    statements,
)
from kc_billing.models import metadata
from kc_billing.psp import PspError, WebhookRejected, provider_from_settings
from kc_billing.settings import SECRETS, BillingSettings
from kc_common.clock import berlin_today
from kc_common.context import CORRELATION_ID, DEADLINE, CallContext
from kc_common.db import Database, UnitOfWork, utcnow
from kc_common.errors import (
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
    ValidationFailed,
)
from kc_common.events import event_handler
from kc_common.mail import Mailer, message_id_for
from kc_common.privacy import answer_export_request
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import INT_MAX, load, load_idempotency_key
from kc_common.settings import Configured

log = logging.getLogger(__name__)

RUN_EVERY = float(os.environ.get("BILLING_RUN_EVERY", 3600))
RECONCILE_EVERY = float(os.environ.get("PSP_RECONCILE_EVERY", 30))
DUNNING_EVERY = float(os.environ.get("DUNNING_EVERY", 3600))
SEPA_COLLECT_EVERY = float(os.environ.get("SEPA_COLLECT_EVERY", 3600))


class BillingConfig:
    """billing's checked settings and the PSP client made from them (once, at start)."""

    def __init__(self, values):
        self.settings = BillingSettings(values)
        self.provider = provider_from_settings(self.settings)


# Work in an RPC call stops this long before the caller's deadline, to answer in time.
DEADLINE_RESERVE = 1.5


class _BackgroundDb:
    """Units of work of a background run: no RPC caller, so no caller's deadline."""

    def __init__(self, database, correlation_id=None):
        self._database, self._correlation_id = database, correlation_id

    def unit_of_work(self):
        return UnitOfWork(self._database, self._correlation_id)


class BillingRuns(DependencyProvider):
    """Billing runs in managed green threads of the container, not inside an RPC call.

    Starting a run answers at once (the run's id and state); the run itself may take
    minutes, far beyond any caller's deadline. On a graceful stop the running runs end
    after their current chunk of customers and are marked aborted (the next run completes them);
    if the process dies instead, the heartbeat and the owner tell (see ``runs``).
    """

    STOP_GRACE = 10.0

    def setup(self):
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.settings = BillingSettings(self.container.config)
        self.stopping = False
        self.threads = set()

    def stop(self):
        self.stopping = True
        with eventlet.Timeout(self.STOP_GRACE, False):
            for gt in list(self.threads):
                gt.wait()

    def kill(self):
        self.stopping = True

    def get_dependency(self, worker_ctx):
        return _RunsAccess(self, worker_ctx)


class _RunsAccess:
    def __init__(self, provider, worker_ctx):
        self._provider, self._worker_ctx = provider, worker_ctx

    @property
    def deadline(self):
        """Epoch seconds after which the RPC caller has given up (None: no caller waits)."""
        value = self._worker_ctx.data.get(DEADLINE)
        return float(value) if value else None

    def stop_at(self):
        """When work in this call stops so that its answer is still in time (None: never)."""
        deadline = self.deadline
        return None if deadline is None else deadline - DEADLINE_RESERVE

    def spawn(self, run_id, as_of, fetch_customer):
        provider = self._provider
        db = _BackgroundDb(provider.database, self._worker_ctx.data.get(CORRELATION_ID))

        def execute():
            try:
                summary = billrun.execute_run(db, run_id, as_of, provider.settings,
                                               fetch_customer=fetch_customer,
                                               should_stop=lambda: provider.stopping)
                log.info("billing run %s: %s", run_id, summary)
            except Exception:  # noqa: BLE001 - a managed thread that raises kills the service
                log.exception("billing run %s failed (recorded as aborted)", run_id)

        gt = provider.container.spawn_managed_thread(execute, identifier=f"billing_run:{run_id}")
        provider.threads.add(gt)
        gt.link(lambda _gt: provider.threads.discard(_gt))
        return gt


class BillingService(PingMixin):
    name = "billing"

    db = Database(metadata)
    context = CallContext()
    cfg = Configured(BillingConfig, secrets=SECRETS)
    identity = TimedRpcProxy("identity")
    documents = TimedRpcProxy("documents")
    mailer = Mailer()
    runs = BillingRuns()

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
            domain.upsert_customer(uow.session, data, as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))

    # --- events consumed --------------------------------------------------------------------

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """DS-GVO export: billing's part for the customer, as ``data_export_part`` (to documents)."""
        self.db.handle_once(event, lambda uow, data: answer_export_request(
            uow, metadata, "billing", data))

    @event_handler("identity", "customer_erased")
    def on_customer_erased(self, event):
        """Konto geschlossen: pseudonymise what no retention law requires (invoices stay)."""
        self.db.handle_once(event, accounts.forget_customer)

    @rpc
    def customer_balance(self, customer_id):
        """Internal (identity's closure check): the customer's balance (0.00 = settled)."""
        with self.db.unit_of_work() as uow:
            return accounts.customer_balance(uow.session, int(customer_id))

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

        def deliver(prepared):
            inv, mandate = prepared
            doc = self.documents.get_document(document_id=data["document_id"])
            self.mailer.send(
                to=inv.invoice_email, subject=mails.invoice_subject(inv),
                body=mails.invoice_text(inv, self.settings, mandate),
                message_id=message_id_for(event["id"], "billing"),
                attachments=[(mails.invoice_filename(inv, doc), doc.get("content_type") or "application/pdf",
                              base64.b64decode(doc["content_b64"]))])
        self.db.deliver_once(event, lambda uow, data: details.invoice_to_mail(uow.session, data), deliver)

    @event_handler("billing", "dunning_notice")
    def on_dunning_notice(self, event):
        def deliver(data):
            self.mailer.send(to=data["invoice_email"], subject=mails.dunning_subject(data),
                             body=mails.dunning_text(data, self.settings),
                             message_id=message_id_for(event["id"], "billing"))
        self.db.deliver_once(event, lambda uow, data: data if data.get("invoice_email") else None,
                             deliver)

    @event_handler("billing", "debit_returned")
    def on_debit_returned(self, event):
        """A Rücklastschrift was booked: tell the customer (German mail, after commit, once)."""
        def deliver(data):
            self.mailer.send(to=data["invoice_email"], subject=mails.debit_returned_subject(data),
                             body=mails.debit_returned_text(data, self.settings),
                             message_id=message_id_for(event["id"], "billing"))
        self.db.deliver_once(event, lambda uow, data: data if data.get("invoice_email") else None,
                             deliver)

    # --- timers -----------------------------------------------------------------------------

    @timer(interval=RUN_EVERY)
    def scheduled_billing_run(self):
        run, created = self._start_run(berlin_today(), "timer")
        if not created:
            log.info("scheduled billing run: run %s for %s is still running", run["run_id"],
                     run["as_of"])

    @timer(interval=RECONCILE_EVERY)
    def reconcile_payments(self):
        older = utcnow() - dt.timedelta(seconds=self.settings.psp_reconcile_after)
        with self.db.unit_of_work() as uow:
            todo = payments.reconcilable(uow.session, older)
        for row in todo:
            self._reconcile(row.id, row.psp_payment_id)

    @timer(interval=DUNNING_EVERY)
    def scheduled_dunning(self):
        dunning.run_dunning(self.db, berlin_today(), self.settings)

    @timer(interval=SEPA_COLLECT_EVERY)
    def scheduled_sepa_collection(self):
        """The collection for today + SEPA_LEAD_DAYS (once per due date: later ticks find it)."""
        self._collect(berlin_today() + dt.timedelta(days=self.settings.sepa_lead_days), "timer")

    def _collect(self, due_date, started_by):
        for attempt in (1, 2):
            try:
                with self.db.unit_of_work() as uow:
                    return sepa.collect(uow, due_date, self.settings, started_by=started_by)
            except IntegrityError:  # a collection for this due date raced in: now it is found
                if attempt == 2:
                    raise

    def _start_run(self, as_of, started_by):
        """Record a run (or find the one running for this as_of) and execute it in the
        background; returns ``(run view, created)`` at once."""
        with self.db.unit_of_work() as uow:
            run, created = runs.start(uow.session, as_of, self.settings, started_by=started_by)
        if created:
            self.runs.spawn(run["run_id"], as_of,
                            lambda cid: self.identity.get_customer(customer_id=cid))
        return run, created

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
        if params.get("date_from") and params.get("date_to") and params["date_from"] > params["date_to"]:
            # a rule between two fields, not a form the schema states: 422 through the gateway
            raise ValidationFailed(fields={"date_to": ["Das Startdatum liegt nach dem Enddatum."]})
        with self.db.unit_of_work() as uow:
            return schemas.AccountSchema().dump(accounts.account(uow.session, customer_id, **params))

    @rpc
    def get_invoice(self, number):
        customer_id = self.context.require_customer()
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise NotFound("Rechnung nicht gefunden.") from None
        if not 0 < number <= INT_MAX:  # no invoice has it (and no query overflows)
            raise NotFound("Rechnung nicht gefunden.")
        with self.db.unit_of_work() as uow:
            return schemas.InvoiceSchema().dump(accounts.get_invoice(uow.session, customer_id, number))

    @rpc
    def staff_get_invoice(self, number):
        """Staff (billing): any invoice by number, also of a closed (erased) account: invoices are
        kept for 10 years (§ 147 AO)."""
        self.context.require_staff("billing")
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise NotFound("Rechnung nicht gefunden.") from None
        with self.db.unit_of_work() as uow:
            return schemas.InvoiceSchema().dump(accounts.get_any_invoice(uow.session, number))

    @rpc
    def account_standing(self):
        """For catalog's order policy: is the calling customer in arrears?"""
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return accounts.account_standing(uow.session, customer_id, self.settings)

    # --- quotes (catalog asks before an order / a tariff change) ------------------------------

    @rpc
    def quote_order(self, order):
        """What ``order_placed`` with these items would invoice now (first periods).

        ``order``: catalog's ``order_placed`` data without contract ids, as JSON.
        The calling customer's own; computed by the code that books it.
        """
        customer_id = self.context.require_customer()
        lines = domain.invoice_lines_of_order(order)
        return self._quote(customer_id, lines)

    @rpc
    def quote_tariff_change(self, change):
        """What ``contract_changed`` with this change would invoice now (the proration)."""
        customer_id = self.context.require_customer()
        return self._quote(customer_id, schedule.proration_lines(change))

    def _quote(self, customer_id, lines):
        self._ensure_customer(customer_id)  # the VAT situation needs the address
        with self.db.unit_of_work() as uow:
            return schemas.InvoiceQuoteSchema().dump(
                domain.quote(uow.session, customer_id, lines, self.settings))

    # --- Zahlungsdetails --------------------------------------------------------------------

    @rpc
    def get_payment_details(self):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.PaymentDetailsSchema().dump(details.view(uow.session, customer_id, self.settings))

    @rpc
    def update_payment_details(self, data):
        customer_id = self.context.require_customer()
        data = load(schemas.UpdatePaymentDetailsSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.PaymentDetailsSchema().dump(details.update_details(uow, customer_id, data, self.settings))

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
        idempotency_key = load_idempotency_key(idempotency_key)
        return_url = payments.checked_return_url(data.get("return_url"), self.settings)
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
                    return_url=payments.with_payment_id(return_url, row.id))
            except PspError as exc:
                log.warning("PSP create failed for payment %s: %s", row.id, exc)
                raise ServiceUnavailable("Der Zahlungsdienstleister ist nicht erreichbar. "
                                         "Bitte versuchen Sie es erneut.") from exc
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
            raise Unauthenticated("Ungültige Signatur.") from None
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
        """Staff (billing) upload a bank statement (camt.053) or notification (camt.054).

        Validated against the ISO 20022 XSD of its version (400 naming ``file`` otherwise).
        Only booked credit transactions of the seller's own accounts are booked, each once
        (``statements``); each transaction is reported with its outcome. Bounded: at most
        ``STATEMENT_MAX_BYTES`` and ``STATEMENT_MAX_ENTRIES`` transactions. One short
        transaction per statement line; the import stops before the caller's deadline and
        says how many it did not reach (``complete`` false): uploading the same statement
        again books those, and nothing twice.
        """
        self.context.require_staff("billing")
        data = load(schemas.StatementUploadSchema(), data)
        transactions = statements.read_statement(data["files"][0].get("content_b64"), self.settings)
        result = statements.import_statement(self.db, transactions, self.settings, stop_at=self.runs.stop_at())
        return schemas.StatementImportSchema().dump(result)

    @rpc
    def list_clarifications(self, params=None):
        """Staff (billing): the Klärfälle, newest first (filter by status open/assigned)."""
        self.context.require_staff("billing")
        params = load(schemas.ClarificationQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.ClarificationPageSchema().dump(statements.clarifications(uow.session, **params))

    @rpc
    def assign_clarification(self, clarification_id, data):
        """Staff (billing) assign a Klärfall to a customer: the payment is booked then, once."""
        staff_id = self.context.require_staff("billing")
        try:
            clarification_id = int(clarification_id)
        except (TypeError, ValueError):
            raise NotFound("Klärfall nicht gefunden.") from None
        data = load(schemas.AssignClarificationSchema(), data)
        self._ensure_known_customer(data["customer_id"])
        for attempt in (1, 2):
            try:
                with self.db.unit_of_work() as uow:
                    view, created = statements.assign(uow, clarification_id, data["customer_id"],
                                                      data.get("invoice_number"), f"staff:{staff_id}")
                return schemas.ClarificationSchema().dump(dict(view, created=created))
            except IntegrityError:  # raced with an import of the same line
                if attempt == 2:
                    raise

    def _ensure_known_customer(self, customer_id):
        """A customer staff name: billing's replica, else identity (404 when there is none)."""
        try:
            self._ensure_customer(customer_id)
        except NotFound:
            raise Unprocessable(f"Kunde {customer_id} ist unbekannt.",
                                {"fields": {"customer_id": ["Unbekannte Kundennummer."]}}) from None

    @rpc
    def refund_credit(self, data):
        """Staff (billing) pay a customer's credit (Guthaben) back: an ERSTATTUNG booking."""
        self.context.require_staff("billing")
        data = load(schemas.RefundInputSchema(), data)
        self._ensure_customer(data["customer_id"])
        with self.db.unit_of_work() as uow:
            return schemas.RefundSchema().dump(accounts.refund_credit(
                uow, data["customer_id"], data["amount"], data["reason"]))

    @rpc
    def issue_credit_note(self, data):
        """Staff (billing) correct an invoice: a credit note booked as GU, never an edit."""
        self.context.require_staff("billing")
        data = load(schemas.CreditNoteSchema(), data)
        self._ensure_customer(data["customer_id"])
        with self.db.unit_of_work() as uow:
            return schemas.IssuedInvoiceSchema().dump(accounts.credit_note(uow, data, self.settings))

    @rpc
    def run_billing(self, data=None):
        """Staff (billing) start a billing run now (the timer runs it on schedule).

        Answers at once with the run (state ``running``); the run goes on in the background
        (``get_billing_run`` to follow it). A run for the same as_of still running is
        answered instead of starting a second (``already_running``).
        """
        staff_id = self.context.require_staff("billing")
        data = load(schemas.RunBillingSchema(), data)
        as_of = runs.check_as_of(data.get("as_of") or berlin_today(), self.settings)
        run, created = self._start_run(as_of, f"staff:{staff_id}")
        return schemas.BillingRunStartedSchema().dump(dict(run, already_running=not created))

    @rpc
    def get_billing_run(self, run_id):
        self.context.require_staff("billing")
        try:
            run_id = int(run_id)
        except (TypeError, ValueError):
            raise NotFound("Abrechnungslauf nicht gefunden.") from None
        with self.db.unit_of_work() as uow:
            return schemas.BillingRunSchema().dump(runs.get(uow.session, run_id, self.settings))

    @rpc
    def list_billing_runs(self, params=None):
        self.context.require_staff("billing")
        params = load(schemas.BillingRunQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.BillingRunPageSchema().dump(runs.page(uow.session, self.settings, **params))

    @rpc
    def run_sepa_collection(self, data=None):
        """Staff (billing) collect the SEPA direct debits due by a date: the pain.008 file.

        Idempotent per due date: a second call for the same date answers the same collection
        (``created`` false); an invoice is never collected twice.
        """
        staff_id = self.context.require_staff("billing")
        data = load(schemas.RunCollectionSchema(), data)
        default = berlin_today() + dt.timedelta(days=self.settings.sepa_lead_days)
        due_date = runs.check_as_of(data.get("due_date") or default, self.settings, field="due_date")
        view, created = self._collect(due_date, f"staff:{staff_id}")
        return schemas.SepaCollectionSchema().dump(dict(view, created=created))

    @rpc
    def run_dunning(self, data=None):
        """Staff (billing) remind overdue customers now; stops before the caller's deadline
        (``complete`` false: run again for the rest, each reminder level is sent once)."""
        self.context.require_staff("billing")
        data = load(schemas.RunBillingSchema(), data)
        as_of = runs.check_as_of(data.get("as_of") or berlin_today(), self.settings)
        return schemas.DunningRunSchema().dump(
            dunning.run_dunning(self.db, as_of, self.settings, stop_at=self.runs.stop_at()))
