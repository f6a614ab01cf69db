import logging
import time

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connections, router, transaction
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import ScopedRateThrottle

logger = logging.getLogger(__name__)


class SubmitRateThrottle(ScopedRateThrottle):
    """Limits how fast a user submits work (the view's ``throttle_scope``); reads are free.

    Counted in the shared cache (settings.CACHES), so that the limit holds across every web
    process. DRF's own throttle reads a list of request times, appends and writes it back,
    so two processes at once both pass; here each window is one counter, added and
    incremented (atomic in Redis; for the database cache inside a transaction that holds
    the window's lock: SQLite's IMMEDIATE transactions take it up front, PostgreSQL takes an
    advisory lock on the key, as Django's cache reads, then writes). Windows are fixed: at
    most the rate's count per period, counted from the period's boundary.

    A cache that cannot be reached lets the submit through: the outbox accepts work while
    Redis is down, and an unthrottled moment is better than refusing everyone.
    """

    cache = cache

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return self._count_in_window(self.get_cache_key(request, view)) <= self.num_requests
        except Exception:
            logger.warning("submit throttle not applied: the cache is unreachable", exc_info=True)
            return True

    def _count_in_window(self, key: str) -> int:
        now = time.time()
        window = int(now // self.duration)
        self._seconds_left = (window + 1) * self.duration - now
        window_key = f"{key}:{window}"
        # The backend itself: ``cache`` is a proxy that isinstance cannot see through.
        backend = caches[DEFAULT_CACHE_ALIAS]
        if isinstance(backend, RedisCache):
            return self._count_in_redis(backend, window_key)
        database = router.db_for_write(backend.cache_model_class)
        with transaction.atomic(using=database):
            if connections[database].vendor == "postgresql":
                # Django's cache reads, then writes. The lock, released at commit after the
                # new count is written, makes a second process read that count (READ
                # COMMITTED takes a new snapshot per statement), not the one before it.
                with connections[database].cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [window_key]
                    )
            backend.add(window_key, 0, timeout=self.duration + 1)
            return backend.incr(window_key)

    def _count_in_redis(self, backend: RedisCache, window_key: str) -> int:
        """One round trip, where Django's add and incr take three (SET NX, EXISTS, INCR):
        a throttle runs on every submit. Reaches for the cache's Redis client, which
        Django's RedisCache keeps in ``_cache``; the key is the one Django would use."""
        key = backend.make_and_validate_key(window_key)
        pipeline = backend._cache.get_client(key, write=True).pipeline()
        pipeline.set(key, 0, nx=True, ex=int(self.duration) + 1)
        pipeline.incr(key)
        return pipeline.execute()[1]

    def wait(self) -> float | None:
        """Seconds until the window ends (DRF's Retry-After header)."""
        return getattr(self, "_seconds_left", None)
