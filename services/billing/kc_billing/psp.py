"""Payment service provider (PSP) adapter interface and the adapter for the PSP simulator.

A real PSP adapter implements :class:`PaymentProvider`; billing only ever talks
to that interface. Webhooks are signed: ``X-PSP-Signature: t=<unix time>,v1=<hex>``
with ``v1 = HMAC-SHA256(secret, "<t>.<raw body>")``; a delivery older (or
newer) than the tolerance is refused as a possible replay. Several secrets may be
valid at once (``PSP_WEBHOOK_SECRET`` comma-separated, for rotation): a signature
made with any of them is accepted.
"""
import hashlib
import hmac
import json
import time
from abc import ABC, abstractmethod

import requests

from kc_common.txguard import assert_no_transaction

SIGNATURE_HEADER = "X-PSP-Signature"
FINAL = ("succeeded", "failed")


class PspError(Exception):
    """The PSP could not be reached or refused the request."""


class WebhookRejected(Exception):
    """Bad signature, stale timestamp or malformed body."""


def sign(secret, timestamp, body):
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def secrets_of(secret):
    """The webhook secrets of ``secret``: a comma-separated string or a list."""
    items = secret.split(",") if isinstance(secret, str) else list(secret or ())
    return [s.strip() for s in items if s and s.strip()]


def verify(secret, header, body, tolerance, now=None):
    """Check a webhook's signature (made with any of ``secret``'s secrets) and replay window;
    returns the parsed body."""
    if not header:
        raise WebhookRejected("missing signature")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        raise WebhookRejected("malformed signature header") from None
    given = parts.get("v1", "")
    # Every secret is compared (no early exit): the time taken does not tell which one matched.
    matches = [hmac.compare_digest(sign(s, timestamp, body).split("v1=", 1)[1], given)
               for s in secrets_of(secret)]
    if not any(matches):
        raise WebhookRejected("signature mismatch")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise WebhookRejected("timestamp outside the replay window")
    try:
        event = json.loads(body)
        data = event["data"]
        return {"event_id": str(event["id"]), "type": str(event["type"]),
                "psp_payment_id": str(data["id"]), "reference": str(data["reference"]),
                "status": str(data["status"]), "amount": str(data["amount"]),
                "reason": data.get("failure_reason")}
    except (ValueError, KeyError, TypeError):
        raise WebhookRejected("malformed body") from None


class PaymentProvider(ABC):
    @abstractmethod
    def create_payment(self, *, reference, amount, currency, method, description,
                       idempotency_key, return_url):
        """-> {"psp_payment_id", "status", "redirect_url"}"""

    @abstractmethod
    def get_payment(self, psp_payment_id):
        """-> {"psp_payment_id", "reference", "status", "amount", "reason"}"""

    @abstractmethod
    def parse_webhook(self, raw_body, headers, now=None):
        """Verify and parse a webhook delivery (raises WebhookRejected)."""


class SimulatorProvider(PaymentProvider):
    """Adapter for ``kc_billing.psp_sim`` (speaks like a typical card/instant PSP)."""

    def __init__(self, base_url, api_key, webhook_secret, tolerance=300, timeout=5):
        self.base_url, self.api_key = base_url.rstrip("/"), api_key
        self.webhook_secret, self.tolerance, self.timeout = webhook_secret, tolerance, timeout

    def _call(self, method, path, **kwargs):
        assert_no_transaction(f"PSP {method} {path}")
        try:
            resp = requests.request(method, self.base_url + path, timeout=self.timeout,
                                    headers={"Authorization": f"Bearer {self.api_key}",
                                             **kwargs.pop("headers", {})}, **kwargs)
        except requests.RequestException as exc:
            raise PspError(f"PSP unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise PspError(f"PSP answered {resp.status_code}: {resp.text[:200]}")
        return resp.json()

    def create_payment(self, *, reference, amount, currency, method, description,
                       idempotency_key, return_url):
        body = self._call("POST", "/v1/payments", headers={"Idempotency-Key": idempotency_key},
                          json={"reference": reference, "amount": str(amount), "currency": currency,
                                "method": method, "description": description,
                                "return_url": return_url})
        return {"psp_payment_id": body["id"], "status": body["status"],
                "redirect_url": body["redirect_url"]}

    def get_payment(self, psp_payment_id):
        body = self._call("GET", f"/v1/payments/{psp_payment_id}")
        return {"psp_payment_id": body["id"], "reference": body["reference"],
                "status": body["status"], "amount": body["amount"],
                "reason": body.get("failure_reason")}

    def parse_webhook(self, raw_body, headers, now=None):
        header = next((v for k, v in (headers or {}).items()
                       if k.lower() == SIGNATURE_HEADER.lower()), None)
        return verify(self.webhook_secret, header, raw_body or "", self.tolerance, now)


def provider_from_settings(settings):
    return SimulatorProvider(settings.psp_url, settings.psp_api_key, settings.psp_webhook_secret,
                             settings.psp_webhook_tolerance)
