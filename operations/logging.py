"""JSON log lines, for log collectors: LOG_FORMAT=json selects this formatter in LOGGING.

Celery's worker and beat replace the root logger's handlers with their own (worker_hijack_
root_logger), so LOGGING reaches only web and manage.py; ``celery_logger_use_json``,
connected to Celery's after-setup-logger signals, gives theirs the same format.
"""

import json
import logging
from datetime import UTC, datetime

from django.conf import settings

# What every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, then any extra fields.

    Exceptions and stacks come as text in ``exc_info`` and ``stack_info``; values JSON
    cannot hold (a request object, a UUID) are written as their ``str``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def celery_logger_use_json(*, logger: logging.Logger, **kwargs) -> None:
    """Receiver of Celery's ``after_setup_logger`` and ``after_setup_task_logger`` signals:
    with LOG_FORMAT=json, the handlers Celery set up write JSON lines too."""
    if settings.LOG_FORMAT != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
