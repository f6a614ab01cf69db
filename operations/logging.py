"""Log lines that user text cannot forge: plain text or JSON (LOG_FORMAT), one record a line.

A task input, a file name, an idempotency key or a URL path can carry a line break;
written as it is, it would start a line that looks like one of ours. Plain lines escape
control characters in the message (a traceback keeps its lines); JSON escapes them anyway.

Celery's worker and beat replace the root logger's handlers with their own (worker_hijack_
root_logger), so LOGGING reaches only web and manage.py; ``celery_logger_use_our_format``,
connected to Celery's after-setup-logger signals, gives theirs the same treatment.
"""

import copy
import json
import logging
import re
from datetime import UTC, datetime

from django.conf import settings

# What every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}


# What ends a line for some reader (\n, \r, \v, \f, NEL, U+2028/9 for str.splitlines), moves
# a terminal's cursor or colours it (ESC), and lone surrogates, which no UTF-8 stream takes.
_UNSAFE_IN_LOG_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control_characters(text: str) -> str:
    """``text`` with every character that could break or disguise a log line escaped."""
    return _UNSAFE_IN_LOG_LINE.sub(_escape_character, text)


def _escape_character(match: re.Match) -> str:
    character = match[0]
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _with_one_line_message(record: logging.LogRecord) -> logging.LogRecord:
    # A copy: other handlers (and the JSON formatter) must see the message unchanged.
    one_line = copy.copy(record)
    one_line.msg, one_line.args = escape_control_characters(record.getMessage()), None
    return one_line


class PlainFormatter(logging.Formatter):
    """Python's formatter, with the message escaped onto one line (tracebacks excepted)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(_with_one_line_message(record))


class OneLineFormatter(logging.Formatter):
    """Another formatter (Celery's, with its colours and task ids), messages on one line."""

    def __init__(self, wrapped: logging.Formatter):
        super().__init__()
        self.wrapped = wrapped

    def format(self, record: logging.LogRecord) -> str:
        return self.wrapped.format(_with_one_line_message(record))


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
        line = json.dumps(entry, default=str, ensure_ascii=False)
        # json.dumps escapes only \x00-\x1f; the rest can only be inside strings here, where
        # a \uXXXX escape stands for the same character.
        return _UNSAFE_IN_LOG_LINE.sub(lambda match: f"\\u{ord(match[0]):04x}", line)


def celery_logger_use_our_format(*, logger: logging.Logger, **kwargs) -> None:
    """Receiver of Celery's ``after_setup_logger`` and ``after_setup_task_logger`` signals:
    the handlers Celery set up write JSON lines with LOG_FORMAT=json, and keep Celery's own
    plain lines otherwise, with each message on one line."""
    for handler in logger.handlers:
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
        elif not isinstance(handler.formatter, OneLineFormatter | PlainFormatter):
            handler.setFormatter(OneLineFormatter(handler.formatter or logging.Formatter()))
