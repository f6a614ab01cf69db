"""Reads that health (health.py) and the Prometheus scrape (prometheus.py) share, so that
both judge beat and the dead letters from the same figures. Each is one small query."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Min
from django_celery_beat.models import PeriodicTask

from tasks_app.models import DeadLetter


@dataclass(frozen=True)
class BeatHeartbeat:
    """When beat last sent an enabled periodic task, and when the enabled ones were
    installed (or last edited in the admin); None where there is none."""

    last_sent_at: datetime | None
    installed_at: datetime | None

    @property
    def since(self) -> datetime | None:
        """Where beat's staleness counts from: its last send or, before its first one, the
        installation (a fresh deployment's beat sends within a minute). None when no
        periodic task is enabled: maintenance does not run at all."""
        if self.installed_at is None:
            return None
        return self.last_sent_at or self.installed_at


def beat_heartbeat() -> BeatHeartbeat:
    """Beat's heartbeat: the newest ``last_run_at`` of the enabled periodic tasks (beat
    saves each send at once, CELERY_BEAT_SYNC_EVERY = 1)."""
    seen = PeriodicTask.objects.filter(enabled=True).aggregate(
        last_sent=Max("last_run_at"), installed=Min("date_changed")
    )
    return BeatHeartbeat(last_sent_at=seen["last_sent"], installed_at=seen["installed"])


def dead_letters_open_count() -> int:
    """Dead letters waiting for staff to requeue or discard them (an index range)."""
    return DeadLetter.objects.filter(resolution=DeadLetter.Resolution.OPEN).count()
