"""deploy/prometheus: the alert rules are valid, their promtool unit tests pass and show
each alert both firing and quiet, they read only metrics a real scrape has, and the
example configuration loads."""

import shutil

import pytest
import yaml

from tests.deploy.conftest import METRIC_NAME, PROMETHEUS_DIR

ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alert_rules()]


def test_promtool_checks_the_rules(promtool):
    checked = promtool("check", "rules", ALERTS)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_promtool_unit_tests_pass(promtool):
    tested = promtool("test", "rules", ALERTS_TEST)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.parametrize("alert", alert_names())
def test_each_alert_is_tested_firing_and_not_firing(alert):
    cases = [
        case
        for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]

    assert any(case["exp_alerts"] for case in cases), f"{alert} is never expected to fire"
    assert any(not case["exp_alerts"] for case in cases), f"{alert} is never expected quiet"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_has_a_severity_a_summary_a_description_and_a_wait(rule):
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()
    assert rule.get("for"), "an alert without for: fires on a single evaluation"


def test_alerts_read_only_metrics_that_a_scrape_has(scraped_sample_names):
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}

    assert used, "no jobservice_ metric found in the rules"
    assert used - scraped_sample_names == set()


def test_the_example_configuration_loads_with_the_rules(promtool, tmp_path):
    # promtool checks that the token file exists; deployments keep it out of the repository.
    folder = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, folder)
    (folder / "jobservice-token").write_text("a-token\n")

    checked = promtool("check", "config", folder / "prometheus.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout
