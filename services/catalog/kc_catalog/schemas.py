"""catalog's RPC contract (also the OpenAPI document's schemas)."""
from marshmallow import fields, validate

from kc_common.schemas import (
    BaseSchema,
    Boolean,
    DecimalRange,
    Money,
    PageQuerySchema,
    QueryBoolean,
    UtcDateTime,
    page_of,
)

KINDS = ["hosting", "domain", "server", "addon", "option"]
STATES = ["pending", "active", "cancelled", "terminated"]
PERIODS = [1, 3, 6, 12]


def _between(low, high):
    """Range check of a decimal (the OpenAPI document states it; kc_common.schemas.DecimalRange)."""
    return DecimalRange(low, high)


def _rate(**kwargs):
    return fields.Decimal(as_string=True, places=2, validate=_between(0, 100), **kwargs)


# ---------------------------------------------------------------- products

class PeriodPriceSchema(BaseSchema):
    months = fields.Integer(required=True)
    price_net = Money(required=True)
    price_gross = Money(required=True)


class ProductSchema(BaseSchema):
    id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "hosting, domain, server, addon, option"})
    category = fields.String(required=True, metadata={"description": "webhosting, server, other, option"})
    name = fields.String(required=True)
    description = fields.String(required=True)
    tld = fields.String(allow_none=True)
    family = fields.String(allow_none=True, metadata={"description": "Tarifwechsel innerhalb der Familie"})
    rank = fields.Integer(allow_none=True, metadata={"description": "Größe in der Familie (höher = Upgrade)"})
    attributes = fields.Dict(required=True, metadata={
        "description": "service_level, cpu_cores, ram_gb, disk_gb, disk_type, disk_speed, traffic_gb, "
                       "ip_count, access (servercon/reseller/cloud), connect, applies_to, …"})
    price_net = Money(required=True, metadata={"description": "EUR netto je Monat (Domains: je Jahr)"})
    price_gross = Money(required=True)
    price_unit = fields.String(required=True, metadata={"description": "month or year"})
    vat_rate = fields.Decimal(as_string=True, required=True, places=2)
    currency = fields.String(required=True)
    periods = fields.List(fields.Integer(), required=True, metadata={"description": "Zahlungsperioden (Monate)"})
    period_prices = fields.List(fields.Nested(PeriodPriceSchema), required=True)
    notice_days = fields.Integer(required=True, metadata={"description": "Kündigungsfrist in Tagen"})
    active = Boolean(required=True, metadata={"description": "bestellbar"})


class ProductListSchema(BaseSchema):
    items = fields.List(fields.Nested(ProductSchema), required=True)


class ProductQuerySchema(BaseSchema):
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    family = fields.String(load_default=None, validate=validate.Length(max=50))


class StaffProductQuerySchema(ProductQuerySchema):
    include_inactive = QueryBoolean(load_default=True)


class ProductCreateSchema(BaseSchema):
    id = fields.String(required=True, validate=[validate.Length(min=2, max=50),
                                                validate.Regexp(r"^[a-z0-9][a-z0-9-]*$")])
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=500))
    tld = fields.String(load_default=None, validate=validate.Regexp(r"^[a-z0-9-]{2,63}$"))
    family = fields.String(load_default=None, validate=validate.Length(min=1, max=50))
    rank = fields.Integer(load_default=None, validate=validate.Range(min=1, max=100))
    attributes = fields.Dict(load_default=dict)
    price_net = Money(required=True, validate=_between(0, 1_000_000))
    vat_rate = _rate(required=True)
    periods = fields.List(fields.Integer(validate=validate.OneOf(PERIODS)), required=True,
                          validate=validate.Length(min=1, max=4))
    notice_days = fields.Integer(load_default=30, validate=validate.Range(min=0, max=365))
    active = Boolean(load_default=True)


class ProductUpdateSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=500))
    attributes = fields.Dict()
    price_net = Money(validate=_between(0, 1_000_000),
                      metadata={"description": "gilt für neue Bestellungen und Tarifwechsel; "
                                               "bestehende Verträge behalten ihren Preis"})
    vat_rate = _rate()
    periods = fields.List(fields.Integer(validate=validate.OneOf(PERIODS)), validate=validate.Length(min=1, max=4))
    notice_days = fields.Integer(validate=validate.Range(min=0, max=365))
    active = Boolean()


class PriceEntrySchema(BaseSchema):
    price_net = Money(required=True)
    vat_rate = fields.Decimal(as_string=True, required=True, places=2)
    valid_from = UtcDateTime(required=True)
    changed_by = fields.String(allow_none=True)


class PriceHistorySchema(BaseSchema):
    items = fields.List(fields.Nested(PriceEntrySchema), required=True)


# ---------------------------------------------------------------- orders

class OrderItemSchema(BaseSchema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=50))
    domain = fields.String(load_default=None, validate=validate.Length(min=1, max=253), metadata={
        "description": "Domain (Registrierung/Aufschaltung) oder Hauptdomain eines Hosting-Pakets"})
    period_months = fields.Integer(load_default=None, validate=validate.OneOf(PERIODS))
    options = fields.List(fields.String(validate=validate.Length(min=1, max=50)), load_default=list,
                          validate=validate.Length(max=10), metadata={"description": "Server-Optionen"})
    label = fields.String(load_default=None, validate=validate.Length(min=1, max=200), metadata={
        "description": "Servername (Server) oder Bezug (z. B. Domain eines SSL-Zertifikats)"})
    usage = fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                          metadata={"description": "Nutzung (Server), erscheint in der Beschreibung"})


class PlaceOrderSchema(BaseSchema):
    items = fields.List(fields.Nested(OrderItemSchema), required=True,
                        validate=validate.Length(min=1, max=20))


# ---------------------------------------------------------------- contracts

class AccessSchema(BaseSchema):
    available = Boolean(required=True, metadata={"description": "Zugang: Login-Link verfügbar"})
    panel = fields.String(allow_none=True, metadata={"description": "servercon, reseller, cloud"})
    label = fields.String(allow_none=True, metadata={"description": "Login / Admin Reseller / Cloud Platform Login"})


class PendingChangeSchema(BaseSchema):
    product_id = fields.String(required=True)
    price_net = Money(required=True)
    effective_date = fields.Date(required=True)


class _ContractCommon(BaseSchema):
    id = fields.Integer(required=True)
    access = fields.Nested(AccessSchema, required=True, metadata={"description": "Zugang"})
    period_months = fields.Integer(required=True, metadata={"description": "Zahlungsperiode"})
    price_net = Money(required=True, metadata={"description": "Preis je Zahlungsperiode, netto"})
    price_gross = Money(required=True, metadata={"description": "Preis je Zahlungsperiode, brutto"})
    currency = fields.String(required=True)
    next_invoice_date = fields.Date(required=True, metadata={"description": "nächste Rechnung"})
    status = fields.String(required=True, metadata={"description": "Vertragsstatus: " + ", ".join(STATES)})
    status_text = fields.String(required=True, metadata={"description": "Vertragsstatus (Anzeige)"})
    end_date = fields.Date(allow_none=True, metadata={"description": "Vertragsende nach Kündigung"})


class ContractSchema(_ContractCommon):
    product_id = fields.String(required=True)
    product_name = fields.String(required=True, metadata={"description": "Paket"})
    kind = fields.String(required=True)
    domain = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    name = fields.String(allow_none=True, metadata={"description": "Domain / Servername / Bezug"})
    description = fields.String(required=True)
    dns_zone = fields.String(allow_none=True)
    server_name = fields.String(allow_none=True)
    service_level = fields.String(allow_none=True)
    traffic_included_gb = fields.Integer(allow_none=True)
    ip_addresses = fields.List(fields.String(), required=True)
    options = fields.List(fields.Dict(), required=True)
    vat_rate = fields.Decimal(as_string=True, required=True, places=2)
    start_date = fields.Date(required=True)
    notice_days = fields.Integer(required=True, metadata={"description": "Kündigungsfrist in Tagen"})
    pending_change = fields.Nested(PendingChangeSchema, allow_none=True,
                                   metadata={"description": "vorgemerkter Tarifwechsel (Downgrade)"})


class WebhostingRowSchema(_ContractCommon):
    """Webhosting & Domains: Domain, Paket, Zugang, Zahlungsperiode, Preis, nächste Rechnung, Vertragsstatus."""
    name = fields.String(allow_none=True, metadata={"description": "Domain"})
    package = fields.String(required=True, metadata={"description": "Paket"})
    kind = fields.String(required=True)
    dns_zone = fields.String(allow_none=True, metadata={"description": "Zone für das DNS-Modul"})


class ServerRowSchema(_ContractCommon):
    """Server: Servername, Beschreibung, Servicelevel, Traffic inkl., IP-Adressen, Zugang, …"""
    server_name = fields.String(allow_none=True, metadata={"description": "Servername"})
    description = fields.String(required=True, metadata={"description": "Beschreibung"})
    service_level = fields.String(allow_none=True, metadata={"description": "Managed / Root"})
    traffic_included_gb = fields.Integer(allow_none=True, metadata={"description": "Traffic inkl. (GB)"})
    ip_addresses = fields.List(fields.String(), required=True, metadata={"description": "IP-Adressen"})


class OtherRowSchema(_ContractCommon):
    """Andere Produkte: Produkt, Beschreibung, Bezug, Zahlungsperiode, Preis, nächste Rechnung, Status."""
    product_name = fields.String(required=True, metadata={"description": "Produkt"})
    description = fields.String(required=True, metadata={"description": "Beschreibung"})
    label = fields.String(allow_none=True, metadata={"description": "Bezug"})
    ip_addresses = fields.List(fields.String(), required=True)


class OrderSchema(BaseSchema):
    id = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    contracts = fields.List(fields.Nested(ContractSchema), required=True)


class ContractQuerySchema(PageQuerySchema):
    q = fields.String(load_default=None, validate=validate.Length(max=200),
                      metadata={"description": "Suche"})
    status = fields.String(load_default=None, validate=validate.OneOf(STATES))


class AllContractQuerySchema(ContractQuerySchema):
    category = fields.String(load_default=None, validate=validate.OneOf(["webhosting", "server", "other"]))


ContractPageSchema = page_of(ContractSchema, "ContractPageSchema")
WebhostingPageSchema = page_of(WebhostingRowSchema, "WebhostingPageSchema")
ServerPageSchema = page_of(ServerRowSchema, "ServerPageSchema")
OtherPageSchema = page_of(OtherRowSchema, "OtherPageSchema")


class CancellationPreviewSchema(BaseSchema):
    contract_id = fields.Integer(required=True)
    notice_days = fields.Integer(required=True, metadata={"description": "Kündigungsfrist in Tagen"})
    end_date = fields.Date(required=True, metadata={"description": "Vertragsende bei Kündigung heute"})
    status = fields.String(required=True)


class TariffChangeSchema(BaseSchema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=50))


class TariffOptionSchema(BaseSchema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    change = fields.String(required=True, metadata={"description": "upgrade (sofort) / downgrade (zum Periodenende)"})
    price_net = Money(allow_none=True, metadata={"description": "je Zahlungsperiode"})
    period_months = fields.Integer(required=True)
    available = Boolean(required=True)


class TariffOptionsSchema(BaseSchema):
    contract_id = fields.Integer(required=True)
    current_product_id = fields.String(required=True)
    items = fields.List(fields.Nested(TariffOptionSchema), required=True)


# ---------------------------------------------------------------- quotes (priced by billing)

class QuoteLineSchema(BaseSchema):
    text = fields.String(required=True, metadata={"description": "the line as the invoice will show it"})
    period_start = fields.Date(allow_none=True)
    period_end = fields.Date(allow_none=True)
    net = Money(required=True)
    vat_rate = fields.Decimal(required=True, places=2, as_string=True)
    vat = Money(required=True, metadata={"description": "informational; VAT is summed per rate"})


class QuoteVatRateSchema(BaseSchema):
    rate = fields.Decimal(required=True, places=2, as_string=True)
    base = Money(required=True, metadata={"description": "sum of the nets of this rate"})
    amount = Money(required=True, metadata={"description": "VAT of this rate, rounded half-up once"})


class InvoiceQuoteSchema(BaseSchema):
    """billing's quote: what it would invoice now, computed by the code that books the invoice."""
    issued = fields.Boolean(required=True, metadata={
        "description": "false: nothing is invoiced now (a downgrade applies at the period's end)"})
    kind = fields.String(required=True, metadata={"description": "invoice or credit_note"})
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True, metadata={
        "description": "the invoice's lines (incl. the postage line of invoices by post)"})
    vat_breakdown = fields.List(fields.Nested(QuoteVatRateSchema), required=True)
    net = Money(required=True, metadata={"description": "Netto"})
    vat = Money(required=True, metadata={"description": "USt. (0 with reverse charge)"})
    gross = Money(required=True, metadata={"description": "Brutto"})
    currency = fields.String(required=True)
    reverse_charge = fields.Boolean(required=True, metadata={
        "description": "EU business outside Germany with a VAT ID: VAT 0, the recipient owes it"})
    reverse_charge_note = fields.String(allow_none=True)
    by_post = fields.Boolean(required=True)
    payment_method = fields.String(required=True)


class QuotedOptionSchema(BaseSchema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    price_net = Money(required=True)


class QuotedItemSchema(BaseSchema):
    product_id = fields.String(required=True)
    product_name = fields.String(required=True)
    kind = fields.String(required=True)
    domain = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    period_months = fields.Integer(required=True, metadata={"description": "Zahlungsperiode"})
    price_net = Money(required=True, metadata={"description": "net price of one period incl. options"})
    vat_rate = _rate(required=True)
    period_start = fields.Date(required=True, metadata={"description": "first period: from"})
    period_end = fields.Date(required=True, metadata={"description": "first period: to"})
    options = fields.List(fields.Nested(QuotedOptionSchema), required=True)


class OrderQuoteSchema(InvoiceQuoteSchema):
    """Bestellen: net, VAT and gross of the first periods before the order is placed."""
    items = fields.List(fields.Nested(QuotedItemSchema), required=True)


class TariffTermsSchema(BaseSchema):
    product_id = fields.String(required=True)
    product_name = fields.String(required=True)
    price_net = Money(required=True)
    vat_rate = _rate(required=True)
    period_months = fields.Integer(required=True)


class TariffQuoteQuerySchema(BaseSchema):
    product_id = fields.String(required=True, validate=validate.Length(min=1, max=50),
                               metadata={"description": "the tariff to change to"})


class TariffQuoteSchema(InvoiceQuoteSchema):
    """Tarifwechsel: the prorated credit and charge billing books for the change."""
    contract_id = fields.Integer(required=True)
    change = fields.String(required=True, metadata={
        "description": "upgrade (at once, prorated now) / downgrade (at the period's end, nothing now)"})
    effective_date = fields.Date(required=True)
    period_start = fields.Date(required=True, metadata={"description": "the running period"})
    period_end = fields.Date(required=True)
    old = fields.Nested(TariffTermsSchema, required=True)
    new = fields.Nested(TariffTermsSchema, required=True)


class JobRunSchema(BaseSchema):
    terminated = fields.Integer(required=True)
    downgraded = fields.Integer(required=True)


# ---------------------------------------------------------------- Zugang

class LoginLinkSchema(BaseSchema):
    url = fields.String(required=True, metadata={"description": "einmal verwendbarer, kurzlebiger Login-Link"})
    panel = fields.String(required=True)
    expires_at = UtcDateTime(required=True)
    contract_id = fields.Integer(required=True)


class RedeemSchema(BaseSchema):
    token = fields.String(required=True, validate=validate.Length(min=10, max=2000))


class RedeemResultSchema(BaseSchema):
    contract_id = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    panel = fields.String(required=True)
    account = fields.String(allow_none=True, metadata={"description": "Paket-Domain oder Servername"})
    product_id = fields.String(required=True)
    issued_at = UtcDateTime(required=True)


# ---------------------------------------------------------------- traffic

class TrafficItemSchema(BaseSchema):
    contract_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    server_name = fields.String(load_default=None, validate=validate.Length(min=1, max=253))
    day = fields.Date(required=True)
    gb = fields.Decimal(required=True, places=3, validate=_between(0, 10_000_000))


class TrafficReportSchema(BaseSchema):
    items = fields.List(fields.Nested(TrafficItemSchema), required=True,
                        validate=validate.Length(min=1, max=5000))


class TrafficReportResultSchema(BaseSchema):
    stored = fields.Integer(required=True)


class TrafficOverviewQuerySchema(BaseSchema):
    months = fields.Integer(load_default=2, validate=validate.Range(min=1, max=36), metadata={
        "description": "how many months of history per server (1 to 36, default 2)"})


class TrafficQuerySchema(BaseSchema):
    months = fields.Integer(load_default=6, validate=validate.Range(min=2, max=24))


def _gb(**kwargs):
    return fields.Decimal(as_string=True, places=2, **kwargs)


class TrafficMonthSchema(BaseSchema):
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})
    used_gb = _gb(required=True)
    included_gb = _gb(required=True)
    percent = fields.Decimal(as_string=True, places=1, allow_none=True)
    over_use = Boolean(required=True, metadata={"description": "mehr verbraucht als inklusive"})
    over_gb = _gb(required=True)
    days_reported = fields.Integer(required=True)
    complete = Boolean(required=True, metadata={"description": "false für den laufenden Monat"})
    projected_gb = _gb(required=True, metadata={"description": "Hochrechnung auf den ganzen Monat"})
    projected_over_use = Boolean(required=True)


class TrendSchema(BaseSchema):
    direction = fields.String(required=True, metadata={"description": "up, down, flat"})
    change_percent = fields.Decimal(as_string=True, places=1, allow_none=True, metadata={
        "description": "Tagesdurchschnitt laufender Monat gegenüber Vormonat"})


class DailyTrafficSchema(BaseSchema):
    day = fields.Date(required=True)
    gb = _gb(required=True)


class TrafficUsageSchema(BaseSchema):
    contract_id = fields.Integer(required=True)
    server_name = fields.String(allow_none=True)
    included_gb = _gb(required=True)
    months = fields.List(fields.Nested(TrafficMonthSchema), required=True)
    trend = fields.Nested(TrendSchema, required=True)
    daily = fields.List(fields.Nested(DailyTrafficSchema), required=True)


class TrafficOverviewItemSchema(BaseSchema):
    contract_id = fields.Integer(required=True)
    server_name = fields.String(allow_none=True)
    included_gb = _gb(required=True)
    current = fields.Nested(TrafficMonthSchema, required=True)
    previous = fields.Nested(TrafficMonthSchema, required=True)
    trend = fields.Nested(TrendSchema, required=True)
    months = fields.List(fields.Nested(TrafficMonthSchema), required=True, metadata={
        "description": "the last `months` months, newest first (the chart's history)"})


class TrafficOverviewSchema(BaseSchema):
    items = fields.List(fields.Nested(TrafficOverviewItemSchema), required=True)
    total = fields.Integer(required=True)
