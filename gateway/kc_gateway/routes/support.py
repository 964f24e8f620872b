"""Public routes served by support."""
ROUTES = []
