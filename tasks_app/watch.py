"""The watch beside a running task body: heartbeats, cancel and the soft time limit.

A thread in the process that runs the body writes the task's heartbeat, looks at its record
every ``TASKS_CANCEL_CHECK_SECONDS``, and stops the body when the record says it was
cancelled *in this very attempt*, or when the task type's soft time limit has passed.

It stops the body by signalling its own process (``INTERRUPT_SIGNAL``, aimed at the main
thread, so it also breaks a blocking call such as ``time.sleep`` or a socket read). The
handler runs in the main thread and raises only while that thread still runs the attempt the
watch asked about; a signal that arrives after the body ended is ignored. It never raises in
the middle of a database or broker call (that would leave the connection mid-command): the
watch signals again until the call has returned. Nothing ever
signals another process to stop a task: a pid named from outside may already run the next
task when the signal lands (Celery's ``revoke(terminate=True)`` did that, and wedged pool
processes or failed innocent tasks).

Bodies that report progress learn of a cancel sooner, through ``TaskContext``; this is for
those that don't. In a pool whose bodies run outside the main thread (threads, gevent) the
watch only heartbeats; cancels are then seen at the body's own checks.
"""

import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection

from tasks_app import selectors, transitions
from tasks_app.errors import TaskCancelled

logger = logging.getLogger(__name__)

INTERRUPT_SIGNAL = signal.SIGUSR2
# How soon the watch signals again when the main thread was inside a database or broker call.
INTERRUPT_RETRY_SECONDS = 0.05

# (task id, attempt) of the body the main thread runs now, and what the watch asked to raise
# in it. Written by the main thread (arm/disarm) and by the watch thread (request); read by
# the signal handler, which runs in the main thread.
_armed: tuple[str, int] | None = None
# The frame that runs the ``with watched(...)`` statement of the armed attempt.
_armed_caller = None
_requested: dict[tuple[str, int], BaseException] = {}


# Code an interruption must not land in: an exception raised in the middle of a database or
# broker call leaves its connection mid-command ("another command is already in progress"),
# and the worker's own writes after the body (the result row) then fail on it. The watch
# signals again shortly, until the main thread is outside such code.
_NOT_INTERRUPTIBLE_MODULES = (
    "psycopg",
    "sqlite3",
    "django.db",
    "django_celery_results",
    "celery.backends",
    "kombu",
    "redis",
    "amqp",
)


def _inside_a_client_call(frame) -> bool:
    """Whether the interrupted frame is inside such code, looking no further out than the
    ``with watched(...)`` statement: beyond it are Celery's trace and, in the solo pool,
    kombu's event loop, which always run around the body."""
    while frame is not None and frame is not _armed_caller:
        if frame.f_globals.get("__name__", "").startswith(_NOT_INTERRUPTIBLE_MODULES):
            return True
        frame = frame.f_back
    return False


def _on_interrupt_signal(signum, frame) -> None:
    if _armed is None or _armed not in _requested:
        return  # late, or meant for an attempt this thread no longer runs
    if _inside_a_client_call(frame):
        # Left requested: raised as the query returns (_interrupt_after_query), or at the
        # watch's next signal.
        return
    _raise_requested()


def _interrupt_after_query(execute, sql, params, many, context):
    """Django's execute wrapper around the body's queries: a request that came during the
    query is raised as soon as it has returned, when the connection is between commands."""
    result = execute(sql, params, many, context)
    if _armed is not None and _armed in _requested:
        _raise_requested()
    return result


def _raise_requested() -> None:
    global _armed
    error = _requested.pop(_armed)
    _armed = None  # one interruption per attempt
    raise error


def _can_interrupt() -> bool:
    """Whether this thread can be interrupted by a signal: it must be the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(INTERRUPT_SIGNAL) is not _on_interrupt_signal:
        # Installed on first use, and again if anything replaced it (billiard resets the
        # termination signals of each new pool process).
        signal.signal(INTERRUPT_SIGNAL, _on_interrupt_signal)
    return True


@contextmanager
def watched(*, task_id: str, attempt: int, soft_time_limit: int | None):
    """Run the block (the body) under the watch; it may raise TaskCancelled or the soft limit.

    Either exception may also surface just after the block's last line, while the watch is
    being put away: callers handle both around the whole ``with``.
    """
    global _armed, _armed_caller
    token = (task_id, attempt)
    interruptible = _can_interrupt()
    if interruptible:
        _requested.pop(token, None)
        # This generator's frame, then contextlib's __enter__, then the with statement's.
        _armed_caller = sys._getframe(2)
        _armed = token
    watch = _Watch(
        token=token,
        # A limit that cannot interrupt the body is not watched at all.
        soft_deadline=(
            time.monotonic() + soft_time_limit if soft_time_limit and interruptible else None
        ),
        interruptible=interruptible,
    )
    watch.start()
    try:
        if interruptible:
            with connection.execute_wrapper(_interrupt_after_query):
                yield
        else:
            yield
    finally:
        if _armed == token:
            _armed = None
        _armed_caller = None
        _requested.pop(token, None)
        watch.stop()


class _Watch(threading.Thread):
    def __init__(self, *, token: tuple[str, int], soft_deadline: float | None, interruptible):
        super().__init__(name=f"watch-{token[0]}", daemon=True)
        self.task_id, self.attempt = token
        self.token = token
        self.soft_deadline = soft_deadline
        self.interruptible = interruptible
        self._stopped = threading.Event()
        self._main_thread_id = threading.main_thread().ident

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def run(self) -> None:
        beat_every = settings.TASKS_HEARTBEAT_SECONDS
        check_every = min(settings.TASKS_CANCEL_CHECK_SECONDS, beat_every)
        next_beat = time.monotonic() + beat_every
        try:
            while True:
                now = time.monotonic()
                wake_at = min(now + check_every, next_beat)
                if self.soft_deadline is not None:
                    wake_at = min(wake_at, self.soft_deadline)
                if self._stopped.wait(max(0.0, wake_at - now)):
                    return
                now = time.monotonic()
                if self.soft_deadline is not None and now >= self.soft_deadline:
                    self._interrupt(SoftTimeLimitExceeded())
                    return
                try:
                    if now >= next_beat:
                        next_beat = now + beat_every
                        still_held = transitions.task_heartbeat(
                            task_id=self.task_id, attempt=self.attempt
                        )
                    else:
                        still_held = transitions.task_is_running(
                            task_id=self.task_id, attempt=self.attempt
                        )
                    if not still_held:
                        # Finished, cancelled, or given to another worker: only a cancel
                        # of this attempt stops the body; the others end the watch.
                        if self.interruptible and selectors.task_was_cancelled(
                            task_id=self.task_id, attempt=self.attempt
                        ):
                            self._interrupt(TaskCancelled(self.task_id))
                        return
                except DatabaseError:
                    # A passing database outage must not silence the task for good;
                    # the next round reconnects.
                    logger.warning("task watch could not reach the database id=%s", self.task_id)
                    connection.close()
        finally:
            connection.close()  # this thread's own database connection

    def _interrupt(self, error: BaseException) -> None:
        _requested[self.token] = error
        # Until the handler takes the request: it leaves it while the main thread is inside a
        # database or broker call, and the body may end meanwhile (stop() ends the wait).
        while not self._stopped.is_set() and self.token in _requested:
            signal.pthread_kill(self._main_thread_id, INTERRUPT_SIGNAL)
            self._stopped.wait(INTERRUPT_RETRY_SECONDS)
        _requested.pop(self.token, None)  # the body ended first: leave nothing behind
