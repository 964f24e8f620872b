import pytest
from cryptography.fernet import Fernet

from kc_common.db import StandaloneDatabase
from kc_identity import demo
from kc_identity.models import metadata
from kc_identity.service import IdentityService

PHONE_KEY = Fernet.generate_key().decode()


@pytest.fixture
def config(service_config_factory, smtp_server):
    """nameko config for kc_identity on this test's vhost and the run's (emptied) database,
    with a telephone-password key and the test's own SMTP server."""
    return service_config_factory("kc_identity", PHONE_PASSWORD_KEYS=PHONE_KEY,
                                  LOGIN_MAX_FAILURES_PER_ADDRESS=8, **smtp_server.config)


@pytest.fixture
def seeded(config):
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "identity")
    demo.seed(db, config)
    yield db
    db.engine.dispose()


@pytest.fixture
def identity(container_factory, config, seeded):
    container = container_factory(IdentityService, config)
    container.start()
    return container
