"""dns's entrypoints: thin; the rules live in ``domain``."""
from functools import partial

from nameko.dependency_providers import Config

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.events import event_handler
from kc_common.rpc import PingMixin, rpc
from kc_dns import domain, schemas
from kc_dns.models import metadata


class DnsService(PingMixin):
    name = "dns"

    db = Database(metadata)
    context = CallContext()
    config = Config()

    @event_handler("catalog", "order_placed")
    def on_order_placed(self, event):
        self.db.handle_once(event, partial(domain.create_zones_for_order,
                                           defaults=self.config["DNS_DEFAULTS"]))

    @rpc
    def get_zone(self, zone):
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return schemas.ZoneSchema().dump(domain.get_zone(uow.session, customer_id, zone))
