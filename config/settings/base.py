"""Paths, the environment, Django itself, HTTPS, the database, the REST API and logging."""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.database import dead_client_options
from config.storage import s3_storages

BASE_DIR = Path(__file__).resolve().parent.parent.parent

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
    "django_tasks",
    "tasks_app",
    "documents",
    "operations",
    "webhooks",
    # The web dashboard (templates/dashboard/): sits on every other app.
    "dashboard",
    "django_htmx",
    "csp",
    # Failed sign-ins, counted per username and client address (below).
    "axes",
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
    # Sets request.htmx, which the dashboard's views use to answer with a page's fragment.
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in with the lockout page.
    "axes.middleware.AxesMiddleware",
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

# Stored files (uploads, extracted text) go through Django's storage API: under MEDIA_ROOT
# by default, or with a bucket to S3-compatible object storage (django-storages), which
# web and workers on different hosts share. Credentials come from boto3's own environment
# (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the host's role, never from these.
# https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
STORAGE_S3_BUCKET = env.str("STORAGE_S3_BUCKET", default="")
STORAGE_S3_ENDPOINT_URL = env.str("STORAGE_S3_ENDPOINT_URL", default="")  # MinIO, Ceph…
STORAGE_S3_REGION = env.str("STORAGE_S3_REGION", default="")
STORAGE_S3_PREFIX = env.str("STORAGE_S3_PREFIX", default="")
if STORAGE_S3_BUCKET:
    STORAGES = s3_storages(
        bucket=STORAGE_S3_BUCKET,
        endpoint_url=STORAGE_S3_ENDPOINT_URL,
        region=STORAGE_S3_REGION,
        prefix=STORAGE_S3_PREFIX,
    )

# --- HTTPS and error reports ------------------------------------------------------------

# Error pages under DEBUG (and mails to ADMINS) also hide passwords inside URLs, such as
# CELERY_BROKER_URL's, and webhook URLs (config/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SecretsExceptionReporterFilter"

# Off by default, for plain-HTTP local development; behind a TLS proxy turn them on
# (docs/deployment.md, "Behind a TLS proxy"). https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security

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
    # A host that vanishes (powered off, cut off) inside a transaction keeps its locks until
    # the server finds it gone: by the kernel's TCP keepalive defaults, after more than two
    # hours, while reconciliation waits for the lock to requeue the dead worker's task.
    _dead_client = env.int("DJANGO_DB_DEAD_CLIENT_SECONDS", default=30)
    if _dead_client > 0:
        _options = DATABASES["default"]["OPTIONS"]
        _options["options"] = " ".join(
            filter(None, [_options.get("options"), dead_client_options(_dead_client)])
        )
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
# Each process keeps its connection between requests and tasks, checked before it is reused,
# instead of opening one per request: a PostgreSQL connect cost more than a submit's own
# queries (55 vs 100+ submits/s, issue 10). Each web worker, pool process and beat holds one.
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Web pages: sign-in and Content-Security-Policy ------------------------------------

# The dashboard's pages sign people in with Django's own auth views (/accounts/…).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:task-list"
LOGOUT_REDIRECT_URL = "login"

# Password guessing at the sign-in pages (the dashboard's and the admin's) is slowed by
# django-axes: after AUTH_LOGIN_FAILURE_LIMIT failures in a row for one username from one
# client address, that pair is refused (429, the lockout page) for AUTH_LOGIN_LOCKOUT_MINUTES.
# Keyed on the pair, so that someone guessing from elsewhere cannot lock a user out; a
# success clears the count. The API is not concerned: it takes tokens, never passwords.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AUTH_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AUTH_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A try during the lockout is refused and not recorded: axes would append each one's
# request data to the pair's row, which someone hammering a locked pair could grow without
# bound. The lockout ends AUTH_LOGIN_LOCKOUT_MINUTES after the failure that started it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "config.sign_in.lockout_response"
AXES_USERNAME_CALLABLE = "config.sign_in.lockout_username"
# Each attempt is not logged to a table of its own (it would grow without bound); the
# failures are kept until their lockout ends, and each lockout is logged (axes' warnings).
AXES_DISABLE_ACCESS_LOG = True
# Its start-up banner in every process and command; lockouts are logged either way.
AXES_VERBOSE = False
# A lockout's warning names the username and address, as sign-in logs do (sshd's, say):
# who is attacked, and from where. axes would mask both.
AXES_SENSITIVE_PARAMETERS: list[str] = []

# Every page's scripts and styles come from our own static files: no inline script, no
# CDN (django-csp). The API docs' third-party pages (Swagger UI, ReDoc) carry inline
# scripts of their own and are exempt (config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

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
# Unrevoked API keys one user may hold: enough for every script and service of theirs, and
# a bound on what a user creating keys in a loop can store.
API_KEYS_MAX_PER_USER = env.int("API_KEYS_MAX_PER_USER", default=100)
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
        "WebhookEndpointStatusEnum": "webhooks.models.EndpointStatus",
        "WebhookDeliveryStatusEnum": "webhooks.models.DeliveryStatus",
        "WebhookEventTypeEnum": "webhooks.models.EventType",
    },
}

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
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        # django-axes tells at INFO of every sign-in it counts and every clean-up; its
        # lockouts are warnings.
        "axes": {"level": "WARNING"},
    },
}
