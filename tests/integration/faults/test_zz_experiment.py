import time

from tasks_app import services
from tasks_app.models import TaskRecord
from tasks_app.registry import get_task_type
from tests.integration.faults.conftest import wait_until, child_pids, thread_count


def test_idle_worker_survives_redis_restart(broker, fleet, owner):
    w = fleet.start_worker("idle")
    time.sleep(1)
    print("children", w.children(), [thread_count(p) for p in w.children()])
    broker.kill()
    time.sleep(1)
    broker.start()
    time.sleep(8)
    print("idle alive:", w.process.poll())
    rec = services.task_submit(
        owner=owner,
        task_type=get_task_type("diagnostics.sleep"),
        input_data={"seconds": 3, "steps": 1},
    )
    print("keys", broker.client().keys())
    wait_until(
        lambda: TaskRecord.objects.filter(pk=rec.pk, status="running").exists(),
        timeout=20,
        what="running",
    )
    print("children busy", w.children(), [thread_count(p) for p in w.children()])
    broker.kill()
    time.sleep(1)
    broker.start()
    time.sleep(8)
    print("busy alive:", w.process.poll())
    print(w.log()[-3000:])
