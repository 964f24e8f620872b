"""Public routes served by documents."""
ROUTES = []
