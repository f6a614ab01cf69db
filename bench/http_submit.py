"""Submit throughput over HTTP, as shipped, next to two baselines measured in the same run.

Starts the web process the way the Procfile does (gunicorn, 2 sync workers) with the
service's own settings, plus two baseline endpoints (bench/baseline_urls.py), and drives
each with the same concurrent clients for the same time:

    noop     an authenticated DRF POST that writes nothing
    insert   the same, inserting one TaskRecord
    submit   POST /api/v1/tasks/ (validate, insert, commit, publish to the broker)

It prints requests/s, p50 and p99 of each, and submit's ratios to insert (issue 10's goal:
at least 0.8x the throughput, at most 1.25x the p99). Machines are noisy: compare ratios.

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
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch import scratch_var_dir  # noqa: E402  (needs the path above)
from bench.web import free_port, percentile, start_web, stop_web  # noqa: E402

scratch_var_dir()
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
# Production defaults (DEBUG off); only the submit rate limit is lifted, to measure the
# path rather than the limiter.
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("API_SUBMIT_RATE", "100000000/min")
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

ENDPOINTS = {
    "noop": ("/bench/noop/", {}),
    "insert": ("/bench/insert/", {}),
    "submit": ("/api/v1/tasks/", {"task_type": "diagnostics.sleep", "input": {"seconds": 0}}),
}


def drive(port: int, path: str, body: dict, *, token: str, seconds: float, connections: int):
    """Each client sends requests one after another until the time is up: (count, latencies)."""
    payload = json.dumps(body)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
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

    threads = [threading.Thread(target=client) for _ in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{path} answered {errors[0]}")
    return len(latencies) / (time.monotonic() - started), sorted(latencies)


def measure(*, token: str, seconds: float, connections: int) -> dict:
    """Each endpoint in turn, after a 2 s warm-up: (requests/s, sorted latencies)."""
    port = free_port()
    web = start_web(port)
    results = {}
    try:
        for name, (path, body) in ENDPOINTS.items():
            drive(port, path, body, token=token, seconds=2, connections=connections)
            results[name] = drive(
                port, path, body, token=token, seconds=seconds, connections=connections
            )
    finally:
        stop_web(web)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    import django

    from bench.scratch import scratch_user

    with scratch_user("bench-http-submit") as user:
        from config.celery import app
        from tasks_app.tokens import user_token_issue

        _, token = user_token_issue(user=user)
        django.db.connections.close_all()
        results = measure(token=token, seconds=args.seconds, connections=args.connections)

    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(f"gunicorn 2 workers, {args.connections} connections, {args.seconds:g} s each")
    print(f"{'endpoint':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    figures = {}
    for name, (rate, latencies) in results.items():
        p50 = statistics.median(latencies) * 1000
        p99 = percentile(latencies, 0.99) * 1000
        figures[name] = (rate, p99)
        print(f"{name:<8} {rate:>8.1f} {p50:>8.1f} {p99:>8.1f}")
    print(
        f"submit / insert: {figures['submit'][0] / figures['insert'][0]:.2f}x throughput "
        f"(goal >= 0.8), {figures['submit'][1] / figures['insert'][1]:.2f}x p99 (goal <= 1.25)"
    )


if __name__ == "__main__":
    main()
