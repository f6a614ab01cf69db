"""Diagnostic task types: for demos, health checks and tests of the pipeline itself."""

import time

from rest_framework import serializers

from tasks_app.errors import TransientTaskError
from tasks_app.execution import TaskContext
from tasks_app.registry import RetryPolicy, register_task_type


class DiagnosticFailure(Exception):
    """The error ``diagnostics.fail`` raises on purpose."""


class SleepInput(serializers.Serializer):
    seconds = serializers.FloatField(
        min_value=0, max_value=3600, help_text="How long to sleep in total."
    )
    steps = serializers.IntegerField(
        min_value=1, max_value=1000, default=10, help_text="Progress is reported after each step."
    )


class FlakyInput(serializers.Serializer):
    failures = serializers.IntegerField(
        min_value=0,
        max_value=10,
        default=2,
        help_text="How many attempts fail before one succeeds.",
    )


class FailInput(serializers.Serializer):
    message = serializers.CharField(
        max_length=500, default="Diagnostic failure requested.", help_text="The error to raise."
    )
    after_seconds = serializers.FloatField(
        min_value=0, max_value=600, default=0, help_text="Run this long before failing."
    )


@register_task_type(
    "diagnostics.sleep",
    input_serializer=SleepInput,
    queue="long",
    soft_time_limit=3700,
    time_limit=3720,
)
def diagnostics_sleep(context: TaskContext, *, seconds: float, steps: int) -> dict:
    """Sleep for `seconds`, in `steps` equal steps, reporting progress after each one."""
    context.report_progress(0, steps, "started")
    for step in range(1, steps + 1):
        _sleep_unless_cancelled(context, seconds / steps)
        context.report_progress(step, steps, f"step {step} of {steps}")
    return {"slept_seconds": seconds, "steps": steps}


def _sleep_unless_cancelled(context: TaskContext, seconds: float) -> None:
    # Long steps are cut into slices of at most a second, so a cancel is seen within one.
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, remaining))
        if remaining > 1.0:
            context.raise_if_cancelled()


@register_task_type(
    "diagnostics.fail", input_serializer=FailInput, soft_time_limit=620, time_limit=640
)
def diagnostics_fail(context: TaskContext, *, message: str, after_seconds: float) -> dict:
    """Raise an error (after `after_seconds`), to exercise the failure path."""
    if after_seconds:
        context.report_progress(0, 1, "waiting before failing")
        time.sleep(after_seconds)
    raise DiagnosticFailure(message)


@register_task_type(
    "diagnostics.flaky",
    input_serializer=FlakyInput,
    soft_time_limit=60,
    time_limit=70,
    retry=RetryPolicy(
        retry_on=(TransientTaskError,), max_retries=3, backoff_seconds=0.5, backoff_max_seconds=5
    ),
)
def diagnostics_flaky(context: TaskContext, *, failures: int) -> dict:
    """Fail with a transient error on the first `failures` attempts, then succeed."""
    if context.attempt <= failures:
        raise TransientTaskError(f"Transient failure on attempt {context.attempt}.")
    return {"succeeded_on_attempt": context.attempt}
