"""The gateway's public HTTP API, as the web front end uses it (never RPC, never a database).

One pooled HTTP session per process (keep-alive to the gateway). Every call made
while a page is rendered is counted (``flask.g.api_calls``) and timed: the
response's ``Server-Timing`` header carries both, for the benchmark.
"""
import logging
import time

import requests
from flask import g, has_request_context, request
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

UNAVAILABLE = ("Der Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es in einigen "
               "Augenblicken erneut.")
INTERNAL = "Ein interner Fehler ist aufgetreten. Bitte versuchen Sie es später erneut."


class ApiError(Exception):
    """An error answer of the gateway: ``{"error", "message", "fields"?, …}``."""

    def __init__(self, status, error, message, fields=None, details=None):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.fields = fields or {}
        self.details = details or {}

    @property
    def reason(self):
        return self.details.get("reason")

    def field_errors(self, prefix=""):
        """``{"zip": "…"}``: the first German message per field (optionally below a prefix)."""
        out = {}
        for key, messages in self.fields.items():
            if prefix and not key.startswith(prefix):
                continue
            text = messages if isinstance(messages, str) else "; ".join(map(str, messages))
            out[key[len(prefix):]] = text
        return out

    def __repr__(self):
        return f"ApiError({self.status}, {self.error!r}, {self.message!r})"


class FileResult:
    """A download the gateway answered with bytes (PDF, zone file, attachment)."""

    def __init__(self, response):
        self.content = response.content
        self.content_type = response.headers.get("Content-Type", "application/octet-stream")
        self.disposition = response.headers.get("Content-Disposition", "attachment")


class Api:
    def __init__(self, base_url, timeout=15.0, pool_size=50):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    # --- the one call --------------------------------------------------------------------
    def call(self, method, path, token=None, *, json=None, params=None, headers=None, files=None,
             data=None, binary=False, expect_json=True):
        hdrs = {"Accept": "application/json"}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if has_request_context():
            # The gateway believes this only when the web process is one of its TRUSTED_PROXIES.
            hdrs["X-Forwarded-For"] = request.remote_addr or ""
            correlation = getattr(g, "correlation_id", None)
            if correlation:
                hdrs["X-Request-ID"] = correlation
        hdrs.update(headers or {})
        started = time.perf_counter()
        try:
            resp = self.http.request(method, self.base_url + path, json=json, params=params,
                                     headers=hdrs, files=files, data=data, timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("gateway %s %s failed: %s", method, path, exc)
            raise ApiError(503, "unavailable", UNAVAILABLE) from None
        finally:
            if has_request_context():
                g.api_calls = getattr(g, "api_calls", 0) + 1
                g.api_ms = getattr(g, "api_ms", 0.0) + (time.perf_counter() - started) * 1000
        if resp.status_code >= 400:
            raise self._error(resp)
        if binary:
            return FileResult(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        if expect_json:
            result = resp.json()
            if isinstance(result, dict) and resp.headers.get("ETag"):
                result.setdefault("_etag", resp.headers["ETag"])
            return result
        return resp

    @staticmethod
    def _error(resp):
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        status = resp.status_code
        if status >= 500 and status != 503:
            message = INTERNAL
        elif status == 503:
            message = body.get("message") or UNAVAILABLE
        else:
            message = body.get("message") or "Die Anfrage wurde abgelehnt."
        details = {k: v for k, v in body.items() if k not in ("error", "message", "fields")}
        if resp.headers.get("Retry-After"):
            details.setdefault("retry_after", resp.headers["Retry-After"])
        return ApiError(status, body.get("error", "error"), message, body.get("fields"), details)

    # --- several calls at once (one page = at most a few, run concurrently) ------------------
    def parallel(self, *thunks):
        """Run the zero-argument callables concurrently; results in order, errors re-raised.

        Under eventlet (the web process) they run as green threads sharing the request's
        context; elsewhere one after another.
        """
        if len(thunks) <= 1:
            return [t() for t in thunks]
        try:
            import eventlet.patcher
            patched = eventlet.patcher.is_monkey_patched("socket")
        except ImportError:  # pragma: no cover - eventlet is a dependency of the system
            patched = False
        if not patched:
            return [t() for t in thunks]
        import contextvars

        import eventlet

        def run(thunk):
            try:
                return True, thunk()
            except Exception as exc:  # noqa: BLE001 - re-raised in the caller below
                return False, exc

        # Each green thread runs in a copy of this context: same request, same ``g``.
        threads = [eventlet.spawn(contextvars.copy_context().run, run, t) for t in thunks]
        outcomes = [t.wait() for t in threads]
        for ok, value in outcomes:
            if not ok:
                raise value
        return [value for _, value in outcomes]
