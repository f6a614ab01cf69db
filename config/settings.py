"""Django settings, all from the environment (12-factor).

With nothing set, the project runs embedded: SQLite and Celery's filesystem broker in
``var/``. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
Every variable is listed in the README's configuration table and in ``.env.example``.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env (written by bin/serve on first run) wins over nothing, loses to the real environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it, or set DJANGO_DEBUG=true for local development."
        )
    # Development only: a fixed, public key is acceptable because DEBUG is on.
    SECRET_KEY = "django-insecure-development-only-key"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Runtime state of the embedded default (SQLite file, broker folders, media) lives here.
VAR_DIR = Path(env.str("DJANGO_VAR_DIR", default=str(BASE_DIR / "var")))
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "tasks_app",
    "documents",
    "operations",
]

MIDDLEWARE = [
    # First, so it times every response and sees its final status (Prometheus /metrics).
    "operations.prometheus.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware, whose APPEND_SLASH would redirect (config/middleware.py).
    "api.middleware.ApiTrailingSlashMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"

# --- HTTPS and error reports ------------------------------------------------------------

# Error pages under DEBUG (and mails to ADMINS) also hide passwords inside URLs, such as
# CELERY_BROKER_URL's, and webhook URLs (config/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SecretsExceptionReporterFilter"

# Off by default, for plain-HTTP local development; behind a TLS proxy turn them on (README,
# "Behind a TLS proxy"). https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security

# The proxy's header that says the client used HTTPS, as Django's request.META name and
# value: "HTTP_X_FORWARDED_PROTO,https". Trust it only if the proxy always sets it (removing
# any copy the client sent), or a client can claim HTTPS over plain HTTP.
SECURE_PROXY_SSL_HEADER = env.tuple("DJANGO_SECURE_PROXY_SSL_HEADER", default=()) or None
if SECURE_PROXY_SSL_HEADER is not None and len(SECURE_PROXY_SSL_HEADER) != 2:
    raise ImproperlyConfigured(
        "DJANGO_SECURE_PROXY_SSL_HEADER must be a header and a value, such as "
        f"HTTP_X_FORWARDED_PROTO,https; not {SECURE_PROXY_SSL_HEADER!r}."
    )
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Probes of a load balancer or orchestrator speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/(live|ready)/?$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Session and CSRF cookies only over HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)

# --- Database ---------------------------------------------------------------------------
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database fails fast (readiness answers 503) instead of hanging.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write to one SQLite file at once: WAL lets readers
    # go on during a write, IMMEDIATE transactions take the write lock up front (no
    # deadlock on upgrade), and the timeout makes a writer wait instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# --- REST framework ---------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The first class decides the WWW-Authenticate header, and so that DRF answers 401.
        # Authorization: Token, checked against stored digests (DRF's authtoken kept keys in clear).
        "tasks_app.authentication.TokenAuthentication",
        "tasks_app.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, bounded (config/parsers.py); document uploads add multipart themselves.
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's, plus error answers and the X-API-Key scheme (config/schema.py).
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.exception_handlers.domain_exception_handler",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_THROTTLE_RATES": {"task_submit": env.str("API_SUBMIT_RATE", default="120/min")},
}
# JSON request bodies past this many bytes are refused with 413 before they are parsed.
API_MAX_JSON_BYTES = env.int("API_MAX_JSON_BYTES", default=1024 * 1024)
# Each list view names its own (cursor) pagination class; PAGE_SIZE is their shared default.
SILENCED_SYSTEM_CHECKS = ["rest_framework.W001"]

SPECTACULAR_SETTINGS = {
    "TITLE": "Job service API",
    "DESCRIPTION": "Submit, watch and cancel background tasks run by Celery workers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from this process (drf-spectacular-sidecar), so the docs page needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Separate request and response components: an upload's file is binary going in, and
    # read-only fields (ids, links) are not asked of clients.
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per set of choices: a task's status and a dead letter's final status are the
    # same set, a document's status another (else drf-spectacular makes up "StatusB72Enum").
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks_app.models.TaskStatus",
        "DocumentStatusEnum": "documents.models.DocumentStatus",
        "DeadLetterResolutionEnum": "tasks_app.models.DeadLetter.Resolution",
    },
}

# --- Celery -----------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
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
CELERY_TASK_TRACK_STARTED = True
# A message is acknowledged after the task ran, and given back if its worker dies,
# so a crash never loses it; the record's claim makes the second delivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
# In KiB: a child that grows past this is replaced after its current task.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=512_000)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing happens in the request (after commit): give up fast when the broker is down,
# the row stays queued and is dispatched again later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Schedules live in the database, editable in admin; operations/schedules.py defines them
# and `manage.py migrate` installs the missing ones (migration operations/0002).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
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
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
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

# --- Tasks ------------------------------------------------------------------------------

# Queues the shipped worker command listens on; each task type names one of them.
TASKS_QUEUES = env.list("TASKS_QUEUES", default=["default", "long"])
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
# A repeated Idempotency-Key returns the first task for this long.
TASKS_IDEMPOTENCY_TTL_SECONDS = env.int("TASKS_IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)
TASKS_DEAD_LETTER_RETENTION_DAYS = env.int("TASKS_DEAD_LETTER_RETENTION_DAYS", default=30)
# Fair use (tasks_app/admission.py; per-user overrides in the admin, "Task quotas"): past
# MAX_ACTIVE unfinished tasks a submit answers 429; past MAX_RUNNING queued or running ones,
# new tasks wait in the database, without a broker message, for one of the user's to finish.
TASKS_MAX_ACTIVE_PER_USER = env.int("TASKS_MAX_ACTIVE_PER_USER", default=1000)
TASKS_MAX_RUNNING_PER_USER = env.int("TASKS_MAX_RUNNING_PER_USER", default=4)

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

# --- Logging ----------------------------------------------------------------------------

# "plain" text, or "json": one JSON object per line (operations.logging.JsonFormatter).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Messages escaped onto one line: user text cannot forge a line (operations/logging.py).
        "plain": {
            "()": "operations.logging.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "operations.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # Django gives its own logger a console handler under DEBUG; through root it is enough.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
