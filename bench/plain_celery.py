"""Plain Celery, the baselines of bench/drain.py: no task record, claim, watch or heartbeat.

The app reads the service's own Celery settings (broker, events), and delivers as plain
Celery must to lose nothing to a crash: acks_late, reject_on_worker_lost, prefetch 1
(pinned below, whatever the service ships). One more difference: plain Celery's Django
fixup closes the database connections around every task, as it does for anyone who does
not set ``db_reuse_max`` (the service sets it and keeps its connections, see
config/settings/celery.py). Set ``PLAIN_KEEP_CONNECTIONS=1`` to give the baselines the
service's connection handling.

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
# The delivery settings plain Celery needs to lose nothing to a crash, which issue 10 names
# for both baselines; pinned here, not read from the service, whose durability lives in
# its records instead (config/settings/celery.py).
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
if not os.environ.get("PLAIN_KEEP_CONNECTIONS"):
    app.conf.CELERY_DB_REUSE_MAX = None  # Celery's own default (its fixup reads this name)


@app.task(name="bench.plain_noop")
def plain_noop() -> None:
    return None


@app.task(name="bench.raw_noop", ignore_result=True)
def raw_noop() -> None:
    return None
