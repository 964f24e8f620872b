"""Every service's migrations build exactly its models, on PostgreSQL, and downgrade cleanly."""
import importlib

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kc_common.db import make_engine
from kc_common.migrations import alembic_config
from kc_common.services import SERVICES, package

PACKAGES = [package(name) for name in SERVICES]


@pytest.mark.parametrize("package", PACKAGES)
def test_migrations_match_models(package, database_factory):
    url = database_factory(package, fresh=True)
    metadata = importlib.import_module(f"{package}.models").metadata
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == [], f"{package}: models and migrations disagree: {diff}"
    cfg = alembic_config(package, url)
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
