"""documents's entrypoints: thin; the rules live in plain modules."""
from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.rpc import PingMixin
from kc_documents.models import metadata


class DocumentsService(PingMixin):
    name = "documents"

    db = Database(metadata)
    context = CallContext()
