"""The knobs of the apps: tasks_app, documents and operations."""

from pathlib import Path

from config.settings.base import VAR_DIR, env

# --- Tasks ------------------------------------------------------------------------------

# Queues the shipped worker command listens on; each task type names one of them.
# The queues the shipped task types use; a worker dedicated to some of them narrows
# TASKS_QUEUES, while Django's Tasks API still accepts any of them (tasks_backend.py).
TASKS_SHIPPED_QUEUES = ["default", "long"]
TASKS_QUEUES = env.list("TASKS_QUEUES", default=TASKS_SHIPPED_QUEUES)
# A worker marks each task it runs alive this often; a running task silent for the
# timeout is taken for lost (its worker died) and delivered again, up to the attempts.
TASKS_HEARTBEAT_SECONDS = env.float("TASKS_HEARTBEAT_SECONDS", default=10.0)
TASKS_HEARTBEAT_TIMEOUT_SECONDS = env.float("TASKS_HEARTBEAT_TIMEOUT_SECONDS", default=60.0)
# How often a running task's own watch looks at its record: a cancel stops a body that
# never reports progress within about this long (watch.py).
TASKS_CANCEL_CHECK_SECONDS = env.float("TASKS_CANCEL_CHECK_SECONDS", default=1.0)
# A task handed to a pool process that has not started it after this long means the process
# is wedged: the worker replaces the process and the task runs elsewhere (pool_watchdog.py).
TASKS_START_TIMEOUT_SECONDS = env.float("TASKS_START_TIMEOUT_SECONDS", default=30.0)
TASKS_WORKER_LOST_MAX_ATTEMPTS = env.int("TASKS_WORKER_LOST_MAX_ATTEMPTS", default=3)
# How often beat repairs what crashes leave behind, and how long a queued task may wait
# with no message in its queue before its message is sent again.
TASKS_RECONCILE_SECONDS = env.float("TASKS_RECONCILE_SECONDS", default=60.0)
TASKS_REDISPATCH_AFTER_SECONDS = env.float("TASKS_REDISPATCH_AFTER_SECONDS", default=60.0)
# The relay (Procfile "relay") publishes submitted tasks: up to BATCH per transaction, woken
# by PostgreSQL's NOTIFY at each commit; on SQLite it looks for new ones this often.
TASKS_RELAY_BATCH_SIZE = env.int("TASKS_RELAY_BATCH_SIZE", default=500)
TASKS_RELAY_POLL_SECONDS = env.float("TASKS_RELAY_POLL_SECONDS", default=0.05)
# Under load (PostgreSQL), the relay's passes start at most this often: the commits of the
# interval are published in one pass (relay.py). The most it adds to a submit's delay.
TASKS_RELAY_GATHER_SECONDS = env.float("TASKS_RELAY_GATHER_SECONDS", default=0.01)
# The most tasks one POST /api/v1/tasks/batch may submit.
TASKS_BATCH_MAX_TASKS = env.int("TASKS_BATCH_MAX_TASKS", default=1000)
# A repeated Idempotency-Key returns the first task for this long.
TASKS_IDEMPOTENCY_TTL_SECONDS = env.int("TASKS_IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)
TASKS_DEAD_LETTER_RETENTION_DAYS = env.int("TASKS_DEAD_LETTER_RETENTION_DAYS", default=30)
# Fair use (tasks_app/admission.py; per-user overrides in the admin, "Task quotas"): past
# MAX_ACTIVE unfinished tasks a submit answers 429; past MAX_RUNNING queued or running ones,
# new tasks wait in the database, without a broker message, for one of the user's to finish.
TASKS_MAX_ACTIVE_PER_USER = env.int("TASKS_MAX_ACTIVE_PER_USER", default=1000)
TASKS_MAX_RUNNING_PER_USER = env.int("TASKS_MAX_RUNNING_PER_USER", default=4)
# POST /api/v1/workflows/: the most steps (tasks) one workflow may have, groups included.
WORKFLOWS_MAX_STEPS = env.int("WORKFLOWS_MAX_STEPS", default=100)
# GET /api/v1/tasks/events (tasks_app/events.py): each web process reads the changes of
# the owners with open streams this often (one query for all of them); a stream ends after
# STREAM_SECONDS (its client reconnects where it left off); one user may hold MAX_STREAMS
# open per web process.
TASKS_EVENTS_POLL_SECONDS = env.float("TASKS_EVENTS_POLL_SECONDS", default=0.25)
TASKS_EVENTS_STREAM_SECONDS = env.float("TASKS_EVENTS_STREAM_SECONDS", default=300.0)
TASKS_EVENTS_MAX_STREAMS = env.int("TASKS_EVENTS_MAX_STREAMS", default=20)
# Django's Tasks API (django-tasks, Django 6's django.tasks): @task functions run through
# this pipeline (docs/django-tasks.md). Work enqueued outside enqueue_for(user) belongs to
# this account, created on first use; it cannot log in.
TASKS_SYSTEM_USERNAME = env.str("TASKS_SYSTEM_USERNAME", default="system")
TASKS = {"default": {"BACKEND": "tasks_app.tasks_backend.PipelineBackend"}}

# --- Documents --------------------------------------------------------------------------

# Uploads past this size are refused with 413 before their body is stored.
DOCUMENTS_MAX_UPLOAD_BYTES = env.int("DOCUMENTS_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
# Chunks of the extracted text, in characters; neighbours share ``overlap`` characters.
DOCUMENTS_CHUNK_SIZE = env.int("DOCUMENTS_CHUNK_SIZE", default=1000)
DOCUMENTS_CHUNK_OVERLAP = env.int("DOCUMENTS_CHUNK_OVERLAP", default=200)
# A .docx is a zip: refuse one that would unpack to more than this (zip bombs).
DOCUMENTS_MAX_DOCX_UNCOMPRESSED_BYTES = env.int(
    "DOCUMENTS_MAX_DOCX_UNCOMPRESSED_BYTES", default=200 * 1024 * 1024
)
# Files are parsed in a child process (documents/processing/isolation.py) limited to this
# address space (RLIMIT_AS) and to this many seconds of wall-clock and processor time; a
# file that needs more fails with a reason, and the worker goes on.
DOCUMENTS_PARSE_MEMORY_BYTES = env.int("DOCUMENTS_PARSE_MEMORY_BYTES", default=512 * 1024 * 1024)
DOCUMENTS_PARSE_TIMEOUT = env.float("DOCUMENTS_PARSE_TIMEOUT", default=300.0)
# Web page ingestion: size and time limits, and hosts or CIDRs allowed although private
# (an intranet, or the tests' local server). Public addresses need no entry.
DOCUMENTS_FETCH_MAX_BYTES = env.int("DOCUMENTS_FETCH_MAX_BYTES", default=20 * 1024 * 1024)
DOCUMENTS_FETCH_TIMEOUT = env.float("DOCUMENTS_FETCH_TIMEOUT", default=60.0)
DOCUMENTS_URL_ALLOWLIST = env.list("DOCUMENTS_URL_ALLOWLIST", default=[])
# Scratch space of processing; each run uses and removes a folder of its own.
DOCUMENTS_TMP_DIR = Path(env.str("DOCUMENTS_TMP_DIR", default=str(VAR_DIR / "tmp" / "documents")))


# --- Webhooks ---------------------------------------------------------------------------

# The webhooks process (Procfile "webhooks") looks for finished tasks to announce and due
# deliveries this often, and sends on this many threads at once.
WEBHOOKS_POLL_SECONDS = env.float("WEBHOOKS_POLL_SECONDS", default=0.5)
WEBHOOKS_SENDER_THREADS = env.int("WEBHOOKS_SENDER_THREADS", default=8)
# One attempt's limits: to connect, and in all (connect, send, answer). A slower answer
# is a failed attempt.
WEBHOOKS_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOKS_CONNECT_TIMEOUT_SECONDS", default=5.0)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=15.0)
# Seconds before each attempt, the first at once: Standard Webhooks' schedule (5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; the last about 3 days after the event), each
# delay give or take 10%. A delivery that fails them all ends failed.
WEBHOOKS_RETRY_SCHEDULE = env.list(
    "WEBHOOKS_RETRY_SCHEDULE",
    cast=float,
    default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
)
# An endpoint every attempt to which has failed for this long is disabled (410 Gone at once).
WEBHOOKS_DISABLE_AFTER_SECONDS = env.int("WEBHOOKS_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
# After a rotation, the previous secret also signs deliveries for this long.
WEBHOOKS_SECRET_ROTATION_SECONDS = env.int("WEBHOOKS_SECRET_ROTATION_SECONDS", default=24 * 3600)
WEBHOOKS_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOKS_MAX_ENDPOINTS_PER_USER", default=20)
# Hosts or CIDRs webhooks may go to although private (an intranet receiver), as for
# DOCUMENTS_URL_ALLOWLIST. Public addresses need no entry.
WEBHOOKS_URL_ALLOWLIST = env.list("WEBHOOKS_URL_ALLOWLIST", default=[])
# Events older than this, with their deliveries and attempts, are deleted (hourly, by the
# webhooks process), unless a delivery of theirs is still pending.
WEBHOOKS_RETENTION_DAYS = env.int("WEBHOOKS_RETENTION_DAYS", default=30)


# --- Operations ---------------------------------------------------------------------------

# Health: the window the failure rate is measured over, and when each check turns
# degraded (warning) or critical.
OPS_HEALTH_WINDOW_SECONDS = env.int("OPS_HEALTH_WINDOW_SECONDS", default=900)
OPS_FAILURE_RATE_WARNING = env.float("OPS_FAILURE_RATE_WARNING", default=0.10)
OPS_FAILURE_RATE_CRITICAL = env.float("OPS_FAILURE_RATE_CRITICAL", default=0.20)
# The failure rate is judged only once this many tasks finished in the window: two failed
# demo tasks must not make health critical for a quarter of an hour.
OPS_FAILURE_RATE_MIN_SAMPLES = env.int("OPS_FAILURE_RATE_MIN_SAMPLES", default=20)
OPS_QUEUE_BACKLOG_WARNING = env.int("OPS_QUEUE_BACKLOG_WARNING", default=1000)
OPS_DEAD_LETTERS_WARNING = env.int("OPS_DEAD_LETTERS_WARNING", default=50)
# Beat counts as alive (in /api/v1/tasks/health) while it sent a periodic task this recently.
OPS_BEAT_STALE_SECONDS = env.int("OPS_BEAT_STALE_SECONDS", default=180)
# Only one beat sends the schedules: the one holding this lease; if it dies, another
# takes over within this long (operations/beat_leader.py).
OPS_BEAT_LEASE_SECONDS = env.float("OPS_BEAT_LEASE_SECONDS", default=30.0)
# Health is degraded when a submitted task has waited this long for the relay to publish it.
OPS_RELAY_LAG_SECONDS = env.int("OPS_RELAY_LAG_SECONDS", default=30)
# How long a worker has to answer the health ping.
OPS_WORKER_PING_TIMEOUT = env.float("OPS_WORKER_PING_TIMEOUT", default=1.0)
# The workers and queue sizes are asked at most this often, for every process together
# (shared through the cache); health, snapshots and /metrics read that census. 0: each asks.
OPS_WORKER_CENSUS_SECONDS = env.float("OPS_WORKER_CENSUS_SECONDS", default=10.0)
OPS_HEALTH_SNAPSHOT_RETENTION_DAYS = env.int("OPS_HEALTH_SNAPSHOT_RETENTION_DAYS", default=7)
# A transition to critical mails staff (and posts to the webhook, if set), at most once
# per throttle period.
OPS_ALERT_WEBHOOK_URL = env.str("OPS_ALERT_WEBHOOK_URL", default="")
OPS_ALERT_THROTTLE_SECONDS = env.int("OPS_ALERT_THROTTLE_SECONDS", default=3600)
# Task records past this age (finished ones only) are deleted by the daily retention run.
OPS_TASK_RETENTION_DAYS = env.int("OPS_TASK_RETENTION_DAYS", default=90)
OPS_MAINTENANCE_BATCH_SIZE = env.int("OPS_MAINTENANCE_BATCH_SIZE", default=1000)
# /metrics (Prometheus): a bearer token scrapers send; without one, staff only.
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")

EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="jobs@localhost")
