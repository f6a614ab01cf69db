"""The relay: publishes the broker messages of committed tasks, outside any request.

A submit commits its record and returns; the record is its own outbox entry (``queued``,
no ``dispatched_at``). The relay publishes such records in batches (``dispatch.py``):

- on PostgreSQL it LISTENs on its own connection and wakes at each commit's NOTIFY, and
  looks anyway every ``IDLE_PASS_SECONDS``, in case a notification was missed (a dropped
  connection). Under load its passes start at most every ``TASKS_RELAY_GATHER_SECONDS``:
  a pass costs four round trips however few tasks it publishes, and one pass per submit
  cost more processor time than the submit itself; the commits of that interval are
  gathered into one pass instead, at the price of that much more delay;
- on SQLite, which has no notifications, it looks every ``TASKS_RELAY_POLL_SECONDS``, with
  one read of the outbox's small index; it takes the write lock only when there is work.

Killing it loses nothing: unpublished rows wait for the next relay, and reconciliation
publishes what waited longer than its grace. Two relays by mistake publish nothing twice.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection

from tasks_app.dispatch import OUTBOX_CHANNEL, tasks_pending_exist, tasks_publish_pending

logger = logging.getLogger(__name__)

IDLE_PASS_SECONDS = 1.0
# After a database error, before the next try.
RETRY_SECONDS = 1.0


class Relay:
    """Run with ``run(stop)``; it returns soon after ``stop`` is set."""

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        poll_seconds: float | None = None,
        gather_seconds: float | None = None,
    ):
        self.batch_size = batch_size or settings.TASKS_RELAY_BATCH_SIZE
        self.poll_seconds = poll_seconds or settings.TASKS_RELAY_POLL_SECONDS
        self.gather_seconds = (
            settings.TASKS_RELAY_GATHER_SECONDS if gather_seconds is None else gather_seconds
        )
        self.published = 0
        self.passes = 0
        self._listener = None
        self._last_pass_at = -float("inf")

    def run(self, stop: threading.Event) -> None:
        logger.info("relay started database=%s batch=%s", connection.vendor, self.batch_size)
        notified = False
        try:
            while not stop.is_set():
                try:
                    if connection.vendor == "postgresql":
                        self._listen()
                    self._publish_all(notified=notified)
                    notified = self._wait(stop)
                    if notified:
                        self._gather(stop)
                except (DatabaseError, connection.Database.Error):
                    # Django's errors, and psycopg's own from the listening connection.
                    logger.warning(
                        "relay could not reach the database; trying again", exc_info=True
                    )
                    self._close()
                    stop.wait(RETRY_SECONDS)
        finally:
            self._close()
            logger.info("relay stopped published=%s", self.published)

    def _publish_all(self, *, notified: bool = False) -> None:
        """Publish until the outbox is empty (or the broker refuses).

        Woken by a notification, there is work: the first pass skips the look.
        """
        while notified or tasks_pending_exist():
            notified = False
            self._last_pass_at = time.monotonic()
            self.passes += 1
            count = tasks_publish_pending(limit=self.batch_size)
            self.published += count
            if count:
                logger.debug("relay published count=%s", count)
            if count < self.batch_size:
                return  # drained, or the broker is down: wait for the next wake-up

    def _wait(self, stop: threading.Event) -> bool:
        """Until there may be work; whether a notification said there is."""
        if self._listener is None:
            stop.wait(self.poll_seconds)
            return False
        # Wakes at the first notification (or after the idle pass time); the others that
        # came meanwhile are drained, since the next pass publishes for them all.
        notified = any(
            True for _ in self._listener.notifies(timeout=IDLE_PASS_SECONDS, stop_after=1)
        )
        for _ in self._listener.notifies(timeout=0):
            pass
        return notified

    def _gather(self, stop: threading.Event) -> None:
        """Woken soon after the last pass began: wait out the rest of the gathering time, so
        that the commits made meanwhile are published together, in one pass.

        The notifications of those commits are read now: the coming pass publishes for them,
        and left queued they would wake an empty pass after it.
        """
        remaining = self._last_pass_at + self.gather_seconds - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(remaining)
        for _ in self._listener.notifies(timeout=0):
            pass

    def _listen(self) -> None:
        if self._listener is not None:
            return
        # Its own connection, used for nothing else: notifications that arrive while the
        # relay publishes stay queued on it until the next wait reads them.
        listener = connection.get_new_connection(connection.get_connection_params())
        listener.autocommit = True
        listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
        self._listener = listener

    def _close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except connection.Database.Error:
                pass
            self._listener = None
        connection.close()
