"""Settings for the test suite: the project's own, with runtime state kept apart.

The embedded default's SQLite test database and broker folders go to var/test, so a
running development service (var/) never consumes the tests' messages.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "DJANGO_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test")
)
os.environ.setdefault("DJANGO_SECRET_KEY", "test-suite-only-not-a-secret")
os.environ.setdefault("API_SUBMIT_RATE", "10000/min")
# The URL ingestion tests serve pages from this loopback address (tests/integration/web_server.py).
os.environ.setdefault("DOCUMENTS_URL_ALLOWLIST", "127.0.0.2")

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
