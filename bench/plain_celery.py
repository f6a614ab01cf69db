"""Plain Celery + django-celery-results, the baseline of bench/drain.py.

One trivial task, results stored by django-celery-results, with the delivery settings the
service uses (acks_late, reject_on_worker_lost, prefetch 1), and none of its own machinery:
no task record, claim, watch or heartbeat.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("plain")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_track_started = False  # Celery's own default


@app.task(name="bench.plain_noop")
def plain_noop() -> None:
    return None
