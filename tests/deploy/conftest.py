"""What the tests of deploy/ share: promtool, and the names in a real scrape of /metrics."""

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import client_for
from tests.factories import TaskRecordFactory
from tests.operations.test_prometheus import broker_down, workers
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.services import endpoint_create

__all__ = ["broker_down", "workers"]  # fixtures of test_prometheus, used here too

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "jobservice-dashboard.json"
# The service's own metric names in a PromQL expression.
METRIC_NAME = re.compile(r"\bjobservice_[a-z0-9_]+\b")


@pytest.fixture(scope="session")
def promtool() -> Callable[..., subprocess.CompletedProcess]:
    """``promtool(*args)``: runs Debian's promtool, which bin/test installs when missing."""
    executable = shutil.which("promtool")
    if executable is None:
        message = "promtool is missing: install Debian's prometheus package (bin/test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        command = [executable, *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    return run


@pytest.fixture
def scraped_sample_names(db, staff_user, workers) -> set[str]:
    """Every sample name of a real scrape of /metrics in which every family has samples:
    a finished task that started once, a queued one, workers that answer, an HTTP request,
    a finish waiting for the webhooks process and a webhook delivery due."""
    workers({"a@h": ["default", "long"]})
    submitted = timezone.now() - timedelta(minutes=10)
    TaskRecordFactory(
        status="succeeded",
        attempts=1,
        created_at=submitted,
        started_at=submitted + timedelta(seconds=1),
        finished_at=submitted + timedelta(seconds=3),
    )
    TaskRecordFactory(status="queued", queue="long")
    # The webhooks' families: a finish not announced yet, and a delivery due.
    endpoint = endpoint_create(owner=staff_user, url="https://hooks.example.com/", event_types=[])
    TaskRecordFactory(
        owner=staff_user, status="failed", finished_at=submitted, announce_pending=True
    )
    event = WebhookEvent.objects.create(
        id=WebhookEvent.new_id(),
        owner=staff_user,
        event_type="task.failed",
        task_id=uuid.uuid4(),
        payload="{}",
    )
    WebhookDelivery.objects.create(event=event, endpoint=endpoint, url=endpoint.url)
    client = client_for(staff_user)
    assert client.get("/api/v1/health/live").status_code == 200  # counted by the middleware
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.content.decode())
    return {sample.name for family in families for sample in family.samples}
