"""RabbitMQ's settings: the queues every process declares, and the priorities it is sent."""

import json

import pytest

from tasks_app.broker import broker_priority, broker_retry_delay
from tests.config.test_deploy_settings import run_with_production_settings

SHOW_QUEUES = """
import django, json
django.setup()
from django.conf import settings
print(json.dumps({
    "queues": {q.name: [q.exchange.type, q.durable, q.queue_arguments]
               for q in settings.CELERY_TASK_QUEUES},
    "transport": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "missing": getattr(settings, "CELERY_TASK_CREATE_MISSING_QUEUE_TYPE", None),
}))
"""
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/jobs"


def queues_declared(tmp_path, **variables) -> dict:
    ran = run_with_production_settings(
        tmp_path, ["-c", SHOW_QUEUES], CELERY_BROKER_URL=RABBITMQ_URL, **variables
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def test_on_rabbitmq_every_queue_is_a_durable_quorum_queue_and_publishes_are_confirmed(tmp_path):
    declared = queues_declared(tmp_path, TASKS_QUEUES="long,documents")

    assert declared["queues"] == {
        name: ["topic", True, {"x-queue-type": "quorum"}]
        for name in ("default", "long", "documents")
    }
    assert declared["missing"] == "quorum"  # a queue named later is declared alike
    assert declared["transport"] == {"confirm_publish": True}


def test_classic_queues_carry_the_ten_priorities(tmp_path):
    declared = queues_declared(tmp_path, RABBITMQ_QUEUE_TYPE="classic")

    assert declared["queues"] == {
        name: ["topic", True, {"x-max-priority": 9}] for name in ("default", "long")
    }
    assert declared["transport"] == {"confirm_publish": True}


def test_an_unknown_queue_type_is_refused_at_start(tmp_path):
    ran = run_with_production_settings(
        tmp_path, ["-c", SHOW_QUEUES], CELERY_BROKER_URL=RABBITMQ_URL, RABBITMQ_QUEUE_TYPE="lazy"
    )
    assert ran.returncode != 0
    assert "RABBITMQ_QUEUE_TYPE is 'lazy'" in ran.stderr


@pytest.mark.parametrize(
    ("broker_url", "kind"),
    [
        ("filesystem://localhost/", "filesystem"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache.example:6380/0", "redis"),
        (RABBITMQ_URL, "rabbitmq"),
        ("amqps://user:secret@mq.example:5671/jobs", "rabbitmq"),
    ],
)
def test_the_broker_kind_is_read_from_the_urls_scheme(tmp_path, broker_url, kind):
    ran = run_with_production_settings(
        tmp_path,
        [
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.BROKER_KIND)",
        ],
        CELERY_BROKER_URL=broker_url,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == kind


def test_a_broker_the_service_does_not_support_is_refused_at_start(tmp_path):
    ran = run_with_production_settings(
        tmp_path, ["-c", SHOW_QUEUES], CELERY_BROKER_URL="sqs://key:secret@"
    )
    assert ran.returncode != 0
    assert "CELERY_BROKER_URL sqs://… is not a broker this service supports" in ran.stderr
    assert "secret" not in ran.stderr


@pytest.mark.parametrize(
    ("broker_kind", "queue_type", "sent"),
    [
        # Redis serves 0 first; ours says 9 is the most urgent.
        ("redis", "quorum", {0: 9, 5: 4, 6: 3, 9: 0}),
        # RabbitMQ serves the highest first; its 4.x quorum queues know "high" (above 4).
        ("rabbitmq", "classic", {0: 0, 5: 5, 6: 6, 9: 9}),
        ("rabbitmq", "quorum", {0: 0, 5: 0, 6: 5, 9: 5}),
    ],
)
def test_priorities_are_sent_as_the_broker_reads_them(settings, broker_kind, queue_type, sent):
    settings.BROKER_KIND = broker_kind
    settings.RABBITMQ_QUEUE_TYPE = queue_type

    assert {ours: broker_priority(ours) for ours in sent} == sent


def test_a_retry_on_quorum_queues_waits_whole_seconds_and_at_least_one(settings):
    settings.BROKER_KIND = "rabbitmq"
    settings.RABBITMQ_QUEUE_TYPE = "quorum"
    assert [broker_retry_delay(s) for s in (0.5, 1.0, 2.2)] == [1.0, 1.0, 3.0]

    settings.RABBITMQ_QUEUE_TYPE = "classic"  # the worker holds it: any delay
    assert broker_retry_delay(0.5) == 0.5
