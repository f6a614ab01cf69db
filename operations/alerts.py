"""Health snapshots, which beat records every minute, and the alert a new critical sends.

Staff hear of a transition to critical (the previous snapshot was not critical) by mail,
and on the webhook if one is set, at most once per OPS_ALERT_THROTTLE_SECONDS: an outage
that flaps or lasts for hours sends one message, not one a minute.
"""

import logging
import smtplib
from datetime import datetime, timedelta

import urllib3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from operations import health, history
from operations.broker_census import broker_census
from operations.models import HealthSnapshot, HealthStatus

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = urllib3.Timeout(total=5.0)


def health_snapshot_record(*, now: datetime | None = None) -> HealthSnapshot:
    """Evaluate health, store it with the figures since the last snapshot, forget snapshots
    past retention, and alert on a new critical."""
    now = now or timezone.now()
    facts = broker_census(queues=list(settings.TASKS_QUEUES))
    report = health.health_evaluate(now=now, facts=facts)
    figures = history.figures_since_last(now=now, facts=facts)
    snapshot = _snapshot_store(report=report, figures=figures)
    pruned = health_snapshots_prune(now=report.checked_at)
    logger.info(
        "health snapshot status=%s reasons=%s pruned=%s",
        snapshot.status,
        len(snapshot.reasons),
        pruned,
    )
    # Sent after the commit that claimed it (notified_at), outside any transaction.
    if snapshot.notified_at is not None:
        health_alert_send(snapshot=snapshot)
    return snapshot


@transaction.atomic
def _snapshot_store(*, report: health.HealthReport, figures: dict) -> HealthSnapshot:
    now = report.checked_at
    previous = HealthSnapshot.objects.order_by("-created_at").first()
    newly_critical = report.status == HealthStatus.CRITICAL and (
        previous is None or previous.status != HealthStatus.CRITICAL
    )
    throttled = (
        newly_critical
        and HealthSnapshot.objects.filter(
            notified_at__gte=now - timedelta(seconds=settings.OPS_ALERT_THROTTLE_SECONDS)
        ).exists()
    )
    if throttled:
        logger.info("health critical again, alert throttled")
    return HealthSnapshot.objects.create(
        created_at=now,
        status=report.status,
        reasons=report.reasons_as_json(),
        notified_at=now if newly_critical and not throttled else None,
        figures=figures,
    )


def health_snapshots_prune(*, now: datetime | None = None) -> int:
    """Delete snapshots older than OPS_HEALTH_SNAPSHOT_RETENTION_DAYS; return how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OPS_HEALTH_SNAPSHOT_RETENTION_DAYS)
    deleted, _ = HealthSnapshot.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def health_alert_send(*, snapshot: HealthSnapshot) -> None:
    """Mail every active staff user with an address, and POST to OPS_ALERT_WEBHOOK_URL if set.

    A failure is logged, never raised: the snapshot is stored either way.
    """
    subject = f"{settings.EMAIL_SUBJECT_PREFIX}Job service health is {snapshot.status}"
    lines = [f"- {reason['message']}" for reason in snapshot.reasons]
    text = f"Health at {snapshot.created_at:%Y-%m-%d %H:%M:%S %Z}: {snapshot.status}.\n"
    text += "\n".join(lines)
    recipients = list(
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if recipients:
        try:
            send_mail(subject, text, None, recipients)
        except (smtplib.SMTPException, OSError):
            logger.exception("health alert mail to %s staff failed", len(recipients))
    if settings.OPS_ALERT_WEBHOOK_URL:
        _webhook_post(
            url=settings.OPS_ALERT_WEBHOOK_URL,
            payload={
                # "text" is what Slack- and Mattermost-style incoming webhooks show.
                "text": f"{subject}\n{text}",
                "status": snapshot.status,
                "checked_at": snapshot.created_at.isoformat(),
                "reasons": snapshot.reasons,
            },
        )


def _webhook_post(*, url: str, payload: dict) -> None:
    try:
        response = urllib3.request(
            "POST", url, json=payload, timeout=WEBHOOK_TIMEOUT, retries=False
        )
    except urllib3.exceptions.HTTPError as error:
        logger.warning("health alert webhook failed: %s", error)
        return
    if response.status >= 400:
        logger.warning("health alert webhook answered %s", response.status)
