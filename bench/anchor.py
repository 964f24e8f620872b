"""The benchmark's anchor: a bare nameko HTTP entrypoint making one RPC (``catalog.ping``).

What an authenticated read through the gateway is compared with (docs/performance.md).
"""
import json

from nameko.rpc import RpcProxy
from nameko.web.handlers import http


class AnchorService:
    name = "bench_anchor"

    catalog = RpcProxy("catalog")

    @http("GET", "/anchor")
    def anchor(self, request):
        return 200, {"Content-Type": "application/json"}, json.dumps(self.catalog.ping())
