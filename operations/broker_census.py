"""What the broker and the workers say, asked at most once per OPS_WORKER_CENSUS_SECONDS.

A census is whether the broker answers, which workers answer a ping on which queue, and
how many messages wait in each queue. Health, its snapshots and the Prometheus scrape all
read it; asking the workers waits out OPS_WORKER_PING_TIMEOUT, so one process takes the
census and shares it with the others through Django's cache.
"""

import logging
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core.cache import cache

from tasks_app.broker import (
    BROKER_TIMEOUT,
    BROKER_UNREACHABLE,
    broker_connection,
    broker_connection_error,
    broker_queue_sizes,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerFacts:
    """What the broker told us; None where it could not be asked."""

    error: str | None
    workers: dict[str, list[str]] | None
    queue_sizes: dict[str, int | None]


def workers_by_queue(*, queues: list[str]) -> dict[str, list[str]] | None:
    """The workers that answered a ping, per queue in ``queues``; None if they could not be asked.

    ``active_queues`` is the ping: a worker that answers it is alive and says what it consumes.
    """
    timeout = settings.OPS_WORKER_PING_TIMEOUT
    try:
        # The socket waits longer than the ping, or it would cut off the replies.
        with broker_connection(timeout=timeout + BROKER_TIMEOUT) as broker:
            inspect = current_app.control.inspect(timeout=timeout, connection=broker)
            replies = inspect.active_queues() or {}  # None when nobody answered
    except BROKER_UNREACHABLE as error:
        logger.warning("workers not asked, broker unreachable: %s", error)
        return None
    answered: dict[str, list[str]] = {queue: [] for queue in queues}
    for worker, worker_queues in replies.items():
        for queue in worker_queues or []:
            if queue.get("name") in answered:
                answered[queue["name"]].append(worker)
    return {queue: sorted(workers) for queue, workers in answered.items()}


def broker_facts_gather(*, queues: list[str]) -> BrokerFacts:
    error = broker_connection_error()
    if error is not None:
        return BrokerFacts(error=error, workers=None, queue_sizes=dict.fromkeys(queues))
    return BrokerFacts(
        error=None,
        workers=workers_by_queue(queues=queues),
        queue_sizes=broker_queue_sizes(queues=queues),
    )


def broker_census_cache_key(*, queues: list[str]) -> str:
    return "operations:broker-census:" + ",".join(queues)


def broker_census(*, queues: list[str]) -> BrokerFacts:
    """The broker facts, gathered at most once per OPS_WORKER_CENSUS_SECONDS across processes.

    Asking the workers waits out OPS_WORKER_PING_TIMEOUT: every staff page, scrape and
    snapshot doing it would queue requests behind one another. The process that finds no
    census taken within the interval takes one and shares it through the cache; the
    others read that one. With an interval of 0, or a cache that fails, it is asked live.
    """
    interval = settings.OPS_WORKER_CENSUS_SECONDS
    if interval <= 0:
        return broker_facts_gather(queues=queues)
    key = broker_census_cache_key(queues=queues)
    try:
        # add() is atomic in every shared cache: one process per interval wins the turn.
        our_turn = cache.add(key + ":taken", True, timeout=interval)
        shared = None if our_turn else cache.get(key)
    # Cache backends have no common error class (redis, database, memcached errors).
    except Exception as error:
        logger.warning("broker census not shared, cache unavailable: %s", error)
        return broker_facts_gather(queues=queues)
    if shared is not None:
        return shared
    # Our turn, or another process's census is still under way and none is stored yet.
    facts = broker_facts_gather(queues=queues)
    try:
        # Kept past the interval, so that readers have one while the next is taken.
        cache.set(key, facts, timeout=interval * 10)
    except Exception as error:
        logger.warning("broker census not shared, cache unavailable: %s", error)
    return facts
