"""The watch beside a running task body: heartbeats, cancel and the soft time limit.

One thread per worker process (started with its first task, kept for the process's life,
with a database connection of its own) watches the attempt that process runs: it writes the
task's heartbeat every ``TASKS_HEARTBEAT_SECONDS``, looks at its record every
``TASKS_CANCEL_CHECK_SECONDS``, and stops the body when the record says it was cancelled
*in this very attempt*, or when the task type's soft time limit has passed. The body arms the
watch as it starts and disarms it as it ends (``watched``), two writes to memory: a task
shorter than the check interval costs the watch no query at all.

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
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from tasks_app import selectors, transitions
from tasks_app.errors import TaskCancelled
from tasks_app.transitions import Progress

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
    now = time.monotonic()
    watched_attempt = _Attempt(
        token=token,
        started=now,
        # A limit that cannot interrupt the body is not watched at all.
        soft_deadline=now + soft_time_limit if soft_time_limit and interruptible else None,
        interruptible=interruptible,
    )
    watch = _process_watch()
    watch.arm(watched_attempt)
    try:
        if interruptible:
            with connection.execute_wrapper(_interrupt_after_query):
                yield
        else:
            yield
    finally:
        watch.disarm(watched_attempt)
        if _armed == token:
            _armed = None
        _armed_caller = None
        _requested.pop(token, None)


@dataclass(eq=False)
class _Attempt:
    """One armed attempt, as the watch thread sees it."""

    token: tuple[str, int]
    started: float
    soft_deadline: float | None
    interruptible: bool
    next_check: float = 0.0
    next_beat: float = 0.0
    # Progress the body left for its finish to write (``hold_progress``), and when the watch
    # writes it instead if the body is still running.
    held_progress: Progress | None = None
    progress_due: float = float("inf")


def hold_progress(*, task_id: str, attempt: int, progress: Progress | None, seconds: float) -> bool:
    """Leave the attempt's last progress for its finish to write, in the finish's statement:
    the watch writes it itself if the body still runs ``seconds`` later. None withdraws it
    (the body wrote progress itself). False if this process does not watch the attempt:
    the caller writes it now.
    """
    watch = _watch
    if watch is None:
        return False
    return watch.hold_progress((task_id, attempt), progress, due=time.monotonic() + seconds)


class _ProcessWatch(threading.Thread):
    """The process's watch thread: it sleeps while no attempt is due for a look."""

    def __init__(self):
        super().__init__(name=f"task-watch-{os.getpid()}", daemon=True)
        self._main_thread_id = threading.main_thread().ident
        self._changed = threading.Condition()
        # Armed attempts: one in a prefork or solo process (its main thread runs the body),
        # several in a threads pool. Written under the condition's lock, which is never held
        # across a query.
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._wakes_at: float | None = None  # None: asleep until an attempt is armed

    def arm(self, attempt: _Attempt) -> None:
        check_every = min(settings.TASKS_CANCEL_CHECK_SECONDS, settings.TASKS_HEARTBEAT_SECONDS)
        attempt.next_check = attempt.started + check_every
        attempt.next_beat = attempt.started + settings.TASKS_HEARTBEAT_SECONDS
        with self._changed:
            self._attempts[attempt.token] = attempt
            # Woken only when it would sleep past this attempt's first look: a run of short
            # tasks wakes it once per check interval, not once per task.
            if self._wakes_at is None or _due(attempt) < self._wakes_at:
                self._changed.notify()

    def hold_progress(self, token, progress: Progress | None, *, due: float) -> bool:
        with self._changed:
            attempt = self._attempts.get(token)
            if attempt is None:
                return False
            attempt.held_progress = progress
            attempt.progress_due = _NEVER if progress is None else due
            if progress is not None and (self._wakes_at is None or due < self._wakes_at):
                self._changed.notify()
        return True

    def disarm(self, attempt: _Attempt) -> None:
        with self._changed:
            if self._attempts.get(attempt.token) is attempt:
                del self._attempts[attempt.token]

    def is_armed(self, attempt: _Attempt) -> bool:
        return self._attempts.get(attempt.token) is attempt

    def run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                dues = {attempt: _due(attempt) for attempt in self._attempts.values()}
                due = [attempt for attempt, at in dues.items() if at <= now]
                if not due:
                    self._wakes_at = min((at for at in dues.values() if at != _NEVER), default=None)
                    idle = not dues
                    if not idle:
                        self._changed.wait(None if self._wakes_at is None else self._wakes_at - now)
                        continue
                else:
                    self._wakes_at = now  # busy: an attempt armed meanwhile is seen next round
            if not due:
                # Nothing to watch: give the connection back before sleeping (a database that
                # drops idle connections, or a test database being dropped, must not wait on us).
                connection.close()
                with self._changed:
                    if not self._attempts:
                        self._changed.wait()
                continue
            close_old_connections()  # this thread's own connection: max age, health check
            for attempt in due:
                if self.is_armed(attempt):
                    self._look_at(attempt, now)

    def _look_at(self, attempt: _Attempt, now: float) -> None:
        """The attempt is due: its soft limit, heartbeat or cancel check. Queries happen here,
        outside the lock, so arming and disarming never wait for the database."""
        if attempt.soft_deadline is not None and now >= attempt.soft_deadline:
            self._stop_watching(attempt)
            self._interrupt(attempt, SoftTimeLimitExceeded())
            return
        task_id, attempt_number = attempt.token
        check_every = min(settings.TASKS_CANCEL_CHECK_SECONDS, settings.TASKS_HEARTBEAT_SECONDS)
        attempt.next_check = now + check_every
        try:
            progress = attempt.held_progress
            if progress is not None and now >= attempt.progress_due:
                # The body went on after its last step: its progress shows now, not at its
                # finish. Written again by the finish if the body ends meanwhile: the same
                # values, so either order leaves them.
                attempt.progress_due = _NEVER
                attempt.next_beat = now + settings.TASKS_HEARTBEAT_SECONDS  # it beats too
                still_held = transitions.task_report_progress(
                    task_id=task_id,
                    current=progress.current,
                    total=progress.total,
                    message=progress.message,
                    attempt=attempt_number,
                )
            elif now >= attempt.next_beat:
                attempt.next_beat = now + settings.TASKS_HEARTBEAT_SECONDS
                still_held = transitions.task_heartbeat(task_id=task_id, attempt=attempt_number)
            else:
                still_held = transitions.task_is_running(task_id=task_id, attempt=attempt_number)
            if not still_held:
                # Finished, cancelled, or given to another worker: only a cancel of this
                # attempt stops the body; the others end the watch of this attempt.
                self._stop_watching(attempt)
                if attempt.interruptible and selectors.task_was_cancelled(
                    task_id=task_id, attempt=attempt_number
                ):
                    self._interrupt(attempt, TaskCancelled(task_id))
        except DatabaseError:
            # A passing database outage must not silence the task for good; the next round
            # reconnects.
            logger.warning("task watch could not reach the database id=%s", task_id)
            connection.close()

    def _stop_watching(self, attempt: _Attempt) -> None:
        attempt.next_check = attempt.next_beat = attempt.progress_due = _NEVER
        if attempt.soft_deadline is not None:
            attempt.soft_deadline = _NEVER

    def _interrupt(self, attempt: _Attempt, error: BaseException) -> None:
        _requested[attempt.token] = error
        # Until the handler takes the request: it leaves it while the main thread is inside a
        # database or broker call, and the body may end meanwhile (disarmed).
        while self.is_armed(attempt) and attempt.token in _requested:
            signal.pthread_kill(self._main_thread_id, INTERRUPT_SIGNAL)
            time.sleep(INTERRUPT_RETRY_SECONDS)
        _requested.pop(attempt.token, None)  # the body ended first: leave nothing behind


_NEVER = float("inf")


def _due(attempt: _Attempt) -> float:
    """When the watch next has something to do for this attempt."""
    due = min(attempt.next_check, attempt.next_beat, attempt.progress_due)
    return due if attempt.soft_deadline is None else min(due, attempt.soft_deadline)


_watch: _ProcessWatch | None = None
_watch_lock = threading.Lock()


def _process_watch() -> _ProcessWatch:
    """This process's watch thread, started on first use (threads do not survive a fork:
    a prefork pool process starts its own with its first task)."""
    global _watch
    with _watch_lock:
        if _watch is None:
            _watch = _ProcessWatch()
            _start_deaf_to_process_signals(_watch)
        return _watch


# Signals the kernel raises in the thread at fault; blocking them is undefined behaviour.
_FAULT_SIGNALS = {
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGSYS,
    signal.SIGABRT,
}


def _start_deaf_to_process_signals(thread: threading.Thread) -> None:
    """Start the thread with every process-directed signal blocked in it (it inherits the
    mask of the thread that starts it, so there is no moment it could take one).

    A signal sent to a process goes to any thread that does not block it. billiard's pool
    process assumes it has one thread: at exit it blocks SIGTERM in that thread while it
    writes its last message to the pool's shared result pipe, under a lock shared by all
    pool processes. A second SIGTERM arriving then (seen after hard-time-limit kills: the
    process exited by SIGTERM's default action after its first had been handled) would be
    taken by this thread instead, whose default action kills the process holding that lock, and
    every pool process after it blocks on it forever: the worker receives tasks and starts
    none. With the signals blocked here, they wait for the main thread, as billiard expects.
    """
    deferred = signal.valid_signals() - _FAULT_SIGNALS - {signal.SIGKILL, signal.SIGSTOP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _forget_the_parents_watch() -> None:
    global _watch, _watch_lock, _armed, _armed_caller
    _watch, _watch_lock = None, threading.Lock()
    _armed = _armed_caller = None
    _requested.clear()


os.register_at_fork(after_in_child=_forget_the_parents_watch)
