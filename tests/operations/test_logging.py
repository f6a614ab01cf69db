import json
import logging
import logging.config
import uuid

from operations.logging import JsonFormatter, celery_logger_use_our_format


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    entry = logging.LogRecord(
        "tasks_app.execution", logging.WARNING, __file__, 1, message, args, exc_info
    )
    entry.__dict__.update(extra)
    return entry


def test_a_line_is_one_json_object_with_time_level_logger_message_and_extras():
    task_id = uuid.uuid4()

    line = JsonFormatter().format(record("task %s lost", "x", task_id=task_id, attempt=2))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["time"].endswith("+00:00")
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "tasks_app.execution",
        "task x lost",
    )
    assert (entry["task_id"], entry["attempt"]) == (str(task_id), 2)
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_an_exception_is_kept_as_text_in_the_same_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError as exc:
        line = JsonFormatter().format(record("failed", exc_info=(type(exc), exc, None)))

    assert "\n" not in line
    assert "ValueError: bad\nvalue" in json.loads(line)["exc_info"]


def test_celery_handlers_switch_to_json_only_when_asked(settings):
    logger = logging.getLogger(f"test-{uuid.uuid4().hex}")
    handler = logging.StreamHandler()
    logger.addHandler(handler)

    settings.LOG_FORMAT = "plain"
    celery_logger_use_our_format(logger=logger, loglevel=logging.INFO)
    assert not isinstance(handler.formatter, JsonFormatter)

    settings.LOG_FORMAT = "json"
    celery_logger_use_our_format(logger=logger, loglevel=logging.INFO)
    assert isinstance(handler.formatter, JsonFormatter)


# --- log forging: user text cannot start a line of its own ---------------------------------

FORGED = "x\r\n2026-01-01 00:00:00,000 INFO tasks_app.services task cancelled\x1b[2K\x85\u2028y"


def configured_formatter(name: str) -> logging.Formatter:
    """The formatter LOGGING defines under ``name``, built the way dictConfig builds it."""
    from django.conf import settings

    config = dict(settings.LOGGING["formatters"][name])  # the configurator pops "()" from it
    return logging.config.DictConfigurator(settings.LOGGING).configure_formatter(config)


def test_a_plain_line_keeps_user_text_on_one_line():
    line = configured_formatter("plain").format(record("key=%s", FORGED))

    assert line.splitlines() == [line]
    assert line.endswith(
        "key=x\\r\\n2026-01-01 00:00:00,000 INFO tasks_app.services task cancelled"
        "\\x1b[2K\\x85\\u2028y"
    )


def test_a_plain_line_keeps_the_traceback_below_it():
    try:
        raise ValueError("bad")
    except ValueError as exc:
        line = configured_formatter("plain").format(
            record("failed %s", "a\nb", exc_info=(type(exc), exc, exc.__traceback__))
        )

    first, *traceback = line.splitlines()
    assert first.endswith("failed a\\nb")
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: bad"


def test_a_json_line_holds_any_text_on_one_line_and_gives_it_back_unchanged():
    surrogate = "\ud800"
    line = configured_formatter("json").format(
        record("key=%s", FORGED + surrogate, username="eve\nINFO forged")
    )

    assert line.splitlines() == [line]
    line.encode("utf-8")  # a lone surrogate would make the log stream raise
    entry = json.loads(line)
    assert entry["message"] == "key=" + FORGED + surrogate
    assert entry["username"] == "eve\nINFO forged"


def test_celery_plain_handlers_keep_their_format_with_messages_on_one_line(settings):
    logger = logging.getLogger(f"test-{uuid.uuid4().hex}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(handler)

    settings.LOG_FORMAT = "plain"
    celery_logger_use_our_format(logger=logger, loglevel=logging.INFO)

    assert handler.formatter.format(record("task failed: %s", "a\nb")) == (
        "[WARNING] task failed: a\\nb"
    )
