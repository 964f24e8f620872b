"""catalog's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import fields, validate

from kc_common.schemas import BaseSchema, Money, PageQuerySchema, UtcDateTime, page_of


class ProductSchema(BaseSchema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    name = fields.String(required=True)
    tld = fields.String(allow_none=True)
    price_net = Money(required=True, metadata={"description": "EUR netto je Monat (Domains: je Jahr)"})
    vat_rate = fields.Decimal(as_string=True, required=True, places=2)
    periods = fields.List(fields.Integer(), required=True)


class ProductListSchema(BaseSchema):
    items = fields.List(fields.Nested(ProductSchema), required=True)


class OrderItemSchema(BaseSchema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=50))
    domain = fields.String(load_default=None, validate=validate.Length(min=1, max=253))
    period_months = fields.Integer(load_default=None, validate=validate.OneOf([1, 3, 6, 12]))


class PlaceOrderSchema(BaseSchema):
    items = fields.List(fields.Nested(OrderItemSchema), required=True,
                        validate=validate.Length(min=1, max=20))


class ContractSchema(BaseSchema):
    id = fields.Integer(required=True)
    product_id = fields.String(required=True)
    product_name = fields.String(required=True, metadata={"description": "Paket"})
    kind = fields.String(required=True)
    domain = fields.String(allow_none=True)
    period_months = fields.Integer(required=True, metadata={"description": "Zahlungsperiode"})
    price_net = Money(required=True, metadata={"description": "Preis je Zahlungsperiode, netto"})
    price_gross = Money(required=True, metadata={"description": "Preis je Zahlungsperiode, brutto"})
    status = fields.String(required=True, metadata={"description": "Vertragsstatus"})
    start_date = fields.Date(required=True)
    next_invoice_date = fields.Date(required=True, metadata={"description": "nächste Rechnung"})


class OrderSchema(BaseSchema):
    id = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    contracts = fields.List(fields.Nested(ContractSchema), required=True)


class ContractQuerySchema(PageQuerySchema):
    q = fields.String(load_default=None, validate=validate.Length(max=200),
                      metadata={"description": "Suche"})


ContractPageSchema = page_of(ContractSchema, "ContractPageSchema")
