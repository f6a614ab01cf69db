"""Reconciliation and dead-letter pruning moved from tasks_app to operations, under new names.

- Periodic tasks: every row naming the Celery task ``tasks_app.reconcile`` or
  ``tasks_app.prune_dead_letters`` (those 0002 installed, and any an admin added) names
  ``operations.reconcile_tasks`` or ``operations.prune_dead_letters`` instead; everything
  else in the row (an admin's interval, a disabled switch) stays. A description still as
  installed gets the new one. Beat is told to reload its schedule.
- Maintenance records: the job ``stuck_tasks`` is called ``tasks_reconcile`` now. Its past
  runs are renamed, so that its history stays one job; its lock row goes (the first run
  under the new name makes its own).

The old task names stay registered for one release (operations/tasks.py), for a beat that
has not reloaded yet and for messages already queued. Written out here, not imported:
this migration must do the same whatever the code says later.
"""

from django.db import migrations
from django.utils import timezone

TASKS = {
    "tasks_app.reconcile": "operations.reconcile_tasks",
    "tasks_app.prune_dead_letters": "operations.prune_dead_letters",
}
JOBS = {"stuck_tasks": "tasks_reconcile"}
DESCRIPTIONS = {
    "Stuck tasks: gives the tasks of dead workers back to the queue and sends again the "
    "messages the broker lost (job stuck_tasks).": "Reconciliation: gives the tasks of dead "
    "workers back to the queue, sends again the messages the broker lost, admits waiting "
    "tasks whose owner has a free slot (job tasks_reconcile).",
    "Deletes dead letters older than TASKS_DEAD_LETTER_RETENTION_DAYS "
    "(job dead_letters_prune).": "Deletes dead letters older than "
    "TASKS_DEAD_LETTER_RETENTION_DAYS, in batches (job dead_letters_prune).",
}


def _rename(apps, *, tasks: dict, jobs: dict, descriptions: dict) -> None:
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    renamed = 0
    for old, new in tasks.items():
        renamed += periodic_task.objects.filter(task=old).update(task=new)
    for old, new in descriptions.items():
        periodic_task.objects.filter(task__in=tasks.values(), description=old).update(
            description=new
        )
    if renamed:
        # update() sends no signal: say so the way django-celery-beat's own saves do.
        apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )
    run = apps.get_model("operations", "MaintenanceRun")
    lock = apps.get_model("operations", "MaintenanceLock")
    for old, new in jobs.items():
        run.objects.filter(job=old).update(job=new)
        lock.objects.filter(job=old).delete()


def forward(apps, schema_editor):
    _rename(apps, tasks=TASKS, jobs=JOBS, descriptions=DESCRIPTIONS)


def backward(apps, schema_editor):
    def inverse(mapping: dict) -> dict:
        return {new: old for old, new in mapping.items()}

    _rename(
        apps, tasks=inverse(TASKS), jobs=inverse(JOBS), descriptions=inverse(DESCRIPTIONS)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0002_install_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forward, backward)]
