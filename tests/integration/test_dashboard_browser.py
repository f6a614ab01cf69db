"""The dashboard in a real browser (Debian's chromium, driven by Playwright), against the
shipped web process (the Procfile's gunicorn with uvicorn workers), the relay and a real
worker: what a person signed in to the pages sees.

Each test saves a screenshot of the pages it visits under var/screenshots/.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tasks_app import workflows
from tasks_app.models import TaskRecord, TaskStatus, Workflow
from tests.dashboard.test_webhook_pages import failed_delivery
from tests.factories import TaskRecordFactory, UserFactory
from webhooks import services as webhook_services
from webhooks.models import DeliveryStatus, WebhookEndpoint

playwright_api = pytest.importorskip("playwright.sync_api")
Axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe
expect = playwright_api.expect

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
# Long enough for a worker on a loaded 2-core machine; the live updates themselves are
# asserted by the progress reaching 100% with no reload of the page.
SECONDS = 30_000
playwright_api.expect.set_options(timeout=SECONDS)


@pytest.fixture(scope="module")
def chromium():
    executable = shutil.which("chromium")
    if executable is None:
        message = "Debian's chromium is not installed (bin/test and .ci/run install it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's synchronous API keeps an event loop running in this thread, which
    # Django takes for async code: the tests' own ORM calls (and the database's flush
    # after each) are allowed while it runs. The server is another thread.
    with pytest.MonkeyPatch.context() as patch, playwright_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, web, celery_worker, transactional_db):
    """``open_page(user)``: a new browser page signed in as ``user`` through the login form.

    ``open_page.event_streams`` lists the answers the pages' event streams got."""
    contexts, policy_violations = [], []
    event_streams = []

    def note_event_stream(response) -> None:
        if "/api/v1/tasks/events" in response.url:
            event_streams.append((response.status, response.headers.get("content-type")))

    def open_page(user, *, width: int = 1280):
        context = chromium.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(SECONDS)
        page.on("response", note_event_stream)
        page.on(
            "console",
            lambda message: (
                policy_violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(f"{web.url}/accounts/login/")
        _screenshot(page, "login")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill("secret-password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{web.url}/tasks/")
        return page

    open_page.url = web.url
    open_page.event_streams = event_streams
    yield open_page
    for context in contexts:
        context.close()
    assert policy_violations == []


def _screenshot(page, name: str) -> None:
    """Save the page as it looks, and check it with axe-core: no serious or critical
    accessibility violation (labels, contrast, names of buttons and links, landmarks)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    violations = [
        f"{violation['id']} ({violation['impact']}): {violation['help']}; "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        for violation in Axe().run(page).response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert violations == [], f"{name}: {violations}"


def _submit_sleep(page, base_url: str, *, seconds: str, steps: str) -> TaskRecord:
    page.goto(f"{base_url}/tasks/new/")
    page.get_by_role("link", name="diagnostics.sleep").click()
    page.get_by_label("Seconds").fill(seconds)
    page.get_by_label("Steps").fill(steps)
    _screenshot(page, "submit-form")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(f"{base_url}/tasks/*/")
    task_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    return TaskRecord.objects.get(pk=task_id)


def test_a_submitted_task_shows_its_progress_live_until_it_succeeds(open_page):
    user = UserFactory(username="watcher")
    page = open_page(user)
    _screenshot(page, "tasks-empty")

    record = _submit_sleep(page, open_page.url, seconds="3", steps="3")
    # Gone if the page were loaded again: the updates must come without a reload.
    page.evaluate("window.stillTheSamePage = true")

    progress = page.locator(f"#progress-{record.pk}")
    # expect() polls through Playwright's selectors; a string for wait_for_function would
    # need eval, which the page's Content-Security-Policy refuses.
    expect(page.locator("#task-live .badge")).to_have_text("Succeeded")
    assert progress.get_attribute("value") == "3"
    assert progress.get_attribute("max") == "3"
    assert "3/3 (100.0%)" in page.locator("#task-live").inner_text()
    assert page.evaluate("window.stillTheSamePage") is True
    # Moved by the owner's event stream, held open by the shipped web process.
    assert (200, "text/event-stream") in open_page.event_streams
    assert '"slept_seconds": 3.0' in page.locator("#task-live pre.json").inner_text()
    _screenshot(page, "task-detail")

    page.get_by_role("link", name="All tasks").click()
    expect(page.locator(f"#task-{record.pk} .badge")).to_have_text("Succeeded")
    _screenshot(page, "tasks")


def _submit_workflow(owner, *, seconds: float) -> Workflow:
    """A chain of a step and a group of two, each sleeping ``seconds``."""
    sleep = {"task_type": "diagnostics.sleep", "input": {"seconds": seconds, "steps": 2}}
    return workflows.workflow_submit(
        owner=owner,
        name="warm up, then fan out",
        steps=[
            {"name": "warm-up", **sleep},
            {"name": "fan", "group": [{"name": "left", **sleep}, {"name": "right", **sleep}]},
        ],
    )


def test_a_workflow_reaches_succeeded_live_on_its_page(open_page):
    user = UserFactory(username="conductor")
    workflow = _submit_workflow(user, seconds=1)
    page = open_page(user)

    page.get_by_role("link", name="Workflows", exact=True).click()
    page.locator(f"#workflow-{workflow.pk}").get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("warm up, then fan out")
    # Gone if the page were loaded again: the updates must come without a reload.
    page.evaluate("window.stillTheSamePage = true")
    _screenshot(page, "workflow-running")

    expect(page.locator("#workflow-status .badge")).to_have_text("Succeeded")
    assert "3/3 (100.0%)" in page.locator("#workflow-live").inner_text()
    for step in ("warm-up", "left", "right"):
        expect(page.locator(f"#step-{step} .badge")).to_have_text("Succeeded")
    assert '"slept_seconds": 1.0' in page.locator("#workflow-live pre.json").inner_text()
    assert page.evaluate("window.stillTheSamePage") is True
    # Moved by the owner's event stream: each step's task change is one of its events.
    assert (200, "text/event-stream") in open_page.event_streams
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    _screenshot(page, "workflow-succeeded")

    # A step's task page leads back to its workflow.
    page.get_by_role("link", name="of step left").click()
    expect(page.locator("#task-workflow")).to_contain_text("Step left of workflow")
    page.locator("#task-workflow").get_by_role("link").click()
    expect(page.locator("#workflow-status .badge")).to_have_text("Succeeded")
    page.get_by_role("link", name="All workflows").click()
    expect(page.locator(f"#workflow-{workflow.pk} .badge")).to_have_text("Succeeded")
    _screenshot(page, "workflows")


def test_a_running_task_is_cancelled_from_its_page(open_page):
    user = UserFactory(username="canceller")
    page = open_page(user)
    record = _submit_sleep(page, open_page.url, seconds="60", steps="60")

    expect(page.locator("#task-live .badge")).to_have_text("Running")
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#task-live .badge")).to_have_text("Cancelled")
    assert "is cancelled" in page.locator(".messages").inner_text()
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    _screenshot(page, "task-cancelled")


def test_another_user_sees_none_of_the_first_users_work(open_page):
    owner, stranger = UserFactory(username="owner"), UserFactory(username="stranger")
    owners_page = open_page(owner)
    record = _submit_sleep(owners_page, open_page.url, seconds="0", steps="1")

    strangers_page = open_page(stranger)
    assert str(record.pk)[:8] not in strangers_page.locator("main").inner_text()
    response = strangers_page.goto(f"{open_page.url}/tasks/{record.pk}/")
    assert response.status == 404
    _screenshot(strangers_page, "another-users-task")


def test_the_tasks_page_is_usable_375_pixels_wide(open_page):
    user = UserFactory(username="phone")
    page = open_page(user, width=375)
    _submit_sleep(page, open_page.url, seconds="0", steps="1")
    page.get_by_role("link", name="All tasks").click()

    _screenshot(page, "tasks-375px")
    # Nothing wider than the screen: no sideways scrolling of the page itself.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.get_by_role("link", name="Documents").click()
    _screenshot(page, "documents-375px")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    # The webhooks pages, with a long address and a delivery that failed.
    endpoint = webhook_services.endpoint_create(
        owner=user, url=f"https://hooks.example.com/{'long-path/' * 12}in", event_types=[]
    )
    delivery = failed_delivery(user)
    workflow = _submit_workflow(user, seconds=0)
    for name, path in (
        ("webhooks-375px", "/webhooks/"),
        ("webhook-endpoint-375px", f"/webhooks/endpoints/{endpoint.pk}/"),
        ("webhook-delivery-375px", f"/webhooks/deliveries/{delivery.pk}/"),
        ("workflows-375px", "/workflows/"),
        ("workflow-375px", f"/workflows/{workflow.pk}/"),
    ):
        page.goto(f"{open_page.url}{path}")
        _screenshot(page, name)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name


# A script of the user's own, run as a separate program: it lists their tasks with the key.
_SCRIPT = """
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/api/v1/tasks/", headers={"X-API-Key": sys.argv[2]})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        print(answer.status, json.dumps([task["id"] for task in json.load(answer)["results"]]))
except urllib.error.HTTPError as error:
    print(error.code, "[]")
"""


def _run_script(base_url: str, key: str) -> tuple[int, list[str]]:
    finished = subprocess.run(
        [sys.executable, "-c", _SCRIPT, base_url, key],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, ids = finished.stdout.split(" ", 1)
    return int(status), json.loads(ids)


def test_an_api_key_made_on_the_page_works_for_a_script_until_revoked(open_page):
    user = UserFactory(username="scripter")
    page = open_page(user)
    record = _submit_sleep(page, open_page.url, seconds="0", steps="1")

    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("my script")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_role("textbox", name="Key", exact=True).input_value()
    _screenshot(page, "api-key-created")

    assert key.startswith("jsk_")
    assert _run_script(open_page.url, key) == (200, [str(record.pk)])

    page.goto(f"{open_page.url}/keys/")
    assert key not in page.content()
    page.get_by_role("button", name="Revoke my script").click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    assert _run_script(open_page.url, key) == (401, [])


def test_a_webhook_endpoint_added_on_its_page_shows_its_secret_once(open_page):
    user = UserFactory(username="hooked")
    page = open_page(user)
    page.get_by_role("link", name="Webhooks", exact=True).click()
    _screenshot(page, "webhooks-empty")

    page.get_by_label("URL", exact=True).fill("https://hooks.example.com/in")
    page.get_by_label("Description").fill("billing")
    page.get_by_label("task.succeeded").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_role("textbox", name="Signing secret").input_value()
    _screenshot(page, "webhook-created")

    endpoint = WebhookEndpoint.objects.get(owner=user)
    assert secret.startswith("whsec_") and secret == endpoint.secret
    row = page.locator(f"#endpoint-{endpoint.pk}")
    expect(row).to_contain_text("billing")
    expect(row).to_contain_text("task.succeeded")
    expect(row.locator(".badge")).to_have_text("Enabled")
    # Shown once: the page read again lists the endpoint without it.
    page.get_by_role("link", name="Webhooks", exact=True).click()
    expect(page.locator(f"#endpoint-{endpoint.pk}")).to_contain_text("billing")
    assert secret not in page.content()
    _screenshot(page, "webhooks")

    # Its delivery log, a delivery that failed, and its redelivery.
    delivery = failed_delivery(user)
    page.get_by_role("link", name="https://hooks.example.com/in", exact=True).click()
    expect(page.locator(f"#delivery-{delivery.pk} .badge")).to_have_text("Failed")
    _screenshot(page, "webhook-endpoint")
    page.locator(f"#delivery-{delivery.pk}").get_by_role("link", name="task.succeeded").click()
    expect(page.locator("#attempt-1")).to_contain_text("HTTP 503")
    _screenshot(page, "webhook-delivery")
    page.get_by_role("button", name="Redeliver").click()
    expect(page.locator(".messages")).to_contain_text("queued to be sent again")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_an_uploaded_pdf_is_processed_live_and_then_found_by_search(open_page, tmp_path):
    from tests.documents import samples

    pdf = samples.make_pdf(tmp_path / "minutes.pdf", ["The board approved the zeppelin budget"])
    notes = tmp_path / "notes.txt"
    notes.write_text("Nothing about airships here.")
    user = UserFactory(username="reader")
    page = open_page(user)
    page.get_by_role("link", name="Documents").click()

    # Two files at once, each sent with its own progress bar by the page's script.
    page.get_by_label("Files to upload").set_input_files([pdf, notes])
    page.get_by_role("button", name="Upload", exact=True).click()
    row = page.locator("tr", has_text="minutes.pdf")
    expect(row.locator(".badge")).to_have_text("Completed")
    expect(page.locator("tr", has_text="notes.txt").locator(".badge")).to_have_text("Completed")
    assert row.locator("td").nth(3).inner_text() == "1"  # pages
    _screenshot(page, "documents")

    row.get_by_role("link", name="minutes.pdf").click()
    expect(page.locator(".text-preview")).to_contain_text("zeppelin budget")
    _screenshot(page, "document-detail")

    page.get_by_role("link", name="All documents").click()
    page.get_by_role("searchbox").fill("zeppelin")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".snippet mark")).to_have_text("zeppelin")
    assert "minutes.pdf" in page.locator(".hits").inner_text()
    assert "notes.txt" not in page.locator(".hits").inner_text()
    _screenshot(page, "document-search")


def test_staff_see_the_system_page_with_its_charts_and_requeue_a_dead_letter(open_page):
    from datetime import timedelta

    from django.utils import timezone

    from operations.models import HealthSnapshot
    from tests.tasks_app.test_dead_letters import fail_for_good

    owner = UserFactory(username="unlucky")
    letter = fail_for_good(TaskRecordFactory(owner=owner, task_type="diagnostics.flaky"))
    now = timezone.now()
    for minutes_ago in range(180, 0, -3):  # three hours of history, one snapshot each 3 min
        HealthSnapshot.objects.create(
            created_at=now - timedelta(minutes=minutes_ago),
            status="healthy",
            figures={
                "seconds": 180.0,
                "finished": 90 + minutes_ago % 40,
                "failed": minutes_ago % 7,
                "p95_seconds": {"diagnostics.sleep": 1.0 + minutes_ago % 5},
                "queue_depths": {"default": minutes_ago % 11, "long": 3},
            },
        )
    page = open_page(UserFactory(username="operator", is_staff=True))

    page.get_by_role("link", name="System").click()
    expect(page.locator("#check-workers .badge")).to_have_text("Healthy")  # the test's worker
    expect(page.locator("svg.chart")).to_have_count(4)
    assert page.locator("#chart-0 polyline").count() >= 1
    box = page.locator("#chart-0").bounding_box()
    assert box["width"] > 200 and box["height"] > 50  # drawn, not collapsed
    _screenshot(page, "system")

    page.get_by_role("button", name=f"Requeue diagnostics.flaky {str(letter.task_id)[:8]}").click()
    expect(page.locator(".messages")).to_contain_text("is requeued as")
    letter.refresh_from_db()
    assert letter.resolution == "requeued"

    phone = open_page(UserFactory(username="operator-phone", is_staff=True), width=375)
    phone.goto(f"{open_page.url}/system/")
    _screenshot(phone, "system-375px")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
