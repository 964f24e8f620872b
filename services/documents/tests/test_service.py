"""documents answers on the bus (its features arrive with its own issue)."""
from nameko.testing.services import entrypoint_hook

from kc_documents.service import DocumentsService


def test_ping(container_factory, config):
    container = container_factory(DocumentsService, config)
    container.start()
    with entrypoint_hook(container, "ping") as ping:
        assert ping() == {"service": "documents", "status": "ok"}
