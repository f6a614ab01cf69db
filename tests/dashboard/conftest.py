import pytest
from django.test import Client


@pytest.fixture
def browser(user) -> Client:
    """Django's test client signed in as ``user``: the pages as a browser without
    JavaScript meets them."""
    client = Client()
    client.force_login(user)
    return client
