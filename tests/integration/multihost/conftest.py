"""Several hosts in one test: web, worker-a and worker-b, each a network namespace, with
PostgreSQL, Redis and an S3 server of the test's own on a bridge between them.

It runs in one CI configuration only, PostgreSQL + Redis (it starts services of its own,
so running it again on the others would prove nothing more), and only where this machine
lets a test create network namespaces. Everything it starts is stopped by its pid, and
everything it creates is deleted, also when the test fails.
"""

import contextlib
import logging
import uuid

import environ
import pytest
from django.conf import settings
from django.db import connections

from tests.integration.multihost.client import ApiClient
from tests.integration.multihost.deployment import Deployment
from tests.integration.multihost.network import Network, namespaces_unavailable
from tests.integration.multihost.services import (
    PostgresCluster,
    PrivateRedis,
    postgres_unavailable,
)
from tests.storage.s3 import S3Server

HOSTS = ["web", "worker-a", "worker-b"]
DEPLOYED = "deployed"  # the database alias through which the test reads the hosts' database


@pytest.fixture(scope="session", autouse=True)
def _where_it_runs():
    # Session scope and autouse: skipped before anything is started.
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not (
        settings.BROKER_KIND == "redis"
    ):
        pytest.skip(
            "the multi-host tests run in the PostgreSQL + Redis configuration only "
            "(DATABASE_URL=postgres://…, CELERY_BROKER_URL=redis://…); they start a "
            "PostgreSQL, Redis and S3 of their own, so one configuration is enough"
        )
    reason = namespaces_unavailable() or postgres_unavailable()
    if reason:
        pytest.skip(f"the multi-host tests {reason}")


@pytest.fixture(scope="module")
def relay():
    """None: the hosts run their own relay, on their own database (not the test database)."""
    return None


@pytest.fixture
def deployment(tmp_path, request, django_db_blocker):
    """The hosts, the shared services, and the service deployed on them, not yet started.

    Torn down in reverse, each step whatever happened before it: processes, S3, Redis,
    PostgreSQL, namespaces. A failed test prints the processes' logs.
    """
    with contextlib.ExitStack() as teardown:
        network = Network(HOSTS)
        teardown.callback(network.remove)
        network.create()
        database = PostgresCluster(address=network.address, log_dir=tmp_path)
        teardown.callback(database.stop)
        database.start()
        database.create_database("jobservice")
        broker = PrivateRedis(address=network.address, log_dir=tmp_path)
        teardown.callback(broker.stop)
        s3 = S3Server.start(network.address)
        teardown.callback(s3.stop)
        bucket = s3.new_bucket()

        deployment = Deployment(
            hosts=network.hosts,
            settings={
                "DATABASE_URL": database.url("jobservice"),
                "CELERY_BROKER_URL": broker.url,
                **s3.environment(bucket),
            },
            log_dir=tmp_path,
        )
        teardown.callback(deployment.stop_all)
        teardown.enter_context(_reading(database.url("jobservice"), django_db_blocker))
        # The S3 server runs in this process: its request log is not the test's.
        teardown.enter_context(_quiet("werkzeug"))
        yield deployment
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(deployment.log_tails())


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _reading(url: str, django_db_blocker):
    """The hosts' database as the alias DEPLOYED, for the test's checks."""
    databases = {
        "default": connections.settings["default"],
        DEPLOYED: environ.Env.db_url_config(url),
    }
    connections.settings[DEPLOYED] = connections.configure_settings(databases)[DEPLOYED]
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections[DEPLOYED].close()
        del connections[DEPLOYED]
        del connections.settings[DEPLOYED]


@pytest.fixture
def deployed(deployment):
    """The service running on the hosts as the deployment guide says; an API client for
    an admin of its own, over the bridge to the web host."""
    deployment.run("web", ".venv/bin/python manage.py migrate --noinput")
    deployment.run("web", ".venv/bin/python manage.py collectstatic --noinput")
    username = f"operator-{uuid.uuid4().hex[:6]}"
    deployment.run(
        "web",
        f"DJANGO_SUPERUSER_PASSWORD={uuid.uuid4().hex} python manage.py createsuperuser "
        f"--noinput --username {username} --email {username}@example.com",
    )
    api_key = deployment.run("web", f"python manage.py create_api_key {username} --name multihost")
    started = [deployment.start("web", "web")]
    started += [deployment.start("web", name) for name in ("relay", "webhooks", "beat")]
    started += [deployment.start(host, "worker") for host in ("worker-a", "worker-b")]
    for process in started[1:]:
        deployment.wait_until_ready(process)
    client = ApiClient(deployment.web_url, api_key.strip().splitlines()[-1])
    client.wait_until_live()
    return client
