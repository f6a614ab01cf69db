"""deploy/grafana/jobservice-dashboard.json: an importable dashboard whose panels do not
overlap, that asks for its Prometheus data source, and whose every query parses and reads
only metrics that a real scrape has; every metric the service exports has a panel."""

import json
import re

import yaml

from tests.deploy.conftest import DASHBOARD, METRIC_NAME

GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's variables in the queries, and what stands for them where Prometheus reads them.
VARIABLES = {"$__rate_interval": "5m", "$job": ".+"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    return dashboard()["panels"]


def queries() -> list[tuple[str, str]]:
    """(panel id and refId, expression) of every query."""
    return [
        (f"panel_{panel['id']}_{target['refId']}", target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def test_is_a_dashboard_grafana_imports():
    board = dashboard()

    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    assert board["id"] is None  # Grafana gives it one on import
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"] == DATASOURCE


def test_panels_have_unique_ids():
    ids = [panel["id"] for panel in panels()]

    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_and_never_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("h", "w", "x", "y")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_WIDTH
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_asks_the_chosen_data_source():
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def prometheus_text(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def test_every_query_parses(promtool, tmp_path):
    # As recording rules, which promtool parses without a server.
    rules = [
        {"record": f"dashboard:{name}", "expr": prometheus_text(expr)} for name, expr in queries()
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    checked = promtool("check", "rules", path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_queries_read_only_metrics_that_a_scrape_has(scraped_sample_names):
    used = {name for _, expr in queries() for name in METRIC_NAME.findall(expr)}

    assert used - scraped_sample_names == set()


def test_every_metric_of_the_service_has_a_panel(scraped_sample_names):
    shown = " ".join(expr for _, expr in queries())
    # A histogram is shown through its buckets; its _count and _sum, and the _created
    # timestamps of prometheus_client's own metrics, need no panel of their own.
    suffix = re.compile(r"_(bucket|count|sum|created)$")
    families = {suffix.sub("", name) for name in scraped_sample_names}
    exported = {name for name in families if name.startswith("jobservice_")}

    assert exported
    assert {name for name in exported if name not in shown} == set()
