import pytest


@pytest.fixture
def config(service_config_factory):
    """nameko config for kc_documents on this test's vhost and the run's (emptied) database."""
    return service_config_factory("kc_documents")
