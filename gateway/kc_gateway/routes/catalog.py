"""Public routes served by catalog."""
from kc_common.errors import Conflict, NotFound, Unprocessable
from kc_gateway.http import PUBLIC, Route
from kc_catalog import schemas as s

ROUTES = [
    Route("GET", "/api/v1/products", "catalog", "list_products", auth=PUBLIC, tag="Bestellen",
          summary="The product catalog with prices", response=s.ProductListSchema),
    Route("POST", "/api/v1/me/orders", "catalog", "place_order", tag="Bestellen",
          summary="Place an order (all items or none)", body=s.PlaceOrderSchema,
          response=s.OrderSchema, status=201, idempotent=True,
          errors=(Conflict, Unprocessable, NotFound)),
    Route("GET", "/api/v1/me/contracts", "catalog", "list_contracts", tag="Meine Produkte",
          summary="The customer's contracts (search with q, paged)",
          query=s.ContractQuerySchema, response=s.ContractPageSchema),
]
