"""The OpenAPI 3 document, generated from the routes and the services' own schemas."""
import functools
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from kc_common.errors import ALL as ERRORS, ServiceUnavailable, Unauthenticated, ValidationFailed
from kc_gateway.http import PUBLIC

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_TYPES = {"int": "integer", "float": "number"}


def openapi_path(path):
    return _CONVERTER.sub(lambda m: "{%s}" % m.group(2), path)


def path_parameters(path):
    return [{"name": name, "in": "path", "required": True,
             "schema": {"type": _TYPES.get(conv or "", "string")}}
            for conv, name in _CONVERTER.findall(path)]


def build(routes):
    spec = APISpec(
        title="KundenCenter API", version="1.0.0", openapi_version="3.0.3",
        info={"description": "Self-service customer center of a web hosting provider. "
                             "Amounts are decimal strings in EUR, dates ISO 8601."},
        plugins=[MarshmallowPlugin()],
    )
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
            params.append({"in": "header", "name": header, "required": False,
                           "schema": {"type": "string"}})
        if r.idempotent:
            params.append({"in": "header", "name": "Idempotency-Key", "required": False,
                           "schema": {"type": "string", "maxLength": 200},
                           "description": "Same key and body: the first result again; "
                                          "same key, other body: 422."})
        if params:
            op["parameters"] = params
        if r.body is not None:
            media = "multipart/form-data" if r.multipart else "application/json"
            op["requestBody"] = {"required": True, "content": {media: {"schema": r.body}}}
        ok = {"description": "OK" if r.status != 201 else "Created"}
        if r.etag_field:
            ok["headers"] = {"ETag": {"schema": {"type": "string"},
                                      "description": "send it back as If-Match"}}
        if r.response is not None:
            ok["content"] = {r.response_content_type: {"schema": r.response}}
        elif r.response_content_type != "application/json":
            ok["content"] = {r.response_content_type: {"schema": {"type": "string",
                                                                   "format": "binary"}}}
        op["responses"][str(r.status)] = ok
        errors = set(r.errors) | {ServiceUnavailable}
        if r.auth != PUBLIC:
            op["security"] = [{"bearer": []}]
            errors.add(Unauthenticated)
        if r.body is not None or r.query is not None:
            errors.add(ValidationFailed)
        for err in sorted(errors, key=lambda e: e.status):
            op["responses"][str(err.status)] = {
                "description": by_status[err.status].__name__,
                "content": {"application/json": {"schema": "Error"}}}
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = op
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


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
