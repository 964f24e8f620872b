"""The gateway: authentication, HTTP -> RPC, error mapping, OpenAPI. No business data.

Every operation that maps to an RPC is a :class:`Route` in ``routes/<service>.py``;
they all run through :meth:`GatewayService.handle`.
"""
import base64
import json
import logging
import re
import time

import eventlet
from eventlet.event import Event
from marshmallow import Schema, fields, validate
from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from kc_common.context import (
    CLIENT_IP,
    CUSTOMER_ID,
    SESSION_ID,
    STAFF_ID,
    STAFF_ROLES,
    CallContext,
)
from kc_common.errors import (
    Forbidden,
    InputRefused,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from kc_common.rpc import Services
from kc_common.schemas import load
from kc_common.services import SERVICES
from kc_common.settings import Settings
from kc_gateway import openapi
from kc_gateway.http import (
    CUSTOMER,
    PUBLIC,
    STAFF,
    Route,
    body_required,
    json_response,
    route,
)
from kc_gateway.routes import ROUTES
from kc_gateway.sessions import SessionCache, token_key

log = logging.getLogger(__name__)

DEFAULT_HEALTH_TIMEOUT = 2.0  # seconds; config HEALTH_TIMEOUT
# Seconds an answer of /health is reused; config HEALTH_CACHE. 0 (the default): requests only
# share the round of pings under way, so a service frozen a moment ago is never reported ok.
DEFAULT_HEALTH_CACHE = 0.0
# Identity operations after which what ``authenticate`` answered may no longer hold: this
# gateway drops its cached answers before it responds (the others on ``session_ended``).
SESSION_CHANGING_RPCS = frozenset({"logout", "end_session", "change_password", "reset_password",
                                   "confirm_email", "set_ip_whitelist", "staff_clear_ip_whitelist",
                                   "update_address", "staff_owner_change", "request_closure"})
ACCOUNT_CLOSING = ("Sie haben die Schließung Ihres Kontos beantragt: Bestellungen und Tarifwechsel sind "
                   "nicht mehr möglich.")
UNVERIFIED_EMAIL = ("Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse über den Link in unserer E-Mail. "
                    "Erst danach können Sie bestellen und bezahlen.")


class RequestState(DependencyProvider):
    """The current route and the mutable call context of the worker."""

    class _State:
        def __init__(self, worker_ctx):
            self.route = getattr(worker_ctx.entrypoint, "route", None)  # None: an event handler
            self.data = worker_ctx.data

    def get_dependency(self, worker_ctx):
        return self._State(worker_ctx)


class HealthCheck(DependencyProvider):
    """One round of pings shared by the /health requests of this instance: requests that come
    while a round is under way wait for its answer (optionally reused for HEALTH_CACHE
    seconds), so many clients or probes do not multiply the pings of a loaded system: at
    most one round (six pings) is in flight at any time."""

    def setup(self):
        self.cache_for = float(self.container.config.get("HEALTH_CACHE", DEFAULT_HEALTH_CACHE))
        self._answer, self._until, self._round = None, 0.0, None

    def get_dependency(self, worker_ctx):
        return self

    def states(self, ping_all):
        if self._answer is not None and time.monotonic() < self._until:
            return self._answer
        if self._round is not None:
            return self._round.wait()
        self._round = round_ = Event()
        try:
            answer = ping_all()
        except BaseException as exc:
            self._round = None
            round_.send_exception(exc)
            raise
        self._answer, self._until, self._round = answer, time.monotonic() + self.cache_for, None
        round_.send(answer)
        return answer


MAX_JSON_DEPTH = 32  # nesting of objects and arrays in a JSON body
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def read_json(request, required=True):
    """The JSON body: 415 when sent as another type, 400 when missing (and ``required``),
    nested deeper than MAX_JSON_DEPTH, malformed, or holding a string that is no
    valid Unicode (a lone surrogate ``\\ud800``)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise ValidationFailed("Der Inhalt fehlt (ein JSON-Objekt).",
                                   fields={"_body": ["Inhalt fehlt."]})
        return {}
    mimetype = request.mimetype  # not JSON: 415 (eventlet reports a missing Content-Type as text/plain)
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Bitte als JSON senden (Content-Type: application/json).",
                                   details={"fields": {"_body": ["application/json erwartet."]}})
    _check_depth(raw)
    try:
        data = json.loads(raw)
    except RequestEntityTooLarge:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationFailed("Der Inhalt ist kein gültiges JSON.",
                               fields={"_body": ["Ungültiges JSON."]}) from None
    if not isinstance(data, dict):  # every body schema is an object
        raise ValidationFailed("Der Inhalt muss ein JSON-Objekt sein.",
                               fields={"_body": ["JSON-Objekt erwartet."]})
    bad = _invalid_unicode(data)
    if bad is not None:
        raise ValidationFailed(fields={bad or "_body": ["Ungültige Zeichen (kein gültiges Unicode)."]})
    return data


def _check_depth(raw):
    """Refuse deep nesting before parsing (the parser and every later step recurse)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        depth += 1 if bracket in b"[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                raise ValidationFailed(
                    f"Der Inhalt ist zu tief verschachtelt (höchstens {MAX_JSON_DEPTH} Ebenen).",
                    fields={"_body": ["Zu tief verschachtelt."]})


def _invalid_unicode(data):
    """The dotted path of the first string (value or key) that is not valid Unicode, else None."""
    stack = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return path or "_body"
                stack.append((sub, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return None


def check_schema(schema, data):
    """400 naming each field when ``data`` does not match ``schema``: the marshmallow schema
    the OpenAPI document publishes for the operation (types, formats, lengths, patterns,
    ranges, enums, required and unknown fields). The service loads it again; whatever it
    refuses after this check is no longer a malformed request (422)."""
    instance = schema()
    numbers = _decimal_numbers(instance, data)
    if numbers:  # marshmallow takes 19 for "19.00"; the document says a decimal string
        raise ValidationFailed(fields={name: ['Als Zeichenkette angeben, z. B. "19.00".']
                                       for name in numbers})
    load(instance, data)


def _string_decimal(field):
    """A decimal the document states as a string (Money, ``as_string``: kc_gateway.openapi);
    other decimals are documented as numbers and take one."""
    return isinstance(field, fields.Decimal) and field.as_string


def _decimal_numbers(schema, data, prefix="", depth=0):
    """Dotted names of string decimals that hold a JSON number instead of the documented string."""
    found = []
    if not isinstance(data, dict) or depth > 8:
        return found
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key not in data:
            continue
        value, where = data[key], f"{prefix}{key}"
        if _string_decimal(field) and isinstance(value, (int, float)):
            found.append(where)
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            items = value if field.many and isinstance(value, list) else [value]
            for i, item in enumerate(items):
                found += _decimal_numbers(field.schema, item,
                                          f"{where}.{i}." if field.many else f"{where}.", depth + 1)
        elif isinstance(field, fields.List) and isinstance(value, list):
            inner = field.inner
            for i, item in enumerate(value):
                if _string_decimal(inner) and isinstance(item, (int, float)):
                    found.append(f"{where}.{i}")
                elif isinstance(inner, fields.Nested) and isinstance(inner.schema, Schema):
                    found += _decimal_numbers(inner.schema, item, f"{where}.{i}.", depth + 1)
    return found


def form_fields(schema, data):
    """A multipart form as its schema describes it: the text fields, an upload under the
    name of a declared field (a file name stands for the bytes: ``format: binary`` says
    nothing about them; a list field takes every upload of that name), and the gateway's
    ``files`` only where the schema declares ``files`` itself."""
    declared = schema._declared_fields
    form = {key: value for key, value in data.items() if key != "files"}
    if "files" in declared:
        form["files"] = data["files"]
    for upload in data.get("files") or ():
        name = upload["field"]
        if name == "files" or name not in declared:
            continue  # the service judges uploads under other names
        if isinstance(declared[name], fields.List):
            form.setdefault(name, []).append(upload["filename"])
        else:
            form[name] = upload["filename"]
    return form


def check_required_headers(route_, headers):
    """400 naming the header when one the document marks required is missing or empty."""
    missing = {h: ["Fehlt."] for h in route_.required_headers if not (headers.get(h) or "").strip()}
    if missing:
        raise ValidationFailed(f"Die Kopfzeile {', '.join(missing)} fehlt.", fields=missing)


def read_multipart(request):
    """Form fields plus uploaded files (base64) of a multipart/form-data request."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise ValidationFailed("Bitte als multipart/form-data senden.",
                               fields={"_body": ["multipart/form-data erwartet."]})
    data = {key: request.form.get(key) for key in request.form}
    data["files"] = [{"field": name, "filename": f.filename or "",
                      "content_type": f.mimetype or "application/octet-stream",
                      "content_b64": base64.b64encode(f.read()).decode("ascii")}
                     for name in request.files for f in request.files.getlist(name)]
    return data


def file_response(result):
    """A file the service returned as {"filename", "content_type", "content_b64"}."""
    filename = result.get("filename") or "download"
    resp = Response(base64.b64decode(result["content_b64"]),
                    mimetype=result.get("content_type") or "application/octet-stream")
    resp.headers.set("Content-Disposition", "attachment", filename=filename)
    if result.get("sha256"):
        resp.headers["ETag"] = f'"{result["sha256"]}"'
    return resp


def query_dict(request):
    """Query string as a dict; a repeated key becomes a list."""
    out = {}
    for key in request.args:
        values = request.args.getlist(key)
        out[key] = values if len(values) > 1 else values[0]
    return out


def bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Bitte melden Sie sich an (Authorization: Bearer <token>).")
    return token.strip()


class GatewaySettings(Schema):
    HEALTH_TIMEOUT = fields.Float(load_default=DEFAULT_HEALTH_TIMEOUT,
                                  validate=validate.Range(min=0, min_inclusive=False))
    MAX_REQUEST_BYTES = fields.Integer(load_default=30 * 1024 * 1024, validate=validate.Range(min=1))
    TRUSTED_PROXIES = fields.String(load_default="", allow_none=True)


class GatewayService:
    name = "gateway"

    services = Services()
    state = RequestState()
    config = Settings(GatewaySettings)
    context = CallContext()
    sessions = SessionCache()
    health_check = HealthCheck()

    def handle(self, request, **path_values):
        route_ = self.state.route
        self._authenticate(request, route_)
        kwargs = dict(path_values)
        if route_.query is not None:
            kwargs["params"] = query_dict(request)
            check_schema(route_.query, kwargs["params"])
        if route_.multipart:
            kwargs["data"] = read_multipart(request)
            if route_.body is not None:
                check_schema(route_.body, form_fields(route_.body, kwargs["data"]))
        elif route_.body is not None:
            kwargs["data"] = read_json(request, required=body_required(route_.body))
            check_schema(route_.body, kwargs["data"])
        if route_.raw_body:
            kwargs["raw_body"] = request.get_data(as_text=True)
        if route_.pass_headers:
            kwargs["headers"] = {h: request.headers.get(h) for h in route_.pass_headers}
            check_required_headers(route_, kwargs["headers"])
        if route_.idempotent:
            kwargs["idempotency_key"] = request.headers.get("Idempotency-Key")
        try:
            result = getattr(self.services[route_.service], route_.rpc)(**kwargs)
        except InputRefused:
            raise
        except ValidationFailed as exc:
            # The request matched the published schema (checked above): what the service
            # still refuses is a rule or a check against data, 422 with the same body.
            raise InputRefused.of(exc) from None
        finally:
            if route_.service == "identity" and route_.rpc in SESSION_CHANGING_RPCS:
                self.sessions.invalidate()
        if route_.response_content_type != "application/json" and isinstance(result, dict):
            return file_response(result)
        return result

    def _authenticate(self, request, route_):
        if route_.auth == PUBLIC:
            return
        principal = self._principal(bearer_token(request))
        if route_.auth == CUSTOMER and principal.get("kind") == "customer":
            if route_.verified_email and principal.get("email_verified") is False:
                raise Forbidden(UNVERIFIED_EMAIL, {"reason": "email_not_verified"})
            # orders and tariff changes (catalog); paying stays possible, to settle the balance
            if route_.verified_email and route_.service == "catalog" and principal.get("closing"):
                raise Forbidden(ACCOUNT_CLOSING, {"reason": "account_closing"})
            self.state.data[CUSTOMER_ID] = principal["customer_id"]
            self.state.data[SESSION_ID] = principal["session_id"]
        elif route_.auth == STAFF and principal.get("kind") == "staff":
            self.state.data[STAFF_ID] = principal["staff_id"]
            self.state.data[STAFF_ROLES] = list(principal.get("roles", ()))
            self.state.data[SESSION_ID] = principal["session_id"]
        else:  # a staff token on a customer route or vice versa is not a valid login there
            raise Unauthenticated("Diese Anmeldung gilt hier nicht.")

    def _principal(self, token):
        """``identity.authenticate``, answered from this instance's cache when it can be."""
        key = (token_key(token), self.state.data.get(CLIENT_IP))
        principal = self.sessions.get(key)
        if principal is None:
            epoch = self.sessions.epoch
            principal = self.services["identity"].authenticate(token=token)
            self.sessions.put(key, principal, epoch)
        return principal

    @event_handler("identity", "session_ended", handler_type=BROADCAST, reliable_delivery=False)
    def session_ended(self, event):
        """Every gateway instance (its own exclusive queue) drops the cached answers at once."""
        data = event.get("data") or {}
        self.sessions.invalidate(**{k: data.get(k) for k in ("session_id", "customer_id", "staff_id")})

    @route(Route("GET", "/health", auth=PUBLIC, tag="system",
                 summary="Health of the gateway and of every service (each answers a ping)"))
    def health(self, request):
        """Ping every service at once; one that does not answer within HEALTH_TIMEOUT is unavailable.

        The answer takes at most about HEALTH_TIMEOUT seconds however many services
        are frozen or gone. An unanswered ping is dropped from the proxy's pending
        replies, and a ping nobody took expires in the service's RPC queue (a service
        that is down does not collect a backlog of stale pings; a frozen one still
        answers those it had already received when it resumes). Concurrent requests share
        the round of pings under way (at most one round in flight per gateway instance).
        """
        timeout = float(self.config.get("HEALTH_TIMEOUT", DEFAULT_HEALTH_TIMEOUT))

        def ping(name):
            proxy = self.services[name]
            proxy.options.update(timeout=timeout, expiration=timeout)  # this proxy only
            try:
                # The proxy's timeout covers the reply; this one, a hanging publish.
                with eventlet.Timeout(timeout + 0.5):
                    proxy.ping()
                return name, "ok"
            except (ServiceUnavailable, eventlet.Timeout):
                return name, "unavailable"
            except Exception:  # noqa: BLE001 - health reports, never raises
                log.warning("ping of %s failed", name, exc_info=True)
                return name, "error"

        def ping_all():
            pool = eventlet.GreenPool(len(SERVICES))
            return dict(pool.imap(ping, SERVICES))

        states = self.health_check.states(ping_all)
        healthy = all(v == "ok" for v in states.values())
        return json_response({"status": "ok" if healthy else "degraded", "gateway": "ok",
                              "services": states}, status=200 if healthy else 503)

    @route(Route("GET", "/api/openapi.json", auth=PUBLIC, tag="system",
                 summary="This API's OpenAPI 3 document"))
    def openapi(self, request):
        return json_response(openapi.document())


for _spec in ROUTES:
    route(_spec)(GatewayService.handle)
