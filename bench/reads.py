"""Reads at a million records: poll, list pages, the Prometheus scrape and retention.

Fills a scratch PostgreSQL database (created next to DATABASE_URL's, dropped at the end)
with ``--records`` task records over ``--users`` users (INSERT … SELECT generate_series:
statuses, task types and durations drawn at random, created over the last 100 days), a
dead letter for each failed or timed-out record and a Celery result row for each finished
one; then starts the web process as shipped (the Procfile's gunicorn, 2 sync workers,
DEBUG off) and measures, next to a baseline in the same run:

    baseline   POST /bench/noop/ (bench/baseline_urls.py): authenticated DRF, no query
    detail     GET /api/v1/tasks/{id}/ of a random record of the caller's
    list …     GET /api/v1/tasks/ first page, unfiltered and with each filter, and a
               second page through its cursor
    staff …    the staff lists (everyone's tasks, dead letters)
    metrics    GET /metrics as staff (after the first scrape, which is timed apart)

Each endpoint is driven by ``--connections`` clients for ``--seconds`` (after a warm-up),
rotating over 20 users' tokens and records. Issue 10's goals: detail and every list's
p99 under 20 ms, a scrape under 200 ms. The list queries are captured in-process to show
that none counts (``--explain`` prints their plans). Then it runs retention over every
record (task_records_prune and results_cleanup with "now" a year ahead), reporting each
job's longest batch (a batch is a transaction: its locks last as long) and total time,
and scrapes again: the finished counters must not go down.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    .venv/bin/python bench/reads.py [--records 1000000] [--users 1000] [--seconds 3]
"""

import argparse
import http.client
import os
import random
import secrets
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch import scratch_database, scratch_var_dir  # noqa: E402  (needs the path above)
from bench.web import free_port, percentile, start_web, stop_web  # noqa: E402

scratch_var_dir()
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DJANGO_DEBUG", "false")  # production defaults
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

USER_PREFIX = "bench-reads-"
MEASURED_USERS = 20
SPREAD = timedelta(days=100)
# Share of records per status; the rest succeeded.
STATUS_SHARES = [
    ("queued", 0.004),
    ("running", 0.003),
    ("waiting", 0.002),
    ("retrying", 0.001),
    ("failed", 0.02),
    ("cancelled", 0.01),
    ("timed_out", 0.005),
]
FINISHED = ("succeeded", "failed", "cancelled", "timed_out")


def status_case() -> str:
    """SQL: a status from the random number ``r`` with the shares of STATUS_SHARES."""
    branches, bound = [], 0.0
    for status, share in STATUS_SHARES:
        bound += share
        branches.append(f"WHEN r < {bound} THEN '{status}'")
    return f"CASE {' '.join(branches)} ELSE 'succeeded' END"


def insert_generated(model, *, columns: dict[str, str], source: str, params: list) -> int:
    """INSERT INTO model's table SELECT the given expressions FROM ``source``.

    Columns not given get the field's default (an auto-numbered key its next number), so
    a field added later does not break it.
    """
    from django.db import connection

    names, expressions, values = [], [], []
    for field in model._meta.concrete_fields:
        if field.db_returning and field.column not in columns:
            continue  # an identity column numbers the rows itself
        names.append(connection.ops.quote_name(field.column))
        if field.column in columns:
            expressions.append(columns[field.column])
        else:
            expressions.append("%s")
            values.append(field.get_db_prep_save(field.get_default(), connection))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(names)}) "
        f"SELECT {', '.join(expressions)} FROM {source}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values + params)
        return cursor.rowcount


def generate(*, records: int, users: int) -> dict[str, float]:
    """Users, task records, their dead letters and result rows; seconds each took."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_celery_results.models import TaskResult

    from tasks_app.models import DeadLetter, TaskRecord
    from tasks_app.task_types import all_task_types

    timings = {}
    started = time.perf_counter()
    insert_generated(
        get_user_model(),
        columns={
            "username": f"'{USER_PREFIX}' || lpad(u::text, 5, '0')",
            "password": "'!'",
            "date_joined": "now()",
            "is_active": "true",
        },
        source="generate_series(1, %s) AS u",
        params=[users],
    )
    timings["users"] = time.perf_counter() - started

    specs = all_task_types()
    type_names = "ARRAY[" + ", ".join(f"'{spec.name}'" for spec in specs) + "]"
    type_queues = "ARRAY[" + ", ".join(f"'{spec.queue}'" for spec in specs) + "]"
    user_table = get_user_model()._meta.db_table
    source = f"""(
        SELECT g, r, d, created, {status_case()} AS status,
               1 + floor(t * {len(specs)})::int AS type_index
        FROM (
            SELECT g, random() AS r, random() AS d, random() AS t,
                   now() - (%s - g) * %s * interval '1 second' AS created
            FROM generate_series(1, %s) AS g
        ) AS drawn
    ) AS row, (
        SELECT array_agg(id ORDER BY id) AS ids FROM {user_table} WHERE username LIKE %s
    ) AS owners"""
    finished = "status IN ('succeeded', 'failed', 'cancelled', 'timed_out')"
    started_statuses = "status NOT IN ('queued', 'waiting')"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
    insert_generated(
        TaskRecord,
        columns={
            "id": "gen_random_uuid()",
            "owner_id": f"owners.ids[1 + mod(g, {users})]",
            "task_type": f"({type_names})[type_index]",
            "queue": f"({type_queues})[type_index]",
            "priority": "5",
            "status": "status",
            "input": """'{"seconds": 0}'::jsonb""",
            "result": """CASE WHEN status = 'succeeded' THEN '{"slept": 0}'::jsonb END""",
            "error_type": "CASE WHEN status IN ('failed', 'timed_out') THEN 'Boom' ELSE '' END",
            "error_message": "CASE WHEN status IN ('failed', 'timed_out') THEN 'it broke' "
            "ELSE '' END",
            "attempts": f"CASE WHEN {started_statuses} THEN 1 ELSE 0 END",
            "worker": f"CASE WHEN {started_statuses} THEN 'bench@host' ELSE '' END",
            "created_at": "created",
            "dispatched_at": "CASE WHEN status <> 'waiting' THEN created END",
            "started_at": f"CASE WHEN {started_statuses} THEN created + interval '0.5 s' END",
            "heartbeat_at": "CASE WHEN status = 'running' THEN now() END",
            # Mostly short tasks, a few up to 10 minutes.
            "finished_at": f"CASE WHEN {finished} "
            "THEN created + interval '0.5 s' + d * d * d * interval '600 s' END",
        },
        source=source,
        params=[records, SPREAD.total_seconds() / records, records, f"{USER_PREFIX}%"],
    )
    timings["task records"] = time.perf_counter() - started

    started = time.perf_counter()
    records_table = TaskRecord._meta.db_table
    # A dead letter per failure: open ones of the last week (retention keeps their tasks),
    # discarded before.
    insert_generated(
        DeadLetter,
        columns={
            "id": "gen_random_uuid()",
            "task_id": "id",
            "owner_id": "owner_id",
            "task_type": "task_type",
            "input": "input",
            "final_status": "status",
            "error_type": "error_type",
            "error_message": "error_message",
            "task_created_at": "created_at",
            "created_at": "finished_at",
            "resolution": "CASE WHEN finished_at > now() - interval '7 days' THEN 'open' "
            "ELSE 'discarded' END",
            "resolved_at": "CASE WHEN finished_at <= now() - interval '7 days' "
            "THEN finished_at + interval '1 day' END",
        },
        source=f"{records_table} WHERE status IN ('failed', 'timed_out')",
        params=[],
    )
    insert_generated(
        TaskResult,
        columns={
            "task_id": "id::text",
            "status": "CASE status WHEN 'succeeded' THEN 'SUCCESS' WHEN 'cancelled' "
            "THEN 'REVOKED' ELSE 'FAILURE' END",
            "content_type": "'application/json'",
            "content_encoding": "'utf-8'",
            "result": "'null'",
            "task_name": "task_type",
            "worker": "worker",
            "date_created": "created_at",
            "date_done": "finished_at",
        },
        source=f"{records_table} WHERE {finished}",
        params=[],
    )
    timings["dead letters, results"] = time.perf_counter() - started

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum does after a load: statistics, and the visibility map that lets
        # counts read an index alone.
        for model in (TaskRecord, DeadLetter, TaskResult, get_user_model()):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def drive(port: int, requests: list[tuple], *, seconds: float, connections: int) -> list[float]:
    """Clients send ``requests`` (method, path, token), each its own in turn, until the time
    is up; every answer must be 200 or 202. Returns the sorted latencies in seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, index = [], offset
        while time.monotonic() < stop_at and not errors:
            method, path, token = requests[index % len(requests)]
            index += connections
            started = time.perf_counter()
            connection.request(method, path, headers={"Authorization": f"Token {token}"})
            response = connection.getresponse()
            answer = response.read()
            mine.append(time.perf_counter() - started)
            if response.status not in (200, 202):
                errors.append(f"{method} {path}: {response.status} {answer[:200]!r}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(errors[0])
    return sorted(latencies)


def endpoints(*, users, staff_token: str) -> dict[str, list[tuple]]:
    """What each row of the table requests: (method, path, token) rotated over the users."""
    from tasks_app.models import TaskRecord

    def per_user(path_for) -> list[tuple]:
        return [("GET", path_for(user), token) for user, token in users]

    detail = []
    for user, token in users:
        ids = TaskRecord.objects.filter(owner=user).values_list("pk", flat=True)
        detail += [("GET", f"/api/v1/tasks/{pk}/", token) for pk in ids[:200]]
    random.Random(7).shuffle(detail)
    lists = {
        "list": "",
        "list status=succeeded": "?status=succeeded",
        "list status=running": "?status=running",
        "list status=queued,running": "?status=queued&status=running",
        "list task_type": "?task_type=diagnostics.sleep",
        "list task_type+status": "?task_type=diagnostics.fail&status=failed",
    }
    rows = {
        "baseline (noop)": [("POST", "/bench/noop/", token) for _, token in users],
        "detail": detail,
    }
    for name, query in lists.items():
        rows[name] = per_user(lambda user, query=query: f"/api/v1/tasks/{query}")
    rows["list page 2 (cursor)"] = [("GET", second_page(token), token) for _, token in users]
    staff = {
        "staff list": "/api/v1/tasks/",
        "staff list status=failed": "/api/v1/tasks/?status=failed",
        "staff dead letters": "/api/v1/dead-letters/",
        "staff dead letters open": "/api/v1/dead-letters/?resolution=open",
    }
    for name, path in staff.items():
        rows[name] = [("GET", path, staff_token)]
    return rows


def second_page(token: str) -> str:
    from django.test import Client

    answer = Client().get(
        "/api/v1/tasks/", HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1"
    )
    link = answer.json()["next"]
    return link[link.index("/api/") :]


def captured_list_queries(rows: dict[str, list[tuple]], *, explain: bool) -> list[str]:
    """Each list's first request in-process: its queries, and whether any counts."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    lines = []
    for name, requests in rows.items():
        method, path, token = requests[0]
        if method != "GET" or name == "detail":
            continue
        with CaptureQueriesContext(connection) as captured:
            Client().get(path, HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
        sqls = [query["sql"] for query in captured.captured_queries]
        counting = [sql for sql in sqls if "COUNT(" in sql.upper()]
        lines.append(f"  {name:<28} {len(sqls)} queries, {len(counting)} with COUNT")
        if explain:
            listing = [sql for sql in sqls if "_usertoken" not in sql and "LIMIT" in sql]
            with connection.cursor() as cursor:
                for sql in listing:
                    cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}")
                    lines += [f"      {row[0]}" for row in cursor.fetchall()]
    return lines


def finished_total(port: int, staff_token: str) -> tuple[float, float]:
    """(seconds one scrape took, the sum of jobservice_tasks_finished_total)."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("GET", "/metrics", headers={"Authorization": f"Token {staff_token}"})
    response = connection.getresponse()
    body = response.read().decode()
    took = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise SystemExit(f"/metrics answered {response.status}: {body[:200]}")
    total = 0.0
    for family in text_string_to_metric_families(body):
        if family.name == "jobservice_tasks_finished":
            total += sum(sample.value for sample in family.samples)
    return took, total


def retention() -> dict[str, dict]:
    """Every finished record's retention, as beat's jobs run it, a year from now."""
    from django.utils import timezone

    from operations import maintenance

    future = timezone.now() + timedelta(days=365 + 90)
    jobs = {}
    for name, job in (
        ("task_records_prune", maintenance.task_records_prune),
        ("results_cleanup", maintenance.results_cleanup),
    ):
        started = time.perf_counter()
        counts = job(now=future)
        jobs[name] = {**counts, "seconds": time.perf_counter() - started}
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per endpoint")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="print the lists' plans")
    args = parser.parse_args()
    if args.users < MEASURED_USERS:
        raise SystemExit(f"--users must be at least {MEASURED_USERS}")

    with scratch_database("reads_bench") as database:
        from bench.scratch import scratch_user

        with scratch_user("bench-staff") as staff:
            report(args, database=database, staff=staff)


def report(args, *, database: str, staff) -> None:
    import logging

    import django.db
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from operations.broker_census import broker_census
    from tasks_app.tokens import user_token_issue

    logging.disable(logging.INFO)  # the tokens issued and such: not what is measured
    print(f"scratch database {database}: {args.records:,} task records, {args.users:,} users")
    timings = generate(records=args.records, users=args.users)
    print("generated in " + ", ".join(f"{name} {sec:.1f} s" for name, sec in timings.items()))

    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    _, staff_token = user_token_issue(user=staff)
    sample = get_user_model().objects.filter(username__startswith=USER_PREFIX)
    step = max(1, args.users // MEASURED_USERS)
    users = [(user, user_token_issue(user=user)[1]) for user in sample.order_by("pk")[::step]]
    rows = endpoints(users=users[:MEASURED_USERS], staff_token=staff_token)
    query_lines = captured_list_queries(rows, explain=args.explain)
    django.db.connections.close_all()

    port = free_port()
    web = start_web(port)
    figures = {}
    try:
        first_scrape, before = finished_total(port, staff_token)
        for name, requests in rows.items():
            drive(port, requests, seconds=1, connections=args.connections)
            figures[name] = drive(
                port, requests, seconds=args.seconds, connections=args.connections
            )
        # As beat's health snapshots do every minute: the scrape reads their census of the
        # workers rather than waiting out a ping (no worker runs here).
        broker_census(queues=list(settings.TASKS_QUEUES))
        scrapes = [("GET", "/metrics", staff_token)]
        figures["metrics scrape"] = drive(port, scrapes, seconds=args.seconds, connections=1)
        django.db.connections.close_all()
        load_during = os.getloadavg()
        jobs = retention()
        _, after = finished_total(port, staff_token)
    finally:
        stop_web(web)

    print(
        f"\ngunicorn 2 workers as shipped (DEBUG {settings.DEBUG}), {args.connections} "
        f"connections, {args.seconds:g} s per endpoint; page size "
        f"{settings.REST_FRAMEWORK['PAGE_SIZE']}"
    )
    print(
        f"load average during the run: {load_during[0]:.1f} (1 min), {load_during[1]:.1f} (5 min)"
    )
    header = f"{'endpoint':<28} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99/base':>8}  goal"
    print(header)
    base_p99 = percentile(figures["baseline (noop)"], 0.99)
    for name, latencies in figures.items():
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        goal = 0.200 if name == "metrics scrape" else 0.020
        verdict = "" if name.startswith(("baseline", "staff")) else f"p99 < {goal * 1000:.0f} ms "
        verdict += ("ok" if p99 < goal else "MISSED") if verdict else ""
        rate = len(latencies) / args.seconds
        print(
            f"{name:<28} {rate:>6.0f} {p50 * 1000:>7.1f} {p99 * 1000:>7.1f} "
            f"{p99 / base_p99:>7.1f}x  {verdict}"
        )
    print(f"first scrape after the load (catches up the tally): {first_scrape * 1000:.0f} ms")
    print("\nlist queries at this size (captured in-process):")
    print("\n".join(query_lines))
    print("\nretention of every finished record (longest batch = longest lock held):")
    for name, counts in jobs.items():
        print(
            f"  {name:<20} deleted {counts['deleted']:>9,} in {counts['batches']:>5} batches "
            f"of {settings.OPS_MAINTENANCE_BATCH_SIZE}, {counts['seconds']:.1f} s; longest "
            f"batch {counts['longest_batch_seconds'] * 1000:.0f} ms (goal < 1000)"
        )
    trend = "ok" if after >= before else "WENT DOWN"
    print(
        f"jobservice_tasks_finished_total, summed: {before:,.0f} before retention, "
        f"{after:,.0f} after ({trend})"
    )


if __name__ == "__main__":
    main()
