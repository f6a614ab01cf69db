"""One extraction child per process, started before the next document needs it.

A child's start-up (a new interpreter, limits set, parsers imported: some 0.3 s) took
longer than reading a 50-page PDF. A spare does it while nothing waits for it: it sits
on its stdin, limited and with its parsers imported, until ``ChildExtraction`` sends it
a document. It reads that one document and exits; when it has ended, the next spare is
started. A child never reads two documents: what one file did to its parser (a leak, a poisoned
cache, an exploit) cannot reach the next.

Limits are set before the parsers are imported, so a spare only fits a document with
the same ``ExtractionLimits`` (they come from settings, so normally every document has
them); a spare with other limits is ended and the document gets a new child.

The spare must not outlive its process, and the pool process is the one to end it: a
Celery pool process ends it in ``worker_process_shutdown`` (documents.signals), and
leaves through ``os._exit``, which runs no ``atexit``; any other process ends it at
exit (``atexit``). A process that is killed takes its spare with it
(``PR_SET_PDEATHSIG``, set by the child; a spare also exits when its stdin closes).
"""

import atexit
import logging
import os
import subprocess
import threading
from dataclasses import dataclass

from documents.processing.isolation import ExtractionLimits, start_child

logger = logging.getLogger(__name__)


@dataclass
class _Spare:
    process: subprocess.Popen
    limits: ExtractionLimits
    owner_pid: int  # a forked process inherits the object, not the child


class SpareChild:
    """Keeps one pre-started extraction child; ``ChildExtraction(spare=...)`` takes it."""

    def __init__(self):
        self._spare: _Spare | None = None
        # Threads of one process (Celery's threads pool) share the spare: two documents
        # must never be handed the same child.
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The waiting child's process id, if there is one."""
        return self._spare.process.pid if self._spare is not None else None

    def take(self, limits: ExtractionLimits) -> tuple[subprocess.Popen, bool]:
        """A child for one document with ``limits``, and whether it was started ahead.

        The spare if it is alive and has these limits, else a new child. A spare that
        dies after this check is caught by ``ChildExtraction``: it never accepted its
        document. ``replenish`` starts the next spare.
        """
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and (spare.limits != limits or spare.process.poll() is not None):
            logger.info(
                "document extraction spare not used pid=%s status=%s same_limits=%s",
                spare.process.pid,
                spare.process.returncode,
                spare.limits == limits,
            )
            _end(spare.process)
            spare = None
        if spare is None:
            return start_child(limits), False
        return spare.process, True

    def replenish(self, limits: ExtractionLimits) -> None:
        """Start a spare with ``limits`` for the next document, unless one waits already.

        Called when a document's child has ended, not when it is taken: on a busy machine
        the start-up (0.3 s of processor time) would slow the parsing of the document
        under way; after it, it overlaps with storing the document and the next one's
        arrival instead.
        """
        with self._lock:
            if self._spare is not None and self._spare.owner_pid == os.getpid():
                return
            try:
                self._spare = _Spare(start_child(limits), limits, os.getpid())
            except OSError:  # no processes or memory left: the next document starts its own
                logger.warning("could not start a spare extraction child", exc_info=True)

    def discard(self) -> None:
        """End and reap the spare, if this process started one."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.owner_pid == os.getpid():
            _end(spare.process)

    def forget_inherited(self) -> None:
        """In a forked child: the spare is the parent's, to leave alone; close our pipe ends."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.process.stdin.close()
            spare.process.stdout.close()
            spare.process.returncode = 0  # so that its __del__ does not wait for it


def _end(process: subprocess.Popen) -> None:
    process.kill()  # no-op for a child that already exited
    process.wait()
    process.stdin.close()
    process.stdout.close()


# The spare of this process: the pipeline's documents take it.
process_spare = SpareChild()
atexit.register(process_spare.discard)
os.register_at_fork(after_in_child=process_spare.forget_inherited)
