import pytest

from tests.storage.s3 import CREDENTIALS, S3Server, storages_for


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings, monkeypatch) -> str:
    """A fresh bucket that the service's storage uses for the test."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.new_bucket()
    settings.STORAGES = storages_for(s3_server, bucket)
    return bucket
