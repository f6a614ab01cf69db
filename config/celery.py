"""The Celery application. All configuration lives in Django settings (CELERY_*)."""

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from kombu.transport import TRANSPORT_ALIASES

from operations.logging import celery_logger_use_our_format

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# filesystem:// URLs get kombu's filesystem transport made safe to read while written
# (config/broker.py), in every process and whatever URL a command line passes.
TRANSPORT_ALIASES["filesystem"] = "config.broker:Transport"

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task modules are found by tasks_app's ready() (each app's tasks.py), which the Django
# fixup runs in every worker and beat before they start.

# Every worker replaces a pool process that takes a task and never starts it.
app.steps["worker"].add("tasks_app.pool_watchdog:PoolWatchdog")

# Celery installs its own log handlers in workers and beat; LOG_FORMAT reaches them here.
after_setup_logger.connect(celery_logger_use_our_format)
after_setup_task_logger.connect(celery_logger_use_our_format)
