"""What the bench scripts share: Django set up with a migrated database, and a scratch user
whose tasks, result rows and queued messages are removed when the bench ends."""

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def scratch_var_dir() -> None:
    """Unless DJANGO_VAR_DIR is set, run in a folder of the bench's own, removed at exit."""
    if "DJANGO_VAR_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="bench-")
        os.environ["DJANGO_VAR_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


@contextmanager
def scratch_user(username: str, *, queues: tuple[str, ...] = ("default", "long")) -> Iterator:
    """A user whose per-user limits (TaskQuota) are lifted: fair use is per user, and one
    user sending a whole benchmark's load would be held back or refused."""
    with scratch_users(username, count=1, queues=queues) as users:
        yield users[0]


@contextmanager
def scratch_users(
    prefix: str, *, count: int, queues: tuple[str, ...] = ("default", "long")
) -> Iterator[list]:
    """``count`` such users (``prefix``, ``prefix-1``, ...); their tasks, result rows and
    the queues' messages are removed at the end."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django_celery_results.models import TaskResult

    from config.celery import app
    from tasks_app.models import TaskQuota, TaskRecord

    call_command("migrate", verbosity=0)
    users = []
    for number in range(count):
        username = prefix if number == 0 else f"{prefix}-{number}"
        user, _ = get_user_model().objects.get_or_create(username=username)
        TaskQuota.objects.update_or_create(
            user=user, defaults={"max_running": 10**9, "max_active": 10**9}
        )
        users.append(user)
    try:
        yield users
    finally:
        records = TaskRecord.objects.filter(owner__in=users)
        record_ids = [str(pk) for pk in records.values_list("pk", flat=True)]
        TaskResult.objects.filter(task_id__in=record_ids).delete()
        records.delete()
        for user in users:
            user.delete()
        with app.connection_for_write() as connection:
            for queue in queues:
                connection.default_channel.queue_purge(queue)
