"""Kubernetes readiness check of a service: ``python -m kc_common.probe ready CONFIG``.

CONFIG is the nameko config the process runs with (``services/<name>/config.yaml``,
``gateway/config.yaml``), read exactly as ``nameko run`` reads it, so the probe checks
the broker and the database the process itself uses.

``ready`` exits 0 when
- the broker at ``AMQP_URI`` accepts a connection (AMQP handshake and a channel,
  within ``--timeout`` seconds; every node the URI lists is tried, like kombu's
  failover), and
- the config has a ``DATABASE_URL``: the database is at the alembic head of the
  service's migrations (``SERVICE_PACKAGE``): a pod of a new version is not ready
  before its migration Job has run, and an old pod stops counting as ready
  once the schema moved past it;
otherwise it prints the reason on stderr and exits 1.

Liveness is not checked here: a process is alive when it answers on its own port
(Kubernetes' httpGet probe on the metrics port of a service, on ``/health`` of the
web front end), which does not depend on the broker or the database, so an outage
of either never restarts healthy pods (see docs/operations.md, "Probes").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from kombu import Connection

from kc_common.manage import load_config
from kc_common.migrations import current_and_head


def broker_problem(amqp_uri: str, timeout: float) -> str | None:
    """None when the broker answers, else the reason."""
    try:
        with Connection(amqp_uri, connect_timeout=timeout, transport_options={
                "max_retries": 0}) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            conn.default_channel  # noqa: B018 - opening a channel is the check
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"broker not reachable: {type(exc).__name__}: {exc}"
    return None


def database_problem(package: str, url: str) -> str | None:
    """None when the database is at the migration head, else the reason."""
    try:
        current, head = current_and_head(package, url)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"database not reachable: {type(exc).__name__}: {exc}"
    if current != head:
        return f"database at migration {current}, code expects {head}: run the migration Job"
    return None


def ready(config: Mapping[str, Any], timeout: float = 5.0) -> list[str]:
    """Every reason the process described by ``config`` is not ready (empty: ready)."""
    problems = []
    problem = broker_problem(config["AMQP_URI"], timeout)
    if problem:
        problems.append(problem)
    if config.get("DATABASE_URL"):
        problem = database_problem(config["SERVICE_PACKAGE"], config["DATABASE_URL"])
        if problem:
            problems.append(problem)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kc_common.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=["ready"])
    parser.add_argument("config")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for the broker")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    problems = ready(config, args.timeout)
    name = config.get("SERVICE_NAME", args.config)
    for problem in problems:
        print(f"{name} not ready: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
