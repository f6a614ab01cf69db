"""Settings for the test suite: the project's own, with runtime state kept apart.

The embedded default's SQLite test database and broker folders go to a fresh folder
under var/test for each run, so neither a running development service (var/) nor a
second test run consumes this run's messages or shares its database file. The worker
that the integration tests start inherits the variable, and so the same folder.

Likewise a Redis cache's keys get a prefix of the run's own: the submit throttle counts
per user id in fixed windows, and the next run's test database gives its users the same
ids, so a run within the same hour found the last run's counts.
"""

import os
import tempfile
import uuid
from pathlib import Path

if "DJANGO_VAR_DIR" not in os.environ:
    _runs_dir = Path(__file__).resolve().parent.parent / "var" / "test"
    _runs_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_VAR_DIR"] = tempfile.mkdtemp(prefix="run-", dir=_runs_dir)
    os.environ["TESTS_OWN_VAR_DIR"] = "1"  # tests/conftest.py removes the folder at the end
os.environ.setdefault("TESTS_CACHE_KEY_PREFIX", f"jobs-test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-suite-only-not-a-secret")
os.environ.setdefault("API_SUBMIT_RATE", "10000/min")
# The URL ingestion tests serve pages from this loopback address (tests/integration/web_server.py).
os.environ.setdefault("DOCUMENTS_URL_ALLOWLIST", "127.0.0.2")

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CACHES["default"]["KEY_PREFIX"] = os.environ["TESTS_CACHE_KEY_PREFIX"]  # noqa: F405

# @task functions for the tests of Django's Tasks API (tasks_app/tasks_backend.py).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.django_tasks_app"]  # noqa: F405
