"""Plain Celery, the baselines of bench/drain.py: no task record, claim, watch or heartbeat.

The app reads the service's own Celery settings (broker, delivery: acks_late,
reject_on_worker_lost, prefetch 1; events), so both baselines deliver as the service does,
except the one that is not about delivery: plain Celery's Django fixup closes the database
connections around every task, as it does for anyone who does not set ``db_reuse_max``
(the service sets it and keeps its connections, see config/settings/celery.py). Set
``PLAIN_KEEP_CONNECTIONS=1`` to give the baselines the service's connection handling.

- ``plain_noop``: a trivial task whose result django-celery-results stores (its row,
  SUCCESS, as the service's tasks have one);
- ``raw_noop``: the same task with results off (``ignore_result``): what Celery costs alone.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("plain")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_track_started = False  # Celery's own default
if not os.environ.get("PLAIN_KEEP_CONNECTIONS"):
    app.conf.CELERY_DB_REUSE_MAX = None  # Celery's own default (its fixup reads this name)


@app.task(name="bench.plain_noop")
def plain_noop() -> None:
    return None


@app.task(name="bench.raw_noop", ignore_result=True)
def raw_noop() -> None:
    return None
