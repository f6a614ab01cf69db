import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def webhook_settings(settings):
    """Loopback allowed (the receiver), and a schedule of retries in tenths of seconds."""
    settings.WEBHOOKS_URL_ALLOWLIST = ["127.0.0.1"]
    settings.WEBHOOKS_RETRY_SCHEDULE = [0, 0.1, 0.1, 0.1]
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2.0
    return settings
