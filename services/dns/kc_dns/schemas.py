"""dns's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import fields

from kc_common.schemas import BaseSchema


class RecordSchema(BaseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True, metadata={"description": "relativ zur Zone, @ = Zone selbst"})
    type = fields.String(required=True)
    ttl = fields.Integer(required=True)
    content = fields.String(required=True)


class ZoneSchema(BaseSchema):
    name = fields.String(required=True)
    serial = fields.Integer(required=True)
    version = fields.Integer(required=True)
    records = fields.List(fields.Nested(RecordSchema), required=True)
