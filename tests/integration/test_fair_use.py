"""One user's backlog does not hold the shared workers while another user's task waits."""

import uuid

import pytest

from tasks_app.models import TaskQuota, TaskRecord
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.integration.test_task_lifecycle import has_status, poll, submit

pytestmark = pytest.mark.integration


def test_one_users_backlog_does_not_starve_another_users_task(transactional_db, celery_worker):
    alice = UserFactory(username=f"busy-{uuid.uuid4().hex[:6]}")
    bob = UserFactory(username=f"patient-{uuid.uuid4().hex[:6]}")
    # In the database, so that the worker's admissions (as tasks finish) use it too.
    TaskQuota.objects.create(user=alice, max_running=2)
    alice_api, bob_api = client_for(alice), client_for(bob)

    backlog = [submit(alice_api, "diagnostics.sleep", seconds=1.0, steps=1) for _ in range(8)]
    assert [task["status"] for task in backlog] == ["queued"] * 2 + ["waiting"] * 6
    bobs = submit(bob_api, "diagnostics.sleep", seconds=0, steps=1)

    assert poll(bob_api, bobs["id"], until=has_status("succeeded"), timeout=30)[-1]
    for task in backlog:
        poll(alice_api, task["id"], until=has_status("succeeded"), timeout=60)

    alice_starts = sorted(
        TaskRecord.objects.filter(owner=alice).values_list("started_at", flat=True)
    )
    bob_start = TaskRecord.objects.get(pk=bobs["id"]).started_at
    # Bob waited for the two tasks of Alice's that were running (and may start alongside her
    # third, admitted as they finished), not for her backlog of 8.
    assert bob_start < alice_starts[3], (bob_start, alice_starts)
