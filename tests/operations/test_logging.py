import json
import logging
import uuid

from operations.logging import JsonFormatter, celery_logger_use_json


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
    celery_logger_use_json(logger=logger, loglevel=logging.INFO)
    assert not isinstance(handler.formatter, JsonFormatter)

    settings.LOG_FORMAT = "json"
    celery_logger_use_json(logger=logger, loglevel=logging.INFO)
    assert isinstance(handler.formatter, JsonFormatter)
