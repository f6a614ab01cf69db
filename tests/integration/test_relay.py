"""A relay killed in the middle of its work loses nothing: the next one publishes the rest."""

import pytest

from tasks_app.broker import broker_queue_size
from tasks_app.models import TaskRecord
from tests.factories import TaskRecordFactory, UserFactory
from tests.integration.conftest import RelayProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

STARTS_ITS_OWN_RELAY = True
TASK_COUNT = 1000
BATCH_SIZE = 10


def test_a_relay_killed_mid_run_loses_nothing(transactional_db, unread_queue, tmp_path):
    owner = UserFactory()
    TaskRecord.objects.bulk_create(
        TaskRecordFactory.build(owner=owner, queue=unread_queue) for _ in range(TASK_COUNT)
    )
    published = TaskRecord.objects.filter(dispatched_at__isnull=False)
    small_batches = {"TASKS_RELAY_BATCH_SIZE": str(BATCH_SIZE)}

    first = RelayProcess(log_path=tmp_path / "first.log", extra_env=small_batches)
    first.wait_until_ready()
    wait_until(lambda: published.count() >= 100, timeout=60, what="the first relay to publish")
    first.kill()
    assert published.count() < TASK_COUNT, "the first relay finished before it was killed"

    second = RelayProcess(log_path=tmp_path / "second.log", extra_env=small_batches)
    second.wait_until_ready()
    wait_until(
        lambda: not TaskRecord.objects.outbox().exists(), timeout=120, what="an empty outbox"
    )
    second.stop()

    assert published.count() == TASK_COUNT
    # Every record has its message; at most the batch the kill interrupted went out twice
    # (published, not yet marked), and the claim runs such a task once.
    assert TASK_COUNT <= broker_queue_size(unread_queue) <= TASK_COUNT + BATCH_SIZE
