"""deploy/prometheus end to end: Debian's Prometheus server, with the shipped configuration
and alert rules, scrapes the shipped web process with the bearer token while a real worker
runs a task; every rule evaluates without error, and so does every dashboard query.

Only the target's address and the intervals differ from deploy/prometheus/prometheus.yml
(seconds instead of 30 s, so that the test takes seconds).
"""

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest
import yaml
from django.conf import settings
from django.core.cache import cache

from operations.broker_census import broker_census_cache_key
from tests.deploy.conftest import DASHBOARD, PROMETHEUS_DIR
from tests.integration.conftest import WebProcess, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TOKEN = "prometheus-test-token"
# Grafana's variables in the dashboard's queries, as the dashboard would fill them in.
VARIABLES = {"$__rate_interval": "1m", "$job": "jobservice"}


@pytest.fixture(scope="module")
def web_with_token(django_db_setup, tmp_path_factory):
    web = WebProcess(
        log_path=tmp_path_factory.mktemp("web") / "web.log",
        extra_env={"METRICS_BEARER_TOKEN": TOKEN},
    )
    web.wait_until_ready()
    yield web
    web.stop()


@pytest.fixture
def prometheus(web_with_token, tmp_path):
    """The Prometheus server, on a free port, scraping the web process every 3 s; stopped
    by its own PID at the end. Returns a function that asks its HTTP API."""
    executable = shutil.which("prometheus")
    if executable is None:
        message = "Debian's prometheus package is missing (bin/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, folder)
    (folder / "jobservice-token").write_text(TOKEN + "\n")
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "3s", "evaluation_interval": "1s"}
    (job,) = config["scrape_configs"]
    job.update(scrape_interval="3s", scrape_timeout="3s")
    job["static_configs"] = [{"targets": [urllib.parse.urlsplit(web_with_token.url).netloc]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))

    # A census shared by an earlier test (the cache outlives it) may say that no worker
    # answers; the first scrape takes its own, as it would where beat's snapshots take none.
    key = broker_census_cache_key(queues=list(settings.TASKS_QUEUES))
    cache.delete_many([key, f"{key}:taken"])

    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            executable,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def api(path: str, **query) -> dict:
        url = f"http://{address}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["data"]

    def ready() -> bool:
        try:
            return urllib.request.urlopen(f"http://{address}/-/ready", timeout=1).status == 200
        except OSError:
            return server.poll() is not None  # exited: the wait ends, the assert below fails

    wait_until(ready, timeout=30, what="the Prometheus server", every=0.2)
    assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
    yield api
    server.terminate()
    server.wait(timeout=30)
    log.close()


def dashboard_queries() -> list[str]:
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def test_prometheus_scrapes_the_service_and_evaluates_every_rule_and_panel(live, prometheus):
    response = live.post(
        "/api/v1/tasks/",
        {"task_type": "diagnostics.sleep", "input": {"seconds": 0.1, "steps": 1}},
        format="json",
    )
    assert response.status_code == 202, response.content

    def scraped_a_start() -> list:
        return prometheus("query", query="jobservice_task_start_latency_seconds_count > 0")[
            "result"
        ]

    wait_until(scraped_a_start, timeout=90, what="a scrape with the task's wait", every=0.5)
    (target,) = prometheus("targets")["activeTargets"]
    assert target["health"] == "up", target["lastError"]
    workers = prometheus("query", query="jobservice_workers")["result"]
    assert float(workers[0]["value"][1]) >= 1

    def every_rule_evaluated() -> list:
        rules = [rule for group in prometheus("rules")["groups"] for rule in group["rules"]]
        return (
            rules if all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) else []
        )

    rules = wait_until(every_rule_evaluated, timeout=30, what="every rule evaluated", every=0.5)
    alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    assert len(rules) == sum(len(group["rules"]) for group in alerts["groups"])
    assert [(rule["name"], rule["health"], rule.get("lastError", "")) for rule in rules] == [
        (rule["name"], "ok", "") for rule in rules
    ]

    # Before the first scrape, absent(jobservice_workers) held: pending until the next evaluation.
    def workers_seen() -> bool:
        active = {alert["labels"]["alertname"] for alert in prometheus("alerts")["alerts"]}
        return not active & {"JobserviceNoWorkers", "JobserviceWorkersUnknown"}

    wait_until(workers_seen, timeout=30, what="no worker alert pending", every=0.5)

    for query in dashboard_queries():
        prometheus("query", query=query)  # an invalid query answers 400, which raises here
