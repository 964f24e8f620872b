"""The OpenAPI 3 document, generated from the routes and the services' own schemas."""
import functools
import re
from decimal import Decimal

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from kc_common.errors import ALL as ERRORS
from kc_common.errors import (
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
)
from kc_common.schemas import IDEMPOTENCY_KEY_MAX
from kc_gateway.http import MAX_PATH_ID, PUBLIC, body_required

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_TYPES = {"int": "integer", "float": "number"}
_BOUNDS = {"int": {"minimum": 0, "maximum": MAX_PATH_ID}}


def decimal_pattern(places, low=None, high=None):
    """The pattern of a decimal string with at most ``places`` decimals, within
    [low, high] where the bounds are 0 or the smallest step, and a power of ten
    (the ranges our amounts and rates use); other bounds only fix the sign."""
    frac = f"(\\.[0-9]{{1,{places}}})?" if places else ""
    zeros = f"(\\.0{{1,{places}}})?" if places else ""
    sign = "" if low is not None and low >= 0 else "-?"
    step = Decimal(1).scaleb(-places) if places else Decimal(1)
    power = None if high is None or high <= 0 else high.log10()
    if low in (0, step) and power is not None and power == power.to_integral_value() and power >= 1:
        digits = int(power)
        below = f"[1-9][0-9]{{0,{digits - 1}}}{frac}"
        top = f"1{'0' * digits}{zeros}"
        if low == 0:
            return f"^(0{frac}|{below}|{top})$"
        small = "|".join(f"{'0' * i}[1-9][0-9]{{0,{places - 1 - i}}}" for i in range(places))
        return f"^(0\\.({small})|{below}|{top})$" if places else f"^({below}|{top})$"
    return f"^{sign}[0-9]+{frac}$"


def ecma_pattern(self, field, ret, **kwargs):
    """Python's end of string ``\\Z`` is ``$`` in the document's (ECMA 262) regular expressions."""
    pattern = ret.get("pattern")
    return {"pattern": pattern.replace("\\Z", "$")} if pattern and "\\Z" in pattern else {}


def decimal2properties(self, field, ret, **kwargs):
    """Decimals travel as strings ("12.50"; Money and ``as_string``): a string with the
    decimal's pattern, its range inside the pattern. Other decimals: numeric bounds."""
    if not isinstance(field, fields.Decimal):
        return {}
    ranges = [v for v in field.validators if hasattr(v, "min") and hasattr(v, "max")]
    low = max((Decimal(str(v.min)) for v in ranges if v.min is not None), default=None)
    high = min((Decimal(str(v.max)) for v in ranges if v.max is not None), default=None)
    for key in ("minimum", "maximum", "x-minimum", "x-maximum"):
        ret.pop(key, None)
    if not field.as_string:
        out = {}
        if low is not None:
            out["minimum"] = float(low)
        if high is not None:
            out["maximum"] = float(high)
        return out
    places = -field.places.as_tuple().exponent if field.places is not None else 2
    return {"type": "string", "pattern": decimal_pattern(places, low, high)}


_ERROR_DESCRIPTIONS = {
    400: "ValidationFailed: the request does not match this document (type, format, length, "
         "pattern, range, required or unknown field, malformed JSON); ``fields`` names each field",
    422: "Refused: the request matches this document, but a rule or a check against data "
         "refuses it (e.g. a telephone number, a postcode of the country, an IBAN's checksum, a "
         "product's rules, DNS record data): ``validation_failed`` as for 400 with ``fields`` naming "
         "each field, or ``unprocessable`` for a rule of the operation itself",
}


def openapi_path(path):
    return _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", path)


def path_parameters(path):
    return [{"name": name, "in": "path", "required": True,
             "schema": dict({"type": _TYPES.get(conv or "", "string")}, **_BOUNDS.get(conv, {}))}
            for conv, name in _CONVERTER.findall(path)]


def _item_fields(schema):
    """Field names of one item a response carries: the schema's own, or its ``items``'."""
    if schema is None or isinstance(schema, str):
        return None, set()
    declared = getattr(schema, "_declared_fields", {})
    items = declared.get("items")
    if isinstance(items, fields.List) and isinstance(items.inner, fields.Nested):
        nested = items.inner.nested
        return "/items/0", set(getattr(nested, "_declared_fields", {}))
    return "", set(declared)


def _value_field(param, available):
    for name in (param, "id" if param.endswith("_id") or param == "id" else None, "name" if param == "zone" else None):
        if name and name in available:
            return name
    return None


def links(routes):
    """OpenAPI links: from a list (GET) or a create (POST) to the operations on one of its
    items (``/x`` -> ``/x/<id>/...``), so clients and the stateful fuzzer find real ids."""
    found = {}
    for target in routes:
        params = _CONVERTER.findall(target.path)
        if not params:
            continue
        for source in routes:
            if source is target or source.method not in ("GET", "POST") or source.response is None:
                continue
            prefix = source.path.rstrip("/") + "/"
            if not target.path.startswith(prefix):
                continue
            rest = target.path[len(prefix):].split("/")
            match = _CONVERTER.fullmatch(rest[0])
            if not match:
                continue
            pointer, available = _item_fields(source.response)
            value = _value_field(match.group(2), available)
            if value is None:
                continue
            parameters = {name: f"$request.path.{name}" for _, name in _CONVERTER.findall(source.path)}
            parameters[match.group(2)] = f"$response.body#{pointer}/{value}"
            if any(name not in parameters for _, name in params):
                continue  # a further id (…/<number>/attachments/<id>) comes from elsewhere
            found.setdefault((source.method, source.path, str(source.status)), {})[target.operation_id] = {
                "operationId": target.operation_id, "parameters": parameters}
    return found


def build(routes):
    marshmallow_plugin = MarshmallowPlugin()
    spec = APISpec(
        title="KundenCenter API", version="1.0.0", openapi_version="3.0.3",
        info={"description": "Self-service customer center of a web hosting provider. "
                             "Amounts are decimal strings in EUR, dates ISO 8601."},
        plugins=[marshmallow_plugin],
    )
    marshmallow_plugin.converter.add_attribute_function(decimal2properties)
    marshmallow_plugin.converter.add_attribute_function(ecma_pattern)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", {
        "type": "object", "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "example": "validation_failed"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {}},
        }})
    by_status = {e.status: e for e in ERRORS}
    paths = {}
    for r in routes:
        op = {"summary": r.summary, "operationId": r.operation_id,
              "tags": [r.tag or (r.service or "system")], "responses": {}}
        params = path_parameters(r.path)
        if r.query is not None:
            params.append({"in": "query", "schema": r.query})
        for header in r.pass_headers:
            required = header in r.required_headers
            params.append({"in": "header", "name": header, "required": required,
                           "schema": {"type": "string", "minLength": 1} if required
                           else {"type": "string"}})
        if r.idempotent:
            params.append({"in": "header", "name": "Idempotency-Key", "required": False,
                           "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
                           "description": "Same key and body: the first result again; "
                                          "same key, other body: 422."})
        if params:
            op["parameters"] = params
        if r.body is not None:
            media = "multipart/form-data" if r.multipart else "application/json"
            op["requestBody"] = {"required": r.multipart or body_required(r.body),
                                 "content": {media: {"schema": r.body}}}
        ok = {"description": "OK" if r.status != 201 else "Created"}
        if r.etag_field:
            ok["headers"] = {"ETag": {"schema": {"type": "string"},
                                      "description": "send it back as If-Match"}}
        if r.response is not None:
            ok["content"] = {r.response_content_type: {"schema": r.response}}
        elif r.response_content_type != "application/json":
            ok["content"] = {media: {"schema": {"type": "string", "format": "binary"}}
                             for media in (r.response_content_type, *r.other_content_types)}
        op["responses"][str(r.status)] = ok
        # 400: the gateway's check of the request against this document; 422: what a
        # service refuses of a request that matched it (ValidationFailed behind the RPC).
        errors = (set(r.errors) - {ValidationFailed}) | {ServiceUnavailable}
        if r.auth != PUBLIC:
            op["security"] = [{"bearer": []}]
            errors.add(Unauthenticated)
        if r.body is not None or r.query is not None or r.required_headers:
            errors.add(ValidationFailed)
        if r.body is not None:
            errors.add(UnsupportedMediaType)
        if r.service and (params or r.body is not None or r.raw_body or ValidationFailed in r.errors):
            errors.add(Unprocessable)
        for err in sorted(errors, key=lambda e: e.status):
            op["responses"][str(err.status)] = {
                "description": _ERROR_DESCRIPTIONS.get(err.status, by_status[err.status].__name__),
                "content": {"application/json": {"schema": "Error"}}}
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = op
    for (method, path, status), targets in links(routes).items():
        response = paths[openapi_path(path)][method.lower()]["responses"][status]
        response["links"] = {_link_name(op): link for op, link in sorted(targets.items())}
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    doc = spec.to_dict()
    _no_null_in_forms(doc)
    return doc


def _no_null_in_forms(doc):
    """A multipart form cannot send null (a field is there or not): no ``nullable`` there."""
    for operations in doc["paths"].values():
        for op in operations.values():
            media = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            ref = (media or {}).get("schema", {}).get("$ref", "")
            component = doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
            for prop in component.get("properties", {}).values():
                if prop.pop("nullable", None) and prop.get("default", "") is None:
                    del prop["default"]


def _link_name(operation_id):
    return "".join(part.title() for part in operation_id.split("_"))


@functools.lru_cache(maxsize=1)
def document():
    from kc_gateway.http import RouteEntrypoint
    from kc_gateway.service import GatewayService
    routes = []
    for name in dir(GatewayService):
        for ep in getattr(getattr(GatewayService, name), "nameko_entrypoints", ()):
            if isinstance(ep, RouteEntrypoint):
                routes.append(ep.route)
    routes.sort(key=lambda r: (r.path, r.method))
    return build(routes)
