"""billing's entrypoints: thin; the rules live in ``domain``."""
from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.events import event_handler
from kc_common.rpc import PingMixin, rpc
from kc_common.schemas import load
from kc_billing import domain, schemas
from kc_billing.models import metadata


class BillingService(PingMixin):
    name = "billing"

    db = Database(metadata)
    context = CallContext()

    @event_handler("catalog", "order_placed")
    def on_order_placed(self, event):
        self.db.handle_once(event, domain.invoice_order)

    @rpc
    def get_account(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.AccountQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            return schemas.AccountSchema().dump(domain.account(uow.session, customer_id, **params))

    @rpc
    def account_standing(self):
        """For catalog's order policy: is the calling customer in arrears?"""
        customer_id = self.context.require_customer()
        with self.db.unit_of_work() as uow:
            return domain.account_standing(uow.session, customer_id)
