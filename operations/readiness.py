"""Readiness for load balancers: can this web process serve requests?

Only the database is asked. Workers that are down or a beat that has not ticked yet are
the system's health (``health.health_evaluate``), not a reason to take every web server
out of rotation: the outbox accepts work meanwhile.
"""

import logging
from dataclasses import dataclass

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    ok: bool
    detail: str


def readiness_checks() -> list[ReadinessCheck]:
    """Whether this web process can serve: the database answers. Nothing else is asked.

    No broker, no worker ping: a probe that a load balancer sends every few seconds to
    every web server must cost one query, and must not fail them all when workers are
    down (their absence is critical in ``health_evaluate``).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        # The reason goes to the log: this answer is for anonymous callers.
        logger.warning("not ready, the database did not answer: %s", error)
        detail = f"the database did not answer ({type(error).__name__})"
        return [ReadinessCheck("database", False, detail)]
    return [ReadinessCheck("database", True, "query answered")]
