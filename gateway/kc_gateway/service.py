"""The gateway: authentication, HTTP -> RPC, error mapping, OpenAPI. No business data.

Every operation that maps to an RPC is a :class:`Route` in ``routes/<service>.py``;
they all run through :meth:`GatewayService.handle`.
"""
import base64
import json
import logging

import eventlet
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from kc_common.context import (CallContext, CUSTOMER_ID, SESSION_ID, STAFF_ID, STAFF_ROLES)
from kc_common.errors import Forbidden, ServiceUnavailable, Unauthenticated, ValidationFailed
from kc_common.rpc import Services
from kc_gateway import openapi
from kc_gateway.http import CUSTOMER, PUBLIC, STAFF, Route, json_response, route
from kc_gateway.routes import ROUTES

log = logging.getLogger(__name__)

SERVICES = ("identity", "catalog", "billing", "dns", "documents", "support")
DEFAULT_HEALTH_TIMEOUT = 2.0  # seconds; config HEALTH_TIMEOUT
ACCOUNT_CLOSING = ("Sie haben die Schließung Ihres Kontos beantragt: Bestellungen und Tarifwechsel sind "
                   "nicht mehr möglich.")
UNVERIFIED_EMAIL = ("Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse über den Link in unserer E-Mail. "
                    "Erst danach können Sie bestellen und bezahlen.")


class RequestState(DependencyProvider):
    """The current route and the mutable call context of the worker."""

    class _State:
        def __init__(self, worker_ctx):
            self.route = worker_ctx.entrypoint.route
            self.data = worker_ctx.data

    def get_dependency(self, worker_ctx):
        return self._State(worker_ctx)


def read_json(request):
    if not request.content_length and not request.get_data(cache=True):
        return {}
    try:
        return json.loads(request.get_data(cache=True) or b"{}")
    except RequestEntityTooLarge:
        raise
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("Der Inhalt ist kein gültiges JSON.",
                               fields={"_body": ["Ungültiges JSON."]})


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


class GatewayService:
    name = "gateway"

    services = Services()
    state = RequestState()
    config = Config()
    context = CallContext()

    def handle(self, request, **path_values):
        route_ = self.state.route
        self._authenticate(request, route_)
        kwargs = dict(path_values)
        if route_.query is not None:
            kwargs["params"] = query_dict(request)
        if route_.multipart:
            kwargs["data"] = read_multipart(request)
        elif route_.body is not None:
            kwargs["data"] = read_json(request)
        if route_.raw_body:
            kwargs["raw_body"] = request.get_data(as_text=True)
        if route_.pass_headers:
            kwargs["headers"] = {h: request.headers.get(h) for h in route_.pass_headers}
        if route_.idempotent:
            kwargs["idempotency_key"] = request.headers.get("Idempotency-Key")
        result = getattr(self.services[route_.service], route_.rpc)(**kwargs)
        if route_.response_content_type != "application/json" and isinstance(result, dict):
            return file_response(result)
        return result

    def _authenticate(self, request, route_):
        if route_.auth == PUBLIC:
            return
        principal = self.services["identity"].authenticate(token=bearer_token(request))
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

    @route(Route("GET", "/health", auth=PUBLIC, tag="system",
                 summary="Health of the gateway and of every service (each answers a ping)"))
    def health(self, request):
        """Ping every service at once; one that does not answer within HEALTH_TIMEOUT is unavailable.

        The answer takes at most about HEALTH_TIMEOUT seconds however many services
        are frozen or gone. An unanswered ping is dropped from the proxy's pending
        replies, and a ping nobody took expires in the service's RPC queue (a service
        that is down does not collect a backlog of stale pings; a frozen one still
        answers those it had already received when it resumes).
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

        pool = eventlet.GreenPool(len(SERVICES))
        states = dict(pool.imap(ping, SERVICES))
        healthy = all(v == "ok" for v in states.values())
        return json_response({"status": "ok" if healthy else "degraded", "gateway": "ok",
                              "services": states}, status=200 if healthy else 503)

    @route(Route("GET", "/api/openapi.json", auth=PUBLIC, tag="system",
                 summary="This API's OpenAPI 3 document"))
    def openapi(self, request):
        return json_response(openapi.document())


for _spec in ROUTES:
    route(_spec)(GatewayService.handle)
