"""RPC with a timeout, typed errors and a ``ping`` every service answers.

nameko's in-service ``RpcProxy`` waits forever for a reply; ours raises
:class:`ServiceUnavailable` after ``RPC_TIMEOUT`` seconds (config, default 10)
and forgets the pending reply. A call to a service that is not running fails
at once (nameko's mandatory publish) and becomes ``ServiceUnavailable`` too.
"""
import eventlet
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, Rpc, RpcProxy, ServiceProxy

from kc_common.errors import KcError, ServiceUnavailable

DEFAULT_TIMEOUT = 10.0


class _TimedMethodProxy(MethodProxy):
    def __init__(self, worker_ctx, service_name, method_name, reply_listener, timeout, **options):
        self.timeout = timeout
        super().__init__(worker_ctx, service_name, method_name, reply_listener, **options)

    def __call__(self, *args, **kwargs):
        try:
            reply = self._call(*args, **kwargs)
        except UnknownService:
            raise ServiceUnavailable(f"Der Dienst '{self.service_name}' ist nicht erreichbar.",
                                     {"service": self.service_name})
        try:
            with eventlet.Timeout(self.timeout):
                return reply.result()
        except eventlet.Timeout:
            self._forget(reply)
            raise ServiceUnavailable(
                f"Der Dienst '{self.service_name}' hat nicht rechtzeitig geantwortet.",
                {"service": self.service_name})

    def _forget(self, reply):
        events = self.reply_listener._reply_events
        for key, event in list(events.items()):
            if event is reply.reply_event:
                events.pop(key, None)


class _TimedServiceProxy(ServiceProxy):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        options = dict(self.options)
        timeout = options.pop("timeout", None) or float(
            self.worker_ctx.container.config.get("RPC_TIMEOUT", DEFAULT_TIMEOUT))
        return _TimedMethodProxy(self.worker_ctx, self.service_name, name,
                                 self.reply_listener, timeout, **options)


class TimedRpcProxy(RpcProxy):
    """Drop-in for ``nameko.rpc.RpcProxy`` with a timeout (seconds)."""

    def __init__(self, target_service, timeout=None, **options):
        super().__init__(target_service, timeout=timeout, **options)

    def get_dependency(self, worker_ctx):
        return _TimedServiceProxy(worker_ctx, self.target_service,
                                  self.rpc_reply_listener, **self.options)


class Services(RpcProxy):
    """All services by name: ``self.services['catalog'].list_products()``.

    Used by the gateway, which talks to every service through one dependency.
    """

    def __init__(self, timeout=None, **options):
        super().__init__("*", timeout=timeout, **options)

    def get_dependency(self, worker_ctx):
        listener, options = self.rpc_reply_listener, self.options

        class _All:
            def __getitem__(self, service_name):
                return _TimedServiceProxy(worker_ctx, service_name, listener, **options)

        return _All()


class KcRpc(Rpc):
    """``@rpc`` whose typed errors are logged as expected, not as crashes."""

    def __init__(self, expected_exceptions=(), sensitive_arguments=(), **kwargs):
        expected = tuple(expected_exceptions) if isinstance(expected_exceptions, tuple) \
            else (expected_exceptions,) if expected_exceptions else ()
        super().__init__(expected_exceptions=expected + (KcError,),
                         sensitive_arguments=sensitive_arguments, **kwargs)


rpc = KcRpc.decorator


class PingMixin:
    """Every service answers ``ping`` (used by the gateway's /health)."""

    @rpc
    def ping(self):
        return {"service": self.name, "status": "ok"}
