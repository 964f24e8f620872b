"""identity's RPC contract: what goes in and out (also used for the OpenAPI document)."""
from marshmallow import fields, validate

from kc_common.schemas import BaseSchema, UtcDateTime


class LoginSchema(BaseSchema):
    login = fields.String(required=True, validate=validate.Length(min=1, max=254),
                          metadata={"description": "Kundennummer oder E-Mail"})
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class SessionSchema(BaseSchema):
    token = fields.String(required=True)
    token_type = fields.String(required=True, dump_default="Bearer")
    customer_id = fields.Integer(required=True)
    expires_at = UtcDateTime(required=True)


class CustomerSchema(BaseSchema):
    customer_id = fields.Integer(dump_only=True, metadata={"description": "Kundennummer"})
    company = fields.String()
    last_name = fields.String()
    first_name = fields.String()
    email = fields.Email()


class StaffSessionSchema(BaseSchema):
    token = fields.String(required=True)
    token_type = fields.String(required=True, dump_default="Bearer")
    staff_id = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    expires_at = UtcDateTime(required=True)
