"""The one list of services (issue 18): every tool, the gateway and the tests read it here.

A service ``name`` lives in the package ``kc_<name>``; its nameko service class is
``kc_<name>.service:<Name>Service``.
"""

from __future__ import annotations

import importlib
from typing import Any

SERVICES = ("identity", "catalog", "billing", "dns", "documents", "support")


def package(name: str) -> str:
    """``"billing"`` -> ``"kc_billing"``."""
    return f"kc_{name}"


def class_path(name: str) -> str:
    """``"billing"`` -> ``"kc_billing.service:BillingService"``."""
    return f"{package(name)}.service:{name.capitalize()}Service"


def service_class(name: str) -> Any:
    """The nameko service class of ``name`` (imports the service's package)."""
    module, cls = class_path(name).split(":")
    return getattr(importlib.import_module(module), cls)


def service_classes() -> list[Any]:
    """The nameko service class of every service, in :data:`SERVICES` order."""
    return [service_class(name) for name in SERVICES]
