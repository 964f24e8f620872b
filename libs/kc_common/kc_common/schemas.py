"""Marshmallow base pieces used by every service's ``schemas`` module."""
from decimal import Decimal, ROUND_HALF_UP

from marshmallow import Schema, ValidationError, fields, validate, RAISE
from marshmallow.schema import SchemaMeta

from kc_common.db import as_utc
from kc_common.errors import ValidationFailed

CENT = Decimal("0.01")


def money(value):
    """Round a Decimal half-up to the cent (the one rounding rule we use)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


class Money(fields.Decimal):
    """An exact EUR amount; serialised as a decimal string ("12.50")."""

    def __init__(self, **kwargs):
        kwargs.setdefault("places", 2)
        kwargs.setdefault("rounding", ROUND_HALF_UP)
        kwargs.setdefault("as_string", True)
        super().__init__(**kwargs)


class UtcDateTime(fields.DateTime):
    """A stored UTC instant; naive values (SQLite drops the zone) are UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(as_utc(value), attr, obj, **kwargs)


class _BuiltOnce(SchemaMeta):
    """``XSchema()`` without arguments returns the one instance of that class, built on first
    use: services call ``XSchema().dump(...)`` per request, and building a schema (binding
    copies of every field) costs more than dumping. Schemas keep no per-call state, so one
    instance serves every call; with arguments (``many=True``, ``only=...``) it is a new one."""

    def __call__(cls, *args, **kwargs):
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        instance = cls.__dict__.get("_kc_instance")  # this class's own, not a base class's
        if instance is None:
            instance = super().__call__()
            cls._kc_instance = instance
        return instance


class BaseSchema(Schema, metaclass=_BuiltOnce):
    """Unknown fields are an error: a typo is never silently ignored."""

    class Meta:
        unknown = RAISE


class PageQuerySchema(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


def page_of(schema_cls, title=None):
    """A paged list schema: items of ``schema_cls`` plus total/page/per_page."""
    name = title or f"{schema_cls.__name__.removesuffix('Schema')}PageSchema"
    return type(name, (BaseSchema,), {
        "items": fields.List(fields.Nested(schema_cls), required=True),
        "total": fields.Integer(required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
    })


def load(schema, data, *, partial=False):
    """Load ``data`` with ``schema`` or raise :class:`ValidationFailed` naming each field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("Der Inhalt muss ein JSON-Objekt sein.", fields={"_schema": ["Kein Objekt."]})
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(fields=_flatten(exc.messages))


def _flatten(messages, prefix=""):
    """Nested errors become dotted paths: ``{"items.1.period_months": [...]}``."""
    flat = {}
    for key, value in messages.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat
