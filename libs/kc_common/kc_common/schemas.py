"""Marshmallow base pieces used by every service's ``schemas`` module."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from marshmallow.schema import SchemaMeta

from kc_common.clock import as_utc
from kc_common.errors import ValidationFailed

CENT = Decimal("0.01")


def money(value: Any) -> Decimal:
    """Round a Decimal half-up to the cent (the one rounding rule we use)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


class Money(fields.Decimal):
    """An exact EUR amount; serialised as a decimal string ("12.50")."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("places", 2)
        kwargs.setdefault("rounding", ROUND_HALF_UP)
        kwargs.setdefault("as_string", True)
        super().__init__(**kwargs)


class DecimalRange(validate.Range):
    """Inclusive bounds of a decimal (a money amount, a rate); the OpenAPI document
    states them as the pattern of the decimal string (kc_gateway.openapi)."""

    def __init__(self, low: Decimal | str | None, high: Decimal | str | None,
                 error: str | None = None) -> None:
        super().__init__(min=Decimal(str(low)), max=Decimal(str(high)),
                         error=error or f"Muss zwischen {low} und {high} liegen.")


# For the OpenAPI document: a text that must not be blank, where the service's own rules
# refuse a blank one (with every other bad field of the request named at once).
# (Python's str.strip() also removes \x1c-\x1f and \x85, which JSON Schema's \s does not.)
NON_BLANK = r"[^\s\x1c-\x1f\x85]"


class Boolean(fields.Boolean):
    """A JSON ``true`` or ``false``; not 0/1, "yes" or "true" (the document says boolean)."""

    truthy = frozenset({True})  # type: ignore[assignment]  # marshmallow's stubs say set
    falsy = frozenset({False})  # type: ignore[assignment]

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class QueryBoolean(fields.Boolean):
    """A boolean in the query string: ``true`` or ``false``."""

    truthy = frozenset({"true", True})  # type: ignore[assignment]
    falsy = frozenset({"false", False})  # type: ignore[assignment]


class UtcDateTime(fields.DateTime):
    """A stored UTC instant; naive values (SQLite drops the zone) are UTC."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(as_utc(value), attr, obj, **kwargs)


# Every integer that comes in fits the databases' ``integer`` (PostgreSQL int4): a larger
# one is a 400 naming the field, never an overflow in a query.
INT_MIN, INT_MAX = -2**31, 2**31 - 1


def _no_fractions(field_obj: fields.Field) -> None:
    """An integer field refuses a JSON number with a fraction or exponent (2.5, 1e-9), which
    marshmallow would truncate; numeric strings (query strings) stay accepted."""
    deserialize = field_obj._deserialize

    def strict(value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, float):
            raise field_obj.make_error("invalid")
        return deserialize(value, attr, data, **kwargs)
    field_obj._deserialize = strict  # type: ignore[method-assign]


class _BuiltOnce(SchemaMeta):
    """``XSchema()`` without arguments returns the one instance of that class, built on first
    use: services call ``XSchema().dump(...)`` per request, and building a schema (binding
    copies of every field) costs more than dumping. Schemas keep no per-call state, so one
    instance serves every call; with arguments (``many=True``, ``only=...``) it is a new one."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        instance = cls.__dict__.get("_kc_instance")  # this class's own, not a base class's
        if instance is None:
            instance = super().__call__()
            cls._kc_instance = instance
        return instance


class BaseSchema(Schema, metaclass=_BuiltOnce):
    """Unknown fields are an error: a typo is never silently ignored. Integers are bounded
    (INT_MIN..INT_MAX unless the field says narrower; also in the OpenAPI document)."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        super().on_bind_field(field_name, field_obj)
        if isinstance(field_obj, fields.Integer):
            _no_fractions(field_obj)
            ranges = [v for v in field_obj.validators if isinstance(v, validate.Range)]
            has_min = any(r.min is not None for r in ranges)
            has_max = any(r.max is not None for r in ranges)
            if not (has_min and has_max):
                field_obj.validators = [*field_obj.validators, validate.Range(
                    min=None if has_min else INT_MIN, max=None if has_max else INT_MAX,
                    error="Muss zwischen {min} und {max} liegen.")]


MAX_PAGE = 1_000_000


class PageQuerySchema(BaseSchema):
    # bounded: (page - 1) * per_page is an OFFSET the databases must hold (never an overflow)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


def page_of(schema_cls: type[Schema], title: str | None = None) -> type[BaseSchema]:
    """A paged list schema: items of ``schema_cls`` plus total/page/per_page."""
    name = title or f"{schema_cls.__name__.removesuffix('Schema')}PageSchema"
    return type(name, (BaseSchema,), {
        "items": fields.List(fields.Nested(schema_cls), required=True),
        "total": fields.Integer(required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
    })


def load(schema: Schema, data: dict[str, Any], *, partial: bool = False) -> Any:
    """Load ``data`` with ``schema`` or raise :class:`ValidationFailed` naming each field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("Der Inhalt muss ein JSON-Objekt sein.", fields={"_schema": ["Kein Objekt."]})
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(fields=_flatten(exc.messages)) from None


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested errors become dotted paths: ``{"items.1.period_months": [...]}``."""
    flat = {}
    for key, value in messages.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


IDEMPOTENCY_KEY_MAX = 200  # the services' idempotency_key columns are String(200)


def load_idempotency_key(key: str) -> str | None:
    """The ``Idempotency-Key`` header as an RPC gets it: absent (None) or 1..200 characters,
    else 400 naming the header."""
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed(fields={"Idempotency-Key": [f"1 bis {IDEMPOTENCY_KEY_MAX} Zeichen."]})
    return key
