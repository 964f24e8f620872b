"""billing's settings, read from the nameko config (``${VAR:default}`` from the environment).

The seller (kc_common.seller, the one source of every document), payment terms, postage, dunning
intervals and the payment service provider. Fail fast on nonsense.
"""
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from kc_common.seller import seller_from_config
from kc_common.settings import Secret

DEFAULTS = {
    # The seller's own bank accounts (comma-separated IBANs) whose statements are booked;
    # empty: SELLER_IBAN alone (kc_common.seller).
    "SELLER_ACCOUNTS": "",
    # SEPA direct debit: what a return debit (Rücklastschrift) costs the customer (the
    # bank's fee, passed on; 0: none). The creditor identifier (Gläubiger-ID) is the
    # seller's, SELLER_CREDITOR_ID in kc_common.seller.
    "SEPA_RETURN_FEE": "3.00",
    # Days between submitting a collection and its collection date (SEPA CORE: at least one
    # TARGET2 business day): the timer's collection is for today + this.
    "SEPA_LEAD_DAYS": 2,
    "PAYMENT_TERM_DAYS": 14,
    "POSTAGE_NET": "2.00",
    "DEFAULT_VAT_RATE": "19.00",
    "DUNNING_DAYS": "7,21,35",
    "PSP_URL": "http://127.0.0.1:8031",
    "PSP_API_KEY": "sim_key_dev",
    "PSP_WEBHOOK_SECRET": "whsec_dev_only_change_me",
    "PSP_WEBHOOK_TOLERANCE": 300,
    "PSP_RETURN_URL": "http://127.0.0.1:8000/zahlung",
    # Origins a payment's own return_url may point to (comma-separated; the origin of
    # PSP_RETURN_URL is always allowed). Anything else is refused: never an open redirect.
    "PSP_RETURN_ORIGINS": "",
    "PSP_RECONCILE_AFTER": 60,
    # Bounded work from one request: a run's as_of (Stichtag) at most this many days ahead of
    # / behind today (Europe/Berlin); a bank statement at most this large.
    "RUN_MAX_DAYS_AHEAD": 7,
    "RUN_MAX_DAYS_BACK": 31,
    # A billing run records a heartbeat this often; one without a heartbeat for RUN_STALE_AFTER
    # seconds (or whose process is gone) is shown as aborted and resumed by the next run.
    "RUN_HEARTBEAT_EVERY": 5,
    "RUN_STALE_AFTER": 60,
    # A billing run bills this many customers per transaction (set-based statements, one block
    # of invoice numbers); a chunk that fails is billed customer by customer.
    "RUN_CHUNK_SIZE": 250,
    "STATEMENT_MAX_BYTES": 5 * 1024 * 1024,
    "STATEMENT_MAX_ENTRIES": 500,
}


# Refused outside KC_ENV=development when missing or equal to these committed development values.
# PSP_WEBHOOK_SECRET is comma-separated: every secret listed is accepted (rotation: add the new
# one, switch the PSP over, then remove the old one).
SECRETS = (
    Secret("PSP_WEBHOOK_SECRET", "PSP_WEBHOOK_SECRET", dev=("whsec_dev_only_change_me",), many=True),
    Secret("PSP_API_KEY", "PSP_API_KEY", dev=("sim_key_dev",)),
)


class BillingSettings:
    def __init__(self, config):
        get = lambda key: config.get(key) if config.get(key) not in (None, "") else DEFAULTS[key]  # noqa: E731
        self.seller = seller_from_config(config)
        accounts = config.get("SELLER_ACCOUNTS") or DEFAULTS["SELLER_ACCOUNTS"] or self.seller["iban"]
        self.own_accounts = frozenset(a.replace(" ", "").upper() for a in str(accounts).split(",")
                                      if a.strip())
        if not self.own_accounts:
            raise RuntimeError("billing: SELLER_ACCOUNTS/SELLER_IBAN must name the seller's account")
        try:
            self.payment_term_days = int(get("PAYMENT_TERM_DAYS"))
            self.postage_net = Decimal(str(get("POSTAGE_NET"))).quantize(Decimal("0.01"))
            self.default_vat_rate = Decimal(str(get("DEFAULT_VAT_RATE"))).quantize(Decimal("0.01"))
            self.dunning_days = sorted(int(d) for d in str(get("DUNNING_DAYS")).split(",") if d.strip())
            self.psp_webhook_tolerance = int(get("PSP_WEBHOOK_TOLERANCE"))
            self.psp_reconcile_after = int(get("PSP_RECONCILE_AFTER"))
            self.run_max_days_ahead = int(get("RUN_MAX_DAYS_AHEAD"))
            self.run_max_days_back = int(get("RUN_MAX_DAYS_BACK"))
            self.run_heartbeat_every = float(get("RUN_HEARTBEAT_EVERY"))
            self.run_stale_after = float(get("RUN_STALE_AFTER"))
            self.run_chunk_size = int(get("RUN_CHUNK_SIZE"))
            self.statement_max_bytes = int(get("STATEMENT_MAX_BYTES"))
            self.statement_max_entries = int(get("STATEMENT_MAX_ENTRIES"))
            self.sepa_return_fee = Decimal(str(get("SEPA_RETURN_FEE"))).quantize(Decimal("0.01"))
            self.sepa_lead_days = int(get("SEPA_LEAD_DAYS"))
        except (ValueError, InvalidOperation) as exc:
            raise RuntimeError(f"billing: invalid configuration: {exc}") from None
        if not self.dunning_days or self.dunning_days[0] < 0:
            raise RuntimeError("billing: DUNNING_DAYS must list non-negative day counts")
        if self.run_max_days_ahead < 0 or self.run_max_days_back < 0:
            raise RuntimeError("billing: RUN_MAX_DAYS_AHEAD/RUN_MAX_DAYS_BACK must not be negative")
        if not 0 < self.run_heartbeat_every < self.run_stale_after:
            raise RuntimeError("billing: RUN_HEARTBEAT_EVERY must be positive and below RUN_STALE_AFTER")
        if not 1 <= self.run_chunk_size <= 10000:
            raise RuntimeError("billing: RUN_CHUNK_SIZE must lie within 1..10000")
        if self.statement_max_bytes < 1 or self.statement_max_entries < 1:
            raise RuntimeError("billing: STATEMENT_MAX_BYTES/STATEMENT_MAX_ENTRIES must be positive")
        if self.sepa_return_fee < 0:
            raise RuntimeError("billing: SEPA_RETURN_FEE must not be negative")
        if not 0 <= self.sepa_lead_days <= self.run_max_days_ahead:
            raise RuntimeError("billing: SEPA_LEAD_DAYS must lie within 0..RUN_MAX_DAYS_AHEAD")
        self.sepa_creditor_id = (self.seller.get("creditor_id") or "").replace(" ", "").upper()
        self.psp_url = str(get("PSP_URL")).rstrip("/")
        self.psp_api_key = str(get("PSP_API_KEY"))
        self.psp_webhook_secret = str(get("PSP_WEBHOOK_SECRET"))
        self.psp_return_url = str(get("PSP_RETURN_URL"))
        self.psp_return_origins = {origin_of(self.psp_return_url)} | {
            origin_of(o.strip()) for o in str(get("PSP_RETURN_ORIGINS")).split(",") if o.strip()}
        if None in self.psp_return_origins:
            raise RuntimeError("billing: PSP_RETURN_URL/PSP_RETURN_ORIGINS must be http(s) URLs")


def origin_of(url):
    """``https://Web.Example:443/x`` -> ``https://web.example``; None unless a plain http(s) URL
    (no user info)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None \
            or parts.password is not None:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")
