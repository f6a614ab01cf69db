"""Celery: the broker, results, delivery guarantees; and the cache, which follows the broker."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.settings.apps import TASKS_QUEUES, TASKS_SHIPPED_QUEUES
from config.settings.base import TIME_ZONE, VAR_DIR, env

BROKER_KINDS = {
    "filesystem": "filesystem",
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "pyamqp": "rabbitmq",
}

# --- Celery -----------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
# Which broker the URL names, decided here once: these settings, the cache, publishing and
# the broker checks (tasks_app.broker) branch on it.
BROKER_KIND = BROKER_KINDS.get(CELERY_BROKER_URL.partition("://")[0])
if BROKER_KIND is None:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL {CELERY_BROKER_URL.partition('://')[0]}://… is not a broker this "
        "service supports: use redis://, rediss://, amqp:// (RabbitMQ) or filesystem://."
    )
# RabbitMQ only: quorum queues are replicated and fsync what they confirm; classic queues
# offer 10 priority levels instead (docs/deployment.md#rabbitmq).
RABBITMQ_QUEUE_TYPE = env.str("RABBITMQ_QUEUE_TYPE", default="quorum")
if RABBITMQ_QUEUE_TYPE not in ("quorum", "classic"):
    raise ImproperlyConfigured(
        f"RABBITMQ_QUEUE_TYPE is {RABBITMQ_QUEUE_TYPE!r}: use 'quorum' or 'classic'."
    )
if BROKER_KIND == "filesystem":
    # The filesystem transport needs its folders to exist; messages in and out share one
    # folder so that this process and the worker see the same queue.
    _broker_dir = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
    for _folder in ("queue", "processed", "control", "bad"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "bad_folder": str(_broker_dir / "bad"),
        "store_processed": False,
        # How often an idle consumer lists the queue folder (kombu's default is 1 s): one
        # listing of a local folder costs microseconds, and it bounds how long a task waits.
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.1),
    }
elif BROKER_KIND == "rabbitmq":
    # Every queue is durable and declared the same way by every process (a queue declared
    # once keeps its type: RabbitMQ refuses to declare it again otherwise).
    # A publish returns once RabbitMQ has the message (on a quorum queue: on disk on a
    # majority of its replicas), so the relay marks a record dispatched only then.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    if RABBITMQ_QUEUE_TYPE == "quorum":
        _queue_arguments = {"x-queue-type": "quorum"}
        # Queues outside the list below (a test's private queue) are declared alike.
        CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
        CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
        # Quorum queues ignore a global prefetch limit: Celery sees them and sets one per
        # consumer (a worker may then hold prefetch x concurrency messages per queue); and
        # a retry's countdown waits in RabbitMQ's delay queues, not in a worker's memory
        # ("native delayed delivery", which needs topic exchanges: below).
        CELERY_WORKER_DETECT_QUORUM_QUEUES = True
        CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "quorum"
    else:
        # Our priorities are 0-9, sent as they are: RabbitMQ serves the highest first.
        _queue_arguments = {"x-max-priority": 9}
        CELERY_TASK_QUEUE_MAX_PRIORITY = 9
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    CELERY_TASK_QUEUES = [
        Queue(
            name, Exchange(name, type="topic"), routing_key=name, queue_arguments=_queue_arguments
        )
        for name in dict.fromkeys([*TASKS_SHIPPED_QUEUES, *TASKS_QUEUES])
    ]
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis redelivers an unacknowledged (acks_late) message after this many seconds.
        # The claim refuses a copy of a task that is still running, but keep this above
        # the longest hard time limit so that no copies are made at all.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 3600),
        # With "priority" strategy, Redis serves priorities 0 (first) to 9 (last).
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
    }

CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=7 * 24 * 3600)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
# No STARTED result row: the task record already says running (its claim), and the row
# cost a transaction per task in the worker. Flower still sees starts, through events.
CELERY_TASK_TRACK_STARTED = False
# A message is acknowledged after the task ran, and given back if its worker dies,
# so a crash never loses it; the record's claim makes the second delivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
# In KiB: a child that grows past this is replaced after its current task.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=512_000)
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; it then closes them once per this many tasks. The worker keeps its
# connections as the web does instead: tasks_app/signals.py applies CONN_MAX_AGE around
# each task, and the health check around maintenance tasks (our tasks' claim reconnects
# once instead). (A pool process is replaced after CELERY_WORKER_MAX_TASKS_PER_CHILD tasks
# anyway.)
CELERY_DB_REUSE_MAX = 1_000_000
# Celery's task events are for Flower and `celery events`; the task records already hold
# what they tell (status, worker, times), and nothing in the service reads them. Off by
# default, as in Celery: each is a broker publish per task state (on Redis, kombu builds
# a client per event); bench/drain.py drained about 100 short tasks/s with them, 105-165
# without them (noisy runs). Turn both
# on to watch tasks in Flower (docs/operations.md#flower-and-the-celery-cli).
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The relay and reconciliation publish: give up fast when the broker is down, the row
# stays queued and is published by a later pass.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Schedules live in the database, editable in admin; operations/schedules.py defines them
# and `manage.py migrate` installs the missing ones (migration operations/0002).
# Only the beat holding the lease sends them: two beats by mistake send nothing twice
# (operations/beat_leader.py).
CELERY_BEAT_SCHEDULER = "operations.beat_leader:LeaderScheduler"
# Celery's consumer, made to survive a Redis restart while it holds messages (config/worker.py).
CELERY_WORKER_CONSUMER = "config.worker:Consumer"
# Beat saves each periodic task's last run at once: health reads it as beat's heartbeat.
CELERY_BEAT_SYNC_EVERY = 1

# --- Cache ------------------------------------------------------------------------------
# One cache shared by every web and worker process: the submit throttle must count a user's
# submits across all gunicorn workers (a per-process cache let 238 of 500 through a limit of
# 120), and the worker census is taken once per interval for all of them. Redis when the
# broker is Redis; otherwise the database (its table is created by migrate).
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
elif BROKER_KIND == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "jobs-cache",
            # A Redis that does not answer costs a request a second, not the request.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "jobs_cache_entries",
        }
    }
