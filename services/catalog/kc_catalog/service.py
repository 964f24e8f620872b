"""catalog's entrypoints: thin; the rules live in ``domain``."""
import logging

from marshmallow import Schema, fields, validate
from nameko.timer import Timer

from kc_catalog import schemas
from kc_catalog.domain import access, contracts, orders, products, traffic
from kc_catalog.models import metadata
from kc_common.clock import berlin_today
from kc_common.context import CallContext
from kc_common.db import Database, to_json_safe
from kc_common.errors import Conflict, NotFound, ValidationFailed
from kc_common.events import event_handler
from kc_common.privacy import answer_export_request
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import INT_MAX, INT_MIN, load, load_idempotency_key
from kc_common.settings import Secret, Settings

log = logging.getLogger(__name__)

STAFF_ROLE = "admin"  # catalog management and traffic feed: operators with the admin role


# The development secret committed in config.yaml (refused outside KC_ENV=development).
DEV_LOGIN_LINK_SECRET = "dev-only-catalog-login-link-secret-change-me"
SECRETS = (Secret("LOGIN_LINK_SECRET", "CATALOG_LOGIN_LINK_SECRET", dev=(DEV_LOGIN_LINK_SECRET,)),)


class PanelUrlsSchema(Schema):
    servercon = fields.Url(load_default="https://servercon.kundencenter.example/sso")
    reseller = fields.Url(load_default="https://reseller.kundencenter.example/sso")
    cloud = fields.Url(load_default="https://cloud.kundencenter.example/sso")


class CatalogSettings(Schema):
    PANEL_URLS = fields.Nested(PanelUrlsSchema, load_default=lambda: PanelUrlsSchema().load({}))
    LOGIN_LINK_SECRET = fields.String(load_default=DEV_LOGIN_LINK_SECRET,
                                      validate=validate.Length(min=32))
    LOGIN_LINK_TTL = fields.Integer(load_default=120, validate=validate.Range(min=10, max=900))
    IP_POOL = fields.String(load_default=orders.DEFAULT_IP_POOL)


class JobTimer(Timer):
    """nameko's timer with the interval from config ``JOBS_INTERVAL`` (seconds)."""

    def setup(self):
        self.interval = float(self.container.config.get("JOBS_INTERVAL", self.interval))
        super().setup()


def _id(value, field="contract_id"):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(fields={field: ["Keine gültige Nummer."]}) from None
    if not INT_MIN <= number <= INT_MAX:  # no row has it (and no query overflows)
        raise NotFound("Vertrag nicht gefunden.")
    return number


class CatalogService(PingMixin):
    name = "catalog"

    db = Database(metadata)
    context = CallContext()
    settings = Settings(CatalogSettings, secrets=SECRETS)
    billing = TimedRpcProxy("billing", timeout=3.0)

    # ------------------------------------------------------------ catalog

    @rpc
    def list_products(self, params=None):
        params = load(schemas.ProductQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.ProductListSchema().dump(products.list_products(uow.session, **params))

    @rpc
    def staff_list_products(self, params=None):
        self.context.require_staff(STAFF_ROLE)
        params = load(schemas.StaffProductQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.ProductListSchema().dump(products.list_products(uow.session, **params))

    @rpc
    def staff_create_product(self, data):
        staff_id = self.context.require_staff(STAFF_ROLE)
        data = load(schemas.ProductCreateSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.ProductSchema().dump(products.create_product(uow.session, data, staff_id))

    @rpc
    def staff_update_product(self, product_id, data):
        staff_id = self.context.require_staff(STAFF_ROLE)
        data = load(schemas.ProductUpdateSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.ProductSchema().dump(products.update_product(uow.session, product_id, data, staff_id))

    @rpc
    def staff_price_history(self, product_id):
        self.context.require_staff(STAFF_ROLE)
        with self.db.unit_of_work() as uow:
            return schemas.PriceHistorySchema().dump(products.price_history(uow.session, product_id))

    # ------------------------------------------------------------ ordering

    @rpc
    def place_order(self, data, idempotency_key=None):
        customer_id = self.context.require_customer()
        data = load(schemas.PlaceOrderSchema(), data)
        idempotency_key = load_idempotency_key(idempotency_key)
        with self.db.unit_of_work() as uow:
            existing = orders.find_existing(uow.session, customer_id, idempotency_key, data["items"])
        if existing is None:
            # Order policy: active at once unless billing says the account is in arrears
            # (then pending until payment_received). Billing not answering in time: 503,
            # nothing is written; the client retries with the same Idempotency-Key.
            standing = self.billing.account_standing()
            try:
                with self.db.unit_of_work() as uow:
                    existing, _ = orders.place_order(uow, customer_id, data["items"], idempotency_key,
                                                     in_arrears=bool(standing.get("in_arrears")),
                                                     ip_pool=self.settings["IP_POOL"])
                    # The answer is read in the same transaction: once the order commits (before
                    # the caller's deadline) it is answered. A unit of work of its own after
                    # the commit could pass the deadline and answer 503 for a placed order.
                    placed = schemas.OrderSchema().dump(
                        contracts.order_contracts(uow.session, customer_id, existing))
                return placed
            except Conflict:
                # The same key placed concurrently: the one that committed is the answer.
                with self.db.unit_of_work() as uow:
                    existing = orders.find_existing(uow.session, customer_id, idempotency_key,
                                                    data["items"])
                if existing is None:
                    raise
        with self.db.unit_of_work() as uow:
            return schemas.OrderSchema().dump(contracts.order_contracts(uow.session, customer_id, existing))

    @rpc
    def quote_order(self, data):
        """Net, VAT and gross of an order before it is placed: catalog resolves the items as
        ``place_order`` would (same checks), billing prices them as it invoices them."""
        customer_id = self.context.require_customer()
        data = load(schemas.PlaceOrderSchema(), data)
        with self.db.unit_of_work() as uow:
            order = orders.quote_items(uow.session, customer_id, data["items"])
        quote = schemas.InvoiceQuoteSchema().load(self.billing.quote_order(order=to_json_safe(order)))
        return schemas.OrderQuoteSchema().dump(dict(quote, items=order["items"]))

    # ------------------------------------------------------------ Meine Produkte

    def _page(self, schema, page_schema, params, **fixed):
        customer_id = self.context.require_customer()
        params = load(schema(), params)
        params.update(fixed)
        with self.db.unit_of_work() as uow:
            return page_schema().dump(contracts.list_contracts(uow.session, customer_id, **params))

    @rpc
    def list_contracts(self, params=None):
        return self._page(schemas.AllContractQuerySchema, schemas.ContractPageSchema, params)

    @rpc
    def list_webhosting(self, params=None):
        return self._page(schemas.ContractQuerySchema, schemas.WebhostingPageSchema, params,
                          category="webhosting")

    @rpc
    def list_servers(self, params=None):
        return self._page(schemas.ContractQuerySchema, schemas.ServerPageSchema, params, category="server")

    @rpc
    def list_other(self, params=None):
        return self._page(schemas.ContractQuerySchema, schemas.OtherPageSchema, params, category="other")

    @rpc
    def get_contract(self, contract_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.ContractSchema().dump(
                contracts.get_contract(uow.session, customer_id, _id(contract_id)))

    # ------------------------------------------------------------ Kündigung, Tarifwechsel

    @rpc
    def cancellation_preview(self, contract_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.CancellationPreviewSchema().dump(
                contracts.cancellation_preview(uow.session, customer_id, _id(contract_id)))

    @rpc
    def cancel_contract(self, contract_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.ContractSchema().dump(contracts.cancel(uow, customer_id, _id(contract_id)))

    @rpc
    def tariff_options(self, contract_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.TariffOptionsSchema().dump(
                contracts.tariff_options(uow.session, customer_id, _id(contract_id)))

    @rpc
    def quote_tariff_change(self, contract_id, params=None):
        """The prorated amounts of a tariff change before it is made (billing's proration)."""
        customer_id = self.context.require_customer()
        params = load(schemas.TariffQuoteQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            change = contracts.quote_tariff_change(uow.session, customer_id, _id(contract_id),
                                                   params["product_id"])
        quote = schemas.InvoiceQuoteSchema().load(
            self.billing.quote_tariff_change(change=to_json_safe(change)))
        return schemas.TariffQuoteSchema().dump(dict(quote, **{k: change[k] for k in (
            "contract_id", "change", "effective_date", "period_start", "period_end", "old", "new")}))

    @rpc
    def change_tariff(self, contract_id, data):
        customer_id = self.context.require_customer()
        data = load(schemas.TariffChangeSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.ContractSchema().dump(
                contracts.change_tariff(uow, customer_id, _id(contract_id), data["product_id"]))

    # ------------------------------------------------------------ Zugang

    @rpc
    def create_login_link(self, contract_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            link = access.create_link(uow, customer_id, _id(contract_id),
                                      secret=self.settings["LOGIN_LINK_SECRET"],
                                      panel_urls=self.settings["PANEL_URLS"],
                                      ttl=self.settings["LOGIN_LINK_TTL"],
                                      client_ip=self.context.client_ip)
        return schemas.LoginLinkSchema().dump(link)

    @rpc
    def redeem_login_link(self, data):
        """For the admin panels: exchange a login token (once) for who is logging in."""
        data = load(schemas.RedeemSchema(), data)
        with self.db.unit_of_work() as uow:
            result = access.redeem(uow, data["token"], secret=self.settings["LOGIN_LINK_SECRET"],
                                   ttl=self.settings["LOGIN_LINK_TTL"])
        return schemas.RedeemResultSchema().dump(result)

    # ------------------------------------------------------------ traffic

    @rpc
    def report_traffic(self, data):
        self.context.require_staff(STAFF_ROLE)
        data = load(schemas.TrafficReportSchema(), data)
        with self.db.unit_of_work() as uow:
            return schemas.TrafficReportResultSchema().dump(traffic.report(uow, data["items"]))

    @rpc
    def traffic_usage(self, contract_id, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.TrafficQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.TrafficUsageSchema().dump(
                traffic.usage(uow.session, customer_id, _id(contract_id), **params))

    @rpc
    def traffic_overview(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.TrafficOverviewQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.TrafficOverviewSchema().dump(
                traffic.overview(uow.session, customer_id, months=params["months"]))

    # ------------------------------------------------------------ billing's events

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """DS-GVO export: catalog's part for the customer, as ``data_export_part`` (to documents)."""
        self.db.handle_once(event, lambda uow, data: answer_export_request(
            uow, metadata, "catalog", data, exclude=("login_tokens",)))

    @event_handler("identity", "closure_requested")
    def on_closure_requested(self, event):
        """Konto schließen: every running contract is cancelled by its notice period."""
        self.db.handle_once(event, contracts.cancel_all_for_closure)

    @event_handler("identity", "customer_erased")
    def on_customer_erased(self, event):
        self.db.handle_once(event, contracts.forget_customer)

    @rpc
    def open_contracts(self, customer_id):
        """Internal (identity's closure check): contracts of the customer not terminated yet."""
        with self.db.unit_of_work() as uow:
            return {"open": contracts.open_contracts(uow.session, int(customer_id))}

    @event_handler("billing", "invoice_issued")
    def on_invoice_issued(self, event):
        self.db.handle_once(event, contracts.on_invoice_issued)

    @event_handler("billing", "payment_received")
    def on_payment_received(self, event):
        self.db.handle_once(event, contracts.on_payment_received)

    # ------------------------------------------------------------ the lifecycle job

    @JobTimer.decorator(interval=300)
    def lifecycle_job(self):
        """Terminate contracts whose term ended; apply downgrades that are due."""
        self._run_jobs()

    @rpc
    def run_jobs(self):
        """Operators: run the lifecycle job now (it also runs every JOBS_INTERVAL seconds)."""
        self.context.require_staff(STAFF_ROLE)
        return schemas.JobRunSchema().dump(self._run_jobs())

    def _run_jobs(self, today=None):
        today = today or berlin_today()
        with self.db.unit_of_work() as uow:
            ended, downgrades = contracts.due_contract_ids(uow.session, today)
        done = {"terminated": 0, "downgraded": 0}
        for contract_id in ended:  # one transaction per contract: one failure stops nothing else
            try:
                with self.db.unit_of_work() as uow:
                    done["terminated"] += contracts.terminate_one(uow, contract_id, today)
            except Exception:  # noqa: BLE001 - logged; the next run tries again
                log.exception("terminating contract %s failed", contract_id)
        for contract_id in downgrades:
            try:
                with self.db.unit_of_work() as uow:
                    done["downgraded"] += contracts.apply_downgrade(uow, contract_id, today)
            except Exception:  # noqa: BLE001
                log.exception("downgrade of contract %s failed", contract_id)
        if any(done.values()):
            log.info("lifecycle job: %s", done)
        return done
