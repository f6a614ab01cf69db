"""What the bench scripts share: Django set up with a migrated database, a scratch user
whose tasks, result rows and queued messages are removed when the bench ends, and for
benchmarks that fill a database of their own, a scratch PostgreSQL database."""

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def scratch_var_dir() -> None:
    """Unless DJANGO_VAR_DIR is set, run in a folder of the bench's own, removed at exit."""
    if "DJANGO_VAR_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="bench-")
        os.environ["DJANGO_VAR_DIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


@contextmanager
def scratch_database(suffix: str) -> Iterator[str]:
    """A PostgreSQL database of the bench's own, on the server of DATABASE_URL, dropped at the end.

    Meanwhile DATABASE_URL names it, for this process and the ones it starts; call this
    before Django is set up. Without a PostgreSQL DATABASE_URL it refuses to run: what such
    a bench measures (plans on a million rows) means nothing on the embedded SQLite.
    """
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(
            "This benchmark needs PostgreSQL: set DATABASE_URL=postgres://… (it creates a "
            "scratch database next to the one named there and drops it at the end)."
        )
    name = f"{parts.path.lstrip('/') or 'postgres'}_{suffix}"
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield name
    finally:
        os.environ["DATABASE_URL"] = url
        import django.db

        django.db.connections.close_all()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
