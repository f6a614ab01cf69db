"""The submit throttle counts in the shared cache, answers 429 past the rate, and fails open."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test import override_settings

from api.throttling import SubmitRateThrottle
from tasks_app.models import TaskRecord

TASKS = "/api/v1/tasks/"
SUBMISSION = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}


@pytest.fixture
def three_per_hour(monkeypatch):
    monkeypatch.setattr(SubmitRateThrottle, "THROTTLE_RATES", {"task_submit": "3/hour"})
    cache.clear()
    yield
    cache.clear()


def test_past_the_rate_submits_get_429_with_retry_after_and_reads_stay_free(api, three_per_hour):
    statuses = [api.post(TASKS, SUBMISSION, format="json").status_code for _ in range(5)]

    assert statuses == [202, 202, 202, 429, 429]
    refused = api.post(TASKS, SUBMISSION, format="json")
    assert refused.json()["detail"].startswith("Request was throttled")
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert api.get(TASKS).status_code == 200
    assert TaskRecord.objects.count() == 3


def test_each_user_has_a_limit_of_their_own(api, other_api, three_per_hour):
    for _ in range(3):
        api.post(TASKS, SUBMISSION, format="json")

    assert api.post(TASKS, SUBMISSION, format="json").status_code == 429
    assert other_api.post(TASKS, SUBMISSION, format="json").status_code == 202


UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


def test_an_unreachable_cache_lets_submits_through(api, three_per_hour, caplog):
    with override_settings(CACHES=UNREACHABLE_REDIS):
        statuses = [api.post(TASKS, SUBMISSION, format="json").status_code for _ in range(4)]

    assert statuses == [202] * 4
    assert "submit throttle not applied" in caplog.text


@pytest.mark.skipif(
    not isinstance(caches["default"], RedisCache), reason="the counter's expiry in Redis"
)
def test_on_redis_the_windows_counter_expires_after_its_window(api, three_per_hour):
    api.post(TASKS, SUBMISSION, format="json")
    api.post(TASKS, SUBMISSION, format="json")

    redis = caches["default"]._cache.get_client()
    (counter,) = redis.keys(f"{caches['default'].make_key('throttle_task_submit_*')}")
    assert int(redis.get(counter)) == 2
    assert 0 < redis.ttl(counter) <= 3600 + 1


@pytest.mark.django_db(transaction=True)
def test_submits_counted_at_the_same_moment_each_get_a_count_of_their_own(three_per_hour):
    """Found by CI on PostgreSQL + RabbitMQ, where the cache is the database: two web
    processes read the same count and both wrote the next, so six submits passed a limit of
    five. Every count from 1 to the number of submits must be handed out exactly once."""
    throttle = SubmitRateThrottle()
    throttle.duration = 3600
    submitters, rounds = 6, 5
    start = threading.Barrier(submitters)

    def count_submits() -> list[int]:
        start.wait()
        try:
            return [throttle._count_in_window("throttle_race_test") for _ in range(rounds)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=submitters) as pool:
        batches = list(pool.map(lambda _: count_submits(), range(submitters)))

    counts = [count for batch in batches for count in batch]
    assert sorted(counts) == list(range(1, submitters * rounds + 1))
