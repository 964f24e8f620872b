"""RPC latency: raw AMQP round trip vs nameko's RpcProxy vs our TimedRpcProxy.

    .venv/bin/python libs/kc_common/bench/rpc_latency.py [--calls 500] [--amqp-uri URI]

Runs a tiny echo service in-process on a throw-away vhost-less queue name and
prints milliseconds per call (median and p95). A benchmark, not a test: the
figures depend on the machine and what else runs on it.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from kombu import Connection, Exchange, Producer, Queue  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.rpc import RpcProxy  # noqa: E402
from nameko.testing.services import entrypoint_hook  # noqa: E402

from kc_common.rpc import TimedRpcProxy, rpc  # noqa: E402

SUFFIX = uuid.uuid4().hex[:6]


class Echo:
    name = f"bench_echo_{SUFFIX}"

    @rpc
    def echo(self, value):
        return value


class Caller:
    name = f"bench_caller_{SUFFIX}"
    plain = RpcProxy(Echo.name)
    timed = TimedRpcProxy(Echo.name, timeout=5)

    @rpc
    def run(self, which, calls):
        proxy = self.plain if which == "plain" else self.timed
        times = []
        for i in range(calls):
            t = time.perf_counter()
            proxy.echo(i)
            times.append((time.perf_counter() - t) * 1000)
        return times


def raw_amqp(uri, calls):
    """Publish to a queue and read the message back: the floor of a round trip."""
    times = []
    with Connection(uri) as conn:
        queue = Queue(f"bench-raw-{SUFFIX}", Exchange("", type="direct"), exclusive=True)
        bound = queue(conn.default_channel)
        bound.declare()
        producer = Producer(conn.default_channel)
        for i in range(calls):
            t = time.perf_counter()
            producer.publish({"i": i}, routing_key=queue.name)
            while bound.get(no_ack=True) is None:
                pass
            times.append((time.perf_counter() - t) * 1000)
    return times


def report(label, times):
    times = sorted(times)
    print(f"{label:<28} median {statistics.median(times):6.2f} ms   "
          f"p95 {times[int(len(times) * 0.95) - 1]:6.2f} ms   ({len(times)} calls)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--amqp-uri", default="pyamqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    config = {"AMQP_URI": args.amqp_uri}
    containers = [ServiceContainer(cls, config) for cls in (Echo, Caller)]
    for c in containers:
        c.start()
    try:
        report("raw AMQP publish+get", raw_amqp(args.amqp_uri, args.calls))
        with entrypoint_hook(containers[1], "run") as run:
            run("plain", 20), run("timed", 20)  # warm up connections
            report("nameko RpcProxy", run("plain", args.calls))
            report("kc_common TimedRpcProxy", run("timed", args.calls))
    finally:
        for c in containers:
            c.stop()


if __name__ == "__main__":
    main()
