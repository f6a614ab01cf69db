from io import StringIO

import pytest
from celery import schedules
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from config.celery import app as celery_app
from operations.models import MaintenanceLock, MaintenanceRun
from operations.schedules import schedules_defined, schedules_install

pytestmark = pytest.mark.django_db

NAMES = {
    "tasks-reconcile",
    "operations-health-snapshot",
    "operations-cleanup-results",
    "operations-cleanup-orphan-files",
    "tasks-prune-dead-letters",
    "operations-prune-task-records",
    "celery.backend_cleanup",
}


def schedule_of(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval", "crontab").get(name=name)


@pytest.fixture
def no_schedules():
    """A database without the schedules (migrate installed them; an admin deleted them)."""
    PeriodicTask.objects.all().delete()


def test_migrate_installed_every_schedule_with_its_timing_and_expiry():
    # Nothing installed them in this test: pytest-django ran migrate for the test database.
    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= NAMES
    reconcile = schedule_of("tasks-reconcile")
    assert (reconcile.task, reconcile.interval.every, reconcile.interval.period) == (
        "operations.reconcile_tasks",
        1,
        "minutes",
    )
    assert reconcile.expire_seconds == 60 and reconcile.expires is None
    assert "(job tasks_reconcile)" in reconcile.description
    assert str(schedule_of("operations-cleanup-results").interval) == "every hour"
    retention = schedule_of("operations-prune-task-records")
    assert (retention.crontab.minute, retention.crontab.hour) == ("30", "3")
    assert str(retention.crontab.timezone) == "UTC"
    assert schedule_of("operations-health-snapshot").task == "operations.record_health_snapshot"
    prune = schedule_of("tasks-prune-dead-letters")
    assert (prune.task, prune.crontab.hour, prune.expire_seconds) == (
        "operations.prune_dead_letters",
        "3",
        12 * 3600,
    )
    assert not schedule_of("celery.backend_cleanup").enabled


def test_install_creates_the_missing_schedules_and_keeps_the_others():
    PeriodicTask.objects.filter(name__in=["tasks-reconcile", "celery.backend_cleanup"]).delete()

    counts = schedules_install()

    assert counts == {"created": 2, "kept": len(NAMES) - 2, "updated": 0}
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == NAMES
    assert str(schedule_of("tasks-reconcile").interval) == "every minute"


def test_the_migration_installs_with_its_historical_models_and_keeps_admin_edits():
    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("operations", "0002_install_schedules"))
    install = executor.loader.get_migration("operations", "0002_install_schedules")
    run_python = install.operations[0]
    PeriodicTask.objects.filter(name="operations-health-snapshot").delete()
    reconcile = schedule_of("tasks-reconcile")
    reconcile.interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    reconcile.save()
    changed_before = PeriodicTasks.last_change()

    run_python.code(state.apps, None)  # what migrate runs, as it runs it

    assert set(PeriodicTask.objects.values_list("name", flat=True)) == NAMES
    assert str(schedule_of("tasks-reconcile").interval) == "every 5 minutes"
    assert PeriodicTasks.last_change() > changed_before  # a running beat reloads


def test_installing_twice_creates_nothing_the_second_time(no_schedules):
    schedules_install()
    rows = (
        PeriodicTask.objects.count(),
        IntervalSchedule.objects.count(),
        CrontabSchedule.objects.count(),
    )

    counts = schedules_install()

    assert counts == {"created": 0, "kept": len(NAMES), "updated": 0}
    assert (
        PeriodicTask.objects.count(),
        IntervalSchedule.objects.count(),
        CrontabSchedule.objects.count(),
    ) == rows


def test_admin_edits_are_kept_and_reset_restores_the_definition():
    schedules_install()
    # What an admin does: another interval, and a schedule switched off.
    reconcile = schedule_of("tasks-reconcile")
    reconcile.interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    reconcile.save()
    PeriodicTask.objects.filter(name="operations-cleanup-results").update(enabled=False)

    call_command("install_schedules", stdout=StringIO())

    assert str(schedule_of("tasks-reconcile").interval) == "every 5 minutes"
    assert not schedule_of("operations-cleanup-results").enabled

    out = StringIO()
    call_command("install_schedules", "--reset", stdout=out)

    assert str(schedule_of("tasks-reconcile").interval) == "every minute"
    assert schedule_of("operations-cleanup-results").enabled
    assert "0 created, 2 reset, 5 kept as they were." in out.getvalue()


def test_command_prints_what_it_created_and_each_schedule(no_schedules):
    out = StringIO()

    call_command("install_schedules", stdout=out)

    text = out.getvalue()
    assert f"{len(NAMES)} created, 0 reset, 0 kept" in text
    assert "tasks-reconcile" in text and "every minute" in text
    assert "operations.reconcile_tasks" in text
    assert "celery.backend_cleanup" in text and "(disabled)" in text


def test_reconcile_interval_follows_its_setting(settings, no_schedules):
    settings.TASKS_RECONCILE_SECONDS = 5

    schedules_install()

    reconcile = schedule_of("tasks-reconcile")
    assert str(reconcile.interval) == "every 5 seconds"
    assert reconcile.expire_seconds == 5


# The scheduler closes "old" connections, which ends the transaction of a plain db test.
@pytest.mark.django_db(transaction=True)
def test_beat_starts_from_the_installed_rows_without_a_beat_schedule_setting():
    schedules_install()

    scheduler = DatabaseScheduler(app=celery_app)  # what `celery beat` builds at start

    assert not celery_app.conf.beat_schedule
    # Daily (crontab) entries are loaded only within two hours of their time, so check the
    # interval ones. Celery's own backend cleanup: beat re-creates its row, but leaves it off.
    assert set(scheduler.schedule) >= {
        "tasks-reconcile",
        "operations-health-snapshot",
        "operations-cleanup-results",
        "operations-cleanup-orphan-files",
    }
    assert "celery.backend_cleanup" not in scheduler.schedule
    assert not schedule_of("celery.backend_cleanup").enabled
    assert scheduler.schedule["tasks-reconcile"].options["expires"] == 60


def test_beat_default_entry_does_not_switch_the_disabled_backend_cleanup_on():
    schedules_install()

    # Exactly what DatabaseScheduler.install_default_entries writes at every start.
    ModelEntry.from_entry(
        "celery.backend_cleanup",
        app=celery_app,
        task="celery.backend_cleanup",
        schedule=schedules.crontab("0", "4", "*"),
        options={"expire_seconds": 12 * 3600},
    )

    cleanup = schedule_of("celery.backend_cleanup")
    assert not cleanup.enabled
    assert (cleanup.crontab.minute, cleanup.crontab.hour) == ("0", "4")
    assert CrontabSchedule.objects.filter(minute="0", hour="4").count() == 1


@pytest.mark.parametrize("schedule", schedules_defined(), ids=lambda schedule: schedule.name)
def test_every_scheduled_task_is_a_registered_celery_task(schedule):
    assert schedule.task in celery_app.tasks


# --- Migration 0003: reconciliation and dead-letter pruning under their new names ----------

OLD_RECONCILE_DESCRIPTION = (
    "Stuck tasks: gives the tasks of dead workers back to the queue and sends again the "
    "messages the broker lost (job stuck_tasks)."
)


def run_migration_0003(direction: str) -> None:
    """Run 0003's data step, forward or backward, with its historical models, as migrate does."""
    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("operations", "0003_reconcile_tasks_names"))
    migration = executor.loader.get_migration("operations", "0003_reconcile_tasks_names")
    step = migration.operations[0]
    (step.code if direction == "forward" else step.reverse_code)(state.apps, None)


@pytest.fixture
def rows_before_0003():
    """The rows as a deployment of the previous release has them: the old task and job
    names, an admin's interval on the reconciliation, an admin's own extra row."""
    PeriodicTask.objects.filter(name="tasks-reconcile").update(
        task="tasks_app.reconcile",
        description=OLD_RECONCILE_DESCRIPTION,
        interval=IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES),
    )
    PeriodicTask.objects.filter(name="tasks-prune-dead-letters").update(
        task="tasks_app.prune_dead_letters", description="Edited by an admin."
    )
    PeriodicTask.objects.create(
        name="extra reconcile",
        task="tasks_app.reconcile",
        interval=IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS),
    )
    MaintenanceRun.objects.create(job="stuck_tasks", outcome="done", counts={"requeued": 2})
    MaintenanceRun.objects.create(job="results_cleanup", outcome="done")
    MaintenanceLock.objects.create(job="stuck_tasks")


def test_migration_0003_renames_the_tasks_in_every_row_and_the_job_in_its_records(
    rows_before_0003,
):
    changed_before = PeriodicTasks.last_change()

    run_migration_0003("forward")

    by_name = dict(PeriodicTask.objects.values_list("name", "task"))
    assert by_name["tasks-reconcile"] == by_name["extra reconcile"] == "operations.reconcile_tasks"
    assert by_name["tasks-prune-dead-letters"] == "operations.prune_dead_letters"
    assert set(by_name.values()) <= set(celery_app.tasks)  # beat sends only registered names
    reconcile = schedule_of("tasks-reconcile")
    assert str(reconcile.interval) == "every 5 minutes"  # the admin's edit stays
    assert "(job tasks_reconcile)" in reconcile.description  # the installed text is renewed
    assert schedule_of("tasks-prune-dead-letters").description == "Edited by an admin."
    assert PeriodicTasks.last_change() > changed_before  # a running beat reloads
    assert sorted(MaintenanceRun.objects.values_list("job", "counts")) == [
        ("results_cleanup", {}),
        ("tasks_reconcile", {"requeued": 2}),
    ]
    assert not MaintenanceLock.objects.exists()


def test_migration_0003_backward_restores_the_old_names(rows_before_0003):
    run_migration_0003("forward")
    MaintenanceLock.objects.create(job="tasks_reconcile")

    run_migration_0003("backward")

    by_name = dict(PeriodicTask.objects.values_list("name", "task"))
    assert by_name["tasks-reconcile"] == by_name["extra reconcile"] == "tasks_app.reconcile"
    assert by_name["tasks-prune-dead-letters"] == "tasks_app.prune_dead_letters"
    assert schedule_of("tasks-reconcile").description == OLD_RECONCILE_DESCRIPTION
    assert set(MaintenanceRun.objects.values_list("job", flat=True)) == {
        "stuck_tasks",
        "results_cleanup",
    }
    assert not MaintenanceLock.objects.exists()


def test_migrate_on_a_fresh_database_installs_the_new_names_only():
    # pytest-django ran every migration for the test database: 0002 installed, 0003 found
    # nothing to rename.
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"operations.reconcile_tasks", "operations.prune_dead_letters"} <= tasks
    assert not tasks & {"tasks_app.reconcile", "tasks_app.prune_dead_letters"}
