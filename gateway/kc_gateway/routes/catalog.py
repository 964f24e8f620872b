"""Public routes served by catalog."""
from kc_catalog import schemas as s
from kc_common.errors import (
                              Conflict,
                              Forbidden,
                              NotFound,
                              ServiceUnavailable,
                              Unauthenticated,
                              Unprocessable,
                              ValidationFailed,
)
from kc_gateway.http import PUBLIC, STAFF, Route

P = "Meine Produkte"
C = "/api/v1/me/contracts/<int:contract_id>"

ROUTES = [
    # Catalog and ordering
    Route("GET", "/api/v1/products", "catalog", "list_products", auth=PUBLIC, tag="Bestellen",
          summary="The product catalog with prices (EUR net + VAT) and payment periods",
          query=s.ProductQuerySchema, response=s.ProductListSchema),
    Route("POST", "/api/v1/me/orders", "catalog", "place_order", tag="Bestellen",
          summary="Place an order (all items or none); active at once, pending while in arrears",
          body=s.PlaceOrderSchema, response=s.OrderSchema, status=201, idempotent=True, verified_email=True,
          errors=(Conflict, Unprocessable, NotFound, Forbidden)),
    Route("POST", "/api/v1/me/orders/quote", "catalog", "quote_order", tag="Bestellen",
          summary="Net, VAT (the customer's VAT situation incl. reverse charge) and gross of an "
                  "order's first periods before placing it; priced by billing's invoicing code",
          body=s.PlaceOrderSchema, response=s.OrderQuoteSchema,
          errors=(Conflict, NotFound, ServiceUnavailable)),
    # Meine Produkte: the three tables and all contracts
    Route("GET", "/api/v1/me/contracts", "catalog", "list_contracts", tag=P,
          summary="All of the customer's contracts (search with q, filter, paged)",
          query=s.AllContractQuerySchema, response=s.ContractPageSchema),
    Route("GET", "/api/v1/me/products/webhosting", "catalog", "list_webhosting", tag=P,
          summary="Webhosting & Domains: Domain, Paket, Zugang, Zahlungsperiode, Preis, nächste Rechnung, "
                  "Vertragsstatus (search with q, paged)",
          query=s.ContractQuerySchema, response=s.WebhostingPageSchema),
    Route("GET", "/api/v1/me/products/servers", "catalog", "list_servers", tag=P,
          summary="Server: Servername, Beschreibung, Servicelevel, Traffic inkl., IP-Adressen, Zugang, "
                  "Zahlungsperiode, Preis, nächste Rechnung, Vertragsstatus (search with q, paged)",
          query=s.ContractQuerySchema, response=s.ServerPageSchema),
    Route("GET", "/api/v1/me/products/other", "catalog", "list_other", tag=P,
          summary="Andere Produkte: backups, SSL certificates, VPN, CDN, IP addresses, licences",
          query=s.ContractQuerySchema, response=s.OtherPageSchema),
    Route("GET", C, "catalog", "get_contract", tag=P, summary="One contract with all its terms",
          response=s.ContractSchema, errors=(NotFound,)),
    # Kündigung and Tarifwechsel
    Route("GET", C + "/cancellation", "catalog", "cancellation_preview", tag="Bestellen",
          summary="The end date a cancellation today would have (notice period applied)",
          response=s.CancellationPreviewSchema, errors=(NotFound, Conflict)),
    Route("POST", C + "/cancellation", "catalog", "cancel_contract", tag="Bestellen",
          summary="Cancel (Kündigung): runs until the computed end date, then ends",
          response=s.ContractSchema, errors=(NotFound, Conflict)),
    Route("GET", C + "/tariffs", "catalog", "tariff_options", tag="Bestellen",
          summary="Tariffs this contract can change to (upgrade at once, downgrade at period end)",
          response=s.TariffOptionsSchema, errors=(NotFound,)),
    Route("GET", C + "/tariff-change/quote", "catalog", "quote_tariff_change", tag="Bestellen",
          summary="The prorated credit and charge a tariff change now would invoice (as billing "
                  "books it; a downgrade invoices nothing now)", query=s.TariffQuoteQuerySchema,
          response=s.TariffQuoteSchema, errors=(NotFound, Conflict, Unprocessable, ServiceUnavailable)),
    Route("POST", C + "/tariff-change", "catalog", "change_tariff", tag="Bestellen",
          summary="Tarifwechsel within the product family", body=s.TariffChangeSchema,
          response=s.ContractSchema, verified_email=True, errors=(NotFound, Conflict, Unprocessable, Forbidden)),
    # Zugang
    Route("POST", C + "/login-link", "catalog", "create_login_link", tag=P,
          summary="Zugang: a short-lived, single-use login URL for the contract's admin panel",
          response=s.LoginLinkSchema, status=201, errors=(NotFound, Conflict, Unprocessable)),
    Route("POST", "/api/v1/panel-logins", "catalog", "redeem_login_link", auth=PUBLIC, tag="Panels",
          summary="For the admin panels (ServerCon, reseller admin, cloud platform): redeem a login "
                  "token once", body=s.RedeemSchema, response=s.RedeemResultSchema,
          errors=(Unauthenticated, Conflict)),
    # Traffic anzeigen
    Route("GET", "/api/v1/me/traffic", "catalog", "traffic_overview", tag=P,
          summary="Traffic anzeigen: every server, this month's traffic against what is included, "
                  "and the last `months` months (1 to 36) of history per server",
          query=s.TrafficOverviewQuerySchema, response=s.TrafficOverviewSchema,
          errors=(ValidationFailed,)),
    Route("GET", C + "/traffic", "catalog", "traffic_usage", tag=P,
          summary="A server's traffic per month (used vs. included, over-use flagged), trend, last 30 days",
          query=s.TrafficQuerySchema, response=s.TrafficUsageSchema, errors=(NotFound, Unprocessable)),
    # Staff: catalog management, traffic feed, job
    Route("GET", "/api/v1/staff/products", "catalog", "staff_list_products", auth=STAFF, tag="Staff",
          summary="The catalog incl. products no longer orderable (admin)",
          query=s.StaffProductQuerySchema, response=s.ProductListSchema, errors=(Forbidden,)),
    Route("POST", "/api/v1/staff/products", "catalog", "staff_create_product", auth=STAFF, tag="Staff",
          summary="Create a product (admin)", body=s.ProductCreateSchema, response=s.ProductSchema,
          status=201, errors=(Forbidden, Conflict)),
    Route("PATCH", "/api/v1/staff/products/<product_id>", "catalog", "staff_update_product", auth=STAFF,
          tag="Staff", summary="Change a product; a new price applies to new bookings only (admin)",
          body=s.ProductUpdateSchema, response=s.ProductSchema, errors=(Forbidden, NotFound)),
    Route("GET", "/api/v1/staff/products/<product_id>/prices", "catalog", "staff_price_history",
          auth=STAFF, tag="Staff", summary="A product's price history (admin)",
          response=s.PriceHistorySchema, errors=(Forbidden, NotFound)),
    Route("POST", "/api/v1/staff/traffic", "catalog", "report_traffic", auth=STAFF, tag="Staff",
          summary="Feed server traffic per server and day (a day's report replaces the earlier one)",
          body=s.TrafficReportSchema, response=s.TrafficReportResultSchema, errors=(Forbidden,)),
    Route("POST", "/api/v1/staff/catalog/jobs", "catalog", "run_jobs", auth=STAFF, tag="Staff",
          summary="Run the lifecycle job now: terminate ended contracts, apply due downgrades (admin)",
          response=s.JobRunSchema, errors=(Forbidden,)),
]
