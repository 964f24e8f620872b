"""support's entrypoints: thin; the rules live in plain modules."""
from kc_common.context import CallContext
from kc_common.db import Database
from kc_common.rpc import PingMixin
from kc_support.models import metadata


class SupportService(PingMixin):
    name = "support"

    db = Database(metadata)
    context = CallContext()
