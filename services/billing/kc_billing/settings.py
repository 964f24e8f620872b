"""billing's settings, read from the nameko config (``${VAR:default}`` from the environment).

The seller data printed on every invoice, payment terms, postage, dunning
intervals and the payment service provider. Fail fast on nonsense.
"""
from decimal import Decimal, InvalidOperation

DEFAULTS = {
    "SELLER_NAME": "KundenCenter Hosting GmbH",
    "SELLER_STREET": "Musterstraße 1",
    "SELLER_ZIP": "30159",
    "SELLER_CITY": "Hannover",
    "SELLER_COUNTRY": "DE",
    "SELLER_VAT_ID": "DE123456789",
    "SELLER_IBAN": "DE89370400440532013000",
    "SELLER_BIC": "COBADEFFXXX",
    "SELLER_BANK": "Commerzbank",
    "PAYMENT_TERM_DAYS": 14,
    "POSTAGE_NET": "2.00",
    "DEFAULT_VAT_RATE": "19.00",
    "DUNNING_DAYS": "7,21,35",
    "PSP_URL": "http://127.0.0.1:8031",
    "PSP_API_KEY": "sim_key_dev",
    "PSP_WEBHOOK_SECRET": "whsec_dev_only_change_me",
    "PSP_WEBHOOK_TOLERANCE": 300,
    "PSP_RETURN_URL": "http://127.0.0.1:8000/zahlung",
    "PSP_RECONCILE_AFTER": 60,
}


class BillingSettings:
    def __init__(self, config):
        get = lambda key: config.get(key) if config.get(key) not in (None, "") else DEFAULTS[key]  # noqa: E731
        self.seller = {
            "name": get("SELLER_NAME"), "street": get("SELLER_STREET"), "zip": str(get("SELLER_ZIP")),
            "city": get("SELLER_CITY"), "country": get("SELLER_COUNTRY"),
            "vat_id": get("SELLER_VAT_ID"), "iban": get("SELLER_IBAN"), "bic": get("SELLER_BIC"),
            "bank": get("SELLER_BANK"),
        }
        try:
            self.payment_term_days = int(get("PAYMENT_TERM_DAYS"))
            self.postage_net = Decimal(str(get("POSTAGE_NET"))).quantize(Decimal("0.01"))
            self.default_vat_rate = Decimal(str(get("DEFAULT_VAT_RATE"))).quantize(Decimal("0.01"))
            self.dunning_days = sorted(int(d) for d in str(get("DUNNING_DAYS")).split(",") if d.strip())
            self.psp_webhook_tolerance = int(get("PSP_WEBHOOK_TOLERANCE"))
            self.psp_reconcile_after = int(get("PSP_RECONCILE_AFTER"))
        except (ValueError, InvalidOperation) as exc:
            raise RuntimeError(f"billing: invalid configuration: {exc}") from None
        if not self.dunning_days or self.dunning_days[0] < 0:
            raise RuntimeError("billing: DUNNING_DAYS must list non-negative day counts")
        self.psp_url = str(get("PSP_URL")).rstrip("/")
        self.psp_api_key = str(get("PSP_API_KEY"))
        self.psp_webhook_secret = str(get("PSP_WEBHOOK_SECRET"))
        self.psp_return_url = str(get("PSP_RETURN_URL"))
