"""catalog's rules, free of nameko: products, orders, contracts and their lifecycle,
admin-panel login links, server traffic. Plain functions over a SQLAlchemy session."""
from kc_catalog.domain.common import (  # noqa: F401
                                      ACTIVE,
                                      CANCELLED,
                                      PENDING,
                                      TERMINATED,
                                      TRANSITIONS,
                                      check_transition,
                                      gross,
                                      normalise_domain,
                                      period_price,
                                      request_hash,
)
