"""Submit throughput over HTTP, as shipped, next to two baselines measured in the same run.

Starts the web process the way the Procfile does (gunicorn, 2 sync workers) with the
service's own settings, plus two baseline endpoints (bench/baseline_urls.py), and the
Procfile's relay; then drives each endpoint with the same concurrent clients for the same
time:

    noop     an authenticated DRF POST that writes nothing
    insert   the same, inserting one TaskRecord
    submit   POST /api/v1/tasks/ (validate, lock the owner, insert, commit; the relay
             publishes to the broker), every client as the same user
    submit-users  the same, each client a user of its own (fair use locks per user)
    batch    POST /api/v1/tasks/batch/ with 1,000 tasks a request (4 clients)

It prints requests/s, p50 and p99 of each, submit's ratios to insert (issue 10's goal: at
least 0.8x the throughput, at most 1.25x the p99), tasks/s submitted in batches (goal at
least 2,000), and how long the relay took from a submit's insert to its publish, p50 and
p99 (goal: p99 at most 50 ms). Machines are noisy: compare ratios.

Runs against the configured database and broker (the embedded default unless
DATABASE_URL / CELERY_BROKER_URL say otherwise; with them, in a scratch user whose records
are deleted and whose messages are purged afterwards). No worker is needed. Every submit
is published: the bench user's running and active limits are lifted (its own TaskQuota),
so that fair use, which is per user, neither holds submits back as waiting (a cheaper
path) nor refuses them, as it would for one user sending thousands a second.

    .venv/bin/python bench/http_submit.py [--seconds 10] [--connections 16]
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.web import (  # noqa: E402  (needs the path above)
    free_port,
    percentile,
    start_relay,
    start_web,
    stop_web,
    web_bench_environment,
)

web_bench_environment()

SLEEP = {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}
BATCH_SIZE = 1000
BATCH_CONNECTIONS = 4
ENDPOINTS = {
    "noop": ("/bench/noop/", {}),
    "insert": ("/bench/insert/", {}),
    "submit": ("/api/v1/tasks/", SLEEP),
    "submit-users": ("/api/v1/tasks/", SLEEP),
    "batch": ("/api/v1/tasks/batch/", {"tasks": [SLEEP] * BATCH_SIZE}),
}


def drive(port: int, path: str, body: dict, *, tokens: list, seconds: float, connections: int):
    """Each client sends requests one after another until the time is up: (count, latencies).

    Client n authenticates with ``tokens[n % len(tokens)]``.
    """
    payload = json.dumps(body)
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client(token: str) -> None:
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            connection.request("POST", path, body=payload, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 202:
                errors.append(f"{response.status} {answer[:200]!r}")
                break
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=client, args=(tokens[number % len(tokens)],))
        for number in range(connections)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{path} answered {errors[0]}")
    return len(latencies) / (time.monotonic() - started), sorted(latencies)


def measure(*, users, tokens: list, seconds: float, connections: int) -> tuple[dict, list]:
    """Each endpoint in turn, after a 2 s warm-up: (requests/s, sorted latencies); and the
    relay's delays from insert to publish of the submits measured (not the warm-up's)."""
    from django.db import connection
    from django.utils import timezone

    from tasks_app.models import TaskRecord

    port = free_port()
    web, relay = start_web(port), start_relay()
    results, publish_delays = {}, []
    try:
        for name, (path, body) in ENDPOINTS.items():
            clients = BATCH_CONNECTIONS if name == "batch" else connections
            # Every client as the first user, except where each is a user of its own.
            senders = tokens if name == "submit-users" else tokens[:1]
            drive(port, path, body, tokens=senders, seconds=2, connections=clients)
            measured_from = timezone.now()
            results[name] = drive(
                port, path, body, tokens=senders, seconds=seconds, connections=clients
            )
            if name == "submit":
                submits = TaskRecord.objects.filter(
                    owner__in=users, task_type="diagnostics.sleep", created_at__gte=measured_from
                )
                wait_for_the_relay(submits)
                publish_delays = sorted(
                    (dispatched - created).total_seconds()
                    for created, dispatched in submits.values_list("created_at", "dispatched_at")
                )
            connection.close()
        wait_for_the_relay(TaskRecord.objects.filter(owner__in=users))
    finally:
        stop_web(web)
        relay.terminate()
        relay.wait(timeout=30)
    return results, publish_delays


def wait_for_the_relay(records, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while records.filter(status="queued", dispatched_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the relay did not publish every submit within {timeout} s")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    import django

    from bench.scratch import scratch_users

    with scratch_users("bench-http-submit", count=args.connections) as users:
        from config.celery import app
        from tasks_app.tokens import user_token_issue

        tokens = [user_token_issue(user=user)[1] for user in users]
        django.db.connections.close_all()
        results, publish_delays = measure(
            users=users, tokens=tokens, seconds=args.seconds, connections=args.connections
        )

    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(
        f"gunicorn 2 workers and the relay, {args.connections} connections "
        f"({BATCH_CONNECTIONS} for batch), {args.seconds:g} s each"
    )
    print(f"{'endpoint':<13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    figures = {}
    for name, (rate, latencies) in results.items():
        p50 = statistics.median(latencies) * 1000
        p99 = percentile(latencies, 0.99) * 1000
        figures[name] = (rate, p99)
        print(f"{name:<13} {rate:>8.1f} {p50:>8.1f} {p99:>8.1f}")
    for name in ("submit", "submit-users"):
        print(
            f"{name} / insert: {figures[name][0] / figures['insert'][0]:.2f}x throughput "
            f"(goal >= 0.8), {figures[name][1] / figures['insert'][1]:.2f}x p99 (goal <= 1.25)"
        )
    print(f"batch: {figures['batch'][0] * BATCH_SIZE:.0f} tasks/s submitted (goal >= 2000)")
    if publish_delays:
        print(
            f"relay, insert to publish during submit: p50 "
            f"{statistics.median(publish_delays) * 1000:.1f} ms, p99 "
            f"{percentile(publish_delays, 0.99) * 1000:.1f} ms (goal <= 50), "
            f"{len(publish_delays)} tasks"
        )


if __name__ == "__main__":
    main()
