"""All public routes, one module per service (each owned with its service)."""
from kc_gateway.routes import billing, catalog, dns, documents, identity, support

ROUTES = (identity.ROUTES + catalog.ROUTES + billing.ROUTES + dns.ROUTES
          + documents.ROUTES + support.ROUTES)
