"""Declare every event queue before anything publishes: ``python -m kc_common.topology``.

Takes the service classes from :mod:`kc_common.services` (or ``--services FILE``,
``module:Class`` per line), finds their event handlers and declares each handler's queue, bound to
its source's event exchange, with its retry and dead-letter queues.
"""
import argparse
import importlib
import os
import sys

from kc_common.events import declare_topology
from kc_common.services import service_classes


def load_services(path=None):
    """The service classes listed in ``path``; without one, every service of kc_common.services."""
    if path is None:
        return service_classes()
    classes = []
    with open(path) as fh:
        for line in fh:
            line = line.split("#")[0].strip()
            if line:
                module, cls = line.split(":")
                classes.append(getattr(importlib.import_module(module), cls))
    return classes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kc_common.topology")
    parser.add_argument("--services", default=None, help="a file of module:Class lines "
                        "(default: every service of kc_common.services)")
    parser.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args(argv)
    queues = declare_topology(args.amqp_uri, load_services(args.services))
    print(f"declared {len(queues)} queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
