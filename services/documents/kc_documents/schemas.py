"""documents's RPC contract (also the OpenAPI document's schemas)."""
