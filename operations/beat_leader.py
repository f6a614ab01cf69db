"""One beat sends the schedules, however many run: a lease in the database.

Two beats started by mistake (a second host, a deploy that overlaps) would send every
periodic task twice. So beat's scheduler sends only while it holds the lease: a row of
``MaintenanceLock`` (job ``beat``) that names it and when its hold ends, taken and renewed
by one conditional UPDATE, with the database's clock (hosts' clocks may differ). The
others wait and try again each second; when the holder stops (its lease is released) or
dies (its lease runs out, ``OPS_BEAT_LEASE_SECONDS``), one of them takes over.

The lease is renewed once a third of it has passed, so a holder that cannot reach the
database stops sending well before another may start.
"""

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import Q
from django.db.models.functions import Now
from django_celery_beat.schedulers import DatabaseScheduler

from operations.models import MaintenanceLock

logger = logging.getLogger(__name__)

LEASE_JOB = "beat"
# How soon a beat that does not hold the lease asks again.
WAIT_SECONDS = 1.0


def beat_lease_take(*, holder: str, seconds: float) -> bool:
    """Take or renew the lease for ``holder``: True if it holds it now."""
    MaintenanceLock.objects.get_or_create(job=LEASE_JOB)
    lease = timedelta(seconds=seconds)
    free_or_ours = Q(holder=holder) | Q(held_until__isnull=True) | Q(held_until__lt=Now())
    return bool(
        MaintenanceLock.objects.filter(free_or_ours, job=LEASE_JOB).update(
            holder=holder, held_until=Now() + lease
        )
    )


def beat_lease_release(*, holder: str) -> None:
    MaintenanceLock.objects.filter(job=LEASE_JOB, holder=holder).update(held_until=None)


class LeaderScheduler(DatabaseScheduler):
    """django-celery-beat's database scheduler, sending only while it holds the lease."""

    def __init__(self, *args, **kwargs):
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._held_until = 0.0  # monotonic: renew before this
        self._leading = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if not self._hold_lease():
            return WAIT_SECONDS
        return super().tick(*args, **kwargs)

    def close(self):
        if self._leading:
            try:
                beat_lease_release(holder=self.holder)
            except DatabaseError:
                logger.warning("beat could not release its lease; it runs out", exc_info=True)
        super().close()

    def _hold_lease(self) -> bool:
        seconds = settings.OPS_BEAT_LEASE_SECONDS
        if self._leading and time.monotonic() < self._held_until:
            return True
        started = time.monotonic()
        try:
            close_old_connections()  # a connection the database dropped is replaced
            held = beat_lease_take(holder=self.holder, seconds=seconds)
        except DatabaseError:
            logger.warning("beat could not reach the database for its lease", exc_info=True)
            held = False
        if held != self._leading:
            if held:
                logger.info("beat holds the lease and sends the schedules holder=%s", self.holder)
                # Read the schedule again, with the last runs the previous holder saved:
                # this beat's copy is as old as its start, and would send runs again.
                self._initial_read = True
                self._heap = None
            else:
                logger.warning("beat lost the lease and stops sending holder=%s", self.holder)
        elif not held and not getattr(self, "_said_waiting", False):
            logger.info("beat waits: another beat holds the lease (holder=%s)", self.holder)
            self._said_waiting = True
        self._leading = held
        # Renewed once a third of it has passed, counted from before the UPDATE was sent.
        self._held_until = started + seconds / 3 if held else 0.0
        return held
