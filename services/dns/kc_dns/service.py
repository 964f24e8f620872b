"""dns's entrypoints: thin; the rules live in ``domain``, ``changeset`` and ``rules``."""
from functools import partial

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.events import event_handler
from kc_common.privacy import answer_export_request
from kc_common.rpc import PingMixin, rpc
from kc_common.schemas import load
from kc_common.settings import Settings
from kc_dns import domain, schemas
from kc_dns.models import metadata
from kc_dns.rules import Policy

_CHANGE_SET = schemas.ChangeSetSchema()      # built once: building one costs more than a load
_CHANGE_RESULT = schemas.ChangeResultSchema()


def apply_changes(db, customer_id, zone, data, headers, policy):
    """What the ``apply_changes`` RPC runs once the caller is known (bench/dns_changesets.py
    calls it too): load the body, one unit of work, dump the result."""
    changeset = load(_CHANGE_SET, data)
    with db.unit_of_work() as uow:
        result = domain.apply_changes(uow, customer_id, zone, headers, changeset["changes"], policy)
    return _CHANGE_RESULT.dump(result)


class DnsService(PingMixin):
    name = "dns"

    db = Database(metadata)
    context = CallContext()
    config = Settings()

    @property
    def policy(self):
        return Policy.from_config(self.config)

    @event_handler("documents", "data_export_requested")
    def on_data_export_requested(self, event):
        """DS-GVO export: dns's part for the customer, as ``data_export_part`` (to documents)."""
        self.db.handle_once(event, lambda uow, data: answer_export_request(
            uow, metadata, "dns", data))

    @event_handler("catalog", "order_placed")
    def on_order_placed(self, event):
        self.db.handle_once(event, partial(domain.create_zones_for_order,
                                           defaults=self.config["DNS_DEFAULTS"]))

    @event_handler("catalog", "contract_terminated")
    def on_contract_terminated(self, event):
        self.db.handle_once(event, domain.remove_zone_for_contract)

    @event_handler("identity", "customer_erased")
    def on_customer_erased(self, event):
        self.db.handle_once(event, domain.remove_zones_of_customer)

    @rpc
    def list_zones(self, params=None):
        customer_id = self.context.require_customer()
        query = load(schemas.ZoneQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.ZonePageSchema().dump(
                domain.list_zones(uow.session, customer_id, query["page"], query["per_page"]))

    @rpc
    def get_zone(self, zone):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.ZoneSchema().dump(domain.get_zone(uow.session, customer_id, zone))

    @rpc
    def apply_changes(self, zone, data=None, headers=None):
        return apply_changes(self.db, self.context.require_customer(), zone, data, headers,
                             self.policy)

    @rpc
    def export_zone(self, zone):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return domain.export_zone(uow.session, customer_id, zone)

    @rpc
    def import_zone(self, zone, data=None, headers=None):
        customer_id = self.context.require_customer()
        body = load(schemas.ImportSchema(), data)
        with self.db.unit_of_work() as uow:
            result = domain.import_zone(uow, customer_id, zone, headers, body["zone_file"],
                                        self.policy, replace_all=body["replace_all"],
                                        dry_run=body["dry_run"])
        return schemas.ImportResultSchema().dump(result)
