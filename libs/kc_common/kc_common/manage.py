"""Per-service management: ``python -m kc_common.manage CONFIG COMMAND``.

CONFIG is the service's nameko config (``services/<name>/config.yaml``), read
exactly as ``nameko run`` reads it (``${VAR:default}`` from the environment),
so migrations and seeds always hit the database the service will use.

Commands: ``migrate`` (alembic upgrade head), ``check`` (fail unless the
database is at head: the service's pre-start check), ``seed`` (demo data,
idempotent), ``url`` (print the database URL).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from alembic import command
from nameko.cli.main import setup_yaml_parser

from kc_common.db import StandaloneDatabase
from kc_common.migrations import alembic_config, current_and_head


def load_config(path: str) -> dict[str, Any]:
    setup_yaml_parser()
    with open(path) as fh:
        return yaml.safe_load(fh)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kc_common.manage")
    parser.add_argument("config")
    parser.add_argument("command", choices=["migrate", "check", "seed", "url"])
    args = parser.parse_args(argv)
    config = load_config(args.config)
    package = config["SERVICE_PACKAGE"]
    url = config["DATABASE_URL"]
    if args.command == "url":
        print(url)
    elif args.command == "migrate":
        command.upgrade(alembic_config(package, url), "head")
    elif args.command == "check":
        current, head = current_and_head(package, url)
        if current != head:
            print(f"{package}: database at {current}, code expects {head}: run migrations",
                  file=sys.stderr)
            return 1
    elif args.command == "seed":
        try:
            demo = importlib.import_module(f"{package}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.demo":
                raise
            return 0  # this service has no demo data
        models = importlib.import_module(f"{package}.models")
        db = StandaloneDatabase(models.metadata, url, config.get("SERVICE_NAME", package[3:]))
        demo.seed(db, config)
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
