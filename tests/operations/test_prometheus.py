import os
import subprocess
import sys
from datetime import timedelta

import pytest
from celery import current_app
from celery.app.control import Inspect
from django.core.cache import cache
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from operations import broker_census, maintenance
from tests.conftest import client_for
from tests.factories import TaskRecordFactory

pytestmark = pytest.mark.django_db

SCRAPE = "/metrics"
SLEEP = "diagnostics.sleep"
# What Prometheus itself sends.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture(autouse=True)
def broker_down(settings):
    """No broker in these tests (nothing listens on port 1), unless a test says otherwise;
    every scrape takes its own census of the workers."""
    settings.TASKS_QUEUES = ["default", "long"]
    settings.OPS_WORKER_CENSUS_SECONDS = 0
    current_app.conf.broker_read_url = "redis://127.0.0.1:1/0"
    yield
    current_app.conf.broker_read_url = None


@pytest.fixture
def workers(monkeypatch):
    """The broker is up; set what ``inspect().active_queues()`` answers: {worker: [queue]}."""
    current_app.conf.broker_read_url = None

    def answer(replies: dict[str, list[str]] | None) -> None:
        reply = None
        if replies is not None:
            reply = {name: [{"name": q} for q in queues] for name, queues in replies.items()}
        monkeypatch.setattr(Inspect, "active_queues", lambda self: reply)

    return answer


@pytest.fixture
def staff(staff_user) -> APIClient:
    return client_for(staff_user)


def finished_task(status="succeeded", *, ran: float = 1.0, task_type=SLEEP):
    started_at = timezone.now() - timedelta(minutes=5)
    return TaskRecordFactory(
        task_type=task_type,
        status=status,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=ran),
    )


def scrape(client: APIClient) -> dict:
    response = client.get(SCRAPE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family for family in families}


def value(families: dict, family: str, sample: str, **labels) -> float | None:
    for found in families[family].samples:
        if found.name == sample and found.labels == labels:
            return found.value
    return None


def finished_count(families: dict, **labels) -> float:
    found = value(
        families, "jobservice_tasks_finished", "jobservice_tasks_finished_total", **labels
    )
    return found or 0.0


def test_scrape_parses_and_has_every_task_family(staff):
    finished_task("failed")
    TaskRecordFactory(status="running")

    families = scrape(staff)

    assert families["jobservice_tasks_finished"].type == "counter"
    assert families["jobservice_task_duration_seconds"].type == "histogram"
    assert value(families, "jobservice_tasks_running", "jobservice_tasks_running") == 1
    assert finished_count(families, task_type=SLEEP, status="failed") == 1
    # Running and queued records are no finished ones.
    assert finished_count(families, task_type=SLEEP, status="running") == 0


def test_finished_counter_moves_by_one_with_each_finished_task(staff):
    finished_task("succeeded")
    finished_task("succeeded")
    before = scrape(staff)

    finished_task("succeeded")
    TaskRecordFactory(status="queued")
    after = scrape(staff)

    assert finished_count(before, task_type=SLEEP, status="succeeded") == 2
    assert finished_count(after, task_type=SLEEP, status="succeeded") == 3
    assert finished_count(after, task_type=SLEEP, status="failed") == 0


def test_duration_histogram_counts_succeeded_tasks_into_buckets(staff):
    for ran in (0.3, 2, 45):
        finished_task("succeeded", ran=ran)
    finished_task("failed", ran=0.01)  # not a success: not in the histogram

    families = scrape(staff)

    def bucket(le: str) -> float:
        sample = "jobservice_task_duration_seconds_bucket"
        return value(families, "jobservice_task_duration_seconds", sample, task_type=SLEEP, le=le)

    assert [bucket(le) for le in ("0.1", "0.5", "1.0", "2.5", "30.0", "60.0", "+Inf")] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    family = "jobservice_task_duration_seconds"
    assert value(families, family, f"{family}_count", task_type=SLEEP) == 3
    assert value(families, family, f"{family}_sum", task_type=SLEEP) == pytest.approx(47.3)


def test_finished_counters_never_go_down_when_retention_deletes_records(staff, settings):
    settings.OPS_TASK_RETENTION_DAYS = 1
    long_ago = timezone.now() - timedelta(days=3)
    for ran in (0.3, 45):
        TaskRecordFactory(
            task_type=SLEEP,
            status="succeeded",
            started_at=long_ago,
            finished_at=long_ago + timedelta(seconds=ran),
        )
    finished_task("failed")
    before = scrape(staff)

    assert maintenance.task_records_prune()["deleted"] == 2
    finished_task("succeeded", ran=2)
    after = scrape(staff)

    assert finished_count(before, task_type=SLEEP, status="succeeded") == 2
    assert finished_count(after, task_type=SLEEP, status="succeeded") == 3
    assert finished_count(after, task_type=SLEEP, status="failed") == 1
    family = "jobservice_task_duration_seconds"
    assert value(after, family, f"{family}_count", task_type=SLEEP) == 3
    assert value(after, family, f"{family}_sum", task_type=SLEEP) == pytest.approx(47.3)
    sample = f"{family}_bucket"
    assert value(after, family, sample, task_type=SLEEP, le="0.5") == 1


def test_queue_depths_and_workers_come_from_the_broker(
    staff, workers, settings, queue_with_messages
):
    busy, idle = queue_with_messages(4), queue_with_messages(0)
    settings.TASKS_QUEUES = [busy, idle]
    workers({"a@h": [busy], "b@h": [busy, idle], "other@h": ["elsewhere"]})

    families = scrape(staff)

    depths = {s.labels["queue"]: s.value for s in families["jobservice_queue_depth"].samples}
    assert depths == {busy: 4, idle: 0}
    assert value(families, "jobservice_workers", "jobservice_workers") == 2


def test_no_worker_answering_is_zero_workers(staff, workers):
    workers(None)

    assert value(scrape(staff), "jobservice_workers", "jobservice_workers") == 0


def test_without_a_broker_queue_and_worker_samples_are_left_out(staff, monkeypatch):
    def asked(self):
        raise AssertionError("the failed connection check was enough")

    monkeypatch.setattr(Inspect, "active_queues", asked)

    families = scrape(staff)

    assert families["jobservice_queue_depth"].samples == []
    assert "jobservice_workers" not in families


def test_scrapes_within_the_census_interval_share_one_census(staff, workers, settings):
    settings.OPS_WORKER_CENSUS_SECONDS = 60
    key = broker_census.broker_census_cache_key(queues=settings.TASKS_QUEUES)
    cache.delete_many([key, key + ":taken"])
    workers({"a@h": ["default", "long"]})
    assert value(scrape(staff), "jobservice_workers", "jobservice_workers") == 1

    workers({"a@h": ["default", "long"], "b@h": ["default"]})

    assert value(scrape(staff), "jobservice_workers", "jobservice_workers") == 1
    cache.delete_many([key, key + ":taken"])


def test_a_scrape_takes_no_census_while_another_one_is_shared_and_asks_depths_live(
    staff, workers, settings, queue_with_messages, monkeypatch
):
    settings.OPS_WORKER_CENSUS_SECONDS = 60
    busy = queue_with_messages(1)
    settings.TASKS_QUEUES = [busy]
    key = broker_census.broker_census_cache_key(queues=settings.TASKS_QUEUES)
    cache.delete_many([key, key + ":taken"])
    workers({"a@h": [busy]})
    assert value(scrape(staff), "jobservice_workers", "jobservice_workers") == 1
    # The census interval is over, but one is still shared: no ping (it waits out its timeout).
    cache.delete(key + ":taken")
    monkeypatch.setattr(Inspect, "active_queues", lambda self: pytest.fail("pinged"))
    for _ in range(2):
        current_app.send_task("tests.never_run", queue=busy)

    families = scrape(staff)

    assert value(families, "jobservice_workers", "jobservice_workers") == 1
    depths = {s.labels["queue"]: s.value for s in families["jobservice_queue_depth"].samples}
    assert depths == {busy: 3}
    cache.delete_many([key, key + ":taken"])


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(staff):
    finished_task("succeeded")

    response = staff.get(SCRAPE, HTTP_ACCEPT=PROMETHEUS_ACCEPT)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(response.content.decode())}
    assert {"jobservice_tasks_finished", "jobservice_task_duration_seconds"} <= names


# --- access -----------------------------------------------------------------------------


def test_without_a_token_setting_only_staff_may_scrape(staff, api, staff_user):
    assert staff.get(SCRAPE).status_code == 200

    anonymous = APIClient().get(SCRAPE)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Authentication credentials were not provided."}

    forbidden = api.get(SCRAPE)  # alice is no staff
    assert forbidden.status_code == 403
    assert "detail" in forbidden.json()

    session = APIClient()
    session.force_login(staff_user)
    assert session.get(SCRAPE).status_code == 200


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_BEARER_TOKEN = "s3cret-scrape-token"
    return settings.METRICS_BEARER_TOKEN


def test_with_a_token_setting_the_bearer_token_is_required(token, staff):
    scraper = APIClient()

    missing = scraper.get(SCRAPE)
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "detail" in missing.json()
    assert scraper.get(SCRAPE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scraper.get(SCRAPE, HTTP_AUTHORIZATION=f"Bearer {token}x").status_code == 401
    assert scraper.get(SCRAPE, HTTP_AUTHORIZATION="Bearer").status_code == 401
    assert staff.get(SCRAPE).status_code == 401  # a staff user's token is not the scrape token

    assert scraper.get(SCRAPE, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_errors_are_json_whatever_the_scraper_accepts(token):
    response = APIClient().get(SCRAPE, HTTP_ACCEPT=PROMETHEUS_ACCEPT)

    assert response.status_code == 401  # not 406 for an Accept without JSON in it
    assert response["Content-Type"] == "application/json"


# --- HTTP request metrics ---------------------------------------------------------------


def requests_counted(**labels) -> float:
    return REGISTRY.get_sample_value("jobservice_http_requests_total", labels) or 0.0


def test_middleware_counts_requests_by_url_name_never_by_path(api, staff):
    ok = {"method": "GET", "route": "task-type-list", "status": "200"}
    missing_task = {"method": "GET", "route": "task-detail", "status": "404"}
    unresolved = {"method": "GET", "route": "unresolved", "status": "404"}
    before = [requests_counted(**labels) for labels in (ok, missing_task, unresolved)]
    timed_before = REGISTRY.get_sample_value(
        "jobservice_http_request_duration_seconds_count",
        {"method": "GET", "route": "task-type-list"},
    )

    api.get("/api/v1/task-types/")
    api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/")
    api.get("/no/such/page/")

    after = [requests_counted(**labels) for labels in (ok, missing_task, unresolved)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    timed_after = REGISTRY.get_sample_value(
        "jobservice_http_request_duration_seconds_count",
        {"method": "GET", "route": "task-type-list"},
    )
    assert timed_after - (timed_before or 0) == 1
    # And the scrape shows them.
    assert value(scrape(staff), "jobservice_http_requests", "jobservice_http_requests_total", **ok)


def test_multiprocess_mode_adds_up_every_web_process(staff, tmp_path, monkeypatch):
    # Two other processes count one request each, as two gunicorn workers would.
    count_one_request = (
        "from prometheus_client import Counter\n"
        "Counter('jobservice_http_requests', 'HTTP requests.', ['method', 'route', 'status'])"
        ".labels('GET', 'task-list', '200').inc()\n"
    )
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", count_one_request],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
            check=True,
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    families = scrape(staff)

    labels = {"method": "GET", "route": "task-list", "status": "200"}
    counted = value(
        families, "jobservice_http_requests", "jobservice_http_requests_total", **labels
    )
    assert counted == 2
    assert "jobservice_tasks_finished" in families  # task metrics still come from the database
    assert "python_gc_objects_collected" not in families  # not this process's own registry
