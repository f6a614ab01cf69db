import pytest

from tasks_app.errors import TransientTaskError
from tasks_app.task_types import RetryPolicy, UnknownTaskType, all_task_types, get_task_type


def test_diagnostic_types_are_registered_with_their_celery_tasks():
    names = [spec.name for spec in all_task_types()]
    assert {"diagnostics.sleep", "diagnostics.fail"} <= set(names)
    sleep = get_task_type("diagnostics.sleep")
    assert sleep.celery_task.name == "diagnostics.sleep"
    # The hard limit is Celery's; the soft one is enforced by the task's own watch, so that
    # Celery's pool never signals a process by pid (it may run another task by then).
    assert sleep.celery_task.time_limit == sleep.time_limit
    assert sleep.celery_task.soft_time_limit is None


def test_unknown_type_raises():
    with pytest.raises(UnknownTaskType):
        get_task_type("nope")


def test_retry_policy_retries_only_listed_errors_and_only_so_often():
    policy = RetryPolicy(retry_on=(TransientTaskError,), max_retries=2)

    assert policy.should_retry(TransientTaskError(), retries_done=1)
    assert not policy.should_retry(TransientTaskError(), retries_done=2)
    assert not policy.should_retry(ValueError(), retries_done=0)


def test_retry_backoff_grows_and_is_capped():
    policy = RetryPolicy(backoff_seconds=1, backoff_max_seconds=8, jitter=0)

    delays = [policy.countdown(retries_done=n) for n in range(6)]

    assert delays == [1, 2, 4, 8, 8, 8]
