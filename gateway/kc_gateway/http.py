"""HTTP plumbing: a route entrypoint with JSON errors, correlation ids and client IPs."""
import ipaddress
import json
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from functools import partial

from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import IntegerConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from kc_common.context import (
    CLIENT_IP,
    CORRELATION_ID,
    bind_log_context,
    new_correlation_id,
)
from kc_common.db import json_default
from kc_common.errors import KcError
from kc_common.events import is_transient
from kc_common.metrics import (
    UNMATCHED_ROUTE,
    MetricsServer,
    http_method_label,
    observe_http,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("kc_gateway.access")

PUBLIC, CUSTOMER, STAFF = "public", "customer", "staff"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Ids in paths are database integers (PostgreSQL ``integer``): a larger number is
# no id of anything (404), never an overflow in the database.
MAX_PATH_ID = 2**31 - 1
# The longest request line (method, URL, version) answered; a longer one gets 414.
MAX_REQUEST_LINE = 8192
# How much of a too-long request head is read (and dropped) so the 414 reaches the
# client instead of a reset connection.
_DRAIN_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Route:
    """One public operation: HTTP method + path mapped to a service's RPC.

    The RPC receives the path values as keyword arguments, plus ``params`` (the
    query string, when ``query`` is set), ``data`` (the JSON body, when ``body``
    is set) and ``idempotency_key`` (when ``idempotent``). The schemas are the
    service's own (``kc_<service>.schemas``): they validate inside the service
    and describe the operation in the OpenAPI document.
    """

    method: str
    path: str
    service: str | None = None
    rpc: str | None = None
    summary: str = ""
    tag: str = ""
    auth: str = CUSTOMER
    query: type | None = None
    body: type | None = None
    response: type | None = None
    status: int = 200
    errors: tuple = ()
    idempotent: bool = False
    staff_roles: tuple = field(default_factory=tuple)
    # Not JSON: the RPC returns {"filename", "content_type", "content_b64"} and the
    # gateway answers with the bytes (e.g. "application/pdf").
    response_content_type: str = "application/json"
    # Further types the same operation may answer with (a data export in Meine Dokumente is a ZIP).
    other_content_types: tuple = ()
    # multipart/form-data: the RPC's ``data`` holds the form fields plus
    # ``files``: [{"field", "filename", "content_type", "content_b64"}].
    multipart: bool = False
    # Pass the raw body (``raw_body``, text) and these request headers (``headers``)
    # to the RPC, e.g. for a payment provider's signed webhook.
    raw_body: bool = False
    pass_headers: tuple = ()
    # Those of ``pass_headers`` the operation cannot do without (documented as required;
    # the service answers 400 naming the header when one is missing).
    required_headers: tuple = ()
    # Answer with an ``ETag`` header taken from this field of the JSON result
    # (for optimistic concurrency: the client sends it back as If-Match).
    etag_field: str | None = None
    # Customer routes that need a confirmed e-mail address (double opt-in): orders, payments.
    # An unconfirmed customer gets 403 with reason ``email_not_verified``.
    verified_email: bool = False

    @property
    def operation_id(self):
        """Unique by construction: method and path (one RPC may serve two routes)."""
        return _slug(f"{self.method} {self.path}")


def body_required(schema):
    """A JSON body is required when its schema has a required field (so says the OpenAPI
    document); without one, a missing body is the empty object."""
    return any(f.required for f in schema._declared_fields.values())


def json_response(payload, status=200, headers=None):
    body = "" if payload is None else json.dumps(payload, default=json_default, ensure_ascii=False)
    return Response(body, status=status, headers=headers,
                    mimetype="application/json" if payload is not None else None)


def error_response(status, error, message, **extra):
    return json_response(dict({"error": error, "message": message}, **extra), status=status)


def response_from_error(exc, correlation_id=None):
    """Typed service errors map to their status, an outage (:func:`is_transient`) to 503;
    anything else is a bare 500."""
    if isinstance(exc, KcError):
        resp = json_response(exc.to_body(), status=exc.status)
        retry_after = exc.details.get("retry_after")
        if retry_after is not None:
            resp.headers["Retry-After"] = str(int(retry_after))
        return resp
    if isinstance(exc, HTTPException):
        resp = error_response(exc.code, _slug(exc.name), exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return resp
    if is_transient(exc):  # the broker or a connection lost in the gateway itself: retry later
        log.warning("dependency unavailable: %r", exc)
        return error_response(503, "service_unavailable",
                              "Ein benötigter Dienst ist vorübergehend nicht erreichbar; bitte "
                              "später erneut versuchen.", reason="dependency_unavailable",
                              correlation_id=correlation_id)
    log.error("unexpected error %s (correlation id %s)", type(exc).__name__, correlation_id,
              exc_info=exc)
    return error_response(500, "internal_error",
                          "Ein interner Fehler ist aufgetreten. Bitte versuchen Sie es später erneut.",
                          correlation_id=correlation_id)


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def client_ip(request, trusted_proxies):
    """The peer address, or the forwarded one when the peer is a trusted proxy."""
    peer = request.remote_addr
    if not trusted_proxies or not _in_networks(peer, trusted_proxies):
        return peer
    forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
    for hop in reversed(forwarded):  # right-most address that is not one of our proxies
        if not _in_networks(hop, trusted_proxies):
            return hop
    return peer


def _in_networks(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def parse_networks(text):
    return [ipaddress.ip_network(p.strip(), strict=False) for p in (text or "").split(",") if p.strip()]


class PathId(IntegerConverter):
    """``<int:...>`` in a path: a non-negative integer the database can hold."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_PATH_ID)
        super().__init__(map, *args, **kwargs)


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, but unknown paths and wrong methods answer in JSON; every request
    is counted by its route template (never the raw path) and status, and logged in one
    access line with its correlation id (and customer, once authenticated)."""

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        route_label = UNMATCHED_ROUTE
        try:
            provider, values = adapter.match()
            route_label = provider.url
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = response_from_error(_not_found_if_no_rule_takes_it(adapter, exc))
        response.headers["X-Content-Type-Options"] = "nosniff"
        observe_http("gateway", route_label, http_method_label(request.method),
                     response.status_code, started)
        try:
            access_log.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
                            (time.perf_counter() - started) * 1000)
        finally:
            bind_log_context()  # bound by RouteEntrypoint.handle_request
        return response(environ, start_response)


def _not_found_if_no_rule_takes_it(adapter, exc):
    """werkzeug answers 405 when another method's rule matched the path's pattern even though
    its converter refused the value (an id over MAX_PATH_ID): no rule takes that path, 404."""
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        try:
            adapter.match(method=sorted(exc.valid_methods)[0])
        except NotFound as not_found:
            return not_found
        except HTTPException:
            pass
    return exc


def _uri_too_long_response():
    body = json.dumps({"error": "uri_too_long",
                       "message": f"Die Adresse ist zu lang (höchstens {MAX_REQUEST_LINE} Zeichen)."},
                      ensure_ascii=False).encode("utf-8")
    return (b"HTTP/1.1 414 URI Too Long\r\nContent-Type: application/json\r\n"
            b"X-Content-Type-Options: nosniff\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class KcHttpProtocol(HttpOnlyProtocol):
    """A request line over MAX_REQUEST_LINE gets 414 in the one JSON error body.

    eventlet answers it with an empty 414 and closes the socket with the rest of
    the request unread (the client often sees a reset instead): read the rest of
    the head (bounded) first, then answer.
    """

    def _read_request_line(self):
        line = super()._read_request_line()
        if len(line) < self.server.url_length_limit:
            return line
        try:
            drained, head_done, at_line_start = len(line), False, line.endswith(b"\n")
            while drained < _DRAIN_LIMIT and not head_done:
                chunk = self.rfile.readline(65536)
                if not chunk:
                    break
                drained += len(chunk)
                head_done = at_line_start and chunk in (b"\r\n", b"\n")
                at_line_start = chunk.endswith(b"\n")
            self.wfile.write(_uri_too_long_response())
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = 1
        return b""


class KcWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def make_url_map(self):
        url_map = Map(converters={"int": PathId})
        for provider in self._providers:
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map

    def get_wsgi_server(self, sock, wsgi_app, protocol=KcHttpProtocol, debug=False):
        # Accepted connections inherit it: a body written after the headers (eventlet sends
        # a large one separately) does not wait ~40 ms for the client's delayed ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = super().get_wsgi_server(sock, wsgi_app, protocol=KcHttpProtocol, debug=debug)
        server.url_length_limit = MAX_REQUEST_LINE
        server.log_output = False  # JsonWsgiApp writes the access line, with correlation id
        return server


class RouteEntrypoint(HttpRequestHandler):
    """``http`` entrypoint for a :class:`Route`."""

    server = KcWebServer()
    metrics_server = MetricsServer()

    def __init__(self, route, **kwargs):
        self.route = route
        super().__init__(route.method, route.path, **kwargs)

    def setup(self):
        super().setup()
        config = self.container.config
        self.trusted_proxies = parse_networks(config.get("TRUSTED_PROXIES", ""))
        self.max_body = int(config.get("MAX_REQUEST_BYTES", 30 * 1024 * 1024))

    def get_url_rule(self):
        return Rule(self.route.path, methods=[self.route.method])

    def handle_request(self, request):
        request.shallow = False
        request.max_content_length = self.max_body
        inbound = request.headers.get("X-Request-ID", "")
        correlation_id = inbound if _REQUEST_ID.match(inbound) else new_correlation_id()
        response = self._respond(request, correlation_id)  # binds the ids for the log lines
        response.headers["X-Correlation-ID"] = correlation_id
        return response

    def _respond(self, request, correlation_id):
        try:
            context_data = {CORRELATION_ID: correlation_id,
                            CLIENT_IP: client_ip(request, self.trusted_proxies)}
            # This green thread's log lines (errors, the access line) carry the ids; the
            # worker shares context_data, so the customer appears once authenticated.
            bind_log_context(correlation_id, context_data)
            event = Event()
            self.container.spawn_worker(
                self, (request,), request.path_values, context_data=context_data,
                handle_result=partial(self.handle_result, event))
            response = self.response_from_result(event.wait())
        except Exception as exc:
            response = response_from_error(exc, correlation_id)
        return response

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if self.route.status == 204:
            return Response(status=204)
        response = json_response(result, status=self.route.status)
        if self.route.etag_field and isinstance(result, dict) and result.get(self.route.etag_field):
            response.set_etag(str(result[self.route.etag_field]).strip('"'))
        return response


def route(spec):
    """Decorate a gateway method with the entrypoint for ``spec``."""
    return RouteEntrypoint.decorator(spec)
