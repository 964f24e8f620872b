"""support answers on the bus (its features arrive with its own issue)."""
from nameko.testing.services import entrypoint_hook

from kc_support.service import SupportService


def test_ping(container_factory, config):
    container = container_factory(SupportService, config)
    container.start()
    with entrypoint_hook(container, "ping") as ping:
        assert ping() == {"service": "support", "status": "ok"}
