"""documents's entrypoints: thin; the rules live in ``domain``, rendering in worker processes."""
import base64
import hashlib
import json
import logging

from sqlalchemy.exc import IntegrityError

from kc_common.clock import berlin_today
from kc_common.context import CallContext
from kc_common.db import Database, json_default
from kc_common.errors import Conflict, NotFound
from kc_common.events import event_handler
from kc_common.privacy import customer_part
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.schemas import load
from kc_common.settings import Configured
from kc_documents import av, domain, exports, invoice, library, schemas, storage
from kc_documents.formatting import as_date, number_de
from kc_documents.models import metadata
from kc_documents.pool import RendererPool

log = logging.getLogger(__name__)


class DocumentsConfig:
    """Storage, the provider's own data (documents' letterhead) and the manual link, from config."""

    def __init__(self, config):
        self.storage = storage.from_config(config)
        self.provider = library.provider_from_config(config)
        self.manual_url = (config.get("SERVERCON_MANUAL_URL")
                           or "https://wissen.kundencenter.example/servercon/onlinehandbuch")
        self.pricelist_cache = {}


class DocumentsService(PingMixin):
    name = "documents"

    db = Database(metadata)
    context = CallContext()
    renderer = RendererPool()
    cfg = Configured(DocumentsConfig)
    catalog = TimedRpcProxy("catalog")

    # --- events --------------------------------------------------------------------------------

    @event_handler("billing", "invoice_issued")
    def on_invoice_issued(self, event):
        """Render and store the invoice PDF (PDF/A-3 + EN 16931 XML) once per invoice number.

        An event without the full contract payload (seller, buyer, lines…), with more than
        ``invoice.MAX_LINES`` lines or too large to render within ``RENDER_TIMEOUT`` raises
        Unprocessable naming why: it is parked in the dead-letter queue
        (``python -m kc_common.dlq``)."""
        domain.check_invoice_size(event.get("data"), invoice.MAX_LINES)
        inv = domain.parse_event(schemas.InvoiceIssuedSchema(), event.get("data"), "invoice_issued")
        with self.db.unit_of_work() as uow:
            if domain.find_document(uow.session, "invoice", inv["number"]) is not None:
                log.info("invoice %s has its PDF already; event %s ignored", inv["number"], event.get("id"))
                return
        pdf, _xml = domain.render_or_park(
            self.renderer, f"Rechnung {inv['number']} ({number_de(len(inv['lines']))} Positionen)",
            invoice.render_invoice, inv)

        def store(uow, _data):
            return domain.store_document(
                uow, customer_id=inv["customer_id"], kind="invoice", ref=inv["number"],
                title=invoice.title(inv), filename=domain.invoice_filename(inv["number"], inv.get("kind")),
                data=pdf, document_date=as_date(inv["issued_at"]), storage=self.cfg.storage)
        self.db.handle_once(event, store)

    @event_handler("identity", "av_agreement_signed")
    def on_av_agreement_signed(self, event):
        """Render and store the signed data-processing agreement once per agreement."""
        agreement = domain.parse_event(schemas.AvAgreementSignedSchema(), event.get("data"),
                                       "av_agreement_signed")
        ref = str(agreement["agreement_id"])
        with self.db.unit_of_work() as uow:
            if domain.find_document(uow.session, "av_agreement", ref) is not None:
                return
        pdf = domain.render_or_park(self.renderer, f"AV-Vereinbarung {ref}", av.render_av, agreement,
                                    self.cfg.provider)

        def store(uow, _data):
            return domain.store_document(
                uow, customer_id=agreement["customer_id"], kind="av_agreement", ref=ref,
                title=agreement["title"], filename=domain.av_filename(ref), data=pdf,
                document_date=as_date(agreement["signed_at"]), storage=self.cfg.storage)
        self.db.handle_once(event, store)

    # --- DS-GVO data export -------------------------------------------------------------------

    @rpc
    def request_data_export(self):
        """The customer asks for an export of everything the services hold about them."""
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            result = exports.request_export(uow, customer_id)
        return schemas.DataExportSchema().dump(result)

    @rpc
    def get_data_export(self):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.DataExportSchema().dump(exports.latest(uow.session, customer_id))

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """documents' own part: the metadata of the customer's documents (the PDFs go in as files)."""
        def own_part(uow, data):
            part = customer_part(uow.session, metadata, data["customer_id"],
                                 exclude=("data_exports", "data_export_parts", "library_documents",
                                          "library_versions"))
            return exports.record_part(uow, {"export_id": data["export_id"], "service": "documents",
                                             "customer_id": data["customer_id"], "part": part})
        self.db.handle_once(event, own_part)
        self._assemble(event["data"].get("export_id"))

    def _on_part(self, event):
        self.db.handle_once(event, exports.record_part)
        self._assemble((event.get("data") or {}).get("export_id"))

    def _assemble(self, export_id):
        """Build the ZIP once all parts are in (also on a redelivery: a crash between the last
        part and the ZIP is repaired by the retry)."""
        if not export_id:
            return
        with self.db.unit_of_work() as uow:
            prepared = exports.pending_complete(uow.session, str(export_id))
        if prepared is None:
            return
        stored = exports.build_zip(prepared, self.cfg.storage)
        with self.db.unit_of_work() as uow:
            exports.finish(uow, prepared, stored)

    @event_handler("identity", "data_export_part")
    def on_identity_part(self, event):
        self._on_part(event)

    @event_handler("catalog", "data_export_part")
    def on_catalog_part(self, event):
        self._on_part(event)

    @event_handler("billing", "data_export_part")
    def on_billing_part(self, event):
        self._on_part(event)

    @event_handler("dns", "data_export_part")
    def on_dns_part(self, event):
        self._on_part(event)

    @event_handler("support", "data_export_part")
    def on_support_part(self, event):
        self._on_part(event)

    @event_handler("identity", "customer_erased")
    def on_customer_erased(self, event):
        """Konto geschlossen: the export archives go (rows in the transaction, files after it)."""
        keys = self.db.handle_once(event, lambda uow, data: exports.forget_customer(uow, data, self.cfg.storage))
        for key in keys or ():
            self.cfg.storage.delete(key)

    # --- the customer's own documents ----------------------------------------------------------

    @rpc
    def list_my_documents(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.DocumentQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            page = domain.list_documents(uow.session, customer_id, **params)
        return schemas.DocumentPageSchema().dump(page)

    @rpc
    def download_my_document(self, document_id):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return domain.document_file(uow.session, self.cfg.storage, document_id, customer_id)

    @rpc
    def download_invoice(self, number):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return domain.invoice_file(uow.session, self.cfg.storage, number, customer_id)

    @rpc
    def staff_download_invoice(self, number):
        """Staff (billing): the invoice PDF by number, also of a closed (erased) account."""
        self.context.require_staff("billing")
        with self.db.unit_of_work() as uow:
            row = domain.find_document(uow.session, "invoice", number)
            if row is None:
                raise NotFound("Zu dieser Rechnung gibt es (noch) kein PDF.")
            return domain.invoice_file(uow.session, self.cfg.storage, number, row.customer_id)

    @rpc
    def get_document(self, document_id):
        """Internal (e.g. billing attaches the invoice PDF to its mail); a customer caller gets
        only their own documents."""
        customer_id = self.context.customer_id
        with self.db.unit_of_work() as uow:
            return domain.document_file(uow.session, self.cfg.storage, document_id, customer_id)

    # --- the library ---------------------------------------------------------------------------

    @rpc
    def list_library(self):
        today = berlin_today()
        with self.db.unit_of_work() as uow:
            domain.ensure_library(uow.session)
        with self.db.unit_of_work() as uow:
            listing = domain.library_list(uow.session, self.cfg.manual_url, today)
        return schemas.LibraryListSchema().dump(listing)

    @rpc
    def list_library_versions(self, slug):
        with self.db.unit_of_work() as uow:
            domain.ensure_library(uow.session)
        with self.db.unit_of_work() as uow:
            return schemas.LibraryVersionListSchema().dump(domain.library_versions_list(uow.session, slug))

    @rpc
    def download_library(self, slug, version=None):
        today = berlin_today()
        with self.db.unit_of_work() as uow:
            domain.ensure_library(uow.session)
        with self.db.unit_of_work() as uow:
            entry, row = domain.library_version_row(uow.session, slug, version, today)
            data = domain.cached_version_bytes(uow.session, self.cfg.storage, row) if row else None
        if entry.source == "catalog":
            return self._pricelist(today)
        if data is None:  # a built-in version not rendered yet: render once, keep it
            context = library.template_context(row.slug, row.version, row.valid_from)
            rendered = self.renderer.run(library.render_library, row.template, context, self.cfg.provider)
            with self.db.unit_of_work() as uow:
                data = domain.save_rendered_version(uow.session, self.cfg.storage, row, rendered)
        return domain.version_file(row, data)

    def _pricelist(self, today):
        result = self.catalog.list_products()
        products = result.get("items", []) if isinstance(result, dict) else list(result)
        key = hashlib.sha256(json.dumps([products, today], default=json_default,
                                        sort_keys=True).encode()).hexdigest()
        cache = self.cfg.pricelist_cache
        if key not in cache:
            data = self.renderer.run(library.render_pricelist, library.pricelist_groups(products),
                                     self.cfg.provider, today)
            cache.clear()  # only the newest catalog state is worth keeping
            cache[key] = data
        data = cache[key]
        return {"filename": f"Preisliste_{today.isoformat()}.pdf", "content_type": domain.PDF,
                "content_b64": base64.b64encode(data).decode("ascii"),
                "sha256": storage.sha256(data)}

    @rpc
    def publish_library_version(self, slug, data=None):
        staff_id = self.context.require_staff("admin")
        data = load(schemas.PublishVersionSchema(), data)
        try:
            with self.db.unit_of_work() as uow:
                domain.ensure_library(uow.session)
            with self.db.unit_of_work() as uow:
                result = domain.publish_version(uow, self.cfg.storage, slug, data, staff_id,
                                                berlin_today())
        except IntegrityError:  # a concurrent publish of the same version
            raise Conflict("Diese Version gibt es schon.", {"fields": {"version": ["Schon vorhanden."]}}) from None
        return schemas.LibraryVersionSchema().dump(result)
