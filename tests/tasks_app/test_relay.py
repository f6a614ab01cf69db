"""The relay publishes each committed submit once, soon, and nothing that rolled back."""

import threading

import pytest
import redis
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError as BrokerError

from tasks_app import dispatch, services
from tasks_app.broker import broker_queue_size
from tasks_app.errors import ActiveTaskLimitReached
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.relay import Relay
from tasks_app.task_types import get_task_type
from tests.conftest import broker_queue_discard
from tests.factories import TaskRecordFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class RunningRelay:
    """A relay in a thread of this process (its own database connections), stopped on exit."""

    def __init__(self, **options):
        self.relay = Relay(**options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.relay.run(self.stop)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self.relay

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the relay did not stop"


def submit(owner):
    return services.task_submit(
        owner=owner, task_type=get_task_type("diagnostics.sleep"), input_data={"seconds": 0}
    )


def test_a_committed_submit_is_published_by_the_relay(user, unread_queue):
    with RunningRelay():
        record = submit(user)
        wait_until(
            lambda: TaskRecord.objects.get(pk=record.pk).dispatched_at is not None,
            timeout=10,
            what="the record to be published",
        )

    assert broker_queue_size(unread_queue) == 1
    assert not TaskRecord.objects.outbox().exists()


def test_a_rolled_back_submit_is_never_published(user, unread_queue):
    with RunningRelay():
        with pytest.raises(RuntimeError), transaction.atomic():
            submit(user)
            raise RuntimeError("the request failed after the insert")
        published = submit(user)  # a later commit wakes the relay; the first left nothing
        wait_until(
            lambda: TaskRecord.objects.get(pk=published.pk).dispatched_at is not None,
            timeout=10,
            what="the record to be published",
        )

    assert list(TaskRecord.objects.values_list("pk", flat=True)) == [published.pk]
    assert broker_queue_size(unread_queue) == 1


def test_two_relays_publish_each_commit_once(user, unread_queue):
    TaskRecord.objects.bulk_create(
        TaskRecordFactory.build(owner=user, queue=unread_queue) for _ in range(300)
    )

    with RunningRelay(batch_size=20) as first, RunningRelay(batch_size=20) as second:
        wait_until(
            lambda: not TaskRecord.objects.outbox().exists(), timeout=30, what="an empty outbox"
        )

    assert first.published + second.published == 300
    assert broker_queue_size(unread_queue) == 300


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_commits_soon_after_a_pass_are_gathered_into_the_next_one(user, unread_queue, settings):
    settings.TASKS_MAX_RUNNING_PER_USER = 10

    def published(records) -> bool:
        return not TaskRecord.objects.filter(
            pk__in=[r.pk for r in records], dispatched_at__isnull=True
        ).exists()

    # A window far longer than five submits take, even on a busy machine.
    with RunningRelay(gather_seconds=3) as relay:
        first = submit(user)
        wait_until(lambda: published([first]), timeout=10, what="the first submit's publish")
        passes_before = relay.passes
        following = [submit(user) for _ in range(5)]  # five commits, five NOTIFYs
        wait_until(lambda: published(following), timeout=10, what="the next submits' publish")

        assert relay.passes - passes_before == 1
    assert broker_queue_size(unread_queue) == 6


def test_a_cancelled_task_is_not_published(user, unread_queue):
    record = submit(user)
    services.task_cancel(record=record)

    assert dispatch.tasks_publish_pending(limit=10) == 0
    assert broker_queue_size(unread_queue) == 0


def test_what_the_broker_refused_waits_for_the_next_pass(user, unread_queue, monkeypatch):
    records = [submit(user) for _ in range(3)]
    sends = []
    real_send = dispatch.current_app.send_task

    def send_then_fail(*args, **kwargs):
        if sends:
            raise BrokerError("connection refused")
        sends.append(args)
        return real_send(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(dispatch.current_app, "send_task", send_then_fail)
        # The first went out at once (filesystem broker, RabbitMQ), or was still in the
        # pipeline the failure discarded (Redis): counted published only if it went out.
        first_pass = dispatch.tasks_publish_pending(limit=10)

    assert first_pass in (0, 1)
    assert TaskRecord.objects.outbox().count() == 3 - first_pass  # unmarked, not lost
    assert dispatch.tasks_publish_pending(limit=10) == 3 - first_pass
    assert broker_queue_size(unread_queue) == 3
    assert all(
        record.status == TaskStatus.QUEUED and record.dispatched_at
        for record in TaskRecord.objects.filter(pk__in=[r.pk for r in records])
    )


@pytest.mark.skipif(settings.BROKER_KIND != "redis", reason="Redis pipelines the publishes")
def test_a_pipeline_that_failed_counts_nothing_published_and_loses_nothing(
    user, unread_queue, monkeypatch
):
    records = [submit(user) for _ in range(3)]

    def refuse(pipeline, *args, **kwargs):
        raise redis.exceptions.ConnectionError("Connection reset by peer")

    with monkeypatch.context() as patched:
        patched.setattr(redis.client.Pipeline, "execute", refuse)
        assert dispatch.tasks_publish_pending(limit=10) == 0

    assert TaskRecord.objects.outbox().count() == 3
    assert broker_queue_size(unread_queue) == 0
    assert dispatch.tasks_publish_pending(limit=10) == 3
    assert broker_queue_size(unread_queue) == 3
    assert not TaskRecord.objects.filter(
        pk__in=[r.pk for r in records], dispatched_at__isnull=True
    ).exists()


def test_a_pass_publishes_up_to_its_limit_and_the_next_pass_the_rest(user, unread_queue):
    TaskRecord.objects.bulk_create(
        TaskRecordFactory.build(owner=user, queue=unread_queue) for _ in range(120)
    )

    assert dispatch.tasks_publish_pending(limit=100) == 100
    assert dispatch.tasks_publish_pending(limit=100) == 20
    assert broker_queue_size(unread_queue) == 120
    assert not TaskRecord.objects.outbox().exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_a_queued_submit_wakes_the_relay_at_commit_a_waiting_or_refused_one_does_not(
    user, unread_queue, settings
):
    settings.TASKS_MAX_RUNNING_PER_USER = 1
    settings.TASKS_MAX_ACTIVE_PER_USER = 2
    listener = connection.get_new_connection(connection.get_connection_params())
    listener.autocommit = True
    listener.execute(f"LISTEN {dispatch.OUTBOX_CHANNEL}")

    def wakes() -> int:
        return len(list(listener.notifies(timeout=0.5)))

    try:
        with transaction.atomic():
            queued = submit(user)
            assert wakes() == 0  # not before the commit
        assert queued.status == TaskStatus.QUEUED and wakes() == 1
        assert submit(user).status == TaskStatus.WAITING and wakes() == 0
        with pytest.raises(ActiveTaskLimitReached):
            submit(user)
        assert wakes() == 0
    finally:
        listener.close()


def test_a_pass_marks_what_it_published_without_waiting_for_the_disk(user, unread_queue):
    # The mark may be lost to a database crash (the rows are published again, and the claim
    # runs each task once): its commit is asynchronous, asked for in the pass's read.
    if connection.vendor != "postgresql":
        pytest.skip("asynchronous commit is PostgreSQL's")
    records = [submit(user) for _ in range(3)]

    with CaptureQueriesContext(connection) as queries:
        assert dispatch.tasks_publish_pending(limit=10) == 3

    statements = [query["sql"] for query in queries]
    [read] = [sql for sql in statements if "FOR UPDATE SKIP LOCKED" in sql]
    assert "set_config('synchronous_commit', 'off', true)" in read
    assert not any("SET LOCAL" in sql for sql in statements)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # the pass's own transaction only
    assert all(TaskRecord.objects.get(pk=record.pk).dispatched_at is not None for record in records)
    assert broker_queue_size(unread_queue) == 3


@pytest.mark.skipif(
    settings.BROKER_KIND != "rabbitmq",
    reason="RabbitMQ's publisher confirms",
)
def test_a_publish_rabbitmq_refuses_is_not_counted_and_waits_for_the_next_pass(user, unread_queue):
    # A queue that is full after a message and refuses more: RabbitMQ answers a publish to
    # it with a negative confirm, as when a queue's replicas cannot take a message. (A
    # quorum queue finds itself full a message late: it may take two.)
    full_after_one = Queue(
        unread_queue,
        Exchange(unread_queue, type="topic"),
        routing_key=unread_queue,
        queue_arguments={
            **settings.CELERY_TASK_QUEUES[0].queue_arguments,
            "x-max-length": 1,
            "x-overflow": "reject-publish",
        },
    )
    current_app.amqp.queues.add(full_after_one)
    try:
        records = [submit(user) for _ in range(3)]

        taken = dispatch.tasks_publish_pending(limit=10)

        assert 1 <= taken < 3
        assert TaskRecord.objects.outbox().count() == 3 - taken  # refused: unmarked, not lost
        assert broker_queue_size(unread_queue) == taken
    finally:
        current_app.amqp.queues.pop(unread_queue, None)
    broker_queue_discard(unread_queue)  # declared again, without the limit, by the next pass

    assert dispatch.tasks_publish_pending(limit=10) == 3 - taken
    assert broker_queue_size(unread_queue) == 3 - taken
    assert not TaskRecord.objects.filter(
        pk__in=[r.pk for r in records], dispatched_at__isnull=True
    ).exists()
