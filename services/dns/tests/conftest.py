import pytest
from alembic import command

from kc_common.migrations import alembic_config


@pytest.fixture(params=["postgresql", "sqlite"])
def config(request, service_config_factory, tmp_path):
    """nameko config for kc_dns on this test's vhost: the run's (emptied) PostgreSQL database,
    or a fresh file of the embedded SQLite default (migrated like `make run` does)."""
    config = service_config_factory("kc_dns")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/dns.db"
        command.upgrade(alembic_config("kc_dns", url), "head")
        config = dict(config, DATABASE_URL=url)
    return config
