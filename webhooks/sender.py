"""The ``webhooks`` process: makes the events of finished tasks and sends their deliveries.

Each turn it turns announced finishes into events and deliveries (``events.py``), claims
the due deliveries and sends them on a pool of threads, and records each attempt as it
ends. The threads only talk HTTP; every database write is made on the main thread. So a
slow receiver holds one sending thread, never a worker's slot or a web request.

Killing it loses nothing: an announced finish stays marked until its events commit, and a
claimed delivery whose attempt was never recorded is due again after its lease, and is
sent again with the same ``webhook-id``.
"""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from webhooks.events import events_make_for_finished
from webhooks.models import WebhookDelivery
from webhooks.sending import SendPolicy, send
from webhooks.services import (
    deliveries_claim_due,
    delivery_give_up,
    delivery_record_attempt,
    events_prune,
)
from webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# Old events (WEBHOOKS_RETENTION_DAYS) are deleted this often, by the sender itself.
PRUNE_EVERY_SECONDS = 3600.0


class Sender:
    """Run with ``run(stop)``; it returns once ``stop`` is set and its attempts ended."""

    def __init__(self, *, threads: int | None = None, poll_seconds: float | None = None):
        self.threads = threads or settings.WEBHOOKS_SENDER_THREADS
        self.poll_seconds = poll_seconds or settings.WEBHOOKS_POLL_SECONDS
        self.policy = SendPolicy(
            connect_timeout=settings.WEBHOOKS_CONNECT_TIMEOUT_SECONDS,
            total_timeout=settings.WEBHOOKS_TIMEOUT_SECONDS,
            allowlist=tuple(settings.WEBHOOKS_URL_ALLOWLIST),
        )
        self.sent = 0
        self._pruned_at = -float("inf")
        self._in_flight: dict[Future, tuple[WebhookDelivery, object]] = {}

    def run(self, stop: threading.Event) -> None:
        logger.info("webhooks sender started threads=%s", self.threads)
        with ThreadPoolExecutor(self.threads, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                try:
                    busy = self._turn(pool)
                except (DatabaseError, connection.Database.Error):
                    logger.warning(
                        "webhooks could not reach the database; trying again", exc_info=True
                    )
                    connection.close()
                    stop.wait(RETRY_SECONDS)
                    continue
                except Exception:
                    # Never the end of the process (honcho would stop every other one with
                    # it): the turn is tried again, its error logged.
                    logger.exception("webhooks turn failed; trying again")
                    stop.wait(RETRY_SECONDS)
                    continue
                if not busy:
                    stop.wait(self.poll_seconds)
            # Attempts in flight end (each within its time limit) and are recorded.
            self._record(wait(self._in_flight).done if self._in_flight else set())
        connection.close()
        logger.info("webhooks sender stopped sent=%s", self.sent)

    def _turn(self, pool: ThreadPoolExecutor) -> bool:
        """One round; whether there was anything to do (then the next comes at once)."""
        self._prune_if_due()
        made = events_make_for_finished()
        free = self.threads * 2 - len(self._in_flight)
        claimed = deliveries_claim_due(limit=free) if free > 0 else []
        for claim in claimed:
            delivery = claim.delivery
            if not claim.secrets:
                delivery_give_up(delivery=delivery, reason="Its endpoint is disabled.")
                continue
            attempted_at = timezone.now()
            headers = signed_headers(
                msg_id=delivery.event_id,
                timestamp=attempted_at,
                body=delivery.event.payload,
                secrets=claim.secrets,
            )
            future = pool.submit(
                send, delivery.url, body=delivery.event.payload, headers=headers, policy=self.policy
            )
            self._in_flight[future] = (delivery, attempted_at)
        if self._in_flight:
            timeout = 0 if (made or claimed) else self.poll_seconds
            done, _ = wait(self._in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            self._record(done)
            return bool(made or claimed or done)
        return bool(made or claimed)

    def _prune_if_due(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        cutoff = timezone.now() - timedelta(days=settings.WEBHOOKS_RETENTION_DAYS)
        if deleted := events_prune(older_than=cutoff):
            logger.info("webhook events pruned count=%s older_than=%s", deleted, cutoff)

    def _record(self, done) -> None:
        for future in done:
            delivery, attempted_at = self._in_flight.pop(future)
            outcome = future.result()
            delivery_record_attempt(delivery=delivery, outcome=outcome, attempted_at=attempted_at)
            self.sent += 1
            logger.info(
                "webhook attempt delivery=%s event=%s url=%s status=%s ms=%s %s",
                delivery.pk,
                delivery.event_id,
                delivery.url,
                outcome.status_code,
                outcome.duration_ms,
                outcome.error,
            )
