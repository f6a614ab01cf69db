"""Every connection to the broker cut while a task runs, the broker itself up: nothing is
lost, nothing runs twice, and no process has to be restarted."""

import time
import uuid

import pytest

from tasks_app.models import DiagnosticCounter, TaskRecord
from tests.integration.faults.rabbitmq import BrokerCable
from tests.integration.test_task_lifecycle import has_status, poll, submit

pytestmark = pytest.mark.integration

CUT_SECONDS = 3


@pytest.fixture
def cable(broker):
    cable = BrokerCable(broker_url=broker.url, broker_port=broker.port)
    yield cable
    cable.close()


def test_a_cut_connection_delays_tasks_and_neither_loses_nor_repeats_one(api, cable, fleet):
    # The worker and the relay reach the broker through the cable; no beat runs, so that
    # nothing is repaired by reconciliation: what arrives, arrived by itself.
    fleet.env["CELERY_BROKER_URL"] = cable.url
    worker = fleet.start_worker()
    running_key = f"cut-{uuid.uuid4().hex[:8]}"
    running = submit(api, "diagnostics.count", key=running_key, seconds=3)
    poll(api, running["id"], until=has_status("running"))

    assert cable.cut() >= 2, "the worker and the relay were not connected through the cable"
    during_key = f"cut-{uuid.uuid4().hex[:8]}"
    during = submit(api, "diagnostics.count", key=during_key, seconds=0.1)
    assert during["status"] == "queued"  # committed: the relay sends it once it can
    time.sleep(CUT_SECONDS)
    cable.mend()

    for task in (running, during):
        final = poll(api, task["id"], until=has_status("succeeded", "failed"), timeout=30)[-1]
        assert (final["status"], final["attempts"]) == ("succeeded", 1), final
    assert DiagnosticCounter.objects.get(key=running_key).count == 1
    assert DiagnosticCounter.objects.get(key=during_key).count == 1
    assert not TaskRecord.objects.filter(dispatched_at__isnull=True).exists()
    assert not worker.has_exited() and not fleet.relay.has_exited()
    after = submit(api, "diagnostics.sleep", seconds=0.1, steps=1)
    poll(api, after["id"], until=has_status("succeeded"), timeout=20)
