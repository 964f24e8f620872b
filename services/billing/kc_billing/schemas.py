"""billing's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import fields

from kc_common.schemas import BaseSchema, Money, PageQuerySchema, page_of


class BookingSchema(BaseSchema):
    id = fields.Integer(required=True)
    invoice_number = fields.Integer(allow_none=True, metadata={"description": "Rnr"})
    date = fields.Date(required=True, metadata={"description": "Datum"})
    type = fields.String(required=True, metadata={"description": "Typ (RE = Rechnung, …)"})
    text = fields.String(required=True, metadata={"description": "Erste Position der Rechnung"})
    amount = Money(required=True, metadata={"description": "Betrag in EUR (negativ = Forderung)"})
    payment_method = fields.String(allow_none=True, metadata={"description": "Zahlungsart"})


BookingPageSchema = page_of(BookingSchema, "BookingPageSchema")


class AccountSchema(BaseSchema):
    balance = Money(required=True, metadata={"description": "Kontostand; negativ = offener Betrag"})
    balance_text = fields.String(required=True, metadata={"example": "-4.00€ offener Betrag"})
    currency = fields.String(required=True, dump_default="EUR")
    bookings = fields.Nested(BookingPageSchema, required=True)


AccountQuerySchema = PageQuerySchema
