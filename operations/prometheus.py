"""Prometheus metrics: task metrics read from the database at scrape time, and HTTP request
metrics counted by a middleware.

Task metrics (``TaskRecordCollector``) are never counted in a process. Web and worker
processes come and go, and each would count only its own share; the records are the
truth, so every scrape reads them, whichever gunicorn worker answers it:

- ``jobservice_tasks_finished_total{task_type, status}`` (counter): records finished, by
  final status. Those that finished more than a few minutes ago come from a tally
  (operations/tallies.py) that retention does not lower: the counter never goes down.
- ``jobservice_task_duration_seconds{task_type}`` (histogram): how long succeeded
  records ran (their last attempt), from the same tally.
- ``jobservice_task_start_latency_seconds{task_type}`` (histogram): how long finished
  records that started once waited from submission to start, from the same tally.
- ``jobservice_tasks_running`` (gauge): records running now.
- ``jobservice_tasks_queued{queue}`` and ``jobservice_tasks_queued_oldest_timestamp_seconds
  {queue}`` (gauges): queued records, and when the oldest was submitted (no sample while
  none is queued). One query over the queued records.
- ``jobservice_queue_depth{queue}`` (gauge): messages waiting in each of TASKS_QUEUES,
  asked at each scrape.
- ``jobservice_workers`` and ``jobservice_queue_workers{queue}`` (gauges): workers
  consuming any of TASKS_QUEUES, and each, that answered a ping, from the last census of
  broker_census.broker_census that any process took (the health snapshots take one every
  minute; it is kept 10 x OPS_WORKER_CENSUS_SECONDS). A scrape takes one only when there
  is none, so it rarely waits out the ping.
  When the broker cannot be asked, the queue and worker samples are left out rather
  than reported as 0; alert on ``absent(jobservice_workers)`` too.
- ``jobservice_dead_letters_open`` (gauge): dead letters neither requeued nor discarded.
- ``jobservice_beat_heartbeat_timestamp_seconds`` (gauge): when beat last sent a periodic
  task, as health's beat check reads it (selectors.beat_heartbeat); 0 when none is enabled.
  Timestamps rather than ages, as Prometheus advises: ``time() - x`` is the age.

HTTP metrics (``HttpMetricsMiddleware``) are per process:
``jobservice_http_requests_total{method, route, status}`` and
``jobservice_http_request_duration_seconds{method, route}`` (until the response object
is returned; a streamed body is not timed). ``route`` is the URL name, so its values are
bounded. With several gunicorn workers, run them in prometheus_client's multiprocess
mode, so that every scrape adds up all workers' counts: give each web instance an empty
folder of its own, wiped at each start, in ``PROMETHEUS_MULTIPROC_DIR``::

    rm -rf /run/jobservice/prometheus && mkdir -p /run/jobservice/prometheus
    export PROMETHEUS_MULTIPROC_DIR=/run/jobservice/prometheus
    gunicorn config.asgi -k uvicorn_worker.UvicornWorker --workers 4

The variable must be set before gunicorn starts: prometheus_client decides where values
live when it is imported. Only counters and histograms are kept that way, so gunicorn
needs no ``child_exit`` hook. Without the variable, the process's default registry is
used (fine for one process; it adds Python's process and GC metrics).
"""

import os
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from operations import metrics, selectors, tallies
from operations.broker_census import BrokerFacts, broker_census, broker_census_cache_key
from operations.tallies import START_LATENCY_BUCKETS, TASK_DURATION_BUCKETS
from tasks_app.broker import broker_queue_sizes
from tasks_app.models import TaskStatus

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "jobservice_http_requests",
    "HTTP requests answered, by method, URL name and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "jobservice_http_request_duration_seconds",
    "Time from a request's arrival to its response, by method and URL name.",
    ["method", "route"],
)


class TaskRecordCollector:
    """Task, queue and worker metrics, read from the database and broker at each collect."""

    def collect(self):
        yield from _finished_families()
        yield GaugeMetricFamily(
            "jobservice_tasks_running", "Task records running now.", metrics.tasks_running_count()
        )
        yield from _queue_families()
        yield from _outbox_families()
        yield GaugeMetricFamily(
            "jobservice_dead_letters_open",
            "Dead letters waiting for staff to requeue or discard them.",
            selectors.dead_letters_open_count(),
        )
        since = selectors.beat_heartbeat().since
        yield GaugeMetricFamily(
            "jobservice_beat_heartbeat_timestamp_seconds",
            "When beat last sent a periodic task (Unix time); before its first, when the "
            "periodic tasks were installed; 0 when none is enabled.",
            since.timestamp() if since else 0,
        )


def _finished_families():
    """The finished counters and the two histograms of the tally (tallies.py)."""
    tallies.tally_advance_if_due()
    totals = tallies.finished_totals()
    finished = CounterMetricFamily(
        "jobservice_tasks_finished",
        "Task records finished, by final status (records deleted by retention included).",
        labels=["task_type", "status"],
    )
    for total in totals:
        finished.add_metric([total.task_type, total.status], total.count)
    yield finished

    durations = HistogramMetricFamily(
        "jobservice_task_duration_seconds",
        "How long succeeded task records ran, in seconds (their last attempt).",
        labels=["task_type"],
    )
    for total in totals:
        if total.status == TaskStatus.SUCCEEDED and total.timed_count:
            durations.add_metric(
                [total.task_type],
                _buckets(TASK_DURATION_BUCKETS, total.duration_buckets, total.timed_count),
                sum_value=total.duration_seconds_sum,
            )
    yield durations

    latencies = HistogramMetricFamily(
        "jobservice_task_start_latency_seconds",
        "Seconds from submission to start of finished task records that started once.",
        labels=["task_type"],
    )
    # Of every final status: a task that failed or was cancelled after its start waited too.
    for total in tallies.totals_by_task_type(totals):
        if total.started_count:
            latencies.add_metric(
                [total.task_type],
                _buckets(START_LATENCY_BUCKETS, total.start_latency_buckets, total.started_count),
                sum_value=total.start_latency_seconds_sum,
            )
    yield latencies


def _buckets(bounds: list[float], counts: dict[str, int], total: int) -> list[tuple[str, int]]:
    """A histogram's cumulative buckets from a tally's {bound: count}, with +Inf."""
    buckets = [(floatToGoString(bound), counts.get(str(bound), 0)) for bound in bounds]
    return [*buckets, ("+Inf", total)]


def _outbox_families():
    """Submitted tasks not yet sent to the broker (the relay's outbox), as health's relay
    check reads them."""
    outbox = metrics.tasks_outbox_backlog()
    yield GaugeMetricFamily(
        "jobservice_outbox_pending",
        "Submitted tasks whose broker message is not sent yet (the relay's outbox).",
        outbox.count,
    )
    oldest = GaugeMetricFamily(
        "jobservice_outbox_oldest_timestamp_seconds",
        "When the longest-waiting task of the outbox was submitted (Unix time).",
    )
    if outbox.oldest_created_at is not None:
        oldest.add_metric([], outbox.oldest_created_at.timestamp())
    yield oldest


def _queue_families():
    """Per queue of TASKS_QUEUES: queued records and the oldest one's age (the database),
    messages waiting and workers (the broker); the workers in all."""
    queues = list(settings.TASKS_QUEUES)
    queued = GaugeMetricFamily(
        "jobservice_tasks_queued",
        "Task records queued (submitted, not started yet), by queue.",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "jobservice_tasks_queued_oldest_timestamp_seconds",
        "When the longest-queued task record of the queue was submitted (Unix time).",
        labels=["queue"],
    )
    for queue, waiting in metrics.tasks_queued_by_queue(queues=queues).items():
        queued.add_metric([queue], waiting.count)
        if waiting.oldest_created_at is not None:
            oldest.add_metric([queue], waiting.oldest_created_at.timestamp())
    yield queued
    yield oldest

    census = _census_without_waiting(queues=queues)
    # Asked now (one connection, a length per queue), unless the census found no broker.
    sizes = census.queue_sizes if census.error else broker_queue_sizes(queues=queues)
    depths = GaugeMetricFamily(
        "jobservice_queue_depth", "Messages waiting in the broker queue.", labels=["queue"]
    )
    for queue, depth in sizes.items():
        if depth is not None:
            depths.add_metric([queue], depth)
    yield depths

    if census.workers is not None:
        by_queue = GaugeMetricFamily(
            "jobservice_queue_workers",
            "Celery workers consuming the queue that answered a ping.",
            labels=["queue"],
        )
        for queue, names in census.workers.items():
            by_queue.add_metric([queue], len(names))
        yield by_queue
        workers = {name for names in census.workers.values() for name in names}
        yield GaugeMetricFamily(
            "jobservice_workers", "Celery workers that answered a ping.", len(workers)
        )


def _census_without_waiting(*, queues: list[str]) -> BrokerFacts:
    """The census another process shared (health's snapshots take one every minute), else
    a new one. broker_census takes a new one once per OPS_WORKER_CENSUS_SECONDS, waiting
    out the workers' ping (OPS_WORKER_PING_TIMEOUT, 1 s): with scrapes further apart than
    that, every scrape waited for it."""
    if settings.OPS_WORKER_CENSUS_SECONDS > 0:
        try:
            shared = cache.get(broker_census_cache_key(queues=queues))
        # Cache backends have no common error class (redis, database, memcached errors).
        except Exception:
            shared = None
        if shared is not None:
            return shared
    return broker_census(queues=queues)


# Collectors of the apps above this one (webhooks), made afresh for each scrape.
_app_collectors: list[Callable[[], object]] = []


def collector_register(make_collector: Callable[[], object]) -> None:
    """Add an app's collector to every scrape; called from its ``AppConfig.ready()``."""
    if make_collector not in _app_collectors:
        _app_collectors.append(make_collector)


def metrics_exposition(*, accept: str) -> tuple[bytes, str]:
    """The body of a scrape and its content type, in the format ``accept`` asks for."""
    # A registry per scrape: the collector's values are read now, not kept between scrapes.
    registry = CollectorRegistry()
    registry.register(TaskRecordCollector())
    for make_collector in _app_collectors:
        registry.register(make_collector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every web process's HTTP metrics, summed
    else:
        registry.register(REGISTRY)  # this process's HTTP metrics, plus Python's own
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class HttpMetricsMiddleware:
    """Counts and times each request, by method, URL name and status code."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        # Labels come from a fixed set, never from the raw path: ids would make a time
        # series per task.
        method = request.method if request.method in HTTP_METHODS else "other"
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route) if match else "unresolved"
        HTTP_REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(elapsed)
        return response
