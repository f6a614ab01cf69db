"""The metrics that deploy/prometheus/alerts.yml reads beyond the task counters: the wait
from submission to start, the queued records per queue and their oldest, the workers per
queue, the open dead letters and beat's heartbeat. Asserted on the scraped text."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from operations import health, maintenance
from operations.broker_census import BrokerFacts
from tasks_app.models import DeadLetter, TaskRecord, TaskStatus
from tests.factories import TaskRecordFactory
from tests.operations.test_prometheus import broker_down, scrape, staff, value, workers

__all__ = ["broker_down", "staff", "workers"]  # fixtures of test_prometheus, used here too

pytestmark = pytest.mark.django_db

LATENCY = "jobservice_task_start_latency_seconds"
SLEEP, FAIL = "diagnostics.sleep", "diagnostics.fail"


def started(status="succeeded", *, waited: float | None, attempts=1, task_type=SLEEP):
    """A finished record submitted 10 minutes ago that started ``waited`` s later (None:
    it never started)."""
    created_at = timezone.now() - timedelta(minutes=10)
    started_at = None if waited is None else created_at + timedelta(seconds=waited)
    return TaskRecordFactory(
        task_type=task_type,
        status=status,
        attempts=attempts if started_at else 0,
        created_at=created_at,
        started_at=started_at,
        finished_at=created_at + timedelta(minutes=1),
    )


def latency_bucket(families: dict, task_type: str, le: str) -> float | None:
    return value(families, LATENCY, f"{LATENCY}_bucket", task_type=task_type, le=le)


def test_start_latency_histogram_counts_the_wait_of_tasks_that_started_once(staff):
    started(waited=0.2)
    started(waited=3)
    started("failed", waited=45)  # failed after its start: it waited too
    started(waited=400, attempts=2)  # retried: its started_at is its last attempt's
    started("cancelled", waited=None)  # cancelled before it started: it never waited out
    started(waited=0.07, task_type=FAIL)

    families = scrape(staff)

    assert families[LATENCY].type == "histogram"
    les = ("0.05", "0.1", "0.25", "1.0", "5.0", "30.0", "60.0", "3600.0", "+Inf")
    assert [latency_bucket(families, SLEEP, le) for le in les] == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    assert value(families, LATENCY, f"{LATENCY}_count", task_type=SLEEP) == 3
    assert value(families, LATENCY, f"{LATENCY}_sum", task_type=SLEEP) == pytest.approx(48.2)
    assert latency_bucket(families, FAIL, "0.1") == 1


def test_start_latency_stays_counted_once_tallied_and_deleted(staff, settings):
    settings.OPS_TASK_RETENTION_DAYS = 1
    submitted = timezone.now() - timedelta(days=3)
    old = TaskRecordFactory(
        status="succeeded",
        attempts=1,
        created_at=submitted,
        started_at=submitted + timedelta(seconds=2),
        finished_at=submitted + timedelta(seconds=5),
    )
    before = scrape(staff)

    maintenance.task_records_prune()
    after = scrape(staff)

    assert not TaskRecord.objects.filter(pk=old.pk).exists()
    for families in (before, after):
        assert latency_bucket(families, SLEEP, "2.5") == 1
        assert value(families, LATENCY, f"{LATENCY}_sum", task_type=SLEEP) == pytest.approx(2)


def test_queued_records_and_the_oldest_per_queue(staff):
    now = timezone.now()
    oldest = TaskRecordFactory(status="queued", queue="long", created_at=now - timedelta(minutes=9))
    TaskRecordFactory(status="queued", queue="long", created_at=now - timedelta(minutes=1))
    TaskRecordFactory(status="running", queue="default", created_at=now - timedelta(hours=1))
    TaskRecordFactory(status="waiting", queue="default", created_at=now - timedelta(hours=1))

    families = scrape(staff)

    queued = {s.labels["queue"]: s.value for s in families["jobservice_tasks_queued"].samples}
    assert queued == {"default": 0, "long": 2}
    family = "jobservice_tasks_queued_oldest_timestamp_seconds"
    # No sample for a queue where nothing waits: its age would be meaningless.
    assert [s.labels for s in families[family].samples] == [{"queue": "long"}]
    assert value(families, family, family, queue="long") == pytest.approx(
        oldest.created_at.timestamp()
    )


def test_the_outbox_counts_submitted_tasks_not_sent_and_the_oldest(staff):
    now = timezone.now()
    families = scrape(staff)
    assert value(families, "jobservice_outbox_pending", "jobservice_outbox_pending") == 0
    # No sample while nothing waits: its age would be meaningless.
    assert families["jobservice_outbox_oldest_timestamp_seconds"].samples == []

    oldest = TaskRecordFactory(status="queued", created_at=now - timedelta(minutes=4))
    TaskRecordFactory(status="queued", created_at=now - timedelta(seconds=2))
    TaskRecordFactory(status="queued", created_at=now - timedelta(hours=1), dispatched_at=now)
    TaskRecordFactory(status="waiting", created_at=now - timedelta(hours=1))

    families = scrape(staff)

    assert value(families, "jobservice_outbox_pending", "jobservice_outbox_pending") == 2
    family = "jobservice_outbox_oldest_timestamp_seconds"
    assert value(families, family, family) == pytest.approx(oldest.created_at.timestamp())


def test_workers_per_queue_come_from_the_census(staff, workers):
    workers({"a@h": ["default"], "b@h": ["default", "long"], "other@h": ["elsewhere"]})

    families = scrape(staff)

    family = "jobservice_queue_workers"
    assert value(families, family, family, queue="default") == 2
    assert value(families, family, family, queue="long") == 1
    assert value(families, "jobservice_workers", "jobservice_workers") == 2


def test_a_queue_nobody_consumes_has_zero_workers(staff, workers):
    workers({"a@h": ["default"]})

    families = scrape(staff)

    assert (
        value(families, "jobservice_queue_workers", "jobservice_queue_workers", queue="long") == 0
    )


def test_without_a_broker_the_workers_per_queue_are_left_out(staff):
    families = scrape(staff)

    assert "jobservice_queue_workers" not in families
    assert "jobservice_workers" not in families
    assert {s.labels["queue"] for s in families["jobservice_tasks_queued"].samples} == {
        "default",
        "long",
    }


def test_open_dead_letters_count_neither_requeued_nor_discarded_ones(staff):
    for resolution in ["open"] * 3 + ["requeued", "discarded"]:
        record = TaskRecordFactory(status=TaskStatus.FAILED, finished_at=timezone.now())
        DeadLetter.objects.create(
            task=record,
            owner=record.owner,
            task_type=record.task_type,
            final_status=TaskStatus.FAILED,
            task_created_at=record.created_at,
            resolution=resolution,
        )

    families = scrape(staff)

    family = "jobservice_dead_letters_open"
    assert value(families, family, family) == 3


def heartbeat(families: dict) -> float:
    family = "jobservice_beat_heartbeat_timestamp_seconds"
    return value(families, family, family)


def beat_check() -> dict:
    facts = BrokerFacts(error=None, workers={}, queue_sizes={})
    report = health.health_evaluate(facts=facts)
    return next(check for check in report.checks if check.check == "beat")


def test_beat_heartbeat_is_its_last_send_as_health_reads_it(staff, settings):
    sent = timezone.now() - timedelta(seconds=200)
    PeriodicTask.objects.filter(name="tasks-reconcile").update(last_run_at=sent)

    families = scrape(staff)

    assert heartbeat(families) == pytest.approx(sent.timestamp())
    # What the alert computes (time() - heartbeat > 180) is what health judges.
    assert timezone.now().timestamp() - heartbeat(families) > settings.OPS_BEAT_STALE_SECONDS
    assert beat_check().status == "critical"


def test_before_beat_first_sends_its_heartbeat_is_the_installation(staff):
    installed = timezone.now() - timedelta(seconds=30)
    PeriodicTask.objects.update(last_run_at=None, date_changed=installed)

    assert heartbeat(scrape(staff)) == pytest.approx(installed.timestamp())
    assert beat_check().status == "healthy"  # a fresh deployment, beat has a minute


def test_with_no_periodic_task_enabled_the_heartbeat_is_zero(staff):
    PeriodicTask.objects.update(enabled=False)

    assert heartbeat(scrape(staff)) == 0
    assert beat_check().status == "critical"
