import pytest


@pytest.fixture
def config(service_config_factory, tmp_path):
    """nameko config for kc_documents on this test's vhost and the run's (emptied) database;
    files in a temporary directory, one render worker (the machine has two cores)."""
    return service_config_factory("kc_documents", DOCUMENTS_STORAGE_PATH=str(tmp_path / "files"),
                                  RENDER_WORKERS=1, RENDER_TIMEOUT=60)
