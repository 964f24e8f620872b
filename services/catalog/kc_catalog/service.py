"""catalog's entrypoints: thin; the rules live in ``domain``."""
from sqlalchemy import select

from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.rpc import PingMixin, rpc
from kc_common.schemas import load
from kc_catalog import domain, schemas
from kc_catalog.models import metadata, products


class CatalogService(PingMixin):
    name = "catalog"

    db = Database(metadata)
    context = CallContext()

    @rpc
    def list_products(self):
        with self.db.unit_of_work() as uow:
            rows = uow.session.execute(select(products).order_by(products.c.kind, products.c.id)).all()
        return schemas.ProductListSchema().dump({"items": [r._mapping for r in rows]})

    @rpc
    def place_order(self, data, idempotency_key=None):
        customer_id = self.context.require_customer()
        data = load(schemas.PlaceOrderSchema(), data)
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise domain.ValidationFailed(fields={"Idempotency-Key": ["1 bis 200 Zeichen."]})
        with self.db.unit_of_work() as uow:
            order_id, _ = domain.place_order(uow, customer_id, data["items"], idempotency_key)
        with self.db.unit_of_work() as uow:
            return schemas.OrderSchema().dump(domain.order_contracts(uow.session, customer_id, order_id))

    @rpc
    def list_contracts(self, params=None):
        customer_id = self.context.require_customer()
        params = load(schemas.ContractQuerySchema(), params)
        with self.db.unit_of_work() as uow:
            page = domain.list_contracts(uow.session, customer_id, **params)
        return schemas.ContractPageSchema().dump(page)
