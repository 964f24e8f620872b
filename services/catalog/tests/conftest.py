import pytest
from nameko.rpc import rpc

from kc_catalog import demo
from kc_catalog.models import metadata
from kc_catalog.service import CatalogService
from kc_common.context import CallContext
from kc_common.db import StandaloneDatabase


@pytest.fixture
def config(service_config_factory):
    """nameko config for kc_catalog on this test's vhost and the run's (emptied) database."""
    return service_config_factory("kc_catalog", JOBS_INTERVAL=3600)


@pytest.fixture
def db(config):
    """The catalog database with the demo product catalog (no demo contracts)."""
    database = StandaloneDatabase(metadata, config["DATABASE_URL"], "catalog")
    with database.unit_of_work() as uow:
        demo.seed_products(uow.session)
    yield database
    database.engine.dispose()


@pytest.fixture
def arrears():
    """Customer ids the billing stub reports in arrears (add to it in a test)."""
    return set()


@pytest.fixture
def billing(container_factory, config, arrears):
    """billing as catalog sees it (docs/contracts.md): ``account_standing()`` of the caller."""

    class Billing:
        name = "billing"
        context = CallContext()

        @rpc
        def account_standing(self):
            owed = self.context.require_customer() in arrears
            return {"in_arrears": owed, "open_amount": "40.00" if owed else "0.00"}

    container = container_factory(Billing, config)
    container.start()
    return container


@pytest.fixture
def catalog(container_factory, config, db, billing):
    """catalog (demo products, no demo contracts) next to the billing stub, on the real bus."""
    container = container_factory(CatalogService, config)
    container.start()
    return container
