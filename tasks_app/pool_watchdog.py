"""A worker step that notices a wedged pool process and gets its task run anyway.

The prefork pool hands each task to an idle process (with Redis or RabbitMQ, Celery writes
it to one process's pipe; with the filesystem broker, billiard's processes share one
queue), and the process answers when it starts it. A process that never answers (stuck in
a C library, stopped, or broken between two tasks) holds the task for ever while the worker
looks healthy: the record stays ``queued`` and nothing is logged. Every few seconds this
step, in the worker's main process, looks for a task that has not started although a
process was free to start it for ``TASKS_START_TIMEOUT_SECONDS``. For each one it:

1. logs a warning and records a ``PoolStall`` (the health view counts them);
2. kills the process holding the task (or, in the shared-queue pool, the idle processes
   that left it there), its own children: the pool starts replacements, and billiard gives
   a task that no process accepted to a live one;
3. if the task is still not started one timeout later, gives its message back to the broker
   (reject with requeue) so that any worker can take it.

A task waiting while every process is busy is not stalled, however long it waits. The
task's claim in the database makes a second delivery harmless, so step 3 never runs a task
twice. Pools without processes (solo, threads) have nothing to watch.
"""

import logging
import os
import signal
import time

from celery import bootsteps
from celery.worker import state as worker_state
from django import db
from django.conf import settings

from tasks_app.services import pool_stall_record

logger = logging.getLogger(__name__)


class PoolWatchdog(bootsteps.StartStopStep):
    """Registered in config/celery.py as a step of every worker."""

    requires = ("celery.worker.components:Pool", "celery.worker.components:Timer")

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timeout = settings.TASKS_START_TIMEOUT_SECONDS
        # The pool's cache entries (billiard ApplyResults) not started yet: id(entry) ->
        # (entry, since when it waits with a process free to start it, whether its process
        # was already replaced). The entry is kept so that its id is not reused.
        self._waiting: dict[int, tuple[object, float, bool]] = {}
        self._timer_entry = None

    def start(self, worker):
        if self.timeout <= 0:
            return
        interval = max(0.5, min(5.0, self.timeout / 4))
        self._timer_entry = worker.timer.call_repeatedly(interval, self.check, (worker,))

    def stop(self, worker):
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None

    def check(self, worker) -> None:
        try:
            self._check(worker)
        except Exception:  # the worker's event loop must never see an error of ours
            logger.exception("pool watchdog check failed")

    def _check(self, worker) -> None:
        pool = getattr(worker.pool, "_pool", None)
        cache = getattr(pool, "_cache", None)
        if cache is None:
            return
        entries = list(cache.values())
        busy = {
            pid
            for entry in entries
            if entry._accepted and not entry.ready()
            for pid in entry.worker_pids()
        }
        idle = [proc for proc in getattr(pool, "_pool", []) if proc._is_alive()]
        idle = [proc for proc in idle if proc.pid not in busy]
        now = time.monotonic()
        seen = set()
        for entry in entries:
            if entry.ready() or entry._accepted:
                continue
            seen.add(id(entry))
            _, since, replaced = self._waiting.get(id(entry), (entry, now, False))
            if not idle and not replaced:
                since = now  # every process is busy: waiting is normal
            self._waiting[id(entry)] = (entry, since, replaced)
            waited = now - since
            if not replaced and waited >= self.timeout:
                self._replace_processes(worker, entry, _holders(entry) or idle, waited=waited)
                self._waiting[id(entry)] = (entry, since, True)
            elif replaced and waited >= 2 * self.timeout:
                self._release(worker, entry, waited=waited)
        for key in set(self._waiting) - seen:
            del self._waiting[key]

    def _replace_processes(self, worker, entry, processes, *, waited: float) -> None:
        request = _request_of(entry)
        pids = [proc.pid for proc in processes if proc._is_alive()]
        # In billiard's shared-queue pool an idle process waits for the next task inside a
        # blocking read that holds the queue's read lock. Killing it would leave that lock
        # held and every other process waiting on it: take the lock over first, and hand it
        # on once the holder is dead (only idle processes ever hold it, and they all die).
        read_lock = getattr(getattr(worker.pool._pool, "_inqueue", None), "_rlock", None)
        taken_from_dead = read_lock is not None and not read_lock.acquire(False)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # our own children, so the pids are not reused yet
        if read_lock is not None:
            read_lock.release()  # the lock we took just now, or the dead holder's
        action = "process replaced; task handed to another process"
        logger.warning(
            "pool process did not start its task in %.0f s, %s pid=%s id=%s type=%s%s",
            waited,
            action,
            ",".join(map(str, pids)) or "-",
            entry.correlation_id,
            getattr(request, "name", ""),
            " (released the queue lock it held)" if taken_from_dead else "",
        )
        for pid in pids or [None]:
            _record(worker, entry=entry, request=request, pid=pid, waited=waited, action=action)

    def _release(self, worker, entry, *, waited: float) -> None:
        request = _request_of(entry)
        entry.discard()  # the pool forgets it: it must not also run here later
        self._waiting.pop(id(entry), None)
        if request is None:
            return
        worker_state.task_ready(request)
        request.reject(requeue=True)
        action = "message given back to the broker"
        logger.warning(
            "task still not started after %.0f s, %s id=%s type=%s",
            waited,
            action,
            request.id,
            request.name,
        )
        _record(worker, entry=entry, request=request, pid=None, waited=waited, action=action)


def _holders(entry) -> list:
    """The process an entry was written to (Celery's async pool); none in billiard's plain pool,
    whose processes share one queue, and where every idle process is a suspect."""
    process = getattr(entry, "_write_to", None) or getattr(entry, "_scheduled_for", None)
    return [process] if process is not None and process._is_alive() else []


def _request_of(entry):
    task_id = entry.correlation_id
    return next((req for req in worker_state.reserved_requests if req.id == task_id), None)


def _record(worker, *, entry, request, pid, waited: float, action: str) -> None:
    try:
        pool_stall_record(
            worker=worker.hostname,
            pid=pid,
            task_id=str(entry.correlation_id),
            task_type=getattr(request, "name", "") or "",
            waited_seconds=waited,
            action=action,
        )
    finally:
        db.connections.close_all()  # the main process keeps no connection between tasks
